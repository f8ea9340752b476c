"""The real WebSocket endpoint: wire mode agrees with the simulation, `serve` keeps its
contract, load stays isolated, and the harness routing behaves as documented.

Expected values come from spec/backend.md (close codes and reasons of 1.2, the
per-user cap of 5 in 4.2, token rules of 5.3) and docs/design.md (serve contract).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from investigation.clock import VirtualClock, virtual_loop
from investigation.profiles import Client, list_profiles, load_profile
from investigation.simulate import simulate
from investigation.trace import ConnectionResult
from investigation.wire import build_app, simulate_wire
from investigation.wire.app import BACKEND_LOGGER_NAME, INSTANCE_HEADER, WireState
from investigation.wire.inprocess import asgi_connection
from investigation.wire.load import load_run, plan_users, serve_command, served_process
from investigation.wire.profile_client import client_urls
from investigation.wire.server import TokenQueryRedactor

PROFILES = list_profiles()


def comparable(connection: ConnectionResult) -> tuple[Any, ...]:
    return (
        connection.index,
        connection.client,
        connection.instance,
        connection.user_id,
        connection.close_code,
        connection.close_reason,
        connection.decisions,
        connection.cause_chain,
        connection.frames,
    )


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
def test_wire_mode_matches_the_simulation_connection_by_connection(profile: Any) -> None:
    in_process = simulate(profile)
    over_the_wire = simulate_wire(profile)
    assert len(over_the_wire.connections) == sum(client.connections for client in profile.clients)
    assert [comparable(c) for c in over_the_wire.connections] == [comparable(c) for c in in_process.connections]
    assert over_the_wire.summary() == in_process.summary()


def test_wire_mode_reproduces_the_incident_close_in_staging_e2e() -> None:
    run = simulate_wire(load_profile("staging-e2e"))
    closes = {(c.close_code, c.close_reason) for c in run.connections if c.close_code is not None}
    assert closes == {(1011, "Factory SSOT validation failed")}


def test_wire_mode_under_a_variant_matches_the_simulation() -> None:
    profile = load_profile("staging-e2e")
    assert [comparable(c) for c in simulate_wire(profile, "V5").connections] == [
        comparable(c) for c in simulate(profile, "V5").connections
    ]


# --- serve: the docs/design.md contract, seen by a plain websockets client -------------------------

#: spec 7: the staging E2E suite's headers, which the profile gives each e2e-process-N client.
E2E_HEADERS = {"x-test-type": "E2E", "x-test-environment": "staging", "x-e2e-test": "true", "x-test-mode": "true"}
#: spec 1.2 / 4.2: a user's sixth manager on one instance fails the factory.
INCIDENT_CLOSE = (1011, "Factory SSOT validation failed")
#: A whole JWT (three base64url parts, header starting '{"'), as it would appear in a log line.
WHOLE_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]*")


async def _open_and_listen(url: str, seconds: float = 1.0) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Connect, read frames for `seconds` (real), leave; the server's close if it closed first."""
    frames: list[dict[str, Any]] = []
    async with connect(url, ping_interval=None, open_timeout=10, close_timeout=10) as connection:
        try:
            async with asyncio.timeout(seconds):
                async for raw in connection:
                    frames.append(json.loads(raw))
        except (TimeoutError, ConnectionClosed):
            pass
    received = connection.protocol.close_rcvd
    if received is not None and connection.protocol.close_rcvd_then_sent:
        return frames, received.code, received.reason
    return frames, None, None


def _websockets_cli(url: str) -> str:
    """`python -m websockets URL` with stdin held open: it exits when the server closes."""
    completed = subprocess.run(
        [sys.executable, "-m", "websockets", url], stdin=subprocess.PIPE, capture_output=True, timeout=30, check=False
    )
    return completed.stdout.decode()


