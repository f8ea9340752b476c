"""Spec section 1: the `/ws` route step by step, and every row of the close-code table (1.2)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from investigation.backend import factory as factory_module
from investigation.backend import route as route_module
from investigation.backend.auth import AuthResult
from investigation.backend.factory import ConnectionRecord, _validate_relaxed
from investigation.backend.foreign_contexts import SupervisorUserExecutionContext
from investigation.backend.process import StartupState
from investigation.backend.route import detect_route_e2e
from investigation.backend.variants import VARIANTS
from tests.conftest import (
    EPOCH_S,
    SECRET,
    Harness,
    ScriptedSocket,
    bearer,
    claims_for,
    log_messages,
    message,
    mint,
    outcome,
    welcome_frames,
)

DEV = {"ENVIRONMENT": "development", "JWT_SECRET_KEY": SECRET}
STAGING = {"ENVIRONMENT": "staging", "K_SERVICE": "netra-backend-staging", "JWT_SECRET_STAGING": SECRET}
PRODUCTION = {"ENVIRONMENT": "production", "JWT_SECRET_KEY": SECRET, "JWT_ALGORITHM": "HS256"}
ERROR_FRAME_KEYS = {"type", "error_code", "error_message", "details", "timestamp", "recovery_suggestions"}


def user_socket(user: str = "user-0001", **options: Any) -> ScriptedSocket:
    headers = {**bearer(mint(claims_for(user))), **options.pop("headers", {})}
    return ScriptedSocket(headers=headers, **options)


def kinds(socket: ScriptedSocket) -> list[str]:
    return [kind for _, kind, _ in socket.events]


# --- steps 3 and 5: accept before auth, subprotocol, auth failure --------------------------------


def test_accept_comes_before_authentication_and_failure_is_a_close_after_accept(harness) -> None:
    h = harness(DEV)
    socket = ScriptedSocket(headers={"Sec-WebSocket-Protocol": "jwt-auth"}, hold_s=5.0)
    h.connect(socket)
    assert kinds(socket) == ["accept", "send", "close"]
    frame = socket.frames[0]
    assert set(frame) == ERROR_FRAME_KEYS
    assert frame["type"] == "error_message" and frame["error_code"] == "NO_TOKEN"
    assert frame["recovery_suggestions"] is None
    (t_frame, _, _), (t_close, _, close) = socket.events[1:]
    assert close == (1008, "SSOT Auth failed")
    assert t_close - t_frame == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("offered", "accepted"),
    [("jwt-auth", "jwt-auth"), (" chat ,  jwt-auth ", "jwt-auth"), ("JWT-AUTH", None), ("chat", None), (None, None)],
)
def test_subprotocol(harness, offered: str | None, accepted: str | None) -> None:
    headers = {} if offered is None else {"Sec-WebSocket-Protocol": offered}
    socket = user_socket(headers=headers, hold_s=1.0)
    harness(DEV).connect(socket)
    assert socket.subprotocol == accepted


def test_the_socket_is_accepted_before_a_slow_authentication_finishes(harness, monkeypatch) -> None:
    """Step 3: accept comes BEFORE authentication, so an authentication that takes 2 s runs on
    an accepted socket; its failure is the frame and the 1008 close 0.1 s later (step 5)."""

    async def slow_refusal(headers: Any, query: Any) -> AuthResult:
        await asyncio.sleep(2.0)
        return AuthResult(success=False, error_code="VALIDATION_FAILED", error_message="refused")

    monkeypatch.setattr(route_module, "authenticate_websocket", slow_refusal)
    socket = user_socket(hold_s=5.0)
    harness(DEV).connect(socket)
    assert [(kind, round(t, 6)) for t, kind, _ in socket.events] == [("accept", 0.0), ("send", 2.0), ("close", 2.1)]


def test_auth_failure_without_an_error_code_sends_auth_failed(harness, monkeypatch) -> None:
    """Step 5: error_code = the auth error code or "AUTH_FAILED"."""

    async def refusal_without_code(headers: Any, query: Any) -> AuthResult:
        return AuthResult(success=False)

    monkeypatch.setattr(route_module, "authenticate_websocket", refusal_without_code)
    socket = user_socket(hold_s=5.0)
    harness(DEV).connect(socket)
    assert socket.frames[0]["error_code"] == "AUTH_FAILED"
    assert (socket.close_code, socket.close_reason) == (1008, "SSOT Auth failed")


# --- step 2: route-level E2E detection ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "environ", "detected"),
    [
        ({"x-test-type": "E2E"}, {}, True),
        ({"x-test-type": "integration"}, {}, True),
        ({"x-test-type": "e2e "}, {}, False),
        ({"x-test-type": "unit"}, {}, False),
        ({"x-test-environment": "Staging"}, {}, True),
        ({"x-test-environment": "test"}, {}, True),
        ({"x-test-environment": "production"}, {}, False),
        ({"x-e2e-test": "YES"}, {}, True),
        ({"x-e2e-test": "on"}, {}, False),
        ({"x-test-mode": "test"}, {}, True),
        ({"x-test-mode": "e2e"}, {}, False),
        ({"x-other-test": "e2e"}, {}, False),  # unlike the auth bypass: fixed header names
        ({}, {"E2E_TESTING": "1"}, True),
        ({}, {"PYTEST_RUNNING": "1"}, True),
        ({}, {"STAGING_E2E_TEST": "1"}, True),
        ({}, {"STAGING_E2E_TEST": "true"}, False),
        ({}, {"E2E_OAUTH_SIMULATION_KEY": ""}, True),
        ({}, {"E2E_TEST_ENV": "staging"}, True),
        ({}, {"E2E_TEST_ENV": "test"}, False),
        ({}, {}, False),
    ],
)
def test_route_e2e_detection(harness, headers: dict[str, str], environ: dict[str, str], detected: bool) -> None:
    h = harness({"ENVIRONMENT": "staging", **environ})
    with h.active():
        assert detect_route_e2e(headers) is detected


# --- step 8 / table rows: factory errors ----------------------------------------------------------


def open_sequential(h: Harness, count: int, user: str = "user-0001", start: float = 0.0, spacing: float = 2.0) -> list[ScriptedSocket]:
    sockets = []
    for n in range(count):
        socket = user_socket(user, hold_s=1.0)
        h.connect_at(start + n * spacing, socket)
        sockets.append(socket)
    return sockets


def test_sixth_sequential_connection_within_5_minutes_gets_1011_factory(harness) -> None:
    """Each ended connection leaves its manager registered and counted (step 14)."""
    h = harness(DEV)
    sockets = open_sequential(h, 6)
    assert [s.close_code for s in sockets] == [None] * 5 + [1011]
    refused = sockets[-1]
    assert refused.close_reason == "Factory SSOT validation failed"
    assert h.backend.factory.user_manager_count["user-0001"] == 5
    frame = refused.frames[0]
    assert set(frame) == ERROR_FRAME_KEYS
    assert frame["error_code"] == "FACTORY_INIT_FAILED"
    assert frame["error_message"] == (
        "WebSocket factory initialization failed due to SSOT validation error. "
        "This indicates a system configuration issue."
    )
    details = frame["details"]
    assert details["error_type"] == "FactoryInitializationError"
    assert details["error_message"].startswith(
        "WebSocket factory initialization failed unexpectedly: User user-0001 has reached the maximum "
        "number of WebSocket managers (5)."
    )
    assert details["user_id"] == "user-000..."
    assert details["environment"] == "development"
    assert details["ssot_compliance_issue"] is True
    facts = details["prevention_measures"]
    assert "UserExecutionContext" in facts.values()
    assert "investigation.backend.context" in facts.values()
    assert sorted(name for name, value in facts.items() if value is True) == sorted(
        f"has_{field}" for field in ("user_id", "websocket_client_id", "thread_id", "run_id", "request_id")
    )
    assert kinds(refused) == ["accept", "send", "close"]


def test_emergency_cleanup_lets_the_user_in_after_more_than_5_minutes(harness) -> None:
    h = harness(DEV)
    open_sequential(h, 5)  # last activity of the first manager: its disconnect at t=1
    late = user_socket(hold_s=1.0)
    h.connect_at(301.5, late)
    assert late.close_code is None and len(welcome_frames(late)) == 1


def test_other_users_are_not_affected_by_the_cap(harness) -> None:
    h = harness(DEV)
    open_sequential(h, 5)
    other = user_socket("user-0002", hold_s=1.0)
    h.connect_at(20.0, other)
    assert other.close_code is None


def test_strict_factory_ssot_failure_closes_1011_with_the_same_reason(harness, monkeypatch) -> None:
    h = harness(DEV)

    def foreign_in_strict_mode(ctx: Any) -> None:
        factory_module._validate_ssot_user_context(SupervisorUserExecutionContext("u", "t", "r", "q"))

    monkeypatch.setattr(factory_module, "_validate_ssot_user_context_staging_safe", foreign_in_strict_mode)
    socket = user_socket(hold_s=1.0)
    h.connect(socket)
    assert (socket.close_code, socket.close_reason) == (1011, "Factory SSOT validation failed")
    assert socket.frames[0]["details"]["error_message"].startswith(
        "WebSocket factory SSOT validation failed: SSOT VIOLATION"
    )


def test_relaxed_failure_retries_once_then_stub_and_goes_on(harness, monkeypatch) -> None:
    h = harness(STAGING)
    calls: list[str] = []

    def relaxed_failure(ctx: Any) -> None:
        calls.append("validate")
        _validate_relaxed(SupervisorUserExecutionContext("u", "t", "r", "q"))

    monkeypatch.setattr(factory_module, "_validate_ssot_user_context_staging_safe", relaxed_failure)
    socket = user_socket(hold_s=5.0, messages=[(1.0, message("chat"))])
    recorder = h.connect(socket)
    assert calls == ["validate", "validate"]
    assert socket.close_code is None
    assert outcome(recorder, "route.manager") == "emergency_stub"
    assert len(welcome_frames(socket)) == 1
    assert "ack" in [frame["type"] for frame in socket.frames]


def test_plain_value_error_from_create_manager_retries_once_then_stub(harness, monkeypatch) -> None:
    h = harness(DEV)
    calls: list[int] = []

    async def plain(ctx: Any) -> None:
        calls.append(1)
        raise ValueError("plain")

    monkeypatch.setattr(h.backend.factory, "create_manager", plain)
    socket = user_socket(hold_s=1.0)
    recorder = h.connect(socket)
    assert len(calls) == 2
    assert socket.close_code is None and len(welcome_frames(socket)) == 1
    assert outcome(recorder, "route.manager") == "emergency_stub"


def test_plain_value_error_once_then_factory_manager_on_retry(harness, monkeypatch) -> None:
    h = harness(DEV)
    real = h.backend.factory.create_manager
    calls: list[int] = []

    async def flaky(ctx: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("plain")
        return await real(ctx)

    monkeypatch.setattr(h.backend.factory, "create_manager", flaky)
    socket = user_socket(hold_s=1.0)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.manager") == "factory_on_retry"
    assert socket.close_code is None


def test_factory_refusal_details_name_the_lower_cased_environment(harness) -> None:
    """Step 8: details.environment is the route's ENVIRONMENT (step 1: lower-cased)."""
    h = harness({**DEV, "ENVIRONMENT": "Development"})
    refused = open_sequential(h, 6)[-1]
    assert refused.close_code == 1011
    assert refused.frames[0]["details"]["environment"] == "development"


