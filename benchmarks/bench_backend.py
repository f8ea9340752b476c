"""Connection attempts per second through the whole backend path, against bare pyjwt decodes.

One Backend (development, a valid auth-service token per user) on a virtual clock; N
sequential connections of distinct users, each opening (accept, auth, context, manager,
registration, welcome) and closing at once, no start_agent. Side by side, interleaved, a
bare loop of pyjwt HS256 decodes of one of those tokens, the same token every time. Each
side reports its best of REPEATS. Diagnostic passes then time the path's own decodes and,
alone, the receive timeout asyncio gives the message loop, to show how much of an attempt
is library code, and pyjwt's key preparation, which the bare loop repeats at every decode and
the path does once per secret (auth._HmacSha256KeyPreparedOnce). bench_instructions counts
the same two workloads in instructions.

    PYTHONPATH=. python -m benchmarks.bench_backend
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Iterator
from typing import Any

import jwt
from jwt.algorithms import HMACAlgorithm

from investigation.backend import auth
from investigation.backend.process import Backend
from investigation.backend.route import ClientDisconnected
from investigation.clock import EPOCH_MS, SeededRandomness, VirtualClock, virtual_loop

SECRET = "benchmark-only-secret-0123456789abcdef-xyz"
ENVIRON = {"ENVIRONMENT": "development", "JWT_SECRET_KEY": SECRET}
CONNECTIONS = 2000
DECODES = 10000
REPEATS = 11  # best of N on each side: noise on a shared machine only ever adds time


class ClosingSocket:
    """A client that leaves right after the welcome: its first receive sees the disconnect."""

    query: dict[str, str] = {}

    def __init__(self, token: str) -> None:
        self.headers = {"authorization": f"Bearer {token}"}
        self.connected = True
        self.frames = 0

    async def accept(self, subprotocol: str | None) -> None:
        return None

    async def send_json(self, frame: dict[str, Any]) -> None:
        if not self.connected:
            raise ClientDisconnected(1006)
        self.frames += 1

    async def receive_text(self) -> str:
        self.connected = False
        raise ClientDisconnected(1000)

    async def close(self, code: int, reason: str) -> None:
        self.connected = False
        raise AssertionError(f"benchmark connection closed {code} {reason}")


def make_token(user_number: int) -> str:
    now = EPOCH_MS // 1000
    claims = {
        "sub": f"bench-user-{user_number:06d}",
        "iat": now,
        "exp": now + 900,
        "iss": "netra-auth-service",
        "jti": f"jti-{user_number:06d}",
        "token_type": "access",
        "aud": "netra-platform",
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def time_connections(tokens: list[str]) -> float:
    """Seconds (wall) to run every token's connection through one fresh backend."""
    clock = VirtualClock()
    loop = virtual_loop(clock)
    backend = Backend(ENVIRON, clock=clock, randomness=SeededRandomness(0))

    async def run_all() -> float:
        started = time.perf_counter()
        for token in tokens:
            await backend.handle(ClosingSocket(token))
        elapsed = time.perf_counter() - started
        await backend.shutdown()
        return elapsed

    try:
        return loop.run_until_complete(run_all())
    finally:
        loop.close()


def time_decodes(token: str, count: int) -> float:
    """Seconds (wall) for `count` bare pyjwt HS256 decodes of `token`."""
    options = {"verify_exp": False, "verify_iat": False, "verify_aud": False}
    started = time.perf_counter()
    for _ in range(count):
        jwt.decode(token, SECRET, algorithms=["HS256"], options=options)
    return time.perf_counter() - started


@contextlib.contextmanager
def timing_decodes_in_path() -> Iterator[list[float]]:
    """Inside the block, the path's own pyjwt decodes add their wall time to the yielded list
    (a diagnostic pass, not one of the timed repeats: the wrapper costs two clock reads)."""
    spent: list[float] = []
    original = auth._decode_verified

    def timed(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args)
        finally:
            spent.append(time.perf_counter() - started)

    auth._decode_verified = timed
    try:
        yield spent
    finally:
        auth._decode_verified = original


def decode_share_in_path(tokens: list[str]) -> float:
    """Microseconds of pyjwt decode per connection, measured inside the path (best of 3)."""
    shares = []
    for _ in range(3):
        gc.collect()
        with timing_decodes_in_path() as spent:
            time_connections(tokens)
        shares.append(sum(spent) / len(tokens) * 1e6)
    return min(shares)


def receive_timeout_us(count: int = 10000) -> float:
    """Microseconds for the spec's receive timeout alone (step 12: `asyncio.timeout` around a
    receive that ends at once, as the benchmark's client does), on a virtual-time loop like the
    path's; best of 3 loops of `count`."""

    async def receives() -> float:
        socket = ClosingSocket("")
        started = time.perf_counter()
        for _ in range(count):
            with contextlib.suppress(ClientDisconnected):
                async with asyncio.timeout(45.0):
                    await socket.receive_text()
        return time.perf_counter() - started

    best = []
    for _ in range(3):
        loop = virtual_loop(VirtualClock())
        try:
            best.append(loop.run_until_complete(receives()) / count * 1e6)
        finally:
            loop.close()
    return min(best)


def key_preparation_us(count: int = 10000) -> float:
    """Microseconds for pyjwt's HS256 key preparation of the benchmark's secret (part of every
    bare decode; done once per secret in the path); best of 3 loops of `count`."""
    algorithm = HMACAlgorithm(HMACAlgorithm.SHA256)
    best = []
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            algorithm.prepare_key(SECRET)
        best.append((time.perf_counter() - started) / count * 1e6)
    return min(best)


def main() -> dict[str, float]:
    tokens = [make_token(n) for n in range(CONNECTIONS)]
    connect_times, decode_times = [], []
    for _ in range(REPEATS):  # interleaved, best of each: robust to a busy machine
        gc.collect()  # the previous repeat's backend is garbage: collecting it is not this repeat's cost
        connect_times.append(time_connections(tokens))
        gc.collect()
        decode_times.append(time_decodes(tokens[0], DECODES))
    connect_s, decode_s = min(connect_times), min(decode_times)
    attempts_per_s = CONNECTIONS / connect_s
    decodes_per_s = DECODES / decode_s
    result = {
        "connections": float(CONNECTIONS),
        "attempts_per_s": round(attempts_per_s, 1),
        "decodes_per_s": round(decodes_per_s, 1),
        "cost_ratio": round(decodes_per_s / attempts_per_s, 2),
        "attempt_us": round(1e6 / attempts_per_s, 1),
        "bare_decode_us": round(1e6 / decodes_per_s, 1),
        "decode_in_path_us": round(decode_share_in_path(tokens), 1),
        "receive_timeout_us": round(receive_timeout_us(), 1),
        "key_preparation_us": round(key_preparation_us(), 1),
    }
    print(f"attempts/s {result['attempts_per_s']:.0f}  decodes/s {result['decodes_per_s']:.0f}  "
          f"cost per attempt / cost per decode {result['cost_ratio']:.2f}")
    print(f"per attempt {result['attempt_us']:.1f} us, of which the path's own pyjwt decode "
          f"{result['decode_in_path_us']:.1f} us (bare loop: {result['bare_decode_us']:.1f} us)")
    print(f"the receive timeout alone (asyncio.timeout, bare loop): {result['receive_timeout_us']:.1f} us")
    print(f"pyjwt's key preparation, in every bare decode, once per secret in the path: "
          f"{result['key_preparation_us']:.1f} us")
    return result


if __name__ == "__main__":
    main()
