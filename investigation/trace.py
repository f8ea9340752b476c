"""Decision points, cause chains and the results of a run.

Every branch of the WebSocket path that can change a connection's fate records
one `Decision(point, outcome)`. The points are declared here, once, in pipeline
order, so traces of different runs line up point by point.

    with recording() as recorder:
        decide("auth.token_source", "bearer")
    recorder.decisions  # (Decision(point='auth.token_source', outcome='bearer'),)
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

#: The decision points of one connection, in pipeline order.
DECISION_POINTS: tuple[str, ...] = (
    "route.environment",
    "route.e2e_detected",
    "route.subprotocol",
    "auth.token_source",
    "auth.e2e_bypass",
    "auth.bypass_user",
    "auth.token_validation",
    "context.id_generation",
    "context.creation",
    "auth.result",
    "factory.validation_mode",
    "factory.validation",
    "factory.isolation_key",
    "factory.manager_cap",
    "factory.result",
    "route.manager",
    "route.startup_gate",
    "route.dependencies",
    "route.registration",
    "route.start_agent",
    "route.message_loop",
    "route.close",
)

POINT_ORDER: dict[str, int] = {point: rank for rank, point in enumerate(DECISION_POINTS)}

REPEAT_JOIN = " then "
"""How a decision point reached again records its outcomes, first to last (``generator then generator``,
``decide``): split an outcome on it for each time the point was reached."""


#: Outcomes that end a connection's normal path, per decision point: the causes (spec 1 and the sections its
#: steps call), some of which close nothing (spec 1.2). Where the route then decides a failing close is
#: ``analysis.isolate.FAILING_CLOSE_DECISIONS``; the two agree where both speak (tests/test_isolate.py).
ADVERSE_OUTCOMES: dict[str, frozenset[str]] = {
    "auth.token_source": frozenset({"none", "bearer_blank"}),
    "auth.token_validation": frozenset({"invalid_format", "token_rejected", "stopped", "all_attempts_failed"}),
    "context.creation": frozenset({"failed"}),
    "factory.validation": frozenset({"fail"}),
    "factory.manager_cap": frozenset({"exceeded"}),
    "route.manager": frozenset({"emergency_stub"}),
    "route.startup_gate": frozenset({"timeout"}),
    "route.registration": frozenset({"disconnected"}),
    "route.message_loop": frozenset({"routing_failures"}),
}


def is_adverse(point: str, outcome: str) -> bool:
    """Whether `outcome` at `point` ends the connection's normal path (any `REPEAT_JOIN` part counts)."""
    adverse = ADVERSE_OUTCOMES.get(point, frozenset())
    return any(part in adverse for part in outcome.split(REPEAT_JOIN))


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome one decision point took for one connection."""

    point: str
    outcome: str


@dataclass(frozen=True, slots=True)
class CauseLink:
    """One exception of a cause chain: its type name and message."""

    type: str
    message: str


class DecisionRecorder:
    """Collects the decisions of one connection.

    Outcomes are kept as text in one dict, which keeps first-reached order; the
    `Decision` values are built when asked for, not on the connection's path.
    """

    def __init__(self) -> None:
        self._outcomes: dict[str, str] = {}
        self._tallies: dict[str, dict[str, int]] = {}
        self.failure: BaseException | None = None
        self.user_id: str | None = None
        self.manager_key: str | None = None

    def tally(self, point: str, outcome: str) -> None:
        """Count a decision that may repeat (one per message); recorded once, as counts."""
        if point not in POINT_ORDER:
            raise KeyError(f"undeclared decision point {point!r}")
        if point not in self._tallies:
            self._tallies[point] = {}
            self._outcomes[point] = ""
        counts = self._tallies[point]
        counts[outcome] = counts.get(outcome, 0) + 1

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(Decision(point, self._resolve(point, outcome)) for point, outcome in self._outcomes.items())

    def _resolve(self, point: str, outcome: str) -> str:
        counts = self._tallies.get(point)
        if counts is None or outcome:
            return outcome
        return ",".join(f"{name}={n}" for name, n in sorted(counts.items()))


_current: contextvars.ContextVar[DecisionRecorder | None] = contextvars.ContextVar(
    "decision_recorder", default=None
)


def decide(point: str, outcome: str) -> None:
    """Record `outcome` at `point` for the connection being handled (no-op outside one); a point
    reached again keeps both, "first then second". One call, as a connection decides ~20 times."""
    recorder = _current.get()
    if recorder is None:
        return
    outcomes = recorder._outcomes
    if point in outcomes:
        outcomes[point] = f"{outcomes[point]}{REPEAT_JOIN}{outcome}"
    elif point in POINT_ORDER:
        outcomes[point] = outcome
    else:
        raise KeyError(f"undeclared decision point {point!r}")


def tally(point: str, outcome: str) -> None:
    """Count a repeating decision for the connection being handled."""
    recorder = _current.get()
    if recorder is not None:
        recorder.tally(point, outcome)


def record_failure(error: BaseException) -> None:
    """Remember the exception that decided the current connection's failure."""
    recorder = _current.get()
    if recorder is not None:
        recorder.failure = error