def test_factory_refusal_closes_without_a_wait_after_the_frame(harness) -> None:
    """Step 8 sends the frame "then" closes; unlike steps 5 and 13 there is no 0.1 s wait."""
    refused = open_sequential(harness(DEV), 6)[-1]
    (t_frame, _, _), (t_close, _, _) = refused.events[1:]
    assert t_close == pytest.approx(t_frame)


@dataclasses.dataclass
class ContextWithoutIds:
    """A context that has user_id and thread_id but none of the other three IDs."""

    user_id: str
    thread_id: str


def test_factory_refusal_prevention_measures_say_which_ids_the_context_has(harness, monkeypatch) -> None:
    """Step 8: prevention_measures give the context's type and module and whether it has
    user_id, websocket_client_id, thread_id, run_id, request_id (a non-SSOT context here)."""

    async def foreign_context(headers: Any, query: Any) -> AuthResult:
        context = ContextWithoutIds("user-0001", "thread-0001")
        return AuthResult(success=True, user_id="user-0001", user_context=context)  # type: ignore[arg-type]

    monkeypatch.setattr(route_module, "authenticate_websocket", foreign_context)
    socket = user_socket(hold_s=1.0)
    harness(DEV).connect(socket)
    assert (socket.close_code, socket.close_reason) == (1011, "Factory SSOT validation failed")
    facts = socket.frames[0]["details"]["prevention_measures"]
    assert "ContextWithoutIds" in facts.values() and __name__ in facts.values()
    has = {name: value for name, value in facts.items() if name.startswith("has_")}
    assert has == {
        "has_user_id": True, "has_websocket_client_id": False, "has_thread_id": True,
        "has_run_id": False, "has_request_id": False,
    }


