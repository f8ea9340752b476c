"""Hostile connection attempts (hypothesis strategies) and the spec's allowed endings.

Needs the `test` extra (hypothesis). Used by tests/test_wire_hostile.py and
benchmarks/bench_wire.py; nothing in the package imports it.

    request = hostile_requests(secret).example()
    outcome = await asgi_connection(app, **request.asgi())          # in process
    outcome = await raw_connection(url, request)                     # real socket
    problems = ending_problems(outcome.close_code, outcome.close_reason, ...)

Header values stay within what HTTP/1.1 allows on the wire (visible Latin-1,
space, tab), so every attempt reaches the app; everything else is hostile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from investigation.backend.auth import ISSUER
from investigation.clock import EPOCH_MS
from investigation.traffic import b64url
from investigation.wire.endings import is_allowed_ending

WATCHED_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.asgi", "starlette", "asyncio", "websockets")
RAW_TIMEOUT_S = 60.0
MAX_HEADER_LINE = 8192


def _claims(sub: Any, now_s: float, **overrides: Any) -> dict[str, Any]:
    claims = {
        "sub": sub,
        "iat": int(now_s),
        "exp": int(now_s) + 900,
        "iss": ISSUER,
        "jti": "hostile-0001",
        "token_type": "access",
        "aud": "netra-platform",
    }
    claims.update(overrides)
    return claims


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}."


def bad_tokens(secret: str, now_s: float = EPOCH_MS / 1000) -> st.SearchStrategy[str]:
    """Tokens the auth service must reject (each fails a check of spec 5.3)."""
    user = st.sampled_from(["104729384756102938475", "user-a", "x"])
    return st.one_of(
        user.map(lambda u: _unsigned({"alg": "none", "typ": "JWT"}, _claims(u, now_s))),
        user.map(lambda u: jwt.encode(_claims(u, now_s), "a-different-secret-0123456789abcdefgh", "HS256")),
        user.map(lambda u: jwt.encode(_claims(u, now_s - 7200, exp=int(now_s) - 3600), secret, "HS256")),
        st.one_of(st.integers(), st.lists(st.integers(), max_size=2), st.just({"id": 1})).map(
            lambda sub: jwt.encode(_claims(sub, now_s), secret, "HS256")
        ),
        st.integers(10_000, 200_000).map(lambda n: "e" * n + ".e30.sig"),
        st.text("!@#$%^&*()", min_size=1, max_size=20).map(lambda junk: f"{junk}.{junk}.{junk}"),
        st.binary(min_size=1, max_size=40).map(_non_utf8_token),
        st.sampled_from(["", "a.b", "a.b.c.d", "mock_token.a.b", "Bearer", "..", "null"]),
    )


def _non_utf8_token(raw: bytes) -> str:
    """Three base64url parts whose header and payload are not UTF-8."""
    return ".".join((b64url(b"\xff\xfe" + raw), b64url(b"\xc3\x28" + raw), b64url(raw)))


def valid_token(secret: str, sub: str, now_s: float = EPOCH_MS / 1000) -> str:
    return jwt.encode(_claims(sub, now_s), secret, "HS256")


_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEADER_VALUE_CHARS = st.characters(codec="latin-1", exclude_categories=("Cc",)) | st.just("\t")
INTERESTING_HEADERS = (
    "authorization", "sec-websocket-protocol", "x-test-type", "x-test-environment", "x-e2e-test",
    "x-test-mode", "x-investigation-instance", "x-investigation-connection", "cookie", "origin",
)


def header_names() -> st.SearchStrategy[str]:
    return st.sampled_from(INTERESTING_HEADERS) | st.text(_TCHARS, min_size=1, max_size=30)


def header_values(max_size: int = 200) -> st.SearchStrategy[str]:
    return st.text(_HEADER_VALUE_CHARS, max_size=max_size).map(lambda v: v.strip(" \t"))


def subprotocol_entries(token: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("jwt-auth"),
        token.map(lambda t: "jwt." + b64url(t.encode("utf-8", "surrogatepass"))),
        st.binary(max_size=30).map(lambda raw: "jwt." + b64url(raw)),
        st.text(_TCHARS, max_size=30).map(lambda t: "jwt." + t),
        st.text(_TCHARS, min_size=1, max_size=30),
    )


def client_messages() -> st.SearchStrategy[str | bytes]:
    """Frames a client may send: good, malformed, binary, huge."""
    kinds = st.sampled_from(["chat", "user_message", "ping", "pong", "start_agent", "unknown", ""])
    return st.one_of(
        kinds.map(lambda kind: json.dumps({"type": kind, "payload": {"text": "hi"}})),
        st.text(max_size=50),
        st.binary(max_size=50),
        st.sampled_from(["null", "[]", "1", '"chat"', '{"type": null}', "{", "\ud7ff"]),
        st.integers(100_000, 1_000_000).map(lambda n: json.dumps({"type": "chat", "payload": {"text": "x" * n}})),
    )


_HTTP_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def _as_latin1(value: str) -> str:
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass").decode("latin-1")
    return value


@dataclass
class HostileRequest:
    """One connection attempt: headers, query, subprotocols, then frames."""

    headers: list[tuple[str, str]]
    query: list[tuple[str, str]]
    subprotocols: list[str]
    messages: list[str | bytes] = field(default_factory=list)

    def query_string(self) -> str:
        return "&".join(f"{quote(k, safe='')}={quote(v, safe='', errors='surrogatepass')}" for k, v in self.query)

    def header_list(self) -> list[tuple[str, str]]:
        """Headers as a server decodes them (Latin-1); text beyond Latin-1 travels as UTF-8 bytes."""
        headers = [(name, _as_latin1(value)) for name, value in self.headers]
        if self.subprotocols:
            headers.append(("sec-websocket-protocol", ", ".join(self.subprotocols)))
        return headers

    def fits_http(self) -> bool:
        """Whether every header is legal on an HTTP/1.1 wire and within uvicorn's line limit.

        A request or header line over 8192 bytes never reaches the app: uvicorn 0.54's
        websockets-sansio protocol leaves such a handshake unanswered (the
        400 that websockets prepares is never written), so the client waits.
        """
        return len(self.query_string()) + 64 <= MAX_HEADER_LINE and all(
            _HTTP_VALUE.fullmatch(value) and len(name) + len(value) + 4 <= MAX_HEADER_LINE
            for name, value in self.header_list()
        )

    def asgi(self) -> dict[str, Any]:
        """Keyword arguments for `inprocess.asgi_connection`."""
        return {
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.header_list()],
            "query_string": self.query_string().encode("ascii"),
            "subprotocols": [entry.strip() for entry in ", ".join(self.subprotocols).split(",")]
            if self.subprotocols else [],
            "messages": [
                {"type": "websocket.receive", "bytes": m} if isinstance(m, bytes)
                else {"type": "websocket.receive", "text": m}
                for m in self.messages
            ],
        }


@st.composite
def hostile_requests(draw: st.DrawFn, secret: str, max_header_value: int = 200) -> HostileRequest:
    """Any mix of headers, query, subprotocols, a token placed anywhere, then any frames."""
    token = draw(bad_tokens(secret) | st.just(valid_token(secret, "hostile-user")) | st.text(max_size=40))
    headers = draw(st.lists(st.tuples(header_names(), header_values(max_header_value)), max_size=6))
    place = draw(st.sampled_from(["bearer", "bearer_blank", "subprotocol", "query", "nowhere"]))
    query = draw(st.lists(st.tuples(st.text(max_size=10), st.text(max_size=30)), max_size=3))
    subprotocols = draw(st.lists(subprotocol_entries(st.just(token)), max_size=4))
    if place == "bearer":
        headers.append(("authorization", f"Bearer {token}".strip()))
    elif place == "bearer_blank":
        headers.append(("authorization", "Bearer    "))
    elif place == "subprotocol":
        subprotocols.append("jwt." + b64url(token.encode("utf-8", "surrogatepass")))
    elif place == "query":
        query.append(("token", token))
    messages = draw(st.lists(client_messages(), max_size=6))
    return HostileRequest(headers, query, subprotocols, messages)


def handshake_acceptable(url: str, request: HostileRequest) -> bool:
    """Whether the server's protocol layer (websockets, inside uvicorn) completes this handshake.

    It answers 400 before the app sees the request when, for instance, the
    Sec-WebSocket-Protocol header is not a token list or Origin is repeated.
    """
    _, handshake = build_handshake(url, request)
    server = ServerProtocol()
    server.receive_data(handshake.serialize())
    events = server.events_received()
    if not events or not isinstance(events[0], Request):
        return False
    return server.accept(events[0]).status_code == 101


def ending_problems(
    close_code: int | None, close_reason: str | None, subprotocol: str | None, offered: list[str]
) -> list[str]:
    """What is wrong with how a connection ended, per spec 1.2 and step 3 (empty = fine)."""
    problems = []
    if close_code is not None and not is_allowed_ending(close_code, close_reason):
        problems.append(f"close {close_code} {close_reason!r} is not an ending the spec allows")
    if subprotocol is not None and (subprotocol != "jwt-auth" or "jwt-auth" not in offered):
        problems.append(f"accepted subprotocol {subprotocol!r} although offered {offered!r}")
    return problems


class ErrorLogCapture(logging.Handler):
    """Collects ERROR records of the server stack's loggers (uvicorn, starlette, asyncio)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [f"{record.name}: {record.getMessage()}" for record in self.records]


