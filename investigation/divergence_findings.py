"""What notebook 02 states about the profiles' decision traces, computed from the runs.

    runs = run_profiles(None)
    figure, table = divergence_chart(runs, "local-debug")
    separating_points(runs, table)        # points whose outcome tells failing from passing
    divergence_verdicts(runs, table)      # Markdown

A profile *fails* when any of its connections fails. Its compared connection is
the first failing one, else the first (``charts.divergence.compared_connection``).
A point separates only when every failing profile's compared connection reaches it: a
failure cannot be decided at a point it never gets to, and a "-" (not reached) would
otherwise set a profile failing by another mechanism apart from the passing ones. When
no single point does (the failing profiles fail by several mechanisms), the separating
point is sought per group of failing profiles that share their deciding decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from IPython.display import Markdown

from investigation.analysis.divergence import NO_DIVERGENCE, NOT_REACHED, DivergenceTable
from investigation.analysis.hypotheses import VALUE_POINTS
from investigation.charts.divergence import compared_connection
from investigation.report import and_list, format_table, plural
from investigation.trace import REPEAT_JOIN, RunResult

CONSEQUENCE_POINTS = frozenset({"route.close"})
"""Points that only restate a close decided earlier; not offered as a separating point."""

NOT_COUNTED_TEXT = "a point counts only where every failing profile's compared connection reaches it"


@dataclass(frozen=True)
class SeparatingPoint:
    """A decision point every failing profile reaches, whose outcomes under failing profiles never occur under passing ones."""

    point: str
    failing_outcomes: tuple[str, ...]
    passing_outcomes: tuple[str, ...]


@dataclass(frozen=True)
class DecidingGroup:
    """Failing profiles whose compared connections share one deciding decision, and their earliest separating point."""

    deciding: str
    """``point=outcome`` of the deciding decision (``trace.ConnectionResult.deciding_decision``), ``-`` if none."""
    profiles: tuple[str, ...]
    separating: SeparatingPoint | None


def failing_profiles(runs: Mapping[str, RunResult]) -> list[str]:
    """Profiles with at least one failing connection, sorted."""
    return sorted(name for name, run in runs.items() if run.failures)


def close_code_overview(runs: Mapping[str, RunResult]) -> str:
    """Per profile: connections, close code counts, and whether it fails."""
    labels = sorted({label for run in runs.values() for label in run.close_code_counts()})
    header = ("profile", "connections", *labels, "fails")
    rows = [
        (name, str(len(run.connections)), *(str(run.close_code_counts().get(label, 0)) for label in labels),
         "yes" if run.failures else "no")
        for name, run in sorted(runs.items())
    ]
    return format_table(header, rows)


def separating_points(
    runs: Mapping[str, RunResult], table: DivergenceTable, among: Collection[str] | None = None
) -> list[SeparatingPoint]:
    """Points whose compared-connection outcomes split failing from passing profiles: the branches taken in
    pipeline order, then the value points (``hypotheses.VALUE_POINTS``, e.g. route.environment, the ENVIRONMENT
    read), which separate as well only because no passing profile reads the same value; the first point is thus
    a value point only when no branch separates (:func:`point_text` says so).

    Empty when every profile fails or none does. ``route.close`` is left out: it
    restates the close. So is a point some failing profile's compared connection
    does not reach (a ``-`` among its failing outcomes): that failure was decided
    elsewhere. Outcomes are compared by their first part (:func:`_first_outcomes`). ``among``: only these failing profiles are set against the passing
    ones (default: every failing profile).
    """
    failing = set(failing_profiles(runs))
    if not failing or failing == set(table.profiles):
        return []
    separated = failing if among is None else set(among)
    found = []
    for row in table.rows:
        if row.point in CONSEQUENCE_POINTS:
            continue
        by_profile = dict(zip(table.profiles, row.outcomes, strict=True))
        failing_outcomes = {by_profile[name] for name in table.profiles if name in separated}
        passing_outcomes = {by_profile[name] for name in table.profiles if name not in failing}
        if NOT_REACHED not in failing_outcomes and _first_outcomes(failing_outcomes).isdisjoint(
                _first_outcomes(passing_outcomes)):
            found.append(SeparatingPoint(row.point, tuple(sorted(failing_outcomes)), tuple(sorted(passing_outcomes))))
    return sorted(found, key=lambda point: point.point in VALUE_POINTS)


def _first_outcomes(outcomes: Collection[str]) -> set[str]:
    """Each outcome's first part: a point reached again (``generator then generator``, a retry after an earlier
    failure, spec 5.4) separates by what happened there first, not by the repeat its failure caused."""
    return {outcome.split(REPEAT_JOIN, 1)[0] for outcome in outcomes}


def deciding_groups(runs: Mapping[str, RunResult], table: DivergenceTable) -> list[DecidingGroup]:
    """The failing profiles grouped by their compared connection's deciding decision (sorted), each group with
    the earliest point that separates it from the passing profiles (``separating_points`` ``among`` it); none when
    no profile passes (nothing to separate from)."""
    failing = failing_profiles(runs)
    if len(failing) == len(runs):
        return []
    groups: dict[str, list[str]] = {}
    for name in failing:
        connection = compared_connection(runs[name])
        decision = connection.deciding_decision() if connection is not None else None
        groups.setdefault(f"{decision.point}={decision.outcome}" if decision else NOT_REACHED, []).append(name)
    return [DecidingGroup(deciding, tuple(names), next(iter(separating_points(runs, table, names)), None))
            for deciding, names in sorted(groups.items())]


def point_text(point: SeparatingPoint, mark: str = "**") -> str:
    """``**factory.manager_cap** (failing: exceeded; passing: below)``, the point set in ``mark``; a value point
    (:func:`separating_points` offers one first only when no branch separates) says so."""
    fallback = ("; a value read, not a branch: no branch taken separates, only a value no passing profile reads"
                if point.point in VALUE_POINTS else "")
    return (f"{mark}{point.point}{mark} (failing: {', '.join(point.failing_outcomes)}; "
            f"passing: {', '.join(point.passing_outcomes)}{fallback})")


def per_group_text(groups: Sequence[DecidingGroup], mark: str = "**") -> str:
    """No single separating point, said so, then each deciding decision's failing profiles and earliest point."""
    parts = [f"`{group.deciding}` ({', '.join(group.profiles)}): "
             f"{point_text(group.separating, mark) if group.separating else 'none'}" for group in groups]
    return (f"No single decision point separates every failing profile from the passing ones ({NOT_COUNTED_TEXT}): "
            f"their compared connections were decided by {len(groups)} different decisions. Earliest separating "
            f"point per deciding decision: " + "; ".join(parts) + ".")