# --- step 9: the startup gate ---------------------------------------------------------------------


@pytest.mark.parametrize("environ", [STAGING, PRODUCTION])
def test_startup_incomplete_after_30s_closes_1011(harness, environ: dict[str, str]) -> None:
    h = harness(environ, startup=StartupState(complete=False))
    socket = user_socket(hold_s=60.0)
    h.connect(socket)
    assert (socket.close_code, socket.close_reason) == (1011, "Service startup incomplete")
    assert socket.frames[0]["error_code"] == "STARTUP_INCOMPLETE"
    assert socket.events[-1][0] == pytest.approx(30.0)
    (manager,) = h.backend.factory.managers.values()  # created before the gate, left behind
    assert manager.is_active and manager.connections == {}
    assert h.backend.factory.user_manager_count["user-0001"] == 1


def test_startup_gate_skipped_for_route_e2e(harness) -> None:
    h = harness({**STAGING, "STAGING_E2E_TEST": "1"}, startup=StartupState(complete=False))
    socket = user_socket(hold_s=5.0)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.startup_gate") == "skipped_e2e"
    assert socket.close_code is None and len(welcome_frames(socket)) == 1


@pytest.mark.parametrize("environ", [DEV, {"ENVIRONMENT": "test"}, {"JWT_SECRET_KEY": SECRET}])
def test_startup_gate_not_applied_outside_staging_and_production(harness, environ: dict[str, str]) -> None:
    h = harness(environ, startup=StartupState(complete=False))
    socket = user_socket("user-0001", hold_s=5.0)
    if environ.get("ENVIRONMENT") == "test":  # test context: the auth bypass takes any token
        socket = ScriptedSocket(headers=bearer("staging-e2e-user-1"), hold_s=5.0)
    h.connect(socket)
    assert socket.close_code is None and len(welcome_frames(socket)) == 1