@contextlib.contextmanager
def _serving(profile_name: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`investigation serve PROFILE --port 0` as a person runs it; yields the first stdout line."""
    command = [sys.executable, "-m", "investigation.cli", "serve", profile_name, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout is not None
        yield process.stdout.readline().decode(), process
    finally:
        process.terminate()
        process.communicate(timeout=10)


def test_serve_prints_only_its_url_and_a_profile_client_s_sixth_connection_gets_the_incident_close() -> None:
    with _serving("staging-e2e") as (first_line, server):
        url = first_line.rstrip("\n")
        assert first_line.endswith("\n") and re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", url)
        as_suite_process = f"{url}?client=e2e-process-2&instance=1"
        outcomes = [asyncio.run(_open_and_listen(as_suite_process, seconds=0.5)) for _ in range(5)]
        cli_output = _websockets_cli(as_suite_process)
        assert server.poll() is None
        server.terminate()
        rest_of_stdout, log = server.communicate(timeout=10)
    for frames, code, _ in outcomes:
        welcome = [f for f in frames if f.get("data", {}).get("event") == "connection_established"]
        assert code is None and welcome[0]["data"]["user_id"] == "staging-e2e-user-002", "spec 5.2: E2E bypass"
    assert f"Connection closed: 1011 (internal error) {INCIDENT_CLOSE[1]}." in cli_output
    assert rest_of_stdout == b"", "docs/design.md: serve prints the URL on one line, nothing else on stdout"
    assert f"{url}?client=e2e-process-1".encode() in log
    assert b"WARNING:  instance 1: Thread ID mismatch: run_id contains" in log, "the backend's own warnings"
    assert b"context created for auth user" not in log, "the backend's INFO lines stay out of the server log"
    assert WHOLE_JWT.search(log.decode()) is None, "a whole token reached the server's output"


#: POSIX shells report a process ended by signal N as 128 + N; SIGINT is 2, so Ctrl-C is 130.
EXIT_ON_CTRL_C = 128 + signal.SIGINT


def _sigint_at_its_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_ends_serve_with_exit_130_no_traceback_and_no_suite_import() -> None:
    # -X importtime lists every module imported on stderr: the suite (seconds to import) must not be
    command = [sys.executable, "-X", "importtime", "-m", "investigation.cli", "serve", "staging-e2e", "--port", "0"]
    # Ctrl-C reaches a foreground process whose SIGINT is at its default; a runner started in the background by a
    # non-interactive shell (`pytest &`) ignores SIGINT and its children inherit that. Then uvicorn still shuts down
    # on the signal but its re-raise on the way out is ignored, serve returns normally and exits 0 (seen under a
    # background mutation run). The URL is printed from inside uvicorn's signal capture, so it is the readiness
    # signal; the child gets SIGINT's default disposition, as a terminal's foreground process has.
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              preexec_fn=_sigint_at_its_default)
    assert server.stdout is not None and server.stdout.readline().startswith(b"ws://")
    server.send_signal(signal.SIGINT)
    _, log = server.communicate(timeout=20)
    assert server.returncode == EXIT_ON_CTRL_C
    assert b"Traceback" not in log and b"KeyboardInterrupt" not in log
    assert b"Finished server process" in log, "uvicorn shut down gracefully before the exit"
    assert b"investigation.suite" not in log


def test_the_literal_token_s_docs_say_serve_judges_it_on_the_wall_clock_and_simulate_at_the_epoch() -> None:
    # clock.EPOCH_MS = 1_757_365_610_210 ms: 1_757_365_610 s after 1970-01-01 is 2025-09-08 21:06:50 UTC
    epoch = "2025-09-08T21:06:50Z"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    serve_section = readme[readme.index("`serve` puts the model") : readme.index("## Adding a profile")]
    field_doc = " ".join(str(Client.model_fields["token_literal"].description).split())
    for text in (" ".join(serve_section.split()), field_doc):
        assert epoch in text and "wall clock" in text


def test_serve_refuses_an_unknown_profile_client_with_http_403() -> None:
    with _serving("staging-e2e") as (first_line, _):
        url = first_line.strip()
        with pytest.raises(InvalidStatus) as refused:
            asyncio.run(_open_and_listen(f"{url}?client=e2e-process-4"))
    assert refused.value.response.status_code == 403


def test_a_token_in_a_logged_request_target_is_redacted() -> None:
    token = jwt.encode({"sub": "someone"}, "k" * 32, algorithm="HS256")
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5", f"/ws?instance=1&token={token}&x=1"), None,
    )
    assert TokenQueryRedactor().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "WebSocket /ws?instance=1&token=<redacted>&x=1" [accepted]'


def _logged_target(target: str) -> str:
    """uvicorn's line for an accepted WebSocket request at `target`, after the redactor."""
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]', ("127.0.0.1:5", target), None
    )
    assert TokenQueryRedactor().filter(record)
    return record.getMessage()


