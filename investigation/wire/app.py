"""The ASGI app: the backend's `/ws` route over a real WebSocket, configured by a profile.

    app = build_app(load_profile("staging-e2e"))        # real clock, ready for uvicorn

Instances. A profile with `instances = N` gets N independent backend processes
(N factories, N ID counters) inside the one app. Each connection goes to:
1. the instance named by the `X-Investigation-Instance: K` header or, for
   clients that cannot set headers (the websockets CLI, a browser), the
   `?instance=K` query parameter (0 <= K < N, decimal digits); the selector is
   routing information of this harness, so the route sees neither;
2. otherwise the profile's routing: "round_robin" -> the n-th connection the
   app received without a selector (counting from 0) goes to n % N, as in the
   simulation; "sticky" -> the profile client's index % N for a `?client=`
   connection, else instance 0 (a client without a selector is one affinity
   session).
Wire mode (`simulate_wire`) always sends the header, with the instance
`traffic.instance_for` gives the simulation.

Profile clients. `build_app(profile, profile_clients=True)` (what `serve`
builds) adds the test-harness shim of `investigation.wire.profile_client`:
`ws://HOST:PORT/ws?client=NAME` connects as the profile's client NAME, its
headers, subprotocols and a server-minted token presented to the route as in
the simulation, so a client that can only take a URL reproduces the incident.
The route, auth and everything after are unchanged; the backend never sees
`client` or `instance`. An unknown NAME gets HTTP 403 before the WebSocket opens
(a close before accept), and the server logs a warning naming the known clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from investigation.backend.process import Backend, LogRecord, LogSink
from investigation.backend.route import ClientDisconnected
from investigation.backend.variants import get_variant
from investigation.clock import Clock, RealClock
from investigation.profiles import Profile
from investigation.simulate import backend_for
from investigation.trace import DecisionRecorder
from investigation.wire.adapter import StarletteServerSocket, lowered_headers
from investigation.wire.profile_client import (
    CLIENT_QUERY,
    ProfileClients,
    ProfileClientSocket,
)

INSTANCE_HEADER = "x-investigation-instance"
INSTANCE_QUERY = "instance"
#: Wire mode tags each connection with its index in the plan, to pair the
#: server's decision trace with what the client saw (only read when recording).
CONNECTION_HEADER = "x-investigation-connection"
HARNESS_HEADERS = frozenset({INSTANCE_HEADER, CONNECTION_HEADER})
WS_PATH = "/ws"
#: Close code that, sent before accept, makes the server answer the handshake with HTTP 403.
REFUSED_BEFORE_ACCEPT = 1008
LOGGER_NAME = "investigation.wire"
#: Where `forward_backend_logs` sends the backends' own log lines (a child of LOGGER_NAME).
BACKEND_LOGGER_NAME = f"{LOGGER_NAME}.backend"
LOGGING_LEVELS = logging.getLevelNamesMapping()  # the backend's level names are logging's


@dataclass
class ServedConnection:
    """What the server side saw of one tagged connection."""

    instance: int
    recorder: DecisionRecorder
    ended_at: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event, repr=False, compare=False)


@dataclass
class WireState:
    """The app's backends, its routing, and (in wire mode) the tagged connections."""

    backends: list[Backend]
    routing: str
    clock: Clock
    record_connections: bool = False
    profile_clients: ProfileClients | None = None
    received: int = 0
    connections: dict[str, ServedConnection] = field(default_factory=dict)

    def pick_instance(
        self, headers: Mapping[str, str], query: Mapping[str, str], client_index: int | None = None
    ) -> int:
        """The instance for a new connection (see the module docstring).

        Args:
            headers: the request's lower-cased headers.
            query: the request's query parameters.
            client_index: the profile client's index for a `?client=` connection.
        """
        for chosen in (headers.get(INSTANCE_HEADER), query.get(INSTANCE_QUERY)):
            if chosen is not None and chosen.isascii() and chosen.isdigit() and int(chosen) < len(self.backends):
                return int(chosen)
        number, self.received = self.received, self.received + 1
        if self.routing == "round_robin":
            return number % len(self.backends)
        return client_index % len(self.backends) if client_index is not None else 0