@contextmanager
def captured_error_logs() -> Iterator[ErrorLogCapture]:
    capture = ErrorLogCapture()
    loggers = [logging.getLogger(name) for name in WATCHED_LOGGERS]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeHandler(capture)


@dataclass
class RawOutcome:
    """What a raw-socket client saw."""

    status: int | None = None
    subprotocol: str | None = None
    frames: list[Any] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    client_left: bool = False


def build_handshake(url: str, request: HostileRequest) -> tuple[ClientProtocol, Request]:
    """A sans-I/O client and its opening request carrying exactly the request's headers."""
    target = url + (f"?{request.query_string()}" if request.query else "")
    protocol = ClientProtocol(parse_uri(target), subprotocols=[Subprotocol("jwt-auth")], max_size=None)
    handshake = protocol.connect()
    del handshake.headers["Sec-WebSocket-Protocol"]
    for name, value in request.header_list():
        handshake.headers[name] = value
    return protocol, handshake


async def raw_connection(url: str, request: HostileRequest, hold_s: float = 5.0) -> RawOutcome:
    """Handshake with exactly the request's headers over a real socket, send its frames, leave after `hold_s`.

    websockets' sans-I/O client builds and parses the protocol; the request's
    own Sec-WebSocket-Protocol value is sent verbatim.
    """
    split = urlsplit(url)
    protocol, handshake = build_handshake(url, request)
    reader, writer = await asyncio.wait_for(asyncio.open_connection(split.hostname, split.port), RAW_TIMEOUT_S)
    outcome = RawOutcome()
    try:
        protocol.send_request(handshake)
        writer.write(b"".join(protocol.data_to_send()))
        await asyncio.wait_for(_converse(protocol, reader, writer, request, outcome, hold_s), RAW_TIMEOUT_S)
    finally:
        writer.close()
        await asyncio.gather(writer.wait_closed(), return_exceptions=True)
    return outcome


