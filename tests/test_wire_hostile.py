"""Hostile input against the real app (spec 1.2, 3, 5, 12, 13): the server never fails.

Most examples go through the ASGI app in process (fast); a share goes over real
sockets to uvicorn on loopback. Every connection must end the way spec 1.2
allows (1008 "SSOT Auth failed", 1011 with one of its three reasons, or no
close frame), with no exception escaping the app and no error log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from investigation.backend.auth import resolve_jwt_secret
from investigation.clock import VirtualClock, virtual_loop
from investigation.profiles import load_profile
from investigation.traffic import auth_environment
from investigation.wire import build_app
from investigation.wire.endings import is_allowed_ending
from investigation.wire.hostile import (
    HostileRequest,
    bad_tokens,
    captured_error_logs,
    client_messages,
    ending_problems,
    handshake_acceptable,
    hostile_requests,
    raw_connection,
    valid_token,
)
from investigation.wire.inprocess import asgi_connection
from investigation.wire.runner import WIRE_POLL_S
from investigation.wire.server import running_server

PROFILE = load_profile("staging-cloud-run")
SECRET = resolve_jwt_secret(auth_environment(PROFILE))
HOLD_S = 1.0
QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BENIGN_HEADER_NAMES = st.sampled_from(["accept-language", "cookie", "origin", "user-agent", "x-request-id"])


class AppOnVirtualTime:
    """The staging app on a virtual-time loop that persists across examples (state accumulates)."""

    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.loop = virtual_loop(self.clock, WIRE_POLL_S)
        self.app = build_app(PROFILE, clock=self.clock)
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda _, context: self.loop_errors.append(context))

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        for backend in self.app.state.wire.backends:
            self.run(backend.shutdown())
        self.loop.close()


@pytest.fixture(scope="module")
def inprocess() -> Iterator[AppOnVirtualTime]:
    target = AppOnVirtualTime()
    yield target
    target.close()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[AppOnVirtualTime, str]]:
    target = AppOnVirtualTime()
    server = running_server(target.app)
    url = target.run(server.__aenter__())
    try:
        yield target, url
    finally:
        target.run(server.__aexit__(None, None, None))
        target.loop.close()


def offered(request: HostileRequest) -> list[str]:
    return [entry.strip() for entry in ", ".join(request.subprotocols).split(",") if entry.strip()]


@pytest.mark.parametrize(
    ("code", "reason", "allowed"),
    [
        (1008, "SSOT Auth failed", True),
        (1011, "Factory SSOT validation failed", True),
        (1011, "Service startup incomplete", True),
        (1011, "Internal error", True),
        (1008, "Internal error", False),
        (1011, "SSOT Auth failed", False),
        (1000, "bye", False),
        (1011, None, False),
    ],
)
def test_only_the_close_endings_of_the_spec_table_are_allowed(code: int, reason: str | None, allowed: bool) -> None:
    """Spec 1.2's table: 1008 only with "SSOT Auth failed", 1011 only with its three reasons."""
    assert is_allowed_ending(code, reason) is allowed


@QUICK
@given(request=hostile_requests(SECRET))
def test_any_hostile_request_in_process_ends_as_the_spec_allows(inprocess: AppOnVirtualTime, request: HostileRequest) -> None:
    with captured_error_logs() as logs:
        outcome = inprocess.run(asgi_connection(inprocess.app, hold_s=HOLD_S, **request.asgi()))
    assert outcome.app_error is None and not outcome.timed_out
    assert outcome.accepted, "spec step 3: every connection is accepted before authentication"
    assert ending_problems(outcome.close_code, outcome.close_reason, outcome.subprotocol, offered(request)) == []
    assert logs.messages() == [] and inprocess.loop_errors == []


def _no_e2e_signal(name: str) -> bool:
    return "test" not in name and "e2e" not in name


@QUICK
@given(
    token=bad_tokens(SECRET),
    via=st.sampled_from(["bearer", "subprotocol", "query"]),
    headers=st.lists(st.tuples(BENIGN_HEADER_NAMES, st.text("abc =;", max_size=20)), max_size=3),
)
def test_a_bad_token_without_e2e_signal_gets_1008(
    inprocess: AppOnVirtualTime, token: str, via: str, headers: list[tuple[str, str]]
) -> None:
    request = HostileRequest(headers, [], [])
    if via == "bearer" and token.strip():
        request.headers.append(("authorization", f"Bearer {token}"))
    elif via == "subprotocol":
        request.subprotocols = ["jwt-auth", "jwt." + _b64url(token)]
    else:
        request.query = [("token", token)]
    assert all(_no_e2e_signal(name) for name, _ in request.headers)
    outcome = inprocess.run(asgi_connection(inprocess.app, hold_s=HOLD_S, **request.asgi()))
    assert (outcome.close_code, outcome.close_reason) == (1008, "SSOT Auth failed")
    assert outcome.frames and outcome.frames[0]["type"] == "error_message"


