"""Wire mode: a profile's traffic through real sockets on loopback, on virtual time.

    run = simulate_wire(load_profile("staging-e2e"))   # same RunResult as simulate()

One event loop holds both sides: uvicorn serving `build_app(...)` on an
ephemeral 127.0.0.1 port, and one `websockets` client per planned connection.
The loop's time is the virtual clock (`virtual_loop` with a small real poll),
so hour-long scenarios take seconds. The clients behave exactly like
`SimulatedSocket`'s driver: the same plan, tokens and instance choice
(`investigation.traffic`), each message sent at its time after the handshake,
the client leaving (close 1000) after `hold_s`.

A connection's close code is what its client saw: the code and reason of a
close frame the server sent first; None when the client left first or the
connection ended without a close frame (as in the simulation).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from investigation.backend.variants import get_variant
from investigation.clock import VirtualClock, outside_event_loop, virtual_loop
from investigation.profiles import Profile
from investigation.simulate import connection_result, run_plan, run_result, scheduled_messages
from investigation.trace import ConnectionResult, RunResult
from investigation.traffic import (
    PlannedConnection,
    auth_environment,
    build_request,
    connection_plan,
    instance_for,
)
from investigation.wire.app import CONNECTION_HEADER, INSTANCE_HEADER, ServedConnection, WireState, build_app
from investigation.wire.server import running_server

#: Real seconds the loop waits for socket activity before virtual time may jump.
WIRE_POLL_S = 0.002
#: Virtual seconds a client waits for the handshake and for the closing handshake.
CLIENT_TIMEOUT_S = 30.0


@dataclass
class ClientView:
    """What one client saw of its connection."""

    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    client_left: bool = False
    subprotocol: str | None = None
    refused: str | None = None


def client_headers(headers: dict[str, str], planned: PlannedConnection, instance: int) -> dict[str, str]:
    """The request headers to send: the profile's, minus the subprotocol list (sent by `connect`)."""
    sent = {name: value for name, value in headers.items() if name != "sec-websocket-protocol"}
    sent[INSTANCE_HEADER] = str(instance)
    sent[CONNECTION_HEADER] = str(planned.index)
    return sent


def server_close(connection: ClientConnection) -> tuple[int | None, str | None]:
    """(code, reason) of a close frame the server sent before the client sent one, else (None, None)."""
    protocol = connection.protocol
    received = protocol.close_rcvd
    if received is None or not protocol.close_rcvd_then_sent:
        return None, None
    return received.code, received.reason


async def _read_frames(connection: ClientConnection, view: ClientView) -> None:
    try:
        async for raw in connection:
            view.frames.append(json.loads(raw) if isinstance(raw, str) else {"binary": len(raw)})
    except ConnectionClosed:
        pass


async def drive_client(connection: ClientConnection, client: Any, view: ClientView) -> None:
    """Send the client's messages at their times, then leave after `hold_s` (as SimulatedSocket)."""
    reader = asyncio.get_running_loop().create_task(_read_frames(connection, view))
    try:
        elapsed = 0.0
        for at_s, text in scheduled_messages(client):
            await asyncio.wait({reader}, timeout=at_s - elapsed)
            elapsed = at_s
            if reader.done():
                break
            try:
                await connection.send(text)
            except ConnectionClosed:
                break
        if not reader.done():
            await asyncio.wait({reader}, timeout=client.hold_s - elapsed)
        if not reader.done() and connection.protocol.close_rcvd is None:
            view.client_left = True
            await connection.close(1000)
        await reader
    finally:
        reader.cancel()
    view.close_code, view.close_reason = server_close(connection)


class _WireRun:
    """One wire-mode run: the server, the plan, and what each side saw of each connection."""

    def __init__(self, profile: Profile, variant: str, clock: VirtualClock) -> None:
        self.profile = profile
        self.variant = variant
        self.clock = clock
        self.app = build_app(profile, variant, clock, record_connections=True)
        self.state: WireState = self.app.state.wire
        self.auth_env = auth_environment(profile)
        self.plan = connection_plan(profile)
        self.views: dict[int, ClientView] = {}
        self.results: dict[int, ConnectionResult] = {}
        self.instances: dict[int, int] = {}
        self.url = ""

    async def execute(self) -> None:
        async with running_server(self.app) as url:
            self.url = url
            await run_plan(self.plan, self.clock, self.profile.duration_s, self._connect, self._record_unfinished)

    def _record_unfinished(self) -> None:
        """Snapshot connections still running when the run stops (before closing them adds decisions)."""
        for planned in self.plan:
            if planned.index not in self.results and planned.index in self.views:
                self._record(planned)

    async def _connect(self, planned: PlannedConnection) -> None:
        instance = self.instances[planned.index] = instance_for(planned, self.profile.routing, self.profile.instances)
        request = build_request(planned, self.auth_env, self.clock.now())
        view = self.views[planned.index] = ClientView()
        query = f"?{urlencode(request.query)}" if request.query else ""
        try:
            async with connect(
                self.url + query,
                additional_headers=client_headers(request.headers, planned, instance),
                subprotocols=list(request.subprotocols) or None,  # type: ignore[arg-type]
                ping_interval=None,
                open_timeout=CLIENT_TIMEOUT_S,
                close_timeout=CLIENT_TIMEOUT_S,
                max_size=None,
            ) as connection:
                view.subprotocol = connection.subprotocol
                await drive_client(connection, planned.client, view)
        except (InvalidHandshake, OSError, TimeoutError) as error:
            view.refused = f"{type(error).__name__}: {error}"
        await self._server_done(planned)
        if planned.index not in self.results:
            self._record(planned)

    async def _server_done(self, planned: PlannedConnection) -> None:
        """Wait until the server side of the connection has finished its route (at most CLIENT_TIMEOUT_S).

        A connection the server never registered (refused before its route ran) has nothing to wait for.
        """
        served = self.state.connections.get(str(planned.index))
        if served is None or served.done.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLIENT_TIMEOUT_S):
                await served.done.wait()

    def _record(self, planned: PlannedConnection) -> None:
        view = self.views[planned.index]
        served = self.state.connections.get(str(planned.index))
        self.results[planned.index] = connection_result(
            planned,
            self.instances[planned.index],
            served.recorder if served is not None else None,
            (view.close_code, view.close_reason),
            view.frames,
            self._ended_at_s(served),
        )

    def _ended_at_s(self, served: ServedConnection | None) -> float:
        if served is None or served.ended_at is None:
            return round(self.clock.elapsed, 6)
        return round(served.ended_at - self.clock.epoch_ms / 1000, 6)


def simulate_wire(profile: Profile, variant: str = "original", real_poll_s: float = WIRE_POLL_S) -> RunResult:
    """Run every connection of `profile` through real WebSockets on loopback, on virtual time.

    Like `simulate`, it works from inside a running event loop (a Jupyter
    cell): the virtual-time loop then runs in a worker thread.
    """
    return outside_event_loop(_simulate_wire_here, profile, variant, real_poll_s)


def _simulate_wire_here(profile: Profile, variant: str, real_poll_s: float) -> RunResult:
    chosen = get_variant(variant)
    clock = VirtualClock()
    loop = virtual_loop(clock, real_poll_s)
    run = _WireRun(profile, chosen.name, clock)
    try:
        loop.run_until_complete(run.execute())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    return run_result(profile, chosen, run.results, run.state.backends, clock)