def outcomes_by_side(runs: Mapping[str, RunResult], table: DivergenceTable, point: str) -> tuple[Counter[str], Counter[str]]:
    """Outcome counts at ``point`` among failing and among passing profiles."""
    failing = set(failing_profiles(runs))
    row = next(row for row in table.rows if row.point == point)
    by_profile = dict(zip(table.profiles, row.outcomes, strict=True))
    return (
        Counter(by_profile[name] for name in table.profiles if name in failing),
        Counter(by_profile[name] for name in table.profiles if name not in failing),
    )


def first_divergence_counts(table: DivergenceTable, names: Sequence[str]) -> Counter[str]:
    """How many of ``names`` first diverge from the reference at each point (``NO_DIVERGENCE`` if never)."""
    counts: Counter[str] = Counter()
    for name in names:
        if name == table.reference:
            continue
        divergence = table.first_divergence_of(name)
        counts[divergence.point if divergence else NO_DIVERGENCE] += 1
    return counts


def _counts_text(counter: Counter[str]) -> str:
    return ", ".join(f"{key} ({n})" for key, n in sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def _side_divergence_text(table: DivergenceTable, side: str, names: Sequence[str]) -> str:
    """``failing profiles: <first divergence counts>``; the reference has none, so alone on its side
    it reads ``failing profiles besides the reference: none``."""
    others = [name for name in names if name != table.reference]
    label = f"{side} profiles besides the reference" if table.reference in names else f"{side} profiles"
    return f"{label}: {_counts_text(first_divergence_counts(table, others)) or 'none'}"


def divergence_verdicts(runs: Mapping[str, RunResult], table: DivergenceTable) -> Markdown:
    """The computed verdicts of notebook 02."""
    failing = failing_profiles(runs)
    bullets = [
        f"**{len(failing)} of {len(runs)} profiles fail**: {', '.join(failing) or 'none'}.",
        f"First divergence from {table.reference}, {_side_divergence_text(table, 'failing', failing)}; "
        f"{_side_divergence_text(table, 'passing', [n for n in table.profiles if n not in failing])}.",
    ]
    separating = separating_points(runs, table)
    if separating:
        first = separating[0]
        bullets.append(
            f"Earliest decision point whose outcome separates failing from passing profiles: "
            f"{point_text(first)}; all separating points: "
            f"{', '.join(point.point for point in separating)} ({NOT_COUNTED_TEXT})."
        )
    elif failing and len(groups := deciding_groups(runs, table)) > 1:
        bullets.append(per_group_text(groups))
    elif failing:
        bullets.append(f"No decision point's outcome separates failing from passing profiles ({NOT_COUNTED_TEXT}).")
    failing_modes, passing_modes = outcomes_by_side(runs, table, "factory.validation_mode")
    bullets.append(
        f"`factory.validation_mode` of the compared connections (the reference's included): failing profiles: "
        f"{_counts_text(failing_modes) or 'none'}; passing profiles: {_counts_text(passing_modes) or 'none'}."
    )
    return Markdown("\n".join(f"- {bullet}" for bullet in bullets))


def departing_side(table: DivergenceTable, failing: Sequence[str]) -> tuple[str, list[str]]:
    """The side whose departures from the reference cross from passing to failing, and its profiles.

    Against a passing reference that is the failing profiles; against a failing one, the
    passing profiles: a failing profile's departure from a failing reference never crosses.
    """
    if table.reference in failing:
        return "passing", [name for name in table.profiles if name not in failing]
    return "failing", list(failing)


def _reference_text(table: DivergenceTable, failing: Sequence[str]) -> str:
    return f"the failing reference {table.reference}" if table.reference in failing else table.reference


def divergence_lessons(runs: Mapping[str, RunResult], table: DivergenceTable) -> Markdown:
    """Lessons backed by the verdicts and the chart above."""
    failing = failing_profiles(runs)
    separating = separating_points(runs, table)
    side, departing = departing_side(table, failing)
    first_points = first_divergence_counts(table, departing)
    lessons = []
    if separating and first_points and not _parting_first_points(separating, first_points) and not \
            _against_reference_alone(table, failing):
        lessons.append(
            f"Where a {side} profile first departs from {_reference_text(table, failing)} "
            f"({_counts_text(first_points)}) is not where failing and passing profiles part "
            f"({separating[0].point}): the first difference in a trace is not the cause (the chart's black "
            "frames against its red cells)."
        )
    failing_modes, _ = outcomes_by_side(runs, table, "factory.validation_mode")
    if len(failing_modes) > 1:
        lessons.append(
            f"Failing profiles took both validation modes ({_counts_text(failing_modes)}): the validation mode "
            "does not decide the failure (the verdicts)."
        )
    if not failing:
        lessons.append(f"No profile failed among {plural(len(runs), 'profile')} (the close code table).")
    if not lessons:
        lessons.append(_no_lesson_reason(table, failing, separating, failing_modes, first_points))
    return Markdown("\n".join(f"- {lesson}" for lesson in lessons))


def _parting_first_points(separating: Sequence[SeparatingPoint], first_points: Counter[str]) -> list[str]:
    """The separating points (value points included) where some profile first departs from the reference."""
    return [p.point for p in separating if p.point in first_points]


def _against_reference_alone(table: DivergenceTable, failing: Sequence[str]) -> bool:
    """Whether the reference alone stands on one side (the only passing or the only failing profile, besides
    profiles whose compared connection took the reference's very path): every point where the other side departs
    from it then separates, so where they part tells no cause (:func:`_no_lesson_reason`)."""
    passing = [name for name in table.profiles if name not in failing]
    return _only_the_reference(table, failing) or _only_the_reference(table, passing)


def _only_the_reference(table: DivergenceTable, side: Sequence[str]) -> bool:
    """Whether ``side`` is the reference and profiles whose compared trace is the reference's (no first divergence)."""
    return table.reference in side and not _own_paths(table, side)


def _own_paths(table: DivergenceTable, side: Sequence[str]) -> list[str]:
    """The profiles of ``side`` besides the reference whose compared trace departs from the reference's."""
    return [name for name in side if name != table.reference and table.first_divergence_of(name) is not None]


def _no_lesson_reason(
    table: DivergenceTable,
    failing: Sequence[str],
    separating: Sequence[SeparatingPoint],
    failing_modes: Counter[str],
    first_points: Counter[str],
) -> str:
    """Why neither lesson of ``divergence_lessons`` applies, when some profile fails."""
    reference = table.reference
    passing = [name for name in table.profiles if name not in failing]
    modes = f"share one validation mode ({_counts_text(failing_modes) or '-'})"
    if not passing:
        return (f"Every profile fails, so no decision point can separate failing from passing profiles, and the "
                f"failing profiles' compared connections {modes}: no lesson beyond the verdicts.")
    if passing == [reference]:
        return (f"No profile besides the reference {reference} passes, so a point separates failing from passing "
                f"profiles wherever some failing profile reaches it and none shares the reference's outcome "
                f"({plural(len(separating), 'such point')}; the verdicts): this comparison alone cannot tell the "
                "cause from the other differences.")
    if list(failing) == [reference]:
        return (f"No profile besides the reference {reference} fails, so a point separates failing from passing "
                f"profiles wherever {reference} reaches it and no passing profile shares its outcome "
                f"({plural(len(separating), 'such point')}; the verdicts): this comparison alone cannot tell the "
                "cause from the other differences.")
    if not separating:
        return (f"No single decision point's outcome separates failing from passing profiles, and the failing "
                f"profiles' compared connections {modes}: no lesson beyond the verdicts.")
    side, _ = departing_side(table, failing)
    parting = _parting_first_points(separating, first_points) or [separating[0].point]
    return (f"Where {side} profiles first depart from {_reference_text(table, failing)} ({_counts_text(first_points)}) "
            f"includes where failing and passing profiles part ({and_list(parting)}), and the failing profiles' "
            f"compared connections {modes}: no lesson beyond the verdicts.")


def divergence_key_result(runs: Mapping[str, RunResult], table: DivergenceTable) -> str:
    """One line: failing profiles, first divergence, earliest separating point."""
    failing = failing_profiles(runs)
    separating = separating_points(runs, table)
    return (
        f"{len(failing)} of {len(runs)} profiles fail; first divergence from {table.reference}: "
        f"{_counts_text(first_divergence_counts(table, table.profiles)) or 'none'}; "
        f"earliest separating point: {separating[0].point if separating else _per_group_key(runs, table)}"
    )


def _per_group_key(runs: Mapping[str, RunResult], table: DivergenceTable) -> str:
    """``none``, or with several deciding decisions ``none shared; by deciding decision: a=x: p, b=y: none``."""
    groups = deciding_groups(runs, table)
    if len(groups) < 2:
        return "none"
    return "none shared; by deciding decision: " + ", ".join(
        f"{group.deciding}: {group.separating.point if group.separating else 'none'}" for group in groups)