def _b64url(text: str) -> str:
    import base64

    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def expected_after_messages(messages: list[str | bytes]) -> tuple[int | None, str | None, int]:
    """Spec 12-13: (close code, reason, acks) after the route reads `messages` in order.

    chat/user_message are acknowledged, ping/pong are handled, anything else
    (bad JSON, unknown type, start_agent with the agent handler) is a routing
    failure; 5 in a row end the loop without a close. A binary frame has no
    text: the original's receive_text raises, an unhandled error -> 1011.
    """
    failures = acks = 0
    for message in messages:
        if isinstance(message, bytes):
            return 1011, "Internal error", acks
        try:
            parsed = json.loads(message)
            kind = parsed.get("type") if isinstance(parsed, dict) else None
        except ValueError:
            kind = None
        if kind in ("chat", "user_message"):
            acks, failures = acks + 1, 0
        elif kind in ("ping", "pong"):
            failures = 0
        else:
            failures += 1
        if failures == 5:
            return None, None, acks
    return None, None, acks


_hashable_type_messages = client_messages().filter(
    lambda m: isinstance(m, bytes) or not _has_unhashable_type(m)
)


def _has_unhashable_type(text: str) -> bool:
    try:
        parsed = json.loads(text)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("type"), (list, dict))


@QUICK
@given(messages=st.lists(_hashable_type_messages, max_size=8))
def test_frames_after_a_good_handshake_end_as_spec_12_and_13_say(
    inprocess: AppOnVirtualTime, messages: list[str | bytes]
) -> None:
    user = f"frames-user-{len(inprocess.app.state.wire.backends[0].logs)}"
    token = valid_token(SECRET, user, inprocess.clock.now())
    request = HostileRequest([("authorization", f"Bearer {token}")], [], [], messages)
    with captured_error_logs() as logs:
        outcome = inprocess.run(asgi_connection(inprocess.app, hold_s=HOLD_S, **request.asgi()))
    code, reason, acks = expected_after_messages(messages)
    assert (outcome.close_code, outcome.close_reason) == (code, reason)
    assert sum(1 for frame in outcome.frames if frame.get("type") == "ack") == acks
    assert outcome.app_error is None and logs.messages() == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=hostile_requests(SECRET, max_header_value=100))
def test_any_hostile_request_over_a_real_socket_ends_as_the_spec_allows(
    served: tuple[AppOnVirtualTime, str], request: HostileRequest
) -> None:
    assume(request.fits_http())
    target, url = served
    with captured_error_logs() as logs:
        outcome = target.run(raw_connection(url, request, hold_s=HOLD_S))
    if not handshake_acceptable(url, request):
        assert outcome.status == 400 and logs.messages() == []
        return
    assert outcome.status == 101, "spec step 3: accepted before authentication"
    assert ending_problems(outcome.close_code, outcome.close_reason, outcome.subprotocol, offered(request)) == []
    assert logs.messages() == [] and target.loop_errors == []


def test_a_binary_frame_over_a_real_socket_gets_1011_internal_error(served: tuple[AppOnVirtualTime, str]) -> None:
    target, url = served
    token = valid_token(SECRET, "binary-frame-user", target.clock.now())
    request = HostileRequest([("authorization", f"Bearer {token}")], [], [], [b"\x00\x01binary"])
    outcome = target.run(raw_connection(url, request, hold_s=HOLD_S))
    assert (outcome.status, outcome.close_code, outcome.close_reason) == (101, 1011, "Internal error")
    assert outcome.frames[-1]["data"]["code"] == "INTERNAL_ERROR"


def test_five_bad_frames_end_the_connection_without_a_close_frame(served: tuple[AppOnVirtualTime, str]) -> None:
    target, url = served
    token = valid_token(SECRET, "bad-json-user", target.clock.now())
    request = HostileRequest([("authorization", f"Bearer {token}")], [], [], ["{not json"] * 5)
    outcome = target.run(raw_connection(url, request, hold_s=30.0))
    assert outcome.status == 101
    assert (outcome.close_code, outcome.client_left) == (None, False), "server ended it, no close frame"


def test_the_server_still_serves_after_the_hostile_examples(served: tuple[AppOnVirtualTime, str]) -> None:
    target, url = served
    token = valid_token(SECRET, "after-the-storm", target.clock.now())
    chat = json.dumps({"type": "chat", "payload": {"text": "still there?"}})
    outcome = target.run(raw_connection(url, HostileRequest([("authorization", f"Bearer {token}")], [], [], [chat])))
    assert outcome.status == 101 and outcome.close_code is None and outcome.client_left
    assert [frame["type"] for frame in outcome.frames if frame["type"] == "ack"] == ["ack"]