@pytest.mark.parametrize(("complete_after_s", "seen_at"), [(10.0, 10.0), (10.2, 10.5)])
def test_startup_completing_while_waiting_lets_the_connection_in(
    harness, complete_after_s: float, seen_at: float
) -> None:
    """Step 9: startup completing while waiting is seen at the next 0.5 s poll, then the 0.1 s
    registration wait (step 11) before the welcome."""
    h = harness(STAGING, startup=StartupState(complete=False, complete_after_s=complete_after_s))
    socket = user_socket(hold_s=60.0)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.startup_gate") == "completed_while_waiting"
    assert socket.frame_times("system_message")[0] == pytest.approx(seen_at + 0.1)


def test_route_e2e_skips_only_the_startup_wait(harness) -> None:
    """Step 2: route-level E2E is used only to skip the startup wait (incomplete here: not
    skipped, it would end in the 30 s close); a missing dependency is still re-polled 3 x 0.5 s
    in staging (step 10), then the 0.1 s wait (step 11)."""
    h = harness({**STAGING, "STAGING_E2E_TEST": "1"}, startup=StartupState(complete=False, thread_service=False))
    socket = user_socket(hold_s=5.0)
    h.connect(socket)
    assert socket.frame_times("system_message")[-1] == pytest.approx(1.5 + 0.1)


# --- step 13: unhandled exception after setup ------------------------------------------------------


