"""UserExecutionContext and its validation at creation [services/user_execution_context.py].

    ctx = UserExecutionContext(user_id="u-1", thread_id="thread_x", run_id="run_x_1_abcdef12")
    # raises InvalidContextError on a blank field or a placeholder value
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from investigation.backend import runtime
from investigation.backend.environment import environment_name
from investigation.backend.ids import extract_thread_id, validate_run_id

REQUIRED_ID_FIELDS = ("user_id", "thread_id", "run_id", "request_id")

FORBIDDEN_PLACEHOLDER_VALUES = frozenset(
    {
        "registry", "placeholder", "default", "temp", "none", "null", "undefined", "0", "1",
        "xxx", "yyy", "example", "test", "demo", "sample", "template", "mock", "fake", "dummy",
    }
)
PLACEHOLDER_PREFIXES = (
    "placeholder_", "registry_", "default_", "temp_", "example_", "demo_", "sample_",
    "template_", "mock_", "fake_",
)
TEST_PREFIX = "test_"
PLACEHOLDER_PREFIXES_OUTSIDE_TESTS = PLACEHOLDER_PREFIXES + (TEST_PREFIX,)
SHORT_PLACEHOLDER_LENGTH = 20
#: Request ids the original recognises: the generator's, the fallback's, a uuid4.
KNOWN_REQUEST_ID = re.compile(
    r"^(req_\w+_\d+_\d+_[0-9a-f]{8}|ws_req_\d+_[0-9a-f]{8}|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)

RESERVED_METADATA_KEYS = frozenset(
    {"user_id", "thread_id", "run_id", "request_id", "created_at", "db_session", "websocket_client_id"}
)


class InvalidContextError(Exception):
    """A context failed its creation-time validation (not a ValueError)."""


def _new_request_id() -> str:
    return str(runtime.current().randomness.uuid4())


def _utc_now() -> datetime:
    return datetime.fromtimestamp(runtime.current().clock.now(), UTC)


@dataclass(frozen=True)
class UserExecutionContext:
    """Per-request identity; annotations are not enforced (no coercion), as in the original."""

    user_id: str
    thread_id: str
    run_id: str
    request_id: str = field(default_factory=_new_request_id)
    db_session: Any | None = field(default=None, repr=False, compare=False)
    websocket_client_id: str | None = None
    created_at: datetime = field(default_factory=_utc_now)
    agent_context: dict[str, Any] = field(default_factory=dict)
    audit_metadata: dict[str, Any] = field(default_factory=dict)
    operation_depth: int = 0
    parent_request_id: str | None = None

    @property
    def websocket_connection_id(self) -> str | None:
        return self.websocket_client_id

    def __post_init__(self) -> None:
        self._validate_required_fields()
        backend = runtime.current()
        self._validate_no_placeholder_values(environment_name(backend.env) == "test")
        self._log_id_consistency(backend.log)
        self._validate_metadata("agent_context")
        self._validate_metadata("audit_metadata")

    def _validate_required_fields(self) -> None:
        for name in REQUIRED_ID_FIELDS:
            value = getattr(self, name)
            if not value or not isinstance(value, str) or not value.strip():
                raise InvalidContextError(
                    f"Required field '{name}' must be a non-empty string, got: {value!r}"
                )

    def _validate_no_placeholder_values(self, test_environment: bool) -> None:
        prefixes = PLACEHOLDER_PREFIXES if test_environment else PLACEHOLDER_PREFIXES_OUTSIDE_TESTS
        for name in REQUIRED_ID_FIELDS:
            value = getattr(self, name)
            lowered = value.lower()
            if lowered in FORBIDDEN_PLACEHOLDER_VALUES:
                raise InvalidContextError(
                    f"Field '{name}' contains forbidden placeholder value: {value!r}. "
                    "This prevents proper request isolation."
                )
            if len(value) < SHORT_PLACEHOLDER_LENGTH and lowered.startswith(prefixes):
                raise InvalidContextError(
                    f"Field '{name}' appears to contain placeholder pattern: {value!r}. "
                    "This indicates improper context initialization."
                )

    def _log_id_consistency(self, log: Callable[[str, str], None]) -> None:
        if not validate_run_id(self.run_id):
            log("WARNING", f"run_id '{self.run_id}' does not follow expected format")
        thread_part = extract_thread_id(self.run_id)
        if thread_part and thread_part != self.thread_id:
            log(
                "WARNING",
                f"Thread ID mismatch: run_id contains '{thread_part}' but thread_id is "
                f"'{self.thread_id}'",
            )
        if not KNOWN_REQUEST_ID.match(self.request_id):
            log("WARNING", f"request_id '{self.request_id}' has an unknown format")

    def _validate_metadata(self, name: str) -> None:
        value = getattr(self, name)
        if type(value) is dict and not value:  # the usual case: nothing to check, a fresh {} kept
            object.__setattr__(self, name, {})
            return
        if not isinstance(value, dict):
            raise InvalidContextError(f"{name} must be a dictionary, got: {type(value).__name__}")
        reserved = sorted(RESERVED_METADATA_KEYS & set(value))
        if reserved:
            raise InvalidContextError(f"{name} contains reserved keys: {reserved}")
        object.__setattr__(self, name, copy.deepcopy(value) if value else {})
