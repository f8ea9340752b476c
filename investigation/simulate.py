"""Run a profile in process: every connection through the backend on virtual time.

    run = simulate(load_profile("staging-e2e"))
    run.summary()   # {"close_codes": {"1008": 0, "1011": 10, "open": 26}}
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from investigation.backend.process import Backend, LogSink, StartupState
from investigation.backend.route import ClientDisconnected
from investigation.backend.variants import Variant, get_variant
from investigation.clock import SeededRandomness, VirtualClock, outside_event_loop, virtual_loop
from investigation.profiles import Profile
from investigation.trace import ConnectionResult, DecisionRecorder, ManagerCount, RunResult, cause_chain
from investigation.traffic import (
    ConnectionRequest,
    PlannedConnection,
    auth_environment,
    build_request,
    connection_plan,
    instance_for,
)

_CLIENT_LEFT = object()
#: The run stops just after `duration_s`, so everything due at exactly `duration_s`
#: (a client leaving on the boundary) happens first, whatever order the loop picks.
CUTOFF_GRACE_S = 1e-3


class SimulatedSocket:
    """A client connection in process: scripted messages, then the client leaves."""

    def __init__(self, request: ConnectionRequest, client: Any, clock: VirtualClock) -> None:
        self.headers: Mapping[str, str] = request.headers
        self.query: Mapping[str, str] = request.query
        self.frames: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.subprotocol: str | None = None
        self._client = client
        self._clock = clock
        self._client_gone = False
        self._server_closed = False
        self._incoming: asyncio.Queue[object] = asyncio.Queue()
        self._driver: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return not self._client_gone and not self._server_closed

    async def accept(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol
        self._driver = asyncio.get_running_loop().create_task(self._drive_client())

    async def _drive_client(self) -> None:
        """Send the client's messages at their times, then leave after `hold_s`."""
        elapsed = 0.0
        for at_s, text in scheduled_messages(self._client):
            await self._clock.sleep(at_s - elapsed)
            elapsed = at_s
            self._incoming.put_nowait(text)
        await self._clock.sleep(self._client.hold_s - elapsed)
        self._client_gone = True
        self._incoming.put_nowait(_CLIENT_LEFT)

    async def send_json(self, frame: dict[str, Any]) -> None:
        if not self.connected:
            raise ClientDisconnected(1006)
        self.frames.append(frame)

    async def receive_text(self) -> str:
        item = await self._incoming.get()
        if item is _CLIENT_LEFT:
            raise ClientDisconnected(1000)
        return str(item)

    async def close(self, code: int, reason: str) -> None:
        if self._client_gone:
            raise ClientDisconnected(1006)
        self.close_code, self.close_reason = code, reason
        self._server_closed = True

    def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()


def message_text(message: Any) -> str:
    """The text frame a profile message becomes on the wire."""
    if message.type == "raw":
        return str(message.text)
    return json.dumps({"type": message.type, "payload": {"text": message.text}})


def scheduled_messages(client: Any) -> list[tuple[float, str]]:
    """(at_s, text) of each message the client sends before it leaves at `hold_s`, in time order."""
    return [
        (message.at_s, message_text(message))
        for message in sorted(client.messages, key=lambda m: m.at_s)
        if message.at_s < client.hold_s
    ]


def connection_result(
    planned: PlannedConnection,
    instance: int,
    recorder: DecisionRecorder | None,
    close: tuple[int | None, str | None],
    frames: Sequence[dict[str, Any]],
    ended_at_s: float,
) -> ConnectionResult:
    """One connection's result from what its client saw and what the server recorded.

    Args:
        planned: the connection in the plan.
        instance: the backend instance that served it.
        recorder: the server's decisions for it; None when the server never ran its route.
        close: (code, reason) of the server's close frame, (None, None) if there was none.
        frames: the frames the server sent.
        ended_at_s: virtual seconds since the start when it ended.

    The user is the one the server identified, else the one the client presents; the
    cause chain is kept only for a connection the server closed.
    """
    close_code, close_reason = close
    user_id = recorder.user_id if recorder is not None else None
    return ConnectionResult(
        index=planned.index,
        client=planned.client.name,
        instance=instance,
        user_id=user_id if user_id is not None else planned.client.user_id,
        at_s=planned.at_s,
        close_code=close_code,
        close_reason=close_reason,
        decisions=recorder.decisions if recorder is not None else (),
        cause_chain=cause_chain(recorder.failure) if recorder is not None and close_code is not None else (),
        frames=tuple(frames),
        ended_at_s=ended_at_s,
        manager_key=recorder.manager_key if recorder is not None else None,
    )


