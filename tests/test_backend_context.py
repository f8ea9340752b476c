"""Spec section 2: UserExecutionContext, its fields and its validation at creation."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from investigation.backend.context import InvalidContextError, UserExecutionContext
from tests.conftest import Harness, log_messages

PLACEHOLDER_VALUES = [
    "registry", "placeholder", "default", "temp", "none", "null", "undefined", "0", "1", "xxx",
    "yyy", "example", "test", "demo", "sample", "template", "mock", "fake", "dummy",
]
PLACEHOLDER_PREFIXES = [
    "placeholder_", "registry_", "default_", "temp_", "example_", "demo_", "sample_", "template_",
    "mock_", "fake_",
]
RESERVED_KEYS = ["user_id", "thread_id", "run_id", "request_id", "created_at", "db_session", "websocket_client_id"]
VALID = {"user_id": "user-0001", "thread_id": "thread-0001", "run_id": "run_x_y_12345678", "request_id": "req-0001"}


@pytest.fixture
def dev(harness) -> Iterator[Harness]:
    h = harness({"ENVIRONMENT": "development"})
    with h.active():
        yield h


def make(**overrides: Any) -> UserExecutionContext:
    return UserExecutionContext(**{**VALID, **overrides})


def test_field_order() -> None:
    names = [f.name for f in dataclasses.fields(UserExecutionContext)]
    assert names == [
        "user_id", "thread_id", "run_id", "request_id", "db_session", "websocket_client_id", "created_at",
        "agent_context", "audit_metadata", "operation_depth", "parent_request_id",
    ]


def test_defaults(dev: Harness) -> None:
    context = UserExecutionContext(user_id="user-0001", thread_id="thread-0001", run_id="run_x_y_12345678")
    assert str(uuid.UUID(context.request_id)) == context.request_id
    assert uuid.UUID(context.request_id).version == 4
    assert context.db_session is None and context.websocket_client_id is None
    assert context.agent_context == {} and context.audit_metadata == {}
    assert context.operation_depth == 0 and context.parent_request_id is None
    assert context.created_at.timestamp() == pytest.approx(dev.clock.now())
    assert context.created_at.utcoffset() is not None and context.created_at.utcoffset().total_seconds() == 0


def test_db_session_excluded_from_repr_and_compare(dev: Harness) -> None:
    moment = make().created_at
    first = make(db_session="session-a", created_at=moment)
    second = make(db_session="session-b", created_at=moment)
    assert first == second
    assert "session-a" not in repr(first)


def test_frozen_and_websocket_connection_id_read_only(dev: Harness) -> None:
    context = make(websocket_client_id="ws_abc")
    assert context.websocket_connection_id == "ws_abc"
    with pytest.raises(dataclasses.FrozenInstanceError):
        context.user_id = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        context.websocket_connection_id = "x"  # type: ignore[misc]


def test_annotations_not_enforced_no_coercion(dev: Harness) -> None:
    context = make(operation_depth="deep", websocket_client_id=123, parent_request_id=4.5)
    assert context.operation_depth == "deep"
    assert context.websocket_client_id == 123
    assert context.parent_request_id == 4.5


def test_invalid_context_error_is_not_a_value_error() -> None:
    assert issubclass(InvalidContextError, Exception)
    assert not issubclass(InvalidContextError, ValueError)


# --- 1. required fields -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["user_id", "thread_id", "run_id", "request_id"])
@pytest.mark.parametrize("bad", ["", "   ", None, 42, b"bytes"])
def test_required_fields(dev: Harness, name: str, bad: object) -> None:
    with pytest.raises(InvalidContextError) as caught:
        make(**{name: bad})
    assert str(caught.value) == f"Required field '{name}' must be a non-empty string, got: {bad!r}"


def test_required_fields_checked_before_placeholders(dev: Harness) -> None:
    with pytest.raises(InvalidContextError) as caught:
        make(user_id="placeholder", request_id="  ")
    assert str(caught.value) == "Required field 'request_id' must be a non-empty string, got: '  '"


def test_required_fields_need_no_running_backend() -> None:
    """The first check reads nothing of the process: a blank field fails as a context error
    even where no backend is active (created_at given, so no default needs the clock)."""
    with pytest.raises(InvalidContextError, match="Required field 'user_id'"):
        make(user_id="", created_at=datetime(2025, 9, 8, tzinfo=UTC))


def test_required_fields_checked_in_field_order(dev: Harness) -> None:
    with pytest.raises(InvalidContextError, match="Required field 'thread_id'"):
        make(thread_id="", run_id="")


# --- 2. placeholders ------------------------------------------------------------------------------


@pytest.mark.parametrize("value", PLACEHOLDER_VALUES + ["NULL", "Test", "DeMo"])
@pytest.mark.parametrize("name", ["user_id", "thread_id", "run_id", "request_id"])
def test_forbidden_placeholder_values(dev: Harness, name: str, value: str) -> None:
    with pytest.raises(InvalidContextError) as caught:
        make(**{name: value})
    assert str(caught.value) == (
        f"Field '{name}' contains forbidden placeholder value: {value!r}. This prevents proper request isolation."
    )


@pytest.mark.parametrize("value", ["2", "tests", " null", "none-of-these", "example-user"])
def test_near_placeholders_pass(dev: Harness, value: str) -> None:
    assert make(user_id=value).user_id == value


@pytest.mark.parametrize("prefix", PLACEHOLDER_PREFIXES)
def test_placeholder_prefixes_below_20_chars(dev: Harness, prefix: str) -> None:
    value = (prefix + "x" * 19)[:19]
    with pytest.raises(InvalidContextError) as caught:
        make(user_id=value)
    assert str(caught.value) == (
        f"Field 'user_id' appears to contain placeholder pattern: {value!r}. "
        "This indicates improper context initialization."
    )
    assert make(user_id=(prefix + "x" * 20)[:20]).user_id.startswith(prefix)


def test_prefix_compared_lower_cased(dev: Harness) -> None:
    with pytest.raises(InvalidContextError, match="placeholder pattern: 'MOCK_User'"):
        make(user_id="MOCK_User")


@pytest.mark.parametrize(
    ("environment", "test_prefix_allowed"),
    [("test", True), ("testing", True), ("TEST", True), ("development", False), ("staging", False),
     ("production", False), ("test ", False)],
)
def test_test_prefix_allowed_only_in_the_test_environment(harness, environment: str, test_prefix_allowed: bool) -> None:
    h = harness({"ENVIRONMENT": environment})
    with h.active():
        if test_prefix_allowed:
            assert make(user_id="test_user").user_id == "test_user"
        else:
            with pytest.raises(InvalidContextError, match="placeholder pattern: 'test_user'"):
                make(user_id="test_user")
        assert make(user_id="test_user_with_20chr").user_id == "test_user_with_20chr"


def test_test_prefix_rule_follows_test_default_environment(harness) -> None:
    """Under pytest with no ENVIRONMENT, the test default ENVIRONMENT=test applies."""
    h = harness({}, pytest_loaded=True)
    with h.active():
        assert make(user_id="test_user").user_id == "test_user"
        with pytest.raises(InvalidContextError, match="forbidden placeholder value: 'test'"):
            make(user_id="test")


def test_report_local_user_is_accepted_in_test(harness) -> None:
    h = harness({"ENVIRONMENT": "test"})
    with h.active():
        assert make(user_id="test-user-12345").user_id == "test-user-12345"


def test_placeholders_checked_in_field_order(dev: Harness) -> None:
    """Step 2 checks the same four fields in order: thread_id's value is reported, not request_id's."""
    with pytest.raises(InvalidContextError, match="Field 'thread_id' contains forbidden placeholder value: 'null'"):
        make(thread_id="null", request_id="mock_x")


# --- 4. metadata ----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", RESERVED_KEYS)
@pytest.mark.parametrize("field_name", ["agent_context", "audit_metadata"])
def test_reserved_metadata_keys(dev: Harness, field_name: str, key: str) -> None:
    with pytest.raises(InvalidContextError):
        make(**{field_name: {key: "x", "fine": 1}})


@pytest.mark.parametrize("field_name", ["agent_context", "audit_metadata"])
def test_metadata_must_be_a_dict(dev: Harness, field_name: str) -> None:
    with pytest.raises(InvalidContextError):
        make(**{field_name: [("a", 1)]})


def test_placeholders_checked_before_metadata(dev: Harness) -> None:
    with pytest.raises(InvalidContextError, match="forbidden placeholder value: 'null'"):
        make(user_id="null", agent_context={"user_id": "x"})


def test_id_warnings_are_logged_before_a_metadata_failure(dev: Harness) -> None:
    """Steps 3 then 4: the run_id warning is logged, then the reserved key fails the creation."""
    with pytest.raises(InvalidContextError):
        make(run_id="bogus-run", agent_context={"user_id": "x"})
    assert any("does not follow expected format" in text for text in log_messages(dev, "WARNING"))


def test_metadata_is_deep_copied(dev: Harness) -> None:
    agent_context = {"plan": {"steps": [1, 2]}}
    audit = {"trail": ["created"]}
    context = make(agent_context=agent_context, audit_metadata=audit)
    agent_context["plan"]["steps"].append(3)
    audit["trail"].append("changed")
    assert context.agent_context == {"plan": {"steps": [1, 2]}}
    assert context.audit_metadata == {"trail": ["created"]}
    assert context.agent_context is not agent_context


@pytest.mark.parametrize("client_id", ["", "   ", "placeholder", "mock_x", None])
def test_websocket_client_id_operation_depth_parent_not_validated(dev: Harness, client_id: object) -> None:
    context = make(websocket_client_id=client_id, operation_depth=-3, parent_request_id="null")
    assert context.websocket_client_id == client_id
    assert context.websocket_connection_id == client_id
