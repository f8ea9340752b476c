"""Many concurrent real connections against a served app: isolation and handshake timing.

    async with served_process("staging-cloud-run") as url:
        report = await load_run(url, plan_users("staging-cloud-run", users=40, per_user=5))

Each connection sends its own mix of chat / user_message / ping messages
(counts derived from its index), so an acknowledgement delivered to the
wrong connection shows up as a count that does not match. Each user keeps at
most 5 connections per instance (spec 4.2: the per-user cap), spread over
instances with `?instance=`.

This module measures wall time (handshake latency); it is for load tests and
benchmarks, not for the deterministic runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from investigation.backend.variants import ORIGINAL
from investigation.profiles import Client, load_profile
from investigation.traffic import auth_environment, mint_token
from investigation.wire.endings import is_allowed_ending

STARTUP_TIMEOUT_S = 30.0
CONNECTION_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PlannedSocket:
    """One load connection: whose it is, where it goes, what it sends."""

    index: int
    user_id: str
    token: str
    instance: int
    chats: int
    user_messages: int
    pings: int

    def url(self, base: str) -> str:
        return f"{base}?{urlencode({'instance': self.instance, 'token': self.token})}"

    def messages(self) -> list[str]:
        texts = [json.dumps({"type": "chat", "payload": {"text": f"c{self.index}-{n}"}}) for n in range(self.chats)]
        texts += [json.dumps({"type": "user_message", "payload": {"text": f"u{self.index}"}})] * self.user_messages
        texts += [json.dumps({"type": "ping"})] * self.pings
        return texts


def plan_users(profile_name: str, users: int, per_user: int, run_tag: str = "load") -> list[PlannedSocket]:
    """`users` x `per_user` connections with valid auth-service tokens for the profile.

    A user's connections are spread round robin over the instances so no
    instance holds more than 5 of them (the per-user cap).
    """
    profile = load_profile(profile_name)
    if per_user > ORIGINAL.max_managers_per_user * profile.instances:
        raise ValueError(f"{per_user} connections per user exceed the cap over {profile.instances} instances")
    env = auth_environment(profile)
    now_s = time.time()
    planned = []
    for user in range(users):
        user_id = f"{run_tag}-user-{user:04d}"
        token = mint_token(Client(name=user_id, user_id=user_id), 0, env, now_s)
        for number in range(per_user):
            index = len(planned)
            planned.append(
                PlannedSocket(index, user_id, str(token), number % profile.instances,
                              1 + index % 3, index % 2, 1)
            )
    return planned


@dataclass
class SocketOutcome:
    """What one load connection saw."""

    handshake_s: float | None = None
    welcome_user: str | None = None
    acks: dict[str, int] = field(default_factory=dict)
    pongs: int = 0
    server_close: tuple[int, str] | None = None
    error: str | None = None


async def _one(base: str, planned: PlannedSocket) -> SocketOutcome:
    outcome = SocketOutcome()
    started = time.perf_counter()
    expected_replies = planned.chats + planned.user_messages + planned.pings
    try:
        async with connect(planned.url(base), ping_interval=None, open_timeout=CONNECTION_TIMEOUT_S,
                           close_timeout=CONNECTION_TIMEOUT_S) as connection:
            outcome.handshake_s = time.perf_counter() - started
            for text in planned.messages():
                await connection.send(text)
            await asyncio.wait_for(_collect(connection, outcome, expected_replies), CONNECTION_TIMEOUT_S)
        received = connection.protocol.close_rcvd
        if received is not None and connection.protocol.close_rcvd_then_sent:
            outcome.server_close = (received.code, received.reason)
    except (OSError, TimeoutError, ConnectionClosed) as error:
        outcome.error = f"{type(error).__name__}: {error}"
    return outcome


async def _collect(connection: Any, outcome: SocketOutcome, expected_replies: int) -> None:
    replies = 0
    welcomed = False
    async for raw in connection:
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "system_message" and frame["data"].get("event") == "connection_established":
            outcome.welcome_user, welcomed = frame["data"]["user_id"], True
        elif kind == "ack":
            received = frame["data"]["received_type"]
            outcome.acks[received] = outcome.acks.get(received, 0) + 1
            replies += 1
        elif kind == "pong":
            outcome.pongs += 1
            replies += 1
        if welcomed and replies >= expected_replies:
            return


@dataclass
class LoadReport:
    """The load run's verdicts and timings."""

    connections: int
    users: int
    concurrent: int
    wall_s: float
    handshakes_per_s: float
    handshake_p50_ms: float
    handshake_p99_ms: float
    misdelivered: list[int]
    disallowed_closes: list[tuple[int, tuple[int, str] | None]]
    errors: list[tuple[int, str]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "users": self.users,
            "concurrent": self.concurrent,
            "wall_s": round(self.wall_s, 3),
            "handshakes_per_s": round(self.handshakes_per_s, 1),
            "handshake_p50_ms": round(self.handshake_p50_ms, 2),
            "handshake_p99_ms": round(self.handshake_p99_ms, 2),
            "misdelivered": len(self.misdelivered),
            "disallowed_closes": len(self.disallowed_closes),
            "errors": len(self.errors),
        }


def _misdelivered(planned: PlannedSocket, outcome: SocketOutcome) -> bool:
    expected_acks = {kind: n for kind, n in (("chat", planned.chats), ("user_message", planned.user_messages)) if n}
    return (
        outcome.welcome_user != planned.user_id
        or outcome.acks != expected_acks
        or outcome.pongs != planned.pings
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]


async def load_run(base_url: str, planned: Sequence[PlannedSocket]) -> LoadReport:
    """Open every planned connection at once; check isolation and endings; time the handshakes."""
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(_one(base_url, p) for p in planned))
    wall_s = time.perf_counter() - started
    handshakes = [o.handshake_s for o in outcomes if o.handshake_s is not None]
    return LoadReport(
        connections=len(planned),
        users=len({p.user_id for p in planned}),
        concurrent=len(planned),
        wall_s=wall_s,
        handshakes_per_s=len(handshakes) / wall_s if wall_s else 0.0,
        handshake_p50_ms=1000 * statistics.median(handshakes) if handshakes else float("nan"),
        handshake_p99_ms=1000 * percentile(handshakes, 0.99),
        misdelivered=[p.index for p, o in zip(planned, outcomes, strict=True) if o.error is None and _misdelivered(p, o)],
        disallowed_closes=[
            (p.index, o.server_close) for p, o in zip(planned, outcomes, strict=True)
            if o.server_close is not None and not is_allowed_ending(*o.server_close)
        ],
        errors=[(p.index, o.error) for p, o in zip(planned, outcomes, strict=True) if o.error is not None],
    )


@contextlib.asynccontextmanager
async def served_process(command: Sequence[str]) -> AsyncIterator[tuple[str, subprocess.Popen[bytes]]]:
    """Start a server process whose first stdout line is its ws:// URL; stop it on exit."""
    environ = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=environ)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), STARTUP_TIMEOUT_S)
        url = line.decode().strip()
        if not url.startswith("ws://"):
            raise RuntimeError(f"server did not announce a ws:// URL: {line!r}")
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def serve_command(profile_name: str, variant: str = "original") -> list[str]:
    """`investigation serve PROFILE --port 0` with this interpreter."""
    return [sys.executable, "-m", "investigation.cli", "serve", profile_name, "--port", "0", "--variant", variant]
