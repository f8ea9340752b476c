"""The real WebSocket endpoint: wire mode agrees with the simulation, `serve` keeps its
contract, load stays isolated, and the harness routing behaves as documented.

Expected values come from spec/backend.md (close codes and reasons of 1.2, the
per-user cap of 5 in 4.2, token rules of 5.3) and design.md (serve contract).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from investigation.clock import VirtualClock, virtual_loop
from investigation.profiles import list_profiles, load_profile
from investigation.simulate import simulate
from investigation.trace import ConnectionResult
from investigation.wire import build_app, simulate_wire
from investigation.wire.__main__ import client_url
from investigation.wire.app import INSTANCE_HEADER, WireState
from investigation.wire.inprocess import asgi_connection
from investigation.wire.load import load_run, plan_users, serve_command, served_process

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


# --- serve: the design.md contract, seen by a plain websockets client -------------------------


def _welcome_or_close(frames: list[dict[str, Any]]) -> str:
    kinds = [f.get("data", {}).get("event") or f.get("error_code") or f["type"] for f in frames]
    return ",".join(kinds)


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


def test_serve_prints_its_url_and_the_sixth_connection_of_a_user_gets_1011() -> None:
    async def scenario() -> None:
        async with served_process(serve_command("staging-e2e")) as (url, server):
            assert re.fullmatch(r"ws://127\.0\.0\.1:\d+/ws", url)
            port = urlsplit(url).port
            assert port is not None
            user_url = client_url("staging-e2e", "e2e-process-1", "127.0.0.1", port, 0, "auth_service")
            outcomes = [await _open_and_listen(user_url, seconds=0.5) for _ in range(6)]
            for frames, code, _ in outcomes[:5]:
                assert code is None and "connection_established" in _welcome_or_close(frames)
            frames, code, reason = outcomes[5]
            assert (code, reason) == (1011, "Factory SSOT validation failed")
            assert frames[-1]["error_code"] == "FACTORY_INIT_FAILED"
            suite_url = client_url("staging-e2e", "e2e-process-2", "127.0.0.1", port, 1, "profile")
            assert (await _open_and_listen(suite_url))[1:] == (1008, "SSOT Auth failed")
            assert server.poll() is None

    asyncio.run(scenario())


def test_the_url_helper_puts_a_token_for_the_clients_user_in_the_query() -> None:
    url = client_url("staging-e2e", "e2e-process-3", "127.0.0.1", 8765, 2, "auth_service")
    query = parse_qs(urlsplit(url).query)
    assert url.startswith("ws://127.0.0.1:8765/ws?") and query["instance"] == ["2"]
    claims = jwt.decode(query["token"][0], options={"verify_signature": False})
    assert claims["sub"] == "staging-e2e-user-003" and claims["token_type"] == "access"


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
