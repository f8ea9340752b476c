"""One backend process: the state the original keeps in process-wide singletons.

    backend = Backend({"ENVIRONMENT": "staging", "K_SERVICE": "svc"}, clock=clock,
                      randomness=SeededRandomness(0))
    recorder = await backend.handle(socket)     # one connection through the route
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from investigation.backend import runtime
from investigation.backend.environment import IsolatedEnvironment
from investigation.backend.factory import WebSocketManagerFactory
from investigation.backend.ids import UnifiedIdGenerator
from investigation.backend.route import ServerSocket, websocket_endpoint
from investigation.backend.variants import ORIGINAL, Variant
from investigation.clock import Clock, SeededRandomness
from investigation.trace import DecisionRecorder, start_recording, stop_recording


@dataclass(frozen=True)
class StartupState:
    """The app's startup as the route sees it."""

    complete: bool = True
    complete_after_s: float | None = None
    agent_supervisor: bool = True
    thread_service: bool = True
    id_generator_fails: bool = False


class LogRecord(NamedTuple):
    """One line of the process log (a named tuple: several are written per connection)."""

    at: float
    level: str
    message: str


LogSink = Callable[[LogRecord], None]


class Backend:
    """A fresh backend process: environment, clock, randomness, ID counter, factory.

    Its log records are kept in `logs`, unless a `log_sink` is given: then each goes
    to the sink and none is kept (a long-running server forwards them instead of
    holding one record per event for its whole life).
    """

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        clock: Clock,
        randomness: SeededRandomness,
        startup: StartupState = StartupState(),
        variant: Variant = ORIGINAL,
        pytest_loaded: bool = False,
        dotenv: Mapping[str, str] | None = None,
        log_sink: LogSink | None = None,
    ) -> None:
        self.env = IsolatedEnvironment(environ, pytest_loaded=pytest_loaded, dotenv=dotenv)
        self.clock = clock
        self.randomness = randomness
        self.startup = startup
        self.variant = variant
        self.ids = UnifiedIdGenerator(clock, randomness, fails=startup.id_generator_fails)
        self.factory = WebSocketManagerFactory(variant.max_managers_per_user)
        self.logs: list[LogRecord] = []
        self._log_sink: LogSink = log_sink if log_sink is not None else self.logs.append
        self.started_at = clock.now()
        self._background: list[asyncio.Task[Any]] = []
        self.process_context = contextvars.Context()
        self.process_context.run(runtime.activate, self)

    def log(self, level: str, message: str) -> None:
        self._log_sink(LogRecord(self.clock.now(), level, message))

    def startup_complete(self) -> bool:
        if self.startup.complete:
            return True
        after = self.startup.complete_after_s
        return after is not None and self.clock.now() - self.started_at >= after

    def dependency_present(self, name: str) -> bool:
        return bool(getattr(self.startup, name))

    def spawn_background(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A process task (the cleanup loop): runs as this backend, traced by no connection."""
        task = asyncio.get_running_loop().create_task(coroutine, context=self.process_context)
        self._background.append(task)
        return task

    def call_later(self, delay_s: float, callback: Callable[..., object], *args: object) -> asyncio.TimerHandle:
        """A process timer (a manager's health check): like `spawn_background`, it holds no
        connection's context, so a timer that outlives its connection keeps no trace alive."""
        return asyncio.get_running_loop().call_later(delay_s, callback, *args, context=self.process_context)

    async def handle(self, websocket: ServerSocket, recorder: DecisionRecorder | None = None) -> DecisionRecorder:
        """Run one connection through the route as this process; returns its decisions."""
        active = recorder if recorder is not None else DecisionRecorder()
        process_token = runtime.activate(self)
        recorder_token = start_recording(active)
        try:
            await websocket_endpoint(websocket)
            return active
        finally:
            stop_recording(recorder_token)
            runtime.deactivate(process_token)

    def activate(self) -> contextvars.Token[Any]:
        """Make this the current process outside `handle` (tests, direct calls)."""
        return runtime.activate(self)

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
