"""Spec section 4: manager creation, the exception mapping, the factory's cap and cleanups,
and the staging-safe / strict validations."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from investigation.backend import factory as factory_module
from investigation.backend.context import UserExecutionContext
from investigation.backend.factory import (
    ConnectionRecord,
    FactoryInitializationError,
    IsolatedWebSocketManager,
    _validate_relaxed,
    _validate_ssot_user_context,
    create_websocket_manager,
    detect_validation_environment,
    isolation_key,
)
from investigation.backend.foreign_contexts import ModelsUserExecutionContext, SupervisorUserExecutionContext
from tests.conftest import Harness, log_messages

CAP_MESSAGE = (
    "User {user} has reached the maximum number of WebSocket managers (5). Emergency cleanup attempted "
    "but limit still exceeded. This may indicate a resource leak or extremely high connection rate."
)


def context(h: Harness, user: str = "user-0001", client_id: str | None = "ws_client_1", **extra: Any) -> UserExecutionContext:
    with h.active():
        return UserExecutionContext(
            user_id=user, thread_id="thread-1", run_id="run_x_y_12345678", request_id=extra.pop("request_id", "req-1"),
            websocket_client_id=client_id, **extra,
        )


def create(h: Harness, ctx: Any) -> Any:
    return h.run(lambda: h.backend.factory.create_manager(ctx))


def fill_to_cap(h: Harness, user: str = "user-0001") -> list[Any]:
    return [create(h, context(h, user, f"ws_client_{n}")) for n in range(5)]


def bare_context(**attributes: Any) -> UserExecutionContext:
    """A UserExecutionContext instance that skipped __init__ (to reach later validation rules)."""
    instance = object.__new__(UserExecutionContext)
    for name, value in attributes.items():
        object.__setattr__(instance, name, value)
    return instance


FULL = {"user_id": "user-0001", "thread_id": "t", "run_id": "r", "request_id": "q", "websocket_client_id": None}


# --- 4.1 exception mapping ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected_prefix"),
    [
        (ValueError("SSOT broke"), "WebSocket factory SSOT validation failed: SSOT broke"),
        (ValueError("The Factory broke"), "WebSocket factory SSOT validation failed: The Factory broke"),
        (RuntimeError("boom"), "WebSocket factory initialization failed unexpectedly: boom"),
        (KeyError("k"), "WebSocket factory initialization failed unexpectedly: 'k'"),
        (TypeError("t"), "WebSocket factory initialization failed unexpectedly: t"),
    ],
)
def test_exception_mapping_to_factory_initialization_error(harness, monkeypatch, raised, expected_prefix) -> None:
    h = harness({"ENVIRONMENT": "development"})

    async def failing(ctx: Any) -> None:
        raise raised

    monkeypatch.setattr(h.backend.factory, "create_manager", failing)
    with pytest.raises(FactoryInitializationError) as caught:
        h.run(lambda: create_websocket_manager(context(h)))
    text = str(caught.value)
    assert text.startswith(expected_prefix)
    assert len(text) > len(expected_prefix)  # a fixed sentence follows


@pytest.mark.parametrize("text", ["ssot is case-sensitive", "plain value error", "Ssot", "fact ory"])
def test_other_value_errors_are_re_raised_unchanged(harness, monkeypatch, text: str) -> None:
    h = harness({"ENVIRONMENT": "development"})
    original = ValueError(text)

    async def failing(ctx: Any) -> None:
        raise original

    monkeypatch.setattr(h.backend.factory, "create_manager", failing)
    with pytest.raises(ValueError) as caught:
        h.run(lambda: create_websocket_manager(context(h)))
    assert caught.value is original


def test_cap_runtime_error_becomes_initialization_failed_unexpectedly(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    fill_to_cap(h)
    with pytest.raises(FactoryInitializationError) as caught:
        h.run(lambda: create_websocket_manager(context(h, client_id="ws_client_6")))
    text = str(caught.value)
    assert text.startswith(
        "WebSocket factory initialization failed unexpectedly: " + CAP_MESSAGE.format(user="user-0001")
    )


def test_strict_failure_becomes_ssot_error_relaxed_failure_stays_plain(harness) -> None:
    foreign = SupervisorUserExecutionContext("user-0001", "t", "r", "q")
    strict = harness({"ENVIRONMENT": "development"})
    with pytest.raises(FactoryInitializationError, match="^WebSocket factory SSOT validation failed: SSOT VIOLATION"):
        strict.run(lambda: create_websocket_manager(foreign))
    relaxed = harness({"ENVIRONMENT": "staging"})
    with pytest.raises(ValueError) as caught:
        relaxed.run(lambda: create_websocket_manager(foreign))
    assert type(caught.value) is ValueError
    assert str(caught.value) == "STAGING CRITICAL: Expected UserExecutionContext, got UserExecutionContext"


# --- 4.2 the factory ----------------------------------------------------------------------------


def test_create_manager_rejects_a_foreign_context_and_still_starts_cleanup(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with pytest.raises(ValueError) as caught:
        create(h, ModelsUserExecutionContext("user-0001", "t", "r", "q"))
    assert str(caught.value) == "user_context must be a UserExecutionContext instance"
    assert "SSOT" not in str(caught.value) and "factory" not in str(caught.value).lower()
    assert h.backend.factory.cleanup_interval == 120.0


def test_isolation_key_rules(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    assert isolation_key(context(h, client_id="ws_c")) == "user-0001:ws_c"
    assert isolation_key(context(h, client_id=None, request_id="req-9")) == "user-0001:req-9"
    assert isolation_key(context(h, client_id="", request_id="req-9")) == "user-0001:req-9"


def test_existing_active_manager_is_returned(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    first = create(h, context(h, client_id="ws_same"))
    second = create(h, context(h, client_id="ws_same"))
    assert first is second
    assert h.backend.factory.user_manager_count["user-0001"] == 1


def test_inactive_manager_for_the_key_is_released_first(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    first = create(h, context(h, client_id="ws_same"))
    first.is_active = False
    second = create(h, context(h, client_id="ws_same"))
    assert second is not first and second.is_active
    assert h.backend.factory.user_manager_count["user-0001"] == 1
    # registered, released, registered again: each change names the one key "user:client" (isolation_key)
    assert [(count, key) for _, _, count, key in h.backend.factory.count_history] == [
        (1, "user-0001:ws_same"), (0, "user-0001:ws_same"), (1, "user-0001:ws_same")]


def test_cap_of_five_per_user(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    fill_to_cap(h)
    with pytest.raises(RuntimeError) as caught:
        create(h, context(h, client_id="ws_client_6"))
    assert str(caught.value) == CAP_MESSAGE.format(user="user-0001")
    assert h.backend.factory.user_manager_count["user-0001"] == 5
    assert len(h.backend.factory.managers) == 5
    assert create(h, context(h, user="user-0002", client_id="ws_other")).user_id == "user-0002"


def test_emergency_cleanup_stale_after_strictly_more_than_5_minutes(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    managers = fill_to_cap(h)
    for n, manager in enumerate(managers):
        with h.active():
            manager.add_connection(ConnectionRecord(f"ws_client_{n}", "user-0001", h.clock.now()))
    h.advance_to(300.0)
    with pytest.raises(RuntimeError):
        create(h, context(h, client_id="ws_client_6"))
    h.advance_to(300.001)
    assert create(h, context(h, client_id="ws_client_6")).is_active
    assert h.backend.factory.user_manager_count["user-0001"] == 1  # all five were stale


def test_emergency_cleanup_frees_inactive_managers(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    managers = fill_to_cap(h)
    managers[2].is_active = False
    create(h, context(h, client_id="ws_client_6"))
    assert h.backend.factory.user_manager_count["user-0001"] == 5
    assert id(managers[2]) not in [id(m) for m in h.backend.factory.managers.values()]


def test_emergency_cleanup_idle_vs_created_with_no_connections(harness) -> None:
    """Created more than 5 min ago AND 0 connections is stale even when recently active."""
    h = harness({"ENVIRONMENT": "development"})
    managers = fill_to_cap(h)
    h.advance_to(200.0)
    with h.active():
        for n, manager in enumerate(managers):
            manager.add_connection(ConnectionRecord(f"ws_client_{n}", "user-0001", h.clock.now()))
        managers[0].remove_connection("ws_client_0")  # activity at 200, 0 connections
    h.advance_to(300.0)
    with pytest.raises(RuntimeError):
        create(h, context(h, client_id="ws_client_6"))
    h.advance_to(300.5)
    create(h, context(h, client_id="ws_client_6"))
    remaining = [id(manager) for manager in h.backend.factory.managers.values()]
    assert id(managers[0]) not in remaining
    assert all(id(manager) in remaining for manager in managers[1:])


def test_emergency_cleanup_frees_only_that_users_managers(harness) -> None:
    """user-0002's manager is stale (created 400 s ago, 0 connections), but the emergency
    cleanup run for user-0001 at the cap must leave it alone."""
    h = harness({"ENVIRONMENT": "development"})
    other = create(h, context(h, user="user-0002", client_id="ws_other"))
    managers = fill_to_cap(h)
    h.advance_to(350.0)
    with h.active():
        for n, manager in enumerate(managers):
            manager.add_connection(ConnectionRecord(f"ws_client_{n}", "user-0001", h.clock.now()))
    h.advance_to(400.0)  # user-0001's managers: 1 connection each, last activity 50 s ago
    with pytest.raises(RuntimeError):
        create(h, context(h, client_id="ws_client_6"))
    assert any(manager is other for manager in h.backend.factory.managers.values())
    assert h.backend.factory.user_manager_count["user-0002"] == 1


def test_concurrent_requests_at_the_cap_interleave(harness) -> None:
    """The lock does not serialise coroutines: while the first request's emergency cleanup
    releases the one stale manager (an await), the second request takes the freed slot, and
    the first then finds the cap reached again. Serialised, the first would have won."""
    h = harness({"ENVIRONMENT": "development"})
    managers = fill_to_cap(h)
    managers[0].is_active = False
    first, second = context(h, client_id="ws_first"), context(h, client_id="ws_second")

    async def both() -> list[Any]:
        factory = h.backend.factory
        return await asyncio.gather(factory.create_manager(first), factory.create_manager(second), return_exceptions=True)

    first_result, second_result = h.run(both)
    assert isinstance(first_result, RuntimeError)
    assert str(first_result) == CAP_MESSAGE.format(user="user-0001")
    assert second_result.user_context is second
    assert h.backend.factory.user_manager_count["user-0001"] == 5


def test_remove_connection_semantics(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    manager = create(h, context(h))
    with h.active():
        manager.add_connection(ConnectionRecord("ws_client_1", "user-0001", h.clock.now()))
    h.advance_to(10.0)
    with h.active():
        manager.remove_connection("not-held")
    assert manager.last_activity == h.clock.epoch_ms / 1000  # unchanged
    with h.active():
        manager.remove_connection("ws_client_1")
    assert manager.last_activity == h.clock.now()
    manager.is_active = False
    with h.active(), pytest.raises(RuntimeError):
        manager.remove_connection("ws_client_1")


def test_add_connection_of_another_user_raises_value_error(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    manager = create(h, context(h))
    with h.active(), pytest.raises(ValueError):
        manager.add_connection(ConnectionRecord("ws_client_1", "user-0002", h.clock.now()))


# --- background cleanup and health checks over virtual time ---------------------------------------


@pytest.mark.parametrize(
    ("environ", "interval"),
    [
        ({"ENVIRONMENT": "test"}, 30.0),
        ({"ENVIRONMENT": "testing"}, 30.0),
        ({"ENVIRONMENT": "ci"}, 30.0),
        ({"ENVIRONMENT": "CI"}, 30.0),
        ({"ENVIRONMENT": "development"}, 120.0),
        ({}, 120.0),
        ({"ENVIRONMENT": "dev"}, 300.0),
        ({"ENVIRONMENT": "staging"}, 300.0),
        ({"ENVIRONMENT": "production"}, 300.0),
    ],
)
def test_background_cleanup_interval(harness, environ: dict[str, str], interval: float) -> None:
    h = harness(environ)
    assert h.backend.factory.cleanup_interval is None
    create(h, context(h, user="user-0001"))
    assert h.backend.factory.cleanup_interval == interval


def test_interval_fixed_at_first_create_manager(harness) -> None:
    h = harness({})
    h.backend.env.set("ENVIRONMENT", "test")
    create(h, context(h, user="user-0001"))
    h.backend.env.set("ENVIRONMENT", "staging")
    create(h, context(h, user="user-0001", client_id="ws_client_2"))
    assert h.backend.factory.cleanup_interval == 30.0


def test_background_cleanup_sleeps_first_then_sweeps_idle_over_1800s(harness) -> None:
    """Started at t=50 with 120 s interval: sweeps at 170, 290, ..., 1850, 1970.
    Idle is exactly 1800 at 1850 (not more), so the manager goes at 1970."""
    h = harness({"ENVIRONMENT": "development"})
    h.advance_to(50.0)
    create(h, context(h))
    h.advance_to(1969.0)
    assert len(h.backend.factory.managers) == 1
    h.advance_to(1971.0)
    assert h.backend.factory.managers == {}
    assert h.backend.factory.user_manager_count["user-0001"] == 0


def test_background_cleanup_removes_old_inactive_but_keeps_old_active(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})  # interval 300: sweeps at 300, ..., 1800, 2100
    old_inactive = create(h, context(h, client_id="ws_a"))
    old_active = create(h, context(h, client_id="ws_b"))
    h.advance_to(1700.0)
    with h.active():
        for manager, cid in ((old_inactive, "ws_a"), (old_active, "ws_b")):
            manager.add_connection(ConnectionRecord(cid, "user-0001", h.clock.now()))
    old_inactive.is_active = False
    h.advance_to(1801.0)  # the sweep at 1800: age 1800 is not more than 1800
    assert len(h.backend.factory.managers) == 2
    h.advance_to(2101.0)
    assert list(h.backend.factory.managers.values()) == [old_active]


def test_health_task_detaches_connections_older_than_30_minutes(harness) -> None:
    """Checks every 60 s after creation: at 1800 the age is not more than 1800; at 1860 it is."""
    h = harness({"ENVIRONMENT": "development"})
    manager = create(h, context(h))
    with h.active():
        manager.add_connection(ConnectionRecord("ws_client_1", "user-0001", h.clock.now()))
    h.advance_to(1859.0)
    assert list(manager.connections) == ["ws_client_1"]
    activity = manager.last_activity
    h.advance_to(1861.0)
    assert manager.connections == {}
    assert manager.last_activity == activity  # detaching is no activity


def test_the_interval_fixed_at_the_start_paces_every_sweep(harness) -> None:
    """Started under "test" (30 s); ENVIRONMENT set to "production" (300 s) at 100 s. The
    sweeps keep the 30 s pace, so a manager idle since 0 goes at 1830, the first sweep after
    1800 s (a 300 s pace from 120 s would sweep at 1620 and 1920)."""
    h = harness({})
    h.backend.env.set("ENVIRONMENT", "test")
    create(h, context(h))
    h.advance_to(100.0)
    h.backend.env.set("ENVIRONMENT", "production")
    h.advance_to(1829.0)
    assert len(h.backend.factory.managers) == 1
    h.advance_to(1831.0)
    assert h.backend.factory.managers == {}


def test_background_cleanup_sleeps_before_its_first_sweep(harness) -> None:
    """A manager already idle for 2000 s when the cleanup starts (placed in the factory by
    hand) survives until the first sweep, one interval (120 s) after the start."""
    h = harness({"ENVIRONMENT": "development"})
    long_idle_at = h.clock.now() - 2000.0
    idle = IsolatedWebSocketManager(
        user_context=context(h, user="user-0009", client_id="ws_idle"), created_at=long_idle_at, last_activity=long_idle_at
    )
    h.backend.factory.managers["user-0009:ws_idle"] = idle
    h.backend.factory.user_manager_count["user-0009"] = 1
    create(h, context(h))  # starts the cleanup at 0
    h.advance_to(119.0)
    assert any(manager is idle for manager in h.backend.factory.managers.values())
    h.advance_to(121.0)
    assert not any(manager is idle for manager in h.backend.factory.managers.values())
    assert h.backend.factory.user_manager_count["user-0009"] == 0


# --- 4.3 detection and the relaxed validation -----------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "relaxed"),
    [
        ({"ENVIRONMENT": "staging"}, True),
        ({"ENVIRONMENT": "STAGING"}, True),
        ({"ENVIRONMENT": "staging "}, False),
        ({"ENVIRONMENT": "staging\n"}, False),
        ({"ENVIRONMENT": "production"}, False),
        ({"ENVIRONMENT": "production", "K_SERVICE": "svc"}, True),
        ({"ENVIRONMENT": "production", "K_SERVICE": ""}, False),
        ({"ENVIRONMENT": "production", "K_REVISION": "r"}, False),
        ({"E2E_TESTING": "1"}, True),
        ({"E2E_TESTING": "true"}, False),
        ({"PYTEST_RUNNING": "1"}, True),
        ({"STAGING_E2E_TEST": "1"}, True),
        ({"STAGING_E2E_TEST": "yes"}, False),
        ({"E2E_TEST_ENV": "staging"}, True),
        ({"E2E_TEST_ENV": "Staging"}, False),
        ({"TESTING": "1"}, False),
        ({}, False),
    ],
)
def test_validation_mode_detection(harness, environ: dict[str, str], relaxed: bool) -> None:
    h = harness(environ)
    with h.active():
        assert detect_validation_environment().relaxed is relaxed


def test_detection_that_raises_gives_strict(harness, monkeypatch) -> None:
    h = harness({"ENVIRONMENT": "staging", "K_SERVICE": "svc"})

    def broken(key: str, default: str | None = None) -> str | None:
        raise OSError("environment unreadable")

    monkeypatch.setattr(h.backend.env, "get", broken)
    with h.active():
        detection = detect_validation_environment()
    assert (detection.is_staging, detection.is_cloud_run, detection.is_e2e, detection.relaxed) == (
        False, False, False, False,
    )


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (SupervisorUserExecutionContext("u", "t", "r", "q"), "STAGING CRITICAL: Expected UserExecutionContext, got UserExecutionContext"),
        ({"user_id": "u"}, "STAGING CRITICAL: Expected UserExecutionContext, got dict"),
        (bare_context(**{**FULL, "user_id": ""}), "STAGING CRITICAL: Missing user_id in UserExecutionContext"),
        (bare_context(thread_id="t"), "STAGING CRITICAL: Missing user_id in UserExecutionContext"),
        (bare_context(**{**FULL, "user_id": 17}), "STAGING CRITICAL: Invalid user_id format: 17"),
        (bare_context(**{**FULL, "user_id": "   "}), "STAGING CRITICAL: Invalid user_id format: '   '"),
    ],
)
def test_relaxed_validation_messages(harness, ctx: Any, message: str) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    with h.active(), pytest.raises(ValueError) as caught:
        _validate_relaxed(ctx)
    assert str(caught.value) == message
    assert "SSOT" not in message and "factory" not in message.lower()


def test_relaxed_validation_never_raises_for_the_other_ids(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    odd = bare_context(user_id="user-0001", thread_id="", run_id=None, request_id=5)
    with h.active():
        _validate_relaxed(odd)  # websocket_client_id missing entirely: only a warning
    warnings = [r.message for r in h.backend.logs if r.level == "WARNING"]
    assert len(warnings) == 4


def test_relaxed_validation_accepts_known_patterns_and_any_other_non_blank_string(harness) -> None:
    h = harness({"ENVIRONMENT": "staging"})
    ctx = bare_context(
        user_id="user-0001",
        thread_id="ws_thread_1757365610_0123abcd",  # a known pattern
        run_id="anything at all",  # no known pattern, but non-blank
        request_id="staging-e2e-user-7",
        websocket_client_id="not-a-pattern",
    )
    with h.active():
        _validate_relaxed(ctx)
    assert log_messages(h, "WARNING") == []
    for name in ("thread_id", "run_id", "request_id", "websocket_client_id"):
        assert any(name in text and "accepted" in text for text in log_messages(h, "INFO")), name


# --- 4.4 strict validation ----------------------------------------------------------------------


@pytest.mark.parametrize("foreign", [SupervisorUserExecutionContext, ModelsUserExecutionContext])
def test_foreign_context_classes_fail_both_modes(harness, foreign: type) -> None:
    ctx = foreign("user-0001", "t", "r", "q")
    h = harness({"ENVIRONMENT": "development"})
    with h.active(), pytest.raises(ValueError) as strict:
        _validate_ssot_user_context(ctx)
    text = str(strict.value)
    assert text.startswith("SSOT VIOLATION: Expected ")
    assert text.endswith(f"got {foreign.__module__}.UserExecutionContext")
    assert f"{UserExecutionContext.__module__}.UserExecutionContext" in text
    with h.active(), pytest.raises(ValueError, match="^STAGING CRITICAL: Expected UserExecutionContext"):
        _validate_relaxed(ctx)


def test_strict_incomplete_lists_missing_and_none_attributes(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    ctx = bare_context(user_id="u", thread_id=None, request_id="q", websocket_client_id=None)  # no run_id
    with h.active(), pytest.raises(ValueError) as caught:
        _validate_ssot_user_context(ctx)
    assert str(caught.value) == (
        "SSOT CONTEXT INCOMPLETE: UserExecutionContext missing required attributes: "
        "['thread_id', 'run_id']"
    )


def test_strict_accepts_none_websocket_client_id(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        _validate_ssot_user_context(bare_context(**FULL))


def test_strict_collects_every_field_error(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    ctx = bare_context(user_id="u", thread_id=5, run_id="  ", request_id="q", websocket_client_id=7)
    with h.active(), pytest.raises(ValueError) as caught:
        _validate_ssot_user_context(ctx)
    assert str(caught.value) == (
        "SSOT CONTEXT VALIDATION FAILED: thread_id must be string, got int: 5; "
        "run_id must be non-empty string, got empty/whitespace: '  '; "
        "websocket_client_id must be None or string, got int: 7"
    )


def test_strict_blank_websocket_client_id(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    ctx = bare_context(**{**FULL, "websocket_client_id": " "})
    with h.active(), pytest.raises(ValueError) as caught:
        _validate_ssot_user_context(ctx)
    assert str(caught.value) == (
        "SSOT CONTEXT VALIDATION FAILED: websocket_client_id must be None or non-empty string, "
        "got empty/whitespace: ' '"
    )


class _ExplodingContext(UserExecutionContext):
    @property  # type: ignore[misc]
    def run_id(self) -> str:
        raise OSError("attribute store offline")


def test_strict_unexpected_exception_becomes_validation_error(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    ctx = object.__new__(_ExplodingContext)
    for name in ("user_id", "thread_id", "request_id", "websocket_client_id"):
        object.__setattr__(ctx, name, "x")
    with h.active(), pytest.raises(ValueError) as caught:
        _validate_ssot_user_context(ctx)
    assert str(caught.value).startswith("SSOT VALIDATION ERROR: ")
    assert "attribute store offline" in str(caught.value)


def test_validation_runs_before_create_manager(harness, monkeypatch) -> None:
    h = harness({"ENVIRONMENT": "development"})
    calls: list[str] = []

    async def spy(ctx: Any) -> None:
        calls.append("create_manager")

    monkeypatch.setattr(h.backend.factory, "create_manager", spy)
    monkeypatch.setattr(
        factory_module, "_validate_ssot_user_context_staging_safe", lambda ctx: calls.append("validate")
    )
    h.run(lambda: create_websocket_manager(context(h)))
    assert calls == ["validate", "create_manager"]