_SECRET = jwt.encode({"sub": "someone"}, "k" * 32, algorithm="HS256")


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        # %74 is 't': Starlette decodes the key to `token`, the backend's query token (spec 3.1).
        (f"/ws?%74oken={_SECRET}", "/ws?%74oken=<redacted>"),
        # %3D is '=': the pair decodes to `token=<JWT>` (Starlette: that whole text is the key).
        (f"/ws?token%3D{_SECRET}", "/ws?token%3D<redacted>"),
        # Not the backend's key (case and spaces count there), but a whole token all the same
        # (common rules: whole tokens never reach an output); the documented `client` stays.
        (f"/ws?client=e2e-process-2&TOKEN={_SECRET}", "/ws?client=e2e-process-2&TOKEN=<redacted>"),
        (f"/ws?+token+={_SECRET}", "/ws?+token+=<redacted>"),
        # every token pair, and a value that starts with the log format's quote character
        (f"/ws?token={_SECRET}&token={_SECRET}", "/ws?token=<redacted>&token=<redacted>"),
        (f'/ws?instance=1&token="{_SECRET}', "/ws?instance=1&token=<redacted>"),
    ],
    ids=["percent-encoded-key", "percent-encoded-equals", "upper-case-key", "spaced-key", "repeated", "quote-in-value"],
)
def test_a_token_under_any_spelling_of_its_key_is_redacted(target: str, shown: str) -> None:
    assert _logged_target(target) == f'127.0.0.1:5 - "WebSocket {shown}" [accepted]'


@pytest.mark.parametrize("forward", [False, True], ids=["kept", "forwarded"])
def test_a_serving_app_forwards_its_backends_log_lines_and_keeps_none(forward: bool, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger=BACKEND_LOGGER_NAME)
    clock = VirtualClock()
    loop = virtual_loop(clock)
    app = build_app(load_profile("staging-e2e"), clock=clock, profile_clients=True, forward_backend_logs=forward)
    try:
        query = b"client=e2e-process-2&instance=1"
        loop.run_until_complete(asgi_connection(app, query_string=query, hold_s=1.0))
    finally:
        for backend in app.state.wire.backends:
            loop.run_until_complete(backend.shutdown())
        loop.close()
    kept = [(record.level, record.message) for backend in app.state.wire.backends for record in backend.logs]
    forwarded = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == BACKEND_LOGGER_NAME]
    context_line = "context created for auth user staging-"
    mismatch = [level for level, text in (forwarded or kept) if "Thread ID mismatch" in text]
    assert mismatch == ["WARNING"], "spec 2 step 3: a warning, at its own level"
    if forward:
        assert kept == [] and ("INFO", f"instance 1: {context_line}") in forwarded
    else:
        assert forwarded == [] and ("INFO", context_line) in kept


# --- the profile-client shim, in process ----------------------------------------------------------


