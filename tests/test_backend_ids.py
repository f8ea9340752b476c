"""Spec section 3: ID formats, the shared counter, the fallback, and the format helpers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from investigation.backend.auth import create_defensive_user_execution_context
from investigation.backend.context import UserExecutionContext
from investigation.backend.ids import UnifiedIdGenerator, extract_thread_id, validate_run_id
from investigation.backend.process import StartupState
from investigation.clock import SeededRandomness, VirtualClock
from tests.conftest import EPOCH_S, ScriptedSocket, bearer, claims_for, log_messages, mint

EPOCH_MS = 1_757_365_610_210
HEX8 = "[0-9a-f]{8}"


def test_first_ids_of_a_fresh_process_are_numbered_1_2_3() -> None:
    ids = UnifiedIdGenerator(VirtualClock(), SeededRandomness(0))
    thread_id, run_id, request_id = ids.generate_user_context_ids("u", "websocket_factory")
    assert re.fullmatch(rf"thread_websocket_factory_{EPOCH_MS}_1_{HEX8}", thread_id)
    assert re.fullmatch(rf"run_websocket_factory_{EPOCH_MS}_2_{HEX8}", run_id)
    assert re.fullmatch(rf"req_websocket_factory_{EPOCH_MS}_3_{HEX8}", request_id)
    suffixes = {value[-8:] for value in (thread_id, run_id, request_id)}
    assert len(suffixes) == 3  # each ID has its own hex


def test_the_counter_is_shared_and_continues() -> None:
    ids = UnifiedIdGenerator(VirtualClock(), SeededRandomness(0))
    ids.generate_user_context_ids("u", "op")
    thread_id, run_id, request_id = ids.generate_user_context_ids("other", "op")
    assert [value.split("_")[-2] for value in (thread_id, run_id, request_id)] == ["4", "5", "6"]


def test_timestamp_is_integer_milliseconds_of_the_clock() -> None:
    clock = VirtualClock()
    clock.advance(1.5)
    thread_id, _, _ = UnifiedIdGenerator(clock, SeededRandomness(0)).generate_user_context_ids("u", "op")
    assert thread_id.split("_")[2] == str(EPOCH_MS + 1500)


def test_user_id_is_unused() -> None:
    first = UnifiedIdGenerator(VirtualClock(), SeededRandomness(7)).generate_user_context_ids("alice", "op")
    second = UnifiedIdGenerator(VirtualClock(), SeededRandomness(7)).generate_user_context_ids("bob", "op")
    assert first == second


def test_a_connection_in_a_fresh_process_gets_counter_1(harness) -> None:
    h = harness({"ENVIRONMENT": "development", "JWT_SECRET_KEY": "ids-test-secret-0123456789abcdef-xyz"})
    token = mint(claims_for("user-0001"), secret="ids-test-secret-0123456789abcdef-xyz")
    h.connect(ScriptedSocket(headers=bearer(token), hold_s=1.0))
    (manager,) = h.backend.factory.managers.values()
    context = manager.user_context
    assert re.fullmatch(rf"thread_websocket_factory_{EPOCH_MS}_1_{HEX8}", context.thread_id)
    assert re.fullmatch(rf"run_websocket_factory_{EPOCH_MS}_2_{HEX8}", context.run_id)
    assert re.fullmatch(rf"req_websocket_factory_{EPOCH_MS}_3_{HEX8}", context.request_id)
    assert re.fullmatch(rf"ws_user-000_{int(EPOCH_S)}_{HEX8}", context.websocket_client_id)


# --- fallback and default client id ------------------------------------------------------------


def test_fallback_ids_share_seconds_and_uuid_prefix_and_log_a_warning(harness) -> None:
    h = harness({"ENVIRONMENT": "development"}, startup=StartupState(id_generator_fails=True))
    with h.active():
        context = create_defensive_user_execution_context("user-0001", "ws_client_given")
    seconds = int(EPOCH_S)
    match = re.fullmatch(rf"ws_thread_{seconds}_({HEX8})", context.thread_id)
    assert match is not None
    short_uuid = match.group(1)
    assert context.run_id == f"ws_run_{seconds}_{short_uuid}"
    assert context.request_id == f"ws_req_{seconds}_{short_uuid}"
    warnings = log_messages(h, "WARNING")
    assert any(text.startswith("UnifiedIdGenerator failed, using fallback: ") for text in warnings)


def test_default_websocket_client_id_format(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        context = create_defensive_user_execution_context("  abcdefghijk  ", None)
    assert context.user_id == "abcdefghijk"
    assert re.fullmatch(rf"ws_client_abcdefgh_{int(EPOCH_S)}_{HEX8}", context.websocket_client_id)


def test_an_empty_websocket_client_id_is_not_replaced_by_the_default(harness) -> None:
    """Spec 3.2: the default client id is made only when the caller passes None. Staging here,
    whose relaxed validation (4.3) lets the empty id through, so it is kept as given."""
    h = harness({"ENVIRONMENT": "staging", "K_SERVICE": "netra-backend-staging"})
    with h.active():
        context = create_defensive_user_execution_context("user-0001", "")
    assert context.websocket_client_id == ""


# --- format helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run_id", "valid"),
    [
        ("run_a_b_12345678", True),
        ("run_websocket_factory_1757365610210_2_abcdef12", True),
        ("run_a_12345678", False),  # 3 parts
        ("RUN_a_b_12345678", False),
        ("run_a_b_1234567", False),
        ("run_a_b_123456789", False),
        ("", False),
        (None, False),
        (42, False),
        ("ws_run_1757365610_abcdef12", False),
    ],
)
def test_validate_run_id(run_id: object, valid: bool) -> None:
    assert validate_run_id(run_id) is valid


@pytest.mark.parametrize(
    ("run_id", "thread_part"),
    [
        ("run_websocket_factory_1757365610210_2_abcdef12", "websocket_factory_1757365610210"),
        ("run_x_y_z", "x"),
        ("run_a_b", ""),
        ("run_b", "run_b"),
        ("thread_a_b_c", "thread_a_b_c"),
        ("ws_run_1757365610_abcdef12", "ws_run_1757365610_abcdef12"),
    ],
)
def test_extract_thread_id(run_id: str, thread_part: str) -> None:
    assert extract_thread_id(run_id) == thread_part


def test_bad_run_id_only_warns(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        UserExecutionContext(user_id="user-0001", thread_id="thread-abc", run_id="bogus-run", request_id="req-1")
    warnings = log_messages(h, "WARNING")
    assert any("does not follow expected format" in text for text in warnings)
    # extract_thread_id gives the run_id itself, non-empty and different: a mismatch too
    assert "Thread ID mismatch: run_id contains 'bogus-run' but thread_id is 'thread-abc'" in warnings


def test_thread_mismatch_warning_text(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        UserExecutionContext(
            user_id="user-0001", thread_id="thread-abc", run_id="run_x_y_12345678", request_id="req-1"
        )
    warnings = log_messages(h, "WARNING")
    assert "Thread ID mismatch: run_id contains 'x' but thread_id is 'thread-abc'" in warnings
    assert not any("does not follow expected format" in text for text in warnings)


def test_empty_thread_part_logs_no_mismatch(harness) -> None:
    """Spec 2.3: the mismatch is logged only when the extracted thread part is non-empty;
    "run_a_b" gives "" (3 parts: nothing between the first and the last two)."""
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        UserExecutionContext(user_id="user-0001", thread_id="thread-abc", run_id="run_a_b", request_id="req-1")
    warnings = log_messages(h, "WARNING")
    assert any("does not follow expected format" in text for text in warnings)
    assert not any(text.startswith("Thread ID mismatch") for text in warnings)


def test_matching_thread_part_logs_nothing(harness) -> None:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        UserExecutionContext(
            user_id="user-0001", thread_id="x", run_id="run_x_y_12345678",
            request_id="3b1f8c2e-1d2a-4c3b-8d7e-0123456789ab",
        )
    assert log_messages(h, "WARNING") == []


@pytest.mark.parametrize(
    ("request_id", "known"),
    [
        ("req_websocket_factory_1757365610210_3_a9dbe4f2", True),  # the generator's (spec 3.1)
        ("ws_req_1757365610_a9dbe4f2", True),  # the fallback's (spec 3.2)
        ("3b1f8c2e-1d2a-4c3b-8d7e-0123456789ab", True),  # a uuid4, the field's default
        ("req-1", False),
        ("request_0001", False),
    ],
)
def test_request_id_of_unknown_format_only_logs(harness, request_id: str, known: bool) -> None:
    """Spec 2.3: a request_id of an unknown format also only logs."""
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        UserExecutionContext(user_id="user-0001", thread_id="x", run_id="run_x_y_12345678", request_id=request_id)
    logged = any("unknown format" in text for text in log_messages(h, "WARNING"))
    assert logged is not known


def test_generated_ids_always_log_the_mismatch(harness) -> None:
    """The generator's run id carries 'websocket_factory_<ts>' while the thread id is the whole
    thread_... string, so every generated context logs the mismatch (a warning only)."""
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        context = create_defensive_user_execution_context("user-0001", None)
    expected = (
        f"Thread ID mismatch: run_id contains 'websocket_factory_{EPOCH_MS}' but thread_id is "
        f"'{context.thread_id}'"
    )
    assert expected in log_messages(h, "WARNING")


@given(seed=st.integers(min_value=0, max_value=2**64), draws=st.integers(min_value=1, max_value=5))
def test_uuid4_prefix_is_the_first_8_characters_of_the_same_draws_uuid4(seed: int, draws: int) -> None:
    as_uuid, as_prefix = SeededRandomness(seed), SeededRandomness(seed)
    for _ in range(draws):
        assert as_prefix.uuid4_prefix() == str(as_uuid.uuid4())[:8]