def test_unhandled_exception_after_setup_closes_1011_internal_error(harness) -> None:
    h = harness(DEV)
    socket = user_socket(hold_s=5.0, receive_error=OSError("receive broke"))
    h.connect(socket)
    assert (socket.close_code, socket.close_reason) == (1011, "Internal error")
    error_frames = [f for f in socket.frames if f["type"] == "error"]
    assert error_frames == [
        {
            "type": "error",
            "data": {
                "error": "Internal server error",
                "message": "An unexpected error occurred. Please reconnect.",
                "code": "INTERNAL_ERROR",
            },
        }
    ]
    frame_time = next(t for t, kind, f in socket.events if kind == "send" and f["type"] == "error")
    assert socket.events[-1][0] - frame_time == pytest.approx(0.1)


# --- step 12: the message loop ---------------------------------------------------------------------


def test_five_consecutive_routing_failures_end_without_a_close_frame(harness) -> None:
    h = harness(DEV)
    failures = [(1.0 + n, message("start_agent")) for n in range(5)]
    socket = user_socket(hold_s=100.0, messages=failures)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.message_loop") == "routing_failures"
    assert socket.close_code is None
    assert "close" not in kinds(socket)
    assert h.now == pytest.approx(5.0)  # ended at the 5th message, long before the client left