class _ShimApp:
    """`build_app(profile, profile_clients=True)` on virtual time, recording what each route saw."""

    def __init__(self, profile_name: str) -> None:
        self.clock = VirtualClock()
        self.loop = virtual_loop(self.clock)
        self.app = build_app(load_profile(profile_name), clock=self.clock, profile_clients=True)
        self.routed: list[tuple[int, Any]] = []
        for instance, backend in enumerate(self.app.state.wire.backends):
            backend.handle = self._recording(instance, backend.handle)

    def _recording(self, instance: int, handle: Any) -> Any:
        async def recorded(socket: Any, recorder: Any = None) -> Any:
            self.routed.append((instance, socket))
            return await handle(socket, recorder)

        return recorded

    def connect(self, query: str, **connection: Any) -> Any:
        connection.setdefault("hold_s", 1.0)
        return self.loop.run_until_complete(asgi_connection(self.app, query_string=query.encode(), **connection))

    def close(self) -> None:
        for backend in self.app.state.wire.backends:
            self.loop.run_until_complete(backend.shutdown())
        self.loop.close()


@pytest.fixture
def shim() -> Iterator[Any]:
    apps: list[_ShimApp] = []
    yield lambda name: apps.append(_ShimApp(name)) or apps[-1]
    for app in apps:
        app.close()