async def run_plan(
    plan: Sequence[PlannedConnection],
    clock: VirtualClock,
    duration_s: float | None,
    connect: Callable[[PlannedConnection], Awaitable[None]],
    record_unfinished: Callable[[], None],
) -> None:
    """Start every planned connection at its time; wait for all, or stop just after `duration_s`.

    `record_unfinished` snapshots the connections still open when the run stops, before
    they are cancelled.
    """
    tasks: list[asyncio.Task[None]] = []
    try:
        for planned in plan:
            await clock.sleep(planned.at_s - clock.elapsed)
            tasks.append(asyncio.get_running_loop().create_task(connect(planned)))
        if duration_s is None:
            await asyncio.gather(*tasks)
        elif tasks:
            remaining = max(duration_s - clock.elapsed, 0.0) + CUTOFF_GRACE_S
            await asyncio.wait(tasks, timeout=remaining)
        record_unfinished()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def backend_for(
    profile: Profile, instance: int, clock: VirtualClock, variant: Variant, log_sink: LogSink | None = None
) -> Backend:
    """A fresh backend process for one instance of the profile's deployment."""
    return Backend(
        profile.env,
        clock=clock,
        randomness=SeededRandomness(profile.seed * 1000 + instance),
        startup=StartupState(**profile.startup.model_dump()),
        variant=variant,
        pytest_loaded=profile.process.pytest_loaded,
        dotenv=profile.process.dotenv,
        log_sink=log_sink,
    )


class SimulationRun:
    """The state of one simulation: backends, the plan, and what each connection did."""

    def __init__(self, profile: Profile, variant: Variant, clock: VirtualClock) -> None:
        self.profile = profile
        self.clock = clock
        self.backends = [backend_for(profile, i, clock, variant) for i in range(profile.instances)]
        self.auth_env = auth_environment(profile)
        self.plan = connection_plan(profile)
        self.results: dict[int, ConnectionResult] = {}
        self.sockets: dict[int, SimulatedSocket] = {}
        self.recorders: dict[int, DecisionRecorder] = {}
        self.instances: dict[int, int] = {}

    async def execute(self) -> None:
        await run_plan(self.plan, self.clock, self.profile.duration_s, self._connect, self._record_unfinished)
        for socket in self.sockets.values():
            socket.stop()
        for backend in self.backends:
            await backend.shutdown()

    def _record_unfinished(self) -> None:
        for planned in self.plan:
            if planned.index not in self.results and planned.index in self.sockets:
                self._record(planned)

    async def _connect(self, planned: PlannedConnection) -> None:
        instance = self.instances[planned.index] = instance_for(planned, self.profile.routing, self.profile.instances)
        request = build_request(planned, self.auth_env, self.clock.now())
        socket = SimulatedSocket(request, planned.client, self.clock)
        recorder = DecisionRecorder()
        self.sockets[planned.index], self.recorders[planned.index] = socket, recorder
        await self.backends[instance].handle(socket, recorder)
        socket.stop()
        self._record(planned)

    def _record(self, planned: PlannedConnection) -> None:
        socket = self.sockets[planned.index]
        self.results[planned.index] = connection_result(
            planned,
            self.instances[planned.index],
            self.recorders[planned.index],
            (socket.close_code, socket.close_reason),
            socket.frames,
            round(self.clock.elapsed, 6),
        )



def simulate(profile: Profile, variant: str = "original") -> RunResult:
    """Run every connection of `profile` in process, on virtual time, under `variant`.

    Works from inside a running event loop too (a Jupyter cell): the virtual-time
    loop then runs in a worker thread.
    """
    return outside_event_loop(_simulate_here, profile, variant)


def _simulate_here(profile: Profile, variant: str) -> RunResult:
    chosen = get_variant(variant)
    run = run_on_virtual_time(lambda clock: SimulationRun(profile, chosen, clock))
    return run_result(profile, chosen, run.results, run.backends, run.clock)


Run = TypeVar("Run", bound=SimulationRun)
TaskFactory = Callable[..., "asyncio.Task[Any]"]
"""An event loop's task factory: ``(loop, coroutine, **options) -> Task``."""


def run_on_virtual_time(new_run: Callable[[VirtualClock], Run], task_factory: TaskFactory | None = None) -> Run:
    """The run ``new_run`` makes on a fresh virtual clock, executed to its end on its own loop.

    ``task_factory``, when given, makes every task of the run (the loop's ``set_task_factory``).
    The loop is closed afterwards, whether the run ended or raised.
    """
    clock = VirtualClock()
    loop = virtual_loop(clock)
    if task_factory is not None:
        loop.set_task_factory(task_factory)
    run = new_run(clock)
    try:
        loop.run_until_complete(run.execute())
    finally:
        loop.close()
    return run


def manager_counts(backends: Sequence[Backend], clock: VirtualClock) -> tuple[ManagerCount, ...]:
    """Every change of a user's manager count, per instance, in virtual seconds since the start."""
    epoch = clock.epoch_ms / 1000
    return tuple(
        ManagerCount(round(at - epoch, 6), instance, user_id, count, key)
        for instance, backend in enumerate(backends)
        for at, user_id, count, key in backend.factory.count_history
    )


def run_result(
    profile: Profile,
    variant: Variant,
    results: Mapping[int, ConnectionResult],
    backends: Sequence[Backend],
    clock: VirtualClock,
) -> RunResult:
    """The run's result: connections in start order, and the manager counts behind them."""
    return RunResult(
        profile=profile.name,
        variant=variant.name,
        connections=tuple(results[i] for i in sorted(results)),
        manager_counts=manager_counts(backends, clock),
        max_managers_per_user=variant.max_managers_per_user,
        log_messages=tuple(record.message for backend in backends for record in backend.logs),
    )
