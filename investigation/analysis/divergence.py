"""Where two decision traces part: the first divergence and the point x profile table.

A trace is a sequence of steps, each a ``(point, outcome)`` pair: any object
with ``.point`` and ``.outcome`` (such as ``trace.Decision``) or a 2-tuple.
Traces are aligned by point name in order; when a point occurs several times,
its k-th occurrence in one trace is aligned with its k-th occurrence in the other.

Usage::

    first_divergence([("auth.token_source", "bearer")], [("auth.token_source", "none")])
    # Divergence(point='auth.token_source', passing='bearer', failing='none')
    divergence_table({"local": t1, "staging": t2}, reference="local", point_order=DECISION_POINTS)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from investigation.report import markdown_table
from investigation.trace import REPEAT_JOIN

NOT_REACHED = "-"
"""Table cell for a point a profile's trace never reached."""

NO_DIVERGENCE = "identical"
"""What a profile whose trace never departs from the reference's shows as its first divergence."""


@dataclass(frozen=True)
class Divergence:
    """The first point where two traces differ; None for the side that never reached it."""

    point: str
    passing: str | None
    failing: str | None


@dataclass(frozen=True)
class DivergenceRow:
    """One decision point: its outcome per profile (in table order), "-" if not reached."""

    point: str
    outcomes: tuple[str, ...]


@dataclass(frozen=True)
class DivergenceTable:
    """Decision points x profiles, with each profile's first divergence from the reference.

    ``first_divergences`` pairs each profile with ``trace_divergence(reference
    trace, profile trace)``: the reference is the ``passing`` side.
    """

    reference: str
    profiles: tuple[str, ...]
    rows: tuple[DivergenceRow, ...]
    first_divergences: tuple[tuple[str, Divergence | None], ...]

    def first_divergence_of(self, profile: str) -> Divergence | None:
        """The first divergence of ``profile`` from the reference."""
        for name, divergence in self.first_divergences:
            if name == profile:
                return divergence
        raise KeyError(profile)

    def _repr_markdown_(self) -> str:
        first = [
            "reference" if name == self.reference else (d.point if d else NO_DIVERGENCE)
            for name, d in self.first_divergences
        ]
        rows = [[row.point, *row.outcomes] for row in self.rows]
        return markdown_table(["point", *self.profiles], [*rows, ["first divergence", *first]])


Step = tuple[str, str]
StepKey = tuple[str, int]
"""A point and its occurrence number (0 for the first time the trace reaches it)."""


def _as_step(step: object) -> Step:
    if hasattr(step, "point") and hasattr(step, "outcome"):
        return (str(step.point), str(step.outcome))
    if isinstance(step, tuple) and len(step) == 2:
        return (str(step[0]), str(step[1]))
    raise TypeError(f"trace step must have .point and .outcome or be a pair, got {step!r}")


def _keyed_steps(trace: Iterable[object]) -> list[tuple[StepKey, str]]:
    """Each step as ((point, occurrence), outcome), in trace order."""
    seen: Counter[str] = Counter()
    keyed: list[tuple[StepKey, str]] = []
    for point, outcome in map(_as_step, trace):
        keyed.append(((point, seen[point]), outcome))
        seen[point] += 1
    return keyed


def first_divergence(
    passing_trace: Iterable[object], failing_trace: Iterable[object]
) -> Divergence | None:
    """The first point whose outcome differs or that only one trace reached; None if equal.

    The traces are walked together while they reach the same points. At the
    first mismatch of points, a point the failing trace never reaches is
    reported first, then a point the passing trace never reaches; if both are
    reached later (a reordering), the passing trace's point is reported with
    each side's outcome.
    """
    passing = _keyed_steps(passing_trace)
    failing = _keyed_steps(failing_trace)
    passing_outcomes = dict(passing)
    failing_outcomes = dict(failing)
    for position in range(max(len(passing), len(failing))):
        passing_step = passing[position] if position < len(passing) else None
        failing_step = failing[position] if position < len(failing) else None
        if passing_step and failing_step and passing_step[0] == failing_step[0]:
            if passing_step[1] != failing_step[1]:
                return Divergence(passing_step[0][0], passing_step[1], failing_step[1])
            continue
        if passing_step and passing_step[0] not in failing_outcomes:
            return Divergence(passing_step[0][0], passing_step[1], None)
        if failing_step and failing_step[0] not in passing_outcomes:
            return Divergence(failing_step[0][0], None, failing_step[1])
        assert passing_step is not None
        key, outcome = passing_step
        return Divergence(key[0], outcome, failing_outcomes[key])
    return None


