"""Benchmark of the real WebSocket endpoint (issue 5).

Measures, on loopback, with each server in its own process:
- handshake-and-close rate (connect, HTTP 101, client close, closing handshake
  done) through `investigation serve staging-cloud-run` against a bare
  Starlette endpoint that only accepts and closes, side by side; goal: served
  rate >= 0.5 x bare rate;
- a load run: 200 concurrent connections of 40 users (5 per user, the
  per-user cap, spread over the 3 instances) and 500 of 50 users (10 per
  user, at most 4 per instance), every message acknowledged on its own
  connection only; handshakes/s and p50/p99 handshake latency;
- hostile input: 1,000 hypothesis examples through the ASGI app in process and
  200 over real sockets; no exception escapes, no error log, every ending one
  the spec allows.

Usage: ``.venv/bin/python benchmarks/bench_wire.py`` (``make bench``).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from investigation.wire.load import load_run, plan_users, serve_command, served_process
from investigation.wire.server import serve_app

PROFILE = "staging-cloud-run"
RATE_CONNECTIONS = 1000
RATE_WORKERS = 20
RATE_ROUNDS = 3
HOSTILE_IN_PROCESS = 1000
HOSTILE_REAL_SOCKETS = 200


async def _accept_and_close(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.close()


def bare_app() -> Starlette:
    """The anchor: a Starlette endpoint that only accepts and closes."""
    return Starlette(routes=[WebSocketRoute("/ws", _accept_and_close)])


def bare_command() -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve-bare"]


async def _handshake_and_close(url: str) -> None:
    async with connect(url, ping_interval=None, open_timeout=30, close_timeout=30):
        pass


async def handshake_rate(urls: Sequence[str]) -> float:
    """Connections per second: RATE_WORKERS workers, each opening and closing its share in turn."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for url in urls:
        queue.put_nowait(url)

    async def worker() -> None:
        while not queue.empty():
            await _handshake_and_close(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(RATE_WORKERS)))
    return len(urls) / (time.perf_counter() - started)


async def compare_rates() -> dict[str, Any]:
    """Served vs bare, alternating rounds so both see the same machine state."""
    served_rates, bare_rates = [], []
    async with served_process(serve_command(PROFILE)) as (served_url, served), served_process(bare_command()) as (
        bare_url,
        bare,
    ):
        for round_number in range(RATE_ROUNDS):
            planned = plan_users(PROFILE, RATE_CONNECTIONS // 5, 5, run_tag=f"rate{round_number}")
            bare_rates.append(await handshake_rate([p.url(bare_url) for p in planned]))
            served_rates.append(await handshake_rate([p.url(served_url) for p in planned]))
        alive = served.poll() is None and bare.poll() is None
    served_rate, bare_rate = max(served_rates), max(bare_rates)
    return {
        "connections_per_round": RATE_CONNECTIONS,
        "workers": RATE_WORKERS,
        "served_per_s": round(served_rate, 1),
        "bare_per_s": round(bare_rate, 1),
        "ratio": round(served_rate / bare_rate, 3),
        "goal_ratio": 0.5,
        "servers_alive": alive,
    }


async def load_runs() -> dict[str, Any]:
    reports = {}
    async with served_process(serve_command(PROFILE)) as (url, served):
        for users, per_user in ((40, 5), (50, 10)):
            report = await load_run(url, plan_users(PROFILE, users, per_user, run_tag=f"load{users}"))
            reports[f"{users}x{per_user}"] = report.as_dict()
        reports["server_alive"] = served.poll() is None
    return reports


def hostile_runs() -> dict[str, Any]:
    """Run the hostile properties of tests/test_wire_hostile.py with benchmark-sized example counts."""
    from hypothesis import HealthCheck, given, settings

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tests.test_wire_hostile as hostile
    from investigation.wire.hostile import hostile_requests

    counts = {"in_process": 0, "real_sockets": 0}
    target = hostile.AppOnVirtualTime()
    in_process_test = hostile.test_any_hostile_request_in_process_ends_as_the_spec_allows.hypothesis.inner_test
    real_socket_test = hostile.test_any_hostile_request_over_a_real_socket_ends_as_the_spec_allows.hypothesis.inner_test
    generous = settings(max_examples=HOSTILE_IN_PROCESS, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))

    @generous
    @given(request=hostile_requests(hostile.SECRET))
    def in_process(request: Any) -> None:
        counts["in_process"] += 1
        in_process_test(target, request)

    started = time.perf_counter()
    try:
        in_process()
    finally:
        target.close()
    in_process_s = time.perf_counter() - started

    served = hostile.AppOnVirtualTime()
    server = hostile.running_server(served.app)
    url = served.run(server.__aenter__())

    @settings(generous, max_examples=HOSTILE_REAL_SOCKETS)
    @given(request=hostile_requests(hostile.SECRET, max_header_value=100))
    def real_sockets(request: Any) -> None:
        counts["real_sockets"] += 1
        real_socket_test((served, url), request)

    started = time.perf_counter()
    try:
        real_sockets()
    finally:
        served.run(server.__aexit__(None, None, None))
        served.loop.close()
    return {
        "in_process_examples": counts["in_process"],
        "in_process_s": round(in_process_s, 2),
        "real_socket_examples": counts["real_sockets"],
        "real_socket_s": round(time.perf_counter() - started, 2),
        "failures": 0,
    }


def main() -> dict[str, Any]:
    results = {
        "handshake_and_close": asyncio.run(compare_rates()),
        "load": asyncio.run(load_runs()),
        "hostile": hostile_runs(),
    }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve-bare"]:
        serve_app(bare_app(), port=0, announce=lambda url: print(url, flush=True))
    else:
        main()