async def _converse(
    protocol: ClientProtocol,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: HostileRequest,
    outcome: RawOutcome,
    hold_s: float,
) -> None:
    loop = asyncio.get_running_loop()
    leave_at = None
    while True:
        timeout = None if leave_at is None else max(leave_at - loop.time(), 0.0)
        try:
            data = await asyncio.wait_for(reader.read(65536), timeout)
        except TimeoutError:
            outcome.client_left = True
            protocol.send_close(1000)
            writer.write(b"".join(protocol.data_to_send()))
            leave_at = loop.time() + RAW_TIMEOUT_S
            continue
        if not data:
            protocol.receive_eof()
            _take_events(protocol, outcome)
            return
        protocol.receive_data(data)
        opened = _take_events(protocol, outcome)
        if opened:
            _send_messages(protocol, request.messages)
            leave_at = loop.time() + hold_s
        writer.write(b"".join(protocol.data_to_send()))
        if protocol.close_expected() and outcome.status != 101:
            return


def _send_messages(protocol: ClientProtocol, messages: list[str | bytes]) -> None:
    """Send the frames while the connection is open (the server may have closed in the same read)."""
    for message in messages:
        if protocol.state is not State.OPEN:
            return
        if isinstance(message, bytes):
            protocol.send_binary(message)
        else:
            protocol.send_text(message.encode("utf-8", "surrogatepass"))


def _take_events(protocol: ClientProtocol, outcome: RawOutcome) -> bool:
    """Record the response and frames; True when the handshake just succeeded."""
    opened = False
    for event in protocol.events_received():
        if isinstance(event, Response):
            outcome.status = event.status_code
            outcome.subprotocol = event.headers.get("Sec-WebSocket-Protocol")
            opened = event.status_code == 101
        elif isinstance(event, Frame) and event.opcode == Opcode.TEXT:
            outcome.frames.append(json.loads(bytes(event.data)))
        elif isinstance(event, Frame) and event.opcode == Opcode.CLOSE and not outcome.client_left:
            received = protocol.close_rcvd
            if received is not None and outcome.close_code is None:
                outcome.close_code, outcome.close_reason = received.code, received.reason
    return opened