@dataclass(frozen=True)
class RepeatDivergence(Divergence):
    """Two traces whose points all take the same first outcome, parting at a later outcome of a point reached
    again on one side (a retry): ``occurrence`` counts from 0, ``passing``/``failing`` are that outcome (None:
    that side did not reach the point that often)."""

    occurrence: int = 1


def trace_divergence(passing_trace: Iterable[object], failing_trace: Iterable[object]) -> Divergence | None:
    """Where two decision traces part: the first point whose first outcome differs (or that one side never
    reaches), with both sides' full recorded outcomes there; None if the traces are identical.

    A point reached again records ``first then second`` (``trace.REPEAT_JOIN``). When only such a later outcome
    differs (the failing side retried context creation, so ``context.id_generation`` reads ``generator then
    generator`` against ``generator``), the point did not decide differently: the first point whose first outcome
    differs is the divergence (there ``context.creation``: created vs failed). Only when every first outcome agrees
    are the outcome sequences compared position by position (:class:`RepeatDivergence`).
    """
    passing, failing = [_as_step(step) for step in passing_trace], [_as_step(step) for step in failing_trace]
    divergence = first_divergence(_first_outcomes(passing), _first_outcomes(failing))
    if divergence is not None:
        return Divergence(divergence.point, _outcome_at(passing, divergence.point), _outcome_at(failing, divergence.point))
    divergence = first_divergence(passing, failing)
    if divergence is None:
        return None
    passing_parts, failing_parts = (_parts(outcome) for outcome in (divergence.passing, divergence.failing))
    position = next(i for i in range(max(len(passing_parts), len(failing_parts)))
                    if _nth(passing_parts, i) != _nth(failing_parts, i))
    return RepeatDivergence(divergence.point, _nth(passing_parts, position), _nth(failing_parts, position), position)


def _first_outcomes(steps: Sequence[Step]) -> list[Step]:
    return [(point, outcome.split(REPEAT_JOIN)[0]) for point, outcome in steps]


def _outcome_at(steps: Sequence[Step], point: str) -> str | None:
    return next((outcome for at, outcome in steps if at == point), None)


def _parts(outcome: str | None) -> tuple[str, ...]:
    return () if outcome is None else tuple(outcome.split(REPEAT_JOIN))


def _nth(parts: tuple[str, ...], index: int) -> str | None:
    return parts[index] if index < len(parts) else None


def divergence_table(
    traces: Mapping[str, Sequence[object]], reference: str, point_order: Sequence[str]
) -> DivergenceTable:
    """Outcome of every decision point under every profile, and each profile's first divergence.

    Profiles keep the mapping's order. Rows follow ``point_order``; points a
    trace reaches that ``point_order`` does not name follow, in the order first
    reached, reading the reference's trace first and then the other traces in the
    mapping's order. A point reached several times shows its outcomes joined by ", ".

    Raises:
        ValueError: ``reference`` is not one of the traces.
    """
    if reference not in traces:
        raise ValueError(f"reference {reference!r} is not among the traces {sorted(traces)!r}")
    profiles = tuple(traces)
    steps = {profile: [_as_step(step) for step in traces[profile]] for profile in profiles}
    rows = tuple(
        DivergenceRow(point, tuple(_cell(steps[profile], point) for profile in profiles))
        for point in _table_points(steps, reference, point_order)
    )
    first = tuple(
        (profile, trace_divergence(steps[reference], steps[profile])) for profile in profiles
    )
    return DivergenceTable(reference, profiles, rows, first)


def _table_points(
    steps: Mapping[str, list[Step]], reference: str, point_order: Sequence[str]
) -> list[str]:
    """The table's rows: ``point_order`` (each point once), then the undeclared points.

    Undeclared points come in first-seen order over the reference's trace first, then
    the other traces in the mapping's order, so the reference's own points lead.
    """
    points = list(dict.fromkeys(point_order))
    ordered_profiles = [reference, *(profile for profile in steps if profile != reference)]
    for profile in ordered_profiles:
        for point, _ in steps[profile]:
            if point not in points:
                points.append(point)
    return points


def _cell(steps: list[Step], point: str) -> str:
    outcomes = [outcome for step_point, outcome in steps if step_point == point]
    return ", ".join(outcomes) if outcomes else NOT_REACHED