class CancellationRecordingSocket(ScriptedSocket):
    """A socket whose pending receive records the virtual time at which it is cancelled."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.receive_cancelled_at: list[float] = []

    async def receive_text(self) -> str:
        try:
            return await super().receive_text()
        except asyncio.CancelledError:
            self.receive_cancelled_at.append(self._now())
            raise


@pytest.mark.parametrize(
    ("environ", "interval", "loop_starts_at"),
    [(STAGING, 30.0, 0.1 + 0.05), (PRODUCTION, 25.0, 0.1 + 0.05), (DEV, 45.0, 0.0)],
    ids=["staging", "production", "development"],
)
def test_receive_times_out_every_heartbeat_interval_and_the_loop_goes_on(
    harness, environ: dict[str, str], interval: float, loop_starts_at: float
) -> None:
    """Step 12: the receive timeout equals the heartbeat interval and a timeout just continues.
    The loop starts after step 11's waits; the pending receive is cancelled once per interval,
    and a chat after six timeouts (more than 5 routing failures) still gets its ack."""
    h = harness(environ)
    chat_at = loop_starts_at + 6.5 * interval
    socket = CancellationRecordingSocket(
        headers=bearer(mint(claims_for("user-0001"))),
        messages=[(chat_at, message("chat"))],
        hold_s=loop_starts_at + 7.2 * interval,
    )
    recorder = h.connect(socket)
    assert socket.receive_cancelled_at == pytest.approx([loop_starts_at + n * interval for n in range(1, 7)])
    assert socket.frame_times("ack") == [pytest.approx(chat_at)]
    assert outcome(recorder, "route.message_loop") == "client_disconnected"


def test_a_routed_message_resets_the_failure_count(harness) -> None:
    h = harness(DEV)
    script = [(1.0 + n, message("start_agent")) for n in range(4)] + [(5.0, message("chat"))]
    script += [(6.0 + n, message("bogus")) for n in range(4)]
    socket = user_socket(hold_s=50.0, messages=script)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.message_loop") == "client_disconnected"
    assert h.now == pytest.approx(50.0)


def test_chat_and_user_message_are_acknowledged_without_refreshing_activity(harness) -> None:
    h = harness(DEV)
    script = [(10.0, message("chat", text="hi")), (20.0, message("user_message", text="yo"))]
    socket = user_socket(hold_s=30.0, messages=script)
    holder: list[Any] = []
    original = h.backend.factory.create_manager

    async def keep(ctx: Any) -> Any:
        holder.append(await original(ctx))
        return holder[-1]

    h.backend.factory.create_manager = keep  # type: ignore[method-assign]
    activity: list[float] = []

    async def sample() -> None:
        await asyncio.sleep(25.0)
        activity.append(holder[0].last_activity - h.clock.epoch_ms / 1000)

    h.run(lambda: _together(h.backend.handle(socket), sample()))
    assert [f["type"] for f in socket.frames].count("ack") == 2
    assert activity[0] == pytest.approx(0.0)  # still the add_connection time
    assert holder[0].last_activity - h.clock.epoch_ms / 1000 == pytest.approx(30.0)  # disconnect


async def _together(*awaitables: Any) -> None:
    await asyncio.gather(*awaitables)


def test_each_start_agent_leaves_a_manager_and_fills_the_cap(harness) -> None:
    h = harness(DEV)
    script = [(1.0 + n, message("start_agent")) for n in range(4)] + [(5.5, message("chat"))]
    first = user_socket(hold_s=10.0, messages=script)
    h.connect(first)
    assert first.close_code is None
    assert h.backend.factory.user_manager_count["user-0001"] == 5  # own + 4 left behind
    nxt = user_socket(hold_s=1.0)
    h.connect_at(20.0, nxt)
    assert (nxt.close_code, nxt.close_reason) == (1011, "Factory SSOT validation failed")


def test_start_agent_at_the_cap_fails_inside_the_handler_without_close(harness) -> None:
    h = harness(DEV)
    script = [(1.0 + n, message("start_agent")) for n in range(4)]
    script += [(5.5, message("chat")), (6.0, message("start_agent"))]
    socket = user_socket(hold_s=10.0, messages=script)
    h.connect(socket)
    assert socket.close_code is None
    assert h.backend.factory.user_manager_count["user-0001"] == 5
    assert any("start_agent failed" in text for text in log_messages(h, "ERROR"))


def test_start_agent_without_agent_dependencies_leaves_nothing(harness) -> None:
    h = harness(DEV, startup=StartupState(agent_supervisor=False))
    script = [(1.0 + n, message("start_agent")) for n in range(6)]
    socket = user_socket(hold_s=10.0, messages=script)
    h.connect(socket)
    assert h.backend.factory.user_manager_count["user-0001"] == 1


# --- steps 10 and 11: dependencies, registration, heartbeat, welcome ---------------------------


@pytest.mark.parametrize(
    ("environ", "interval", "welcome_at"),
    [(STAGING, 30, 0.1), (PRODUCTION, 25, 0.1), (DEV, 45, 0.0)],
)
def test_heartbeat_before_welcome_and_intervals(harness, environ, interval: int, welcome_at: float) -> None:
    h = harness(environ)
    socket = user_socket(hold_s=interval * 2.5, messages=[(interval * 0.5, message("pong"))])
    h.connect(socket)
    types = [f["type"] for f in socket.frames]
    assert types[:2] == ["ping", "system_message"]
    pings = socket.frame_times("ping")
    assert pings[0] == pytest.approx(welcome_at)
    assert pings[1] - pings[0] == pytest.approx(interval)
    assert len(pings) == 2  # no pong for the second ping: the pings stop
    welcome = welcome_frames(socket)[0]
    assert welcome["data"]["config"]["heartbeat_interval"] == interval
    assert socket.frame_times("system_message")[0] == pytest.approx(welcome_at)


@pytest.mark.parametrize(("hold_s", "heartbeat_tasks"), [(10.0, 0), (50.0, 1)])
def test_the_heartbeat_task_starts_only_when_its_first_interval_ends(
    harness, hold_s: float, heartbeat_tasks: int
) -> None:
    h = harness(DEV)  # 45 s interval
    started: list[str] = []

    def counting_factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[Any]:
        started.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **options)

    h.loop.set_task_factory(counting_factory)
    socket = user_socket(hold_s=hold_s, messages=[(1.0, message("pong"))])
    h.connect(socket)
    h.advance_to(200.0)
    assert started.count("_Session._heartbeat") == heartbeat_tasks
    assert len(socket.frame_times("ping")) == 1 + heartbeat_tasks


def test_welcome_frame_shape(harness) -> None:
    h = harness(STAGING)
    socket = user_socket(hold_s=1.0)
    h.connect(socket)
    welcome = welcome_frames(socket)[0]
    assert set(welcome) == {"type", "data", "timestamp", "server_id", "correlation_id"}
    assert welcome["server_id"] is None and welcome["correlation_id"] is None
    data = welcome["data"]
    assert set(data) == {
        "event", "connection_id", "user_id", "server_time", "connection_ready", "environment",
        "startup_complete", "config", "factory_pattern_enabled",
    }
    assert set(data["config"]) == {"heartbeat_interval", "max_message_size"}
    assert data["connection_ready"] is True and data["environment"] == "staging"
    assert data["user_id"] == "user-0001" and data["startup_complete"] is True


def test_client_gone_before_welcome_is_a_logged_disconnect_without_close(harness) -> None:
    h = harness(STAGING)
    socket = user_socket(hold_s=0.05)
    recorder = h.connect(socket)
    assert socket.close_code is None and "close" not in kinds(socket)
    assert welcome_frames(socket) == []
    assert outcome(recorder, "route.message_loop") == "client_disconnected"
    assert any("disconnected" in text for text in log_messages(h, "INFO"))


@pytest.mark.parametrize(("environ", "welcome_at"), [(STAGING, 1.5 + 0.1), (DEV, 0.0)])
def test_missing_dependency_installs_fallback_without_close(harness, environ, welcome_at: float) -> None:
    h = harness(environ, startup=StartupState(thread_service=False))
    socket = user_socket(hold_s=5.0)
    recorder = h.connect(socket)
    assert outcome(recorder, "route.dependencies") == "fallback_handler"
    assert socket.close_code is None
    assert socket.frame_times("system_message")[-1] == pytest.approx(welcome_at)


def test_a_dependency_arriving_while_polled_gets_the_agent_handler(harness) -> None:
    """Step 10: staging re-polls a missing dependency; one that arrives during the polls (at
    0.75 s) counts as present, so the agent handler is registered: no fallback message, and a
    start_agent leaves a second manager (step 12)."""
    h = harness(STAGING, startup=StartupState(thread_service=False))
    h.loop.call_later(0.75, setattr, h.backend, "startup", StartupState())
    socket = user_socket(hold_s=5.0, messages=[(3.0, message("start_agent"))])
    h.connect(socket)
    assert [f for f in socket.frames if f["type"] not in {"ping", "system_message"}] == []
    assert [f["data"]["event"] for f in socket.frames if f["type"] == "system_message"] == ["connection_established"]
    assert h.backend.factory.user_manager_count["user-0001"] == 2


def test_both_dependencies_missing_are_each_polled_three_times(harness) -> None:
    """Step 10: in staging each missing dependency is re-polled 3 x 0.5 s, then the 0.1 s wait."""
    h = harness(STAGING, startup=StartupState(agent_supervisor=False, thread_service=False))
    socket = user_socket(hold_s=5.0)
    h.connect(socket)
    assert socket.frame_times("system_message")[-1] == pytest.approx(2 * 3 * 0.5 + 0.1)


def test_a_missing_dependency_sends_one_info_message(harness) -> None:
    """Step 10: still missing -> install a fallback handler and send an info message (no close)."""
    h = harness(DEV, startup=StartupState(agent_supervisor=False))
    socket = user_socket(hold_s=1.0)
    h.connect(socket)
    welcome = welcome_frames(socket)
    others = [f for f in socket.frames if f["type"] != "ping" and f not in welcome]
    assert len(others) == 1 and others[0]["type"] != "error_message"
    assert socket.close_code is None and len(welcome) == 1


def test_the_connection_record_holds_the_client_id_the_user_and_the_connect_time(harness) -> None:
    """Step 11: the record is {connection_id = websocket_client_id, user_id, connected_at}."""
    h = harness(DEV)
    h.advance_to(12.0)
    socket = user_socket(hold_s=5.0)
    seen: list[tuple[Any, Any]] = []

    async def sample() -> None:
        await asyncio.sleep(1.0)
        (manager,) = h.backend.factory.managers.values()
        seen.extend((manager.user_context, record) for record in manager.connections.values())

    h.run(lambda: _together(h.backend.handle(socket), sample()))
    ((context, record),) = seen
    assert record.connection_id == context.websocket_client_id
    assert record.user_id == "user-0001"
    assert record.connected_at - EPOCH_S == pytest.approx(12.0)


@pytest.mark.parametrize(("hold_s", "welcomed"), [(0.05, False), (0.12, True)])
def test_staging_registration_notices_a_gone_client_at_0_15_s(harness, hold_s: float, welcomed: bool) -> None:
    """Step 11 in staging: wait 0.1 s, 0.05 s more if the socket is not connected; or, still
    connected then, ping and welcome and wait 0.05 s. Either way a client gone by 0.12 s is
    noticed at 0.15 s: a 1006 disconnect, the manager's last activity set then (step 14)."""
    h = harness(STAGING)
    socket = user_socket(hold_s=hold_s)
    h.connect(socket)
    assert (len(welcome_frames(socket)) == 1) is welcomed
    assert "close" not in kinds(socket)
    (manager,) = h.backend.factory.managers.values()
    assert manager.last_activity - EPOCH_S == pytest.approx(0.15)
    assert any("1006" in text for text in log_messages(h, "INFO"))