def test_the_route_sees_the_profile_client_s_headers_and_a_server_minted_token_only(shim: Any) -> None:
    app = shim("staging-e2e")
    outcome = app.connect(
        "client=e2e-process-2&instance=1&token=from-the-url", headers=[(b"authorization", b"Bearer from-the-url")]
    )
    [(instance, socket)] = app.routed
    assert instance == 1 and outcome.accepted and outcome.close_code is None
    assert dict(socket.query) == {}, "client, instance and the URL's own token never reach the route"
    assert set(socket.headers) == {*E2E_HEADERS, "authorization"}
    assert {name: socket.headers[name] for name in E2E_HEADERS} == E2E_HEADERS
    scheme, token = socket.headers["authorization"].split(" ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert scheme == "Bearer" and claims["sub"] == "staging-e2e-user-002"
    assert claims["type"] == "access" and "token_type" not in claims, "spec 7: the E2E suite's own token"


def test_a_subprotocol_client_gets_its_token_in_a_jwt_entry_and_the_wire_echoes_only_what_was_offered(
    shim: Any,
) -> None:
    app = shim("development")
    silent = app.connect("client=dev-browser-tab")
    offering = app.connect("client=dev-browser-tab", subprotocols=["jwt-auth"])
    (_, first), (_, second) = app.routed
    offered = [entry.strip() for entry in first.headers["sec-websocket-protocol"].split(",")]
    assert offered[0] == "jwt-auth" and offered[1].startswith("jwt.") and len(offered) == 2
    assert "authorization" not in first.headers and dict(first.query) == {}
    assert (first.subprotocol, silent.subprotocol) == ("jwt-auth", None), "no subprotocol the client did not offer"
    assert (second.subprotocol, offering.subprotocol) == ("jwt-auth", "jwt-auth")
    assert silent.close_code is None and offering.close_code is None


def test_an_unknown_profile_client_is_refused_before_accept_and_never_reaches_the_route(shim: Any) -> None:
    app = shim("staging-e2e")
    outcome = app.connect("client=e2e-process-4")
    assert not outcome.accepted and outcome.close_code == 1008, "close before accept: the server answers 403"
    assert app.routed == []


def test_profile_clients_follow_the_profile_s_routing_unless_an_instance_is_given(shim: Any) -> None:
    sticky = shim("production-cloud-run")
    names = [client.name for client in load_profile("production-cloud-run").clients]
    for name in (names[6], names[3], names[6]):
        sticky.connect(f"client={name}")
    sticky.connect(f"client={names[6]}&instance=0")
    assert [instance for instance, _ in sticky.routed] == [2, 3, 2, 0], "sticky: client index % 4 instances"
    round_robin = shim("staging-e2e")
    for query in ("client=e2e-process-3", "client=e2e-process-3", "client=e2e-process-1&instance=0",
                  "client=e2e-process-3"):
        round_robin.connect(query)
    assert [instance for instance, _ in round_robin.routed] == [0, 1, 0, 2], "round robin: n-th unpinned connection"


def test_without_the_shim_a_client_parameter_is_an_ordinary_query_parameter() -> None:
    outcome = _run_in_process("staging-e2e", query_string=b"client=e2e-process-2", hold_s=1.0)
    assert outcome.accepted and (outcome.close_code, outcome.close_reason) == (1008, "SSOT Auth failed")


def test_client_urls_name_each_profile_client_and_carry_no_token() -> None:
    profile = load_profile("staging-e2e")
    assert client_urls("ws://127.0.0.1:8765/ws", profile.clients) == [
        f"ws://127.0.0.1:8765/ws?client=e2e-process-{n}" for n in (1, 2, 3)
    ]


# --- load: isolation under concurrency ------------------------------------------------------------


def test_two_hundred_concurrent_connections_of_forty_users_stay_isolated() -> None:
    async def scenario() -> dict[str, Any]:
        async with served_process(serve_command("staging-cloud-run")) as (url, server):
            report = await load_run(url, plan_users("staging-cloud-run", users=40, per_user=5, run_tag="pytest"))
            assert server.poll() is None
            return {"report": report}

    report = asyncio.run(scenario())["report"]
    assert (report.connections, report.users) == (200, 40)
    assert report.errors == [] and report.misdelivered == [] and report.disallowed_closes == []


# --- instance selection and the adapter -----------------------------------------------------------


def _state(routing: str, instances: int = 3) -> WireState:
    return WireState(backends=[object()] * instances, routing=routing, clock=VirtualClock())  # type: ignore[list-item]


def test_an_instance_selector_wins_and_bad_selectors_fall_back_to_routing() -> None:
    state = _state("round_robin")
    assert state.pick_instance({INSTANCE_HEADER: "2"}, {}) == 2
    assert state.pick_instance({}, {"instance": "1"}) == 1
    assert [state.pick_instance({INSTANCE_HEADER: bad}, {}) for bad in ("3", "-1", "x", "٢")] == [0, 1, 2, 0]
    assert _state("sticky").pick_instance({}, {}) == 0


def _run_in_process(profile_name: str, **connection: Any) -> Any:
    clock = VirtualClock()
    loop = virtual_loop(clock)
    app = build_app(load_profile(profile_name), clock=clock)
    try:
        return loop.run_until_complete(asgi_connection(app, **connection))
    finally:
        for backend in app.state.wire.backends:
            loop.run_until_complete(backend.shutdown())
        loop.close()


def test_the_route_sees_lower_cased_headers_without_the_harness_selector() -> None:
    outcome = _run_in_process(
        "staging-e2e",
        headers=[(b"X-Test-Type", b"E2E"), (INSTANCE_HEADER.encode(), b"1"),
                 (b"authorization", b"Bearer staging-e2e-user-0002"), (b"sec-websocket-protocol", b"jwt-auth")],
        subprotocols=["jwt-auth"],
        hold_s=1.0,
    )
    assert outcome.subprotocol == "jwt-auth" and outcome.close_code is None
    welcome = [f for f in outcome.frames if f.get("data", {}).get("event") == "connection_established"]
    assert welcome[0]["data"]["user_id"] == "staging-e2e-user-0002", "spec 5.2: E2E bypass, digits kept"


def test_without_jwt_auth_offered_the_socket_is_accepted_with_no_subprotocol() -> None:
    outcome = _run_in_process(
        "staging-cloud-run", headers=[(b"sec-websocket-protocol", b"chat")], subprotocols=["chat"], hold_s=1.0
    )
    assert outcome.accepted and outcome.subprotocol is None
    assert (outcome.close_code, outcome.close_reason) == (1008, "SSOT Auth failed")
