"""ID generation and its fallback [shared/id_generation/unified_id_generator.py,
core/unified_id_manager.py].

    ids = UnifiedIdGenerator(clock, randomness)
    ids.generate_user_context_ids("u1", "websocket_factory")
    # ('thread_websocket_factory_1757365610210_1_…', 'run_…_2_…', 'req_…_3_…')
"""

from __future__ import annotations

import itertools

from investigation.clock import Clock, SeededRandomness


class IdGenerationError(RuntimeError):
    """Raised by the generator when a profile injects a failure."""


class UnifiedIdGenerator:
    """One per process: a counter shared by every ID it makes."""

    def __init__(self, clock: Clock, randomness: SeededRandomness, *, fails: bool = False) -> None:
        self._clock = clock
        self._randomness = randomness
        self._counter = itertools.count(1)  # next() on it is atomic: the original's locked counter
        self.fails = fails

    def _next_counter(self) -> int:
        return next(self._counter)

    def _make_id(self, prefix: str, timestamp_ms: int) -> str:
        return f"{prefix}_{timestamp_ms}_{self._next_counter()}_{self._randomness.token_hex(4)}"

    def generate_user_context_ids(self, user_id: str, operation: str) -> tuple[str, str, str]:
        """(thread_id, run_id, request_id); `user_id` is unused, as in the original."""
        if self.fails:
            raise IdGenerationError("UnifiedIdGenerator unavailable (injected failure)")
        timestamp_ms = self._clock.now_ms()
        return (
            self._make_id(f"thread_{operation}", timestamp_ms),
            self._make_id(f"run_{operation}", timestamp_ms),
            self._make_id(f"req_{operation}", timestamp_ms),
        )


def fallback_context_ids(clock: Clock, randomness: SeededRandomness) -> tuple[str, str, str]:
    """The fallback's IDs: one timestamp in seconds and one uuid prefix for all three."""
    seconds = int(clock.now())
    short_uuid = randomness.uuid4_prefix()
    return (
        f"ws_thread_{seconds}_{short_uuid}",
        f"ws_run_{seconds}_{short_uuid}",
        f"ws_req_{seconds}_{short_uuid}",
    )


def connection_client_id(user_id: str, clock: Clock, randomness: SeededRandomness) -> str:
    """The client id the auth step (and each start_agent) gives a connection's context."""
    return f"ws_{user_id[:8]}_{int(clock.now())}_{randomness.uuid4_prefix()}"


def default_websocket_client_id(user_id: str, clock: Clock, randomness: SeededRandomness) -> str:
    return f"ws_client_{user_id[:8]}_{int(clock.now())}_{randomness.uuid4_prefix()}"


def validate_run_id(run_id: object) -> bool:
    """The original's format check: at least 4 parts, "run" first, an 8-char last part."""
    if not isinstance(run_id, str) or not run_id:
        return False
    parts = run_id.split("_")
    return len(parts) >= 4 and parts[0] == "run" and len(parts[-1]) == 8


def extract_thread_id(run_id: str) -> str:
    """The middle of a run id (all but the first and the last two parts), else run_id."""
    parts = run_id.split("_")
    if len(parts) >= 3 and parts[0] == "run":
        return "_".join(parts[1:-2])
    return run_id