def test_ping_frames_carry_their_send_time(harness) -> None:
    """Step 11: a ping is {type: "ping", data: {timestamp}}, one every heartbeat interval."""
    h = harness(DEV)  # 45 s interval
    socket = user_socket(hold_s=100.0, messages=[(10.0, message("pong"))])
    h.connect(socket)
    pings = [f for f in socket.frames if f["type"] == "ping"]
    assert [(set(p), set(p["data"])) for p in pings] == [({"type", "data"}, {"timestamp"})] * 2
    assert pings[1]["data"]["timestamp"] - pings[0]["data"]["timestamp"] == pytest.approx(45.0)


def test_welcome_reports_startup_incomplete_when_the_gate_was_skipped(harness) -> None:
    """Step 11: the welcome's startup_complete is the app's state (step 9 skipped for E2E)."""
    h = harness({**STAGING, "STAGING_E2E_TEST": "1"}, startup=StartupState(complete=False))
    socket = user_socket(hold_s=1.0)
    h.connect(socket)
    assert welcome_frames(socket)[0]["data"]["startup_complete"] is False


# --- step 14: on disconnect ---------------------------------------------------------------------------


def test_internal_error_before_add_connection_leaves_the_manager_behind(harness, monkeypatch) -> None:
    """Step 14: a 1011 "Internal error" raised between step 7 and a successful add_connection
    (here add_connection's ValueError for a record of another user, step 11) leaves a
    registered, active manager with 0 connections, still counted."""

    def record_of_another_user(connection_id: str, user_id: str, connected_at: float) -> ConnectionRecord:
        return ConnectionRecord(connection_id, "user-9999", connected_at)

    monkeypatch.setattr(route_module, "ConnectionRecord", record_of_another_user)
    h = harness(DEV)
    socket = user_socket(hold_s=5.0)
    h.connect(socket)
    assert (socket.close_code, socket.close_reason) == (1011, "Internal error")
    (manager,) = h.backend.factory.managers.values()
    assert manager.is_active and manager.connections == {}
    assert h.backend.factory.user_manager_count["user-0001"] == 1


