"""The profile-client shim of `serve`: connect as one of the profile's clients with only a URL.

    ws://127.0.0.1:8765/ws?client=e2e-process-2&instance=1

A test harness feature of `investigation serve`, for clients that can set
neither headers nor subprotocols (the `websockets` command-line client, a
browser). The route sees such a connection exactly as the simulation presents
that client's connection (`traffic.build_request`): the client's headers (the
E2E suite's X-Test-* headers, say), its subprotocols, and a token minted here,
server-side, of the client's kind and travelling where the client sends it
(Authorization header, jwt.* subprotocol or ?token=). The route sees nothing
of the real request's own headers and query: neither `client` nor `instance`
ever reaches the backend. No token is in the URL, so none is printed or logged.

The wire keeps the real client's handshake: a subprotocol the route chooses is
sent back only if the real client offered it (otherwise the real client would
have to fail the handshake), while the route's choice is what `subprotocol`
holds, as in the simulation.

The n-th `?client=NAME` connection of the server carries token number n of
that client (its jti), minted at the real time it starts. A NAME that is not
a client of the profile is refused before the WebSocket opens (HTTP 403), and
the server logs "unknown profile client; known clients: ..." (a harness
refusal, so it cannot be mistaken for one of the route's closes, which all
come after accept).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.websockets import WebSocket

from investigation.backend.environment import IsolatedEnvironment
from investigation.profiles import Client, Profile
from investigation.traffic import (
    ConnectionRequest,
    PlannedConnection,
    auth_environment,
    build_request,
)
from investigation.wire.adapter import StarletteServerSocket

CLIENT_QUERY = "client"


@dataclass
class ProfileClients:
    """The profile's clients by name, and how many connections each has opened through the shim."""

    clients: tuple[Client, ...]
    auth_env: IsolatedEnvironment
    opened: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, profile: Profile) -> ProfileClients:
        env = auth_environment(profile)
        return cls(profile.clients, env)

    def index_of(self, name: str) -> int | None:
        """The client's position in the profile (its sticky instance key), None if unknown."""
        for index, client in enumerate(self.clients):
            if client.name == name:
                return index
        return None

    def request_for(self, client_index: int, now_s: float) -> ConnectionRequest:
        """The next connection of the client, as `traffic.build_request` makes it at `now_s`."""
        client = self.clients[client_index]
        number = self.opened.get(client.name, 0)
        self.opened[client.name] = number + 1
        planned = PlannedConnection(index=number, client_index=client_index, client=client, number=number, at_s=0.0)
        return build_request(planned, self.auth_env, now_s)

    def unknown_client_text(self) -> str:
        known = ", ".join(client.name for client in self.clients) or "(the profile has none)"
        return f"unknown profile client; known clients: {known}"


class ProfileClientSocket(StarletteServerSocket):
    """The route's socket for a `?client=` connection: the profile client's request, the real wire."""

    def __init__(self, websocket: WebSocket, request: ConnectionRequest) -> None:
        super().__init__(websocket)
        self.headers = dict(request.headers)
        self.query = dict(request.query)
        self._offered: Collection[str] = tuple(websocket.scope.get("subprotocols", ()))

    def wire_subprotocol(self, subprotocol: str | None) -> str | None:
        return subprotocol if subprotocol in self._offered else None


def client_urls(base_url: str, clients: Sequence[Client]) -> list[str]:
    """`base_url?client=NAME` for each client, in the profile's order (no token in any of them)."""
    return [f"{base_url}?{urlencode({CLIENT_QUERY: client.name})}" for client in clients]