def record_user(user_id: str) -> None:
    """Remember which user the current connection runs as."""
    recorder = _current.get()
    if recorder is not None:
        recorder.user_id = user_id


def record_manager_key(key: str) -> str:
    """Remember the isolation key of the manager the current connection asks the factory for; returns ``key``."""
    recorder = _current.get()
    if recorder is not None:
        recorder.manager_key = key
    return key


@contextlib.contextmanager
def recording(recorder: DecisionRecorder | None = None) -> Iterator[DecisionRecorder]:
    """Make `recorder` the current connection's recorder inside the block."""
    active = recorder or DecisionRecorder()
    token = start_recording(active)
    try:
        yield active
    finally:
        stop_recording(token)


def start_recording(recorder: DecisionRecorder) -> contextvars.Token[DecisionRecorder | None]:
    """`recording` without the context manager, for the per-connection hot path."""
    return _current.set(recorder)


def stop_recording(token: contextvars.Token[DecisionRecorder | None]) -> None:
    _current.reset(token)


@contextlib.contextmanager
def not_recording() -> Iterator[None]:
    """Suspend recording (work done on a connection's behalf that is not its pipeline)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)


def cause_chain(error: BaseException | None) -> tuple[CauseLink, ...]:
    """The exception and its causes, outermost first (explicit cause, else context)."""
    links: list[CauseLink] = []
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        links.append(CauseLink(type(error).__name__, str(error)))
        error = error.__cause__ or error.__context__
    return tuple(links)


@dataclass(frozen=True)
class ConnectionResult:
    """What happened to one connection, as a client and the server's logic saw it."""

    index: int
    client: str
    instance: int
    user_id: str | None
    at_s: float
    close_code: int | None
    close_reason: str | None
    decisions: tuple[Decision, ...]
    cause_chain: tuple[CauseLink, ...]
    frames: tuple[dict[str, Any], ...] = field(default=(), compare=False, repr=False)
    ended_at_s: float = 0.0
    manager_key: str | None = field(default=None, compare=False, repr=False)
    """The isolation key of the manager the connection asked the factory for (None if it never asked)."""

    def outcome(self, point: str) -> str | None:
        """The outcome recorded at `point`, or None if the connection never reached it."""
        for decision in self.decisions:
            if decision.point == point:
                return decision.outcome
        return None

    def tally(self, point: str) -> dict[str, int]:
        """A counted point's outcomes with their counts (``DecisionRecorder.tally``): the recorded
        ``manager_left_behind=2,refused_FactoryInitializationError=1`` gives both names; {} if never reached."""
        counts: dict[str, int] = {}
        for part in (self.outcome(point) or "").split(","):
            name, _, count = part.rpartition("=")
            if name and count.isdigit():
                counts[name] = counts.get(name, 0) + int(count)
        return counts

    def start_agent_refusals(self) -> int:
        """The connection's start_agent messages whose manager the factory refused: the route tallies each as
        ``refused_<exception>`` and its handler catches the error without a close (spec 1, step 12)."""
        return sum(n for name, n in self.tally("route.start_agent").items() if name.startswith("refused_"))

    def innermost_type(self) -> str | None:
        """The type of the innermost exception of the cause chain (the last link), or None without one."""
        return self.cause_chain[-1].type if self.cause_chain else None

    def identified_user(self) -> str | None:
        """The user id authentication established for the connection, else None (spec 5).

        A token the auth service validated (``auth.token_validation=valid``, spec 5.3) or the E2E bypass
        (``auth.e2e_bypass=yes``, spec 5.2) establishes a user, recorded as ``user_id`` (and recorded again as the
        id the connection runs as once its context is built, after 5.4's strip and retry); no token, a malformed
        one or a rejected one does not (5.1, 5.3), and ``user_id`` is then only the client's planned label.
        """
        if self.outcome("auth.token_validation") != "valid" and self.outcome("auth.e2e_bypass") != "yes":
            return None
        return self.user_id

    def deciding_decision(self) -> Decision | None:
        """The first decision that took the connection off its normal path, else the last one."""
        for decision in self.decisions:
            if is_adverse(decision.point, decision.outcome):
                return decision
        if self.close_code is None:
            return next((d for d in reversed(self.decisions) if d.point != "route.close"), None)
        return self.decisions[-1] if self.decisions else None

    @property
    def failed(self) -> bool:
        return self.close_code is not None and self.close_code != 1000

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "client": self.client,
            "user_id": self.user_id,
            "at_s": self.at_s,
            "close_code": self.close_code,
            "close_reason": self.close_reason,
            "decisions": [{"point": d.point, "outcome": d.outcome} for d in self.decisions],
            "cause_chain": [{"type": c.type, "message": c.message} for c in self.cause_chain],
        }


