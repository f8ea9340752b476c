"""Managers held against the per-user cap over virtual time, one panel per user and instance.

    figure, table = timeline_chart(simulate(load_profile("staging-e2e")))
    print(table)     # the numbers the chart draws
    figure           # displayed once, by the notebook cell

The factory keeps a count of managers per user in each backend instance
(process). The chart draws that count as a step line per (user, instance),
the cap as a dashed line, and each connection that instance served for that
user as a marker at its start time, shaped and coloured by how it ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from investigation.report import format_table
from investigation.trace import ConnectionResult, RunResult, close_code_label

PANEL_HEIGHT_IN = 1.15
FIGURE_WIDTH_IN = 11.0
HEADER_HEIGHT_IN = 1.3

#: Marker style per outcome label: (marker, colour, legend text).
OUTCOME_STYLES: dict[str, tuple[str, str, str]] = {
    "open": ("o", "#2e7d32", "ended without a close frame from the server"),
    "1011": ("X", "#c62828", "closed 1011"),
    "1008": ("s", "#ef6c00", "closed 1008 (auth)"),
    "1013": ("D", "#6a1b9a", "closed 1013 (capacity)"),
}
OTHER_STYLE = ("P", "#455a64", "other close code")
PLANNED_LABEL_SUFFIX = "(planned; user never established)"
"""Suffix of a series keyed by a client's planned label: authentication established no user for its connections."""


@dataclass(frozen=True)
class ConnectionMark:
    """One connection drawn on a panel: when it started, how many managers were held, how it ended."""

    index: int
    at_s: float
    managers_held: int
    outcome: str


@dataclass(frozen=True)
class UserInstanceSeries:
    """One panel: a user's manager count on one instance and the connections it served there."""

    user_id: str
    instance: int
    steps: tuple[tuple[float, int], ...]
    connections: tuple[ConnectionMark, ...]

    @property
    def peak(self) -> int:
        return max((count for _, count in self.steps), default=0)

    def first_at(self, level: int) -> float | None:
        """The first time the count reached ``level`` (None if it never did)."""
        return next((at for at, count in self.steps if count >= level), None)

    def periods_at(self, level: int) -> tuple[tuple[float, float | None], ...]:
        """Each span the count stood at ``level`` or above: (from, until); until is None if it never fell."""
        periods: list[tuple[float, float | None]] = []
        start: float | None = None
        for at, count in self.steps:
            if count >= level and start is None:
                start = at
            elif count < level and start is not None:
                periods.append((start, at))
                start = None
        if start is not None:
            periods.append((start, None))
        return tuple(periods)

    def outcome_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for mark in self.connections:
            counts[mark.outcome] = counts.get(mark.outcome, 0) + 1
        return dict(sorted(counts.items()))


def count_at(steps: Sequence[tuple[float, int]], at_s: float) -> int:
    """The count in force at ``at_s``: the last change at or before it (0 before the first)."""
    held = 0
    for changed_at, count in steps:
        if changed_at > at_s:
            break
        held = count
    return held


def timeline_series(run: RunResult) -> tuple[UserInstanceSeries, ...]:
    """One series per (user, instance) that held a manager or served a connection, sorted."""
    steps: dict[tuple[str, int], list[tuple[float, int]]] = {}
    for change in sorted(run.manager_counts, key=lambda c: (c.user_id, c.instance, c.at_s)):
        steps.setdefault((change.user_id, change.instance), []).append((change.at_s, change.count))
    served: dict[tuple[str, int], list[ConnectionResult]] = {}
    for connection in run.connections:
        served.setdefault((_series_user(connection), connection.instance), []).append(connection)
    return tuple(
        _series(key, collapse_same_time(steps.get(key, [])), served.get(key, []))
        for key in sorted(set(steps) | set(served))
    )


def _series_user(connection: ConnectionResult) -> str:
    """The user the server established, or the client's planned label marked as no user (a connection
    refused before authentication established one: ``ConnectionResult.identified_user``)."""
    user = connection.identified_user()
    return user if user is not None else f"{connection.user_id} {PLANNED_LABEL_SUFFIX}"


def collapse_same_time(steps: Sequence[tuple[float, int]]) -> list[tuple[float, int]]:
    """Keep only the last of several count changes at one instant (a sweep removing many at once)."""
    collapsed: list[tuple[float, int]] = []
    for at_s, count in steps:
        if collapsed and collapsed[-1][0] == at_s:
            collapsed[-1] = (at_s, count)
        else:
            collapsed.append((at_s, count))
    return collapsed


def _series(
    key: tuple[str, int], steps: list[tuple[float, int]], connections: list[ConnectionResult]
) -> UserInstanceSeries:
    marks = tuple(
        ConnectionMark(c.index, c.at_s, count_at(steps, c.at_s), close_code_label(c.close_code))
        for c in sorted(connections, key=lambda c: (c.at_s, c.index))
    )
    return UserInstanceSeries(key[0], key[1], tuple(steps), marks)


