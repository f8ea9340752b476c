"""Shared fixtures for the backend tests: a Backend on a virtual clock, a scripted socket,
and token minting.

    def test_x(harness):
        h = harness({"ENVIRONMENT": "staging", "JWT_SECRET_KEY": SECRET})
        socket = ScriptedSocket(headers={"authorization": f"Bearer {token(h)}"}, hold_s=1)
        recorder = h.connect(socket)

Expected values in tests come from spec/backend.md, never from the code's output.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import jwt
import pytest

from investigation.backend import runtime
from investigation.backend.process import Backend, StartupState
from investigation.backend.route import ClientDisconnected
from investigation.backend.variants import ORIGINAL, Variant
from investigation.clock import EPOCH_MS, SeededRandomness, VirtualClock, virtual_loop
from investigation.trace import DecisionRecorder

#: The virtual clock's start in seconds (2025-09-08 21:06:50.210 UTC).
EPOCH_S = EPOCH_MS / 1000
#: A test-only signing secret of at least 32 characters.
SECRET = "unit-test-secret-0123456789abcdef-0123"
STAGING_SECRET = "test-only-staging-secret-0123456789abcdef"
CLOUD_RUN_STAGING_ENV = {"ENVIRONMENT": "staging", "K_SERVICE": "netra-backend-staging",
                         "JWT_SECRET_KEY": STAGING_SECRET, "JWT_SECRET_STAGING": STAGING_SECRET}
"""Cloud Run staging (K_SERVICE set, ENVIRONMENT exactly "staging") with a usable test secret (spec 5.3: at least
32 characters), for the profiles the tests of counterfactual worlds build."""
ISSUER = "netra-auth-service"


class ScriptedSocket:
    """A client in process: sends `messages` [(at_s, text)] after accept, leaves after `hold_s`.

    Records every event with its virtual time (seconds since the harness's start):
    `events` = [(t, "accept" | "send" | "close", payload)].
    """

    def __init__(
        self,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        messages: tuple[tuple[float, str], ...] | list[tuple[float, str]] = (),
        hold_s: float | None = 5.0,
        receive_error: BaseException | None = None,
    ) -> None:
        self.headers = {name.lower(): value for name, value in (headers or {}).items()}
        self.query = dict(query or {})
        self.events: list[tuple[float, str, Any]] = []
        self.subprotocol: str | None = "<not accepted>"
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._messages = sorted(messages)
        self._hold_s = hold_s
        self._receive_error = receive_error
        self._incoming: asyncio.Queue[object] = asyncio.Queue()
        self._gone = False
        self._closed = False
        self._driver: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return not self._gone and not self._closed

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [payload for _, kind, payload in self.events if kind == "send"]

    def frame_times(self, frame_type: str) -> list[float]:
        return [t for t, kind, payload in self.events if kind == "send" and payload.get("type") == frame_type]

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    async def accept(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol
        self.events.append((self._now(), "accept", subprotocol))
        self._driver = asyncio.get_running_loop().create_task(self._drive())

    async def _drive(self) -> None:
        start = self._now()
        for at_s, text in self._messages:
            await asyncio.sleep(start + at_s - self._now())
            self._incoming.put_nowait(text)
        if self._hold_s is None:
            return
        await asyncio.sleep(start + self._hold_s - self._now())
        self._gone = True
        self._incoming.put_nowait(ClientDisconnected(1000))

    async def send_json(self, frame: dict[str, Any]) -> None:
        if not self.connected:
            raise ClientDisconnected(1006)
        self.events.append((self._now(), "send", frame))

    async def receive_text(self) -> str:
        if self._receive_error is not None:
            raise self._receive_error
        item = await self._incoming.get()
        if isinstance(item, BaseException):
            raise item
        return str(item)

    async def close(self, code: int, reason: str) -> None:
        if self._gone:
            raise ClientDisconnected(1006)
        self.close_code, self.close_reason = code, reason
        self._closed = True
        self.events.append((self._now(), "close", (code, reason)))

    def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()


def message(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields})


class Harness:
    """One backend process on its own virtual clock and event loop."""

    def __init__(self, environ: Mapping[str, str], **backend_options: Any) -> None:
        self.clock = VirtualClock()
        self.loop = virtual_loop(self.clock)
        startup = backend_options.pop("startup", StartupState())
        variant: Variant = backend_options.pop("variant", ORIGINAL)
        self.backend = Backend(
            environ,
            clock=self.clock,
            randomness=SeededRandomness(backend_options.pop("seed", 0)),
            startup=startup,
            variant=variant,
            **backend_options,
        )

    @property
    def now(self) -> float:
        """Virtual seconds since the start."""
        return self.clock.elapsed

    def run(self, awaitable_factory: Callable[[], Awaitable[Any]]) -> Any:
        """Run a coroutine as this backend process on the virtual loop."""

        async def as_backend() -> Any:
            token = runtime.activate(self.backend)
            try:
                return await awaitable_factory()
            finally:
                runtime.deactivate(token)

        return self.loop.run_until_complete(as_backend())

    def advance_to(self, elapsed_s: float) -> None:
        """Let virtual time (and every background task) run until `elapsed_s`."""
        self.run(lambda: asyncio.sleep(max(elapsed_s - self.now, 0.0)))

    def connect(self, socket: ScriptedSocket) -> DecisionRecorder:
        """One connection through the route, to its end."""

        async def handle() -> DecisionRecorder:
            try:
                return await self.backend.handle(socket)
            finally:
                socket.stop()

        return self.loop.run_until_complete(handle())

    def connect_at(self, elapsed_s: float, socket: ScriptedSocket) -> DecisionRecorder:
        self.advance_to(elapsed_s)
        return self.connect(socket)

    @contextlib.contextmanager
    def active(self) -> Iterator[Backend]:
        """Make this backend current for synchronous calls (context creation, validation)."""
        token = runtime.activate(self.backend)
        try:
            yield self.backend
        finally:
            runtime.deactivate(token)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):
            self.loop.run_until_complete(self.backend.shutdown())
        pending = asyncio.all_tasks(self.loop)
        for task in pending:
            task.cancel()
        if pending:
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self.loop.close()


@pytest.fixture
def harness() -> Iterator[Callable[..., Harness]]:
    """A factory of harnesses; each is closed at teardown."""
    made: list[Harness] = []

    def make(environ: Mapping[str, str] | None = None, **options: Any) -> Harness:
        made.append(Harness(environ or {}, **options))
        return made[-1]

    yield make
    for instance in made:
        instance.close()


def claims_for(sub: Any = "user-0001", now_s: float = EPOCH_S, **overrides: Any) -> dict[str, Any]:
    """A valid access token's claims per spec 5.3 (token_type, iss, jti, 15 min lifetime)."""
    claims: dict[str, Any] = {
        "sub": sub,
        "iat": int(now_s),
        "exp": int(now_s) + 900,
        "iss": ISSUER,
        "jti": "jti-0001",
        "token_type": "access",
        "email": "someone@example.test",
        "permissions": ["user"],
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not _ABSENT}


#: Pass as a claim value to leave that claim out.
_ABSENT = object()
ABSENT = _ABSENT


def mint(claims: Mapping[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(dict(claims), secret, algorithm=algorithm)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def welcome_frames(socket: ScriptedSocket) -> list[dict[str, Any]]:
    return [
        frame
        for frame in socket.frames
        if frame.get("type") == "system_message" and frame["data"].get("event") == "connection_established"
    ]


def outcome(recorder: DecisionRecorder, point: str) -> str | None:
    for decision in recorder.decisions:
        if decision.point == point:
            return decision.outcome
    return None


def log_messages(h: Harness, level: str | None = None) -> list[str]:
    return [record.message for record in h.backend.logs if level is None or record.level == level]
