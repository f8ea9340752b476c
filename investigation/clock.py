"""Virtual time and seeded randomness: what makes every run repeatable.

A simulated 30-minute scenario must take milliseconds and print the same bytes
every time. The backend never reads the wall clock: it asks a `Clock`. In
process, that clock is virtual and drives an asyncio loop whose `time()` is
the virtual time, so `asyncio.sleep`, `asyncio.wait_for` and every timer jump
straight to the next due event instead of waiting.

    clock = VirtualClock()
    loop = virtual_loop(clock)
    loop.run_until_complete(main())   # sleeps cost nothing
"""

from __future__ import annotations

import asyncio
import random
import selectors
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

Result = TypeVar("Result")

#: The virtual clock's start: the instant of the report's local debug run
#: (its thread id carries the timestamp 1757365610210 ms, 2025-09-08 21:06:50 UTC).
EPOCH_MS = 1_757_365_610_210


class Clock(Protocol):
    """What the backend needs of time: now, and a way to wait."""

    def now(self) -> float:
        """Seconds since the Unix epoch."""

    def now_ms(self) -> int:
        """Whole milliseconds since the Unix epoch."""

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds`."""


class VirtualClock:
    """Time that moves only when the event loop has nothing to do but wait."""

    def __init__(self, epoch_ms: int = EPOCH_MS) -> None:
        self.epoch_ms = epoch_ms
        self.elapsed = 0.0

    def now(self) -> float:
        return self.epoch_ms / 1000 + self.elapsed

    def now_ms(self) -> int:
        return self.epoch_ms + int(round(self.elapsed * 1000, 6))

    def advance(self, seconds: float) -> None:
        self.elapsed += max(seconds, 0.0)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return f"VirtualClock(epoch_ms={self.epoch_ms}, elapsed={self.elapsed!r})"


class RealClock:
    """Wall time, for serving real clients."""

    def now(self) -> float:
        return time.time()

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _VirtualTimeSelector(selectors.DefaultSelector):
    """Polls real file descriptors without blocking; a wait for a timer advances the clock."""

    def __init__(self, clock: VirtualClock, real_poll_s: float) -> None:
        super().__init__()
        self._clock = clock
        self._real_poll_s = real_poll_s

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        poll = self._real_poll_s if timeout is None else min(timeout, self._real_poll_s)
        ready = super().select(poll)
        if ready or timeout is None or timeout <= 0:
            return ready if ready or timeout is not None else super().select(None)
        self._clock.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose `time()` is the virtual clock's elapsed time."""

    def __init__(self, clock: VirtualClock, real_poll_s: float = 0.0) -> None:
        super().__init__(selector=_VirtualTimeSelector(clock, real_poll_s))
        self.clock = clock

    def time(self) -> float:
        return self.clock.elapsed


def virtual_loop(clock: VirtualClock, real_poll_s: float = 0.0) -> VirtualTimeLoop:
    """A new event loop driven by `clock`.

    `real_poll_s` is how long (real seconds) to wait for socket activity before
    letting virtual time jump: 0 in process; a few milliseconds when real sockets
    on loopback must get their bytes through first (wire mode).
    """
    return VirtualTimeLoop(clock, real_poll_s)


class SeededRandomness:
    """uuid4 and token_hex from one seeded source, so IDs repeat run to run."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def uuid4_prefix(self) -> str:
        """`str(self.uuid4())[:8]` without building the UUID: the first 8 hex digits are the
        top 32 random bits, which the version and variant bits never touch."""
        return f"{self._random.getrandbits(128) >> 96:08x}"

    def token_hex(self, nbytes: int) -> str:
        return self._random.getrandbits(nbytes * 8).to_bytes(nbytes, "big").hex()

    def choice(self, options: list[str]) -> str:
        return self._random.choice(options)


def event_loop_running() -> bool:
    """Whether this thread runs an event loop (answered outside any ``except`` block of the
    caller, so exceptions raised later get no ``RuntimeError`` as their ``__context__``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def outside_event_loop(function: Callable[..., Result], *args: object) -> Result:
    """``function(*args)``, in a worker thread when this thread already runs an event loop.

    The virtual-time runs drive their own loop; a Jupyter kernel executes cells inside a
    running loop, where a second loop cannot run in the same thread.
    """
    if not event_loop_running():
        return function(*args)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(function, *args).result()