def run_end_s(run: RunResult) -> float:
    """The last virtual time the run shows: the latest connection end or count change."""
    ends = [c.ended_at_s for c in run.connections] + [c.at_s for c in run.manager_counts]
    return max(ends, default=0.0)


def timeline_table(run: RunResult, series: Sequence[UserInstanceSeries]) -> str:
    """The numbers behind the chart, one row per panel."""
    cap = run.max_managers_per_user
    header = ("user", "inst", "connections", "outcomes", "peak", "cap", "first at cap (s)", "count changes (t_s:count)")
    rows = [
        (
            item.user_id,
            str(item.instance),
            str(len(item.connections)),
            " ".join(f"{label}={n}" for label, n in item.outcome_counts().items()) or "-",
            str(item.peak),
            str(cap),
            _seconds(item.first_at(cap)),
            " ".join(f"{at:g}:{count}" for at, count in item.steps) or "-",
        )
        for item in series
    ]
    title = f"Managers per user and instance, profile {run.profile}, variant {run.variant} (cap {cap})"
    return title + "\n" + format_table(header, rows)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def timeline_chart(run: RunResult) -> tuple[Figure, str]:
    """The timeline figure (one panel per user and instance) and the table it draws."""
    series = timeline_series(run)
    figure = Figure(figsize=(FIGURE_WIDTH_IN, HEADER_HEIGHT_IN + PANEL_HEIGHT_IN * max(len(series), 1)))
    if not series:
        axes = figure.add_subplot()
        axes.set_title(f"{run.profile} ({run.variant}): no connection and no manager")
        axes.set_axis_off()
        return figure, timeline_table(run, series)
    panels = figure.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    end_s = run_end_s(run)
    top = max(run.max_managers_per_user, *(item.peak for item in series)) + 1
    for axes, item in zip(panels, series, strict=True):
        _draw_panel(axes, item, run.max_managers_per_user, end_s, top)
    panels[-1].set_xlabel("virtual time since the run started (s)")
    figure.supylabel("managers held by the user on the instance", fontsize=10)
    figure.suptitle(
        f"WebSocket managers per user and backend instance against the cap of {run.max_managers_per_user}\n"
        f"profile {run.profile}, variant {run.variant}; markers: connections at their start",
        fontsize=11,
    )
    figure.legend(handles=_legend_handles(series), loc="upper center", bbox_to_anchor=(0.5, 1 - 0.75 / figure.get_figheight()),
                  ncol=6, fontsize=8, frameon=False)
    figure.subplots_adjust(left=0.09, right=0.80, top=1 - HEADER_HEIGHT_IN / figure.get_figheight(),
                           bottom=0.55 / figure.get_figheight(), hspace=0.25)
    return figure, timeline_table(run, series)


def _draw_panel(axes: Axes, item: UserInstanceSeries, cap: int, end_s: float, top: int) -> None:
    xs = [0.0, *(at for at, _ in item.steps), end_s]
    ys = [0, *(count for _, count in item.steps), item.steps[-1][1] if item.steps else 0]
    axes.step(xs, ys, where="post", color="#1565c0", linewidth=1.6)
    axes.axhline(cap, color="#c62828", linestyle="--", linewidth=1.0)
    for outcome in sorted({mark.outcome for mark in item.connections}):
        marker, colour, _ = OUTCOME_STYLES.get(outcome, OTHER_STYLE)
        marks = [mark for mark in item.connections if mark.outcome == outcome]
        axes.scatter([m.at_s for m in marks], [m.managers_held for m in marks], marker=marker, color=colour,
                     s=48, zorder=3, edgecolors="white", linewidths=0.5)
    axes.set_ylim(-0.3, top + 0.3)
    axes.set_yticks(range(0, top + 1, 1 if top <= 6 else 5))
    axes.set_xlim(0, max(end_s, 1.0) * 1.01)
    axes.grid(axis="x", color="#e0e0e0", linewidth=0.6)
    axes.text(1.01, 0.5, f"{item.user_id}\ninstance {item.instance}", transform=axes.transAxes,
              va="center", ha="left", fontsize=8)
    axes.tick_params(labelsize=8)


def _legend_handles(series: Sequence[UserInstanceSeries]) -> list[Line2D]:
    outcomes = sorted({mark.outcome for item in series for mark in item.connections})
    handles = [
        Line2D([], [], color="#1565c0", linewidth=1.6, label="managers held"),
        Line2D([], [], color="#c62828", linestyle="--", linewidth=1.0, label="per-user cap"),
    ]
    for outcome in outcomes:
        marker, colour, text = OUTCOME_STYLES.get(outcome, OTHER_STYLE)
        label = text if outcome in OUTCOME_STYLES else f"{text} ({outcome})"
        handles.append(Line2D([], [], marker=marker, color=colour, linestyle="none", label=label))
    return handles


__all__ = [
    "ConnectionMark",
    "UserInstanceSeries",
    "collapse_same_time",
    "count_at",
    "run_end_s",
    "timeline_chart",
    "timeline_series",
    "timeline_table",
]