def identified_users(connections: Iterable[ConnectionResult]) -> set[str]:
    """The distinct users authentication established among ``connections`` (``ConnectionResult.identified_user``)."""
    return {user for user in (c.identified_user() for c in connections) if user is not None}


def unidentified(connections: Iterable[ConnectionResult]) -> list[ConnectionResult]:
    """The connections whose user authentication never established, in the order given: their ``user_id`` is only
    the label their client was planned with, no user (``ConnectionResult.identified_user``)."""
    return [c for c in connections if c.identified_user() is None]


def close_code_label(code: int | None) -> str:
    """The summary key of a close code: the code as text, or "open"."""
    return "open" if code is None else str(code)


@dataclass(frozen=True)
class ManagerCount:
    """A change of one user's manager count on one backend instance."""

    at_s: float
    instance: int
    user_id: str
    count: int
    key: str | None = field(default=None, compare=False, repr=False)
    """The isolation key of the manager registered (the count rose) or released (it fell); None if not known."""


@dataclass(frozen=True)
class RunResult:
    """Every connection of one profile run under one variant, in start order."""

    profile: str
    variant: str
    connections: tuple[ConnectionResult, ...]
    manager_counts: tuple[ManagerCount, ...] = field(default=(), compare=False, repr=False)
    max_managers_per_user: int = 5
    log_messages: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """What the backend processes logged, instance by instance (empty for a run made over the wire)."""

    def close_code_counts(self) -> dict[str, int]:
        counts = {"1011": 0, "1008": 0, "open": 0}
        for connection in self.connections:
            label = close_code_label(connection.close_code)
            counts[label] = counts.get(label, 0) + 1
        return dict(sorted(counts.items()))

    def summary(self) -> dict[str, Any]:
        return {"close_codes": self.close_code_counts()}

    @property
    def failures(self) -> tuple[ConnectionResult, ...]:
        return tuple(c for c in self.connections if c.failed)

    def first_failure(self) -> ConnectionResult | None:
        failures = self.failures
        return failures[0] if failures else None

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "variant": self.variant,
            "connections": [c.to_json_dict() for c in self.connections],
            "summary": self.summary(),
        }