def build_app(
    profile: Profile,
    variant: str = "original",
    clock: Clock | None = None,
    *,
    record_connections: bool = False,
    profile_clients: bool = False,
    forward_backend_logs: bool = False,
) -> Starlette:
    """A Starlette app serving the profile's backend at `/ws`.

    Args:
        profile: environment, startup state and instance count of the backend.
        variant: original or one of the candidate changes (spec section 8).
        clock: the backends' clock; a `RealClock` when None.
        record_connections: keep each tagged connection's decision trace in
            `app.state.wire.connections` (wire mode; off when serving).
        profile_clients: accept `?client=NAME` connections as the profile's
            clients (the shim in the module docstring; on when serving).
        forward_backend_logs: send each backend log record to the
            `investigation.wire.backend` logger, tagged with its instance, and keep
            none in `Backend.logs` (on when serving: the server runs for hours).
    """
    chosen_clock = clock if clock is not None else RealClock()
    chosen_variant = get_variant(variant)
    sinks = [backend_log_forwarder(i) if forward_backend_logs else None for i in range(profile.instances)]
    backends = [backend_for(profile, i, chosen_clock, chosen_variant, sinks[i]) for i in range(profile.instances)]  # type: ignore[arg-type]
    state = WireState(
        backends,
        profile.routing,
        chosen_clock,
        record_connections,
        ProfileClients.of(profile) if profile_clients else None,
    )

    async def websocket_route(websocket: WebSocket) -> None:
        await _serve_connection(state, websocket)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            for backend in state.backends:
                await backend.shutdown()

    app = Starlette(routes=[WebSocketRoute(WS_PATH, websocket_route)], lifespan=lifespan)
    app.state.wire = state
    return app


def backend_log_forwarder(instance: int) -> LogSink:
    """A log sink that hands each record of backend `instance` to the `investigation.wire.backend` logger."""
    logger = logging.getLogger(BACKEND_LOGGER_NAME)

    def forward(record: LogRecord) -> None:
        logger.log(LOGGING_LEVELS[record.level], "instance %d: %s", instance, record.message)

    return forward


async def _serve_connection(state: WireState, websocket: WebSocket) -> None:
    """One connection through the chosen instance's route; a client that left ends it quietly."""
    opened = await _route_socket(state, websocket)
    if opened is None:
        return
    socket, instance = opened
    served = ServedConnection(instance, DecisionRecorder())
    tag = lowered_headers(websocket).get(CONNECTION_HEADER)
    if state.record_connections and tag is not None:
        state.connections[tag] = served
    try:
        await state.backends[instance].handle(socket, served.recorder)
    except (ClientDisconnected, WebSocketDisconnect, OSError):
        state.backends[instance].log("INFO", "client left before the route finished")
    finally:
        await socket.stop()
        served.ended_at = state.clock.now()
        served.done.set()


async def _route_socket(state: WireState, websocket: WebSocket) -> tuple[StarletteServerSocket, int] | None:
    """The socket the route sees and its instance; None when the shim refused an unknown client."""
    raw_headers = lowered_headers(websocket)
    shim = state.profile_clients
    client_name = websocket.query_params.get(CLIENT_QUERY) if shim is not None else None
    if shim is None or client_name is None:
        socket = StarletteServerSocket(websocket, hidden_headers=HARNESS_HEADERS, hidden_query=(INSTANCE_QUERY,))
        return socket, state.pick_instance(raw_headers, websocket.query_params)
    client_index = shim.index_of(client_name)
    if client_index is None:
        logging.getLogger(LOGGER_NAME).warning("%s", shim.unknown_client_text())
        await websocket.close(REFUSED_BEFORE_ACCEPT)
        return None
    instance = state.pick_instance(raw_headers, websocket.query_params, client_index)
    return ProfileClientSocket(websocket, shim.request_for(client_index, state.clock.now())), instance