def test_disconnect_removes_the_connection_but_keeps_the_manager_counted(harness) -> None:
    h = harness(DEV)
    h.connect(user_socket(hold_s=7.0))
    (manager,) = h.backend.factory.managers.values()
    assert manager.is_active and manager.connections == {}
    assert manager.last_activity - h.clock.epoch_ms / 1000 == pytest.approx(7.0)
    assert h.backend.factory.user_manager_count["user-0001"] == 1


def test_long_connection_detached_by_health_then_cleanup_makes_remove_fail_quietly(harness) -> None:
    """Development: health check detaches at 1860 s (socket stays open), background cleanup
    (every 120 s) releases the idle manager at 1920 s, the client leaves at 2000 s."""
    h = harness(DEV)
    socket = user_socket(hold_s=2000.0, messages=[(1950.0, message("chat"))])
    h.connect(socket)
    assert socket.close_code is None and "close" not in kinds(socket)
    assert h.backend.factory.managers == {}
    assert h.backend.factory.user_manager_count["user-0001"] == 0
    assert any(text.startswith("remove_connection failed") for text in log_messages(h, "WARNING"))
    assert socket.frame_times("ack") == [pytest.approx(1950.0)]  # still served after the detach


def test_v1_logs_its_detection_once_per_validation_not_for_the_trace(harness) -> None:
    """Spec 8: V1 adds logging to the detection, which runs once in each of the two
    validations (context creation, manager creation); recording the validation mode in the
    decision trace is the model's own and logs nothing."""
    h = harness(STAGING, variant=VARIANTS["V1"])
    h.connect(user_socket(hold_s=1.0))
    debug_lines = [m for m in log_messages(h, "INFO") if m.startswith("VALIDATION ENV DEBUG")]
    assert debug_lines == ["VALIDATION ENV DEBUG: env=staging, cloud_run=True, staging=True, e2e=False"] * 2
