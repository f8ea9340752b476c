"""Charts of one isolation: dd's tests, the minimal failing traffic, the aligned traces,
the cause chain and the suspiciousness ranking. Each returns ``(figure, table)``.

    figure, table = dd_tests_chart(isolate_profiles(passing, failing))
    print(table)
    figure
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from investigation.analysis.delta import Outcome
from investigation.analysis.isolate import AlignedDivergence, ProfileIsolation, TrafficReduction, short_value
from investigation.analysis.spectra import RankedLine, SuspiciousnessReport
from investigation.charts.divergence import CELL_CLASSES, visible_outcome
from investigation.report import established_user, format_table, plural
from investigation.trace import DECISION_POINTS

OUTCOME_COLOURS = {Outcome.PASS: "#2e7d32", Outcome.FAIL: "#c62828", Outcome.UNRESOLVED: "#9e9e9e"}
OUTCOME_MARKERS = {Outcome.PASS: "o", Outcome.FAIL: "X", Outcome.UNRESOLVED: "s"}
PAIR_COLOURS = {name: colour for name, colour, _ in CELL_CLASSES}
"""Cell colours of the aligned-pair chart, those of chapter 02's divergence chart."""
PAIR_LEGEND = (("same", "same outcome on both connections"), ("different", "different outcome"),
               ("not_reached", "point reached by neither connection of the pair"))


def minimal_difference_table(isolation: ProfileIsolation) -> str:
    rows = [(c.factor, short_value(c.to_json_dict()["passing"]), short_value(c.to_json_dict()["failing"]))
            for c in isolation.minimal_difference]
    return format_table(("factor", isolation.passing, isolation.failing), rows)


def dd_tests_chart(isolation: ProfileIsolation) -> tuple[Figure, str]:
    """Each dd test in order: how many of the differing factors it applied, and its outcome."""
    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    axes = figure.add_subplot()
    total = len(isolation.differing)
    for number, record in enumerate(isolation.history, start=1):
        axes.scatter(number, len(record.indices), marker=OUTCOME_MARKERS[record.outcome],
                     color=OUTCOME_COLOURS[record.outcome], s=60, zorder=3)
    axes.axhline(len(isolation.minimal_difference), color="#455a64", linestyle="--", linewidth=1)
    axes.set_xlabel("dd test, in the order run")
    axes.set_ylabel(f"changes applied (of {total})")
    kept = len(isolation.minimal_difference)
    axes.set_title(f"dd from {isolation.passing} to {isolation.failing}: "
                   f"{kept} of {total} differing factors {'induces' if kept == 1 else 'induce'} the failure")
    axes.legend(handles=[Line2D([], [], marker=OUTCOME_MARKERS[o], color=OUTCOME_COLOURS[o], linestyle="",
                                label=o.value) for o in Outcome]
                + [Line2D([], [], color="#455a64", linestyle="--", label="size of the minimal difference")],
                loc="upper right", fontsize=8)
    axes.grid(alpha=0.3)
    rows = [(str(n), str(len(r.indices)), r.outcome.value) for n, r in enumerate(isolation.history, start=1)]
    table = minimal_difference_table(isolation) + "\n\n" + format_table(("test", "changes applied", "outcome"), rows)
    return figure, table


def traffic_chart(reduction: TrafficReduction) -> tuple[Figure, str]:
    """Every planned connection by start time and client; the ones ddmin kept (a 1-minimal failing set) highlighted."""
    clients = list(dict.fromkeys(p.client.name for p in reduction.planned))
    kept = {p.index for p in reduction.kept}
    figure = Figure(figsize=(10.0, 1.4 + 0.35 * len(clients)), layout="constrained")
    axes = figure.add_subplot()
    for planned in reduction.planned:
        inside = planned.index in kept
        axes.scatter(planned.at_s, clients.index(planned.client.name), s=70 if inside else 25,
                     color="#c62828" if inside else "#b0bec5", marker="X" if inside else "o", zorder=3)
    axes.set_yticks(range(len(clients)), clients)
    axes.invert_yaxis()
    axes.set_xlabel("planned start (virtual seconds)")
    axes.set_title(f"{reduction.profile}, {len(reduction.planned)} planned connections; red: the "
                   f"{plural(len(reduction.kept), 'connection')} ddmin keeps ({_failing_of_kept(reduction)})")
    axes.grid(axis="x", alpha=0.3)
    by_index = {c.index: c for c in reduction.run.connections}
    rows = [
        (str(p.index), f"{p.at_s:g}", p.client.name, established_user(by_index[position]), str(position),
         str(by_index[position].instance), _closed(by_index[position].close_code, by_index[position].close_reason))
        for position, p in enumerate(reduction.kept)
    ]
    table = format_table(("planned #", "t_s", "client", "user", "reduced #", "instance", "close"), rows)
    return figure, table + "\n\n" + planned_per_client_table(reduction)


def planned_per_client_table(reduction: TrafficReduction) -> str:
    """The chart's rows: per client its planned connections, how many ddmin kept, and the user the server
    established for those kept connections and the backend instance they ran on in the reduced run (the full
    run's instance, kept by construction); ``-`` for a client none of whose connections ddmin kept."""
    by_index = {c.index: c for c in reduction.run.connections}
    instances: dict[str, set[int]] = {}
    users: dict[str, set[str]] = {}
    for position, planned in enumerate(reduction.kept):
        instances.setdefault(planned.client.name, set()).add(by_index[position].instance)
        users.setdefault(planned.client.name, set()).add(established_user(by_index[position]))
    planned = Counter(p.client.name for p in reduction.planned)
    kept = Counter(p.client.name for p in reduction.kept)
    rows = [(name, ", ".join(sorted(users.get(name, ()))) or "-", str(planned[name]), str(kept[name]),
             ", ".join(str(i) for i in sorted(instances.get(name, ()))) or "-") for name in planned]
    title = f"planned connections per client ({sum(planned.values())} in all, the chart's points)"
    header = ("client", "user of the kept", "planned", "kept", "instance of the kept")
    return title + "\n" + format_table(header, rows)


def _failing_of_kept(reduction: TrafficReduction) -> str:
    """``1 of them closes 1011``: the kept connections failing the same way in the reduced run."""
    failing = len(reduction.failing_the_same_way)
    return f"{failing} of them {'closes' if failing == 1 else 'close'} {reduction.signature.close_code}"


def _closed(code: int | None, reason: str | None) -> str:
    return "open" if code is None else f"{code} {reason}"


def aligned_trace_table(aligned: AlignedDivergence, points: Sequence[str] | None = None) -> str:
    """Decision points in pipeline order with both connections' outcomes; ``<<`` marks the first divergence.

    ``points``: the rows (default: the points either connection reached); ``-`` marks a point not
    reached. Outcomes with leading or trailing whitespace are quoted (``visible_outcome``).
    """
    passing = {d.point: visible_outcome(d.outcome) for d in aligned.passing_connection.decisions}
    failing = {d.point: visible_outcome(d.outcome) for d in aligned.failing_connection.decisions}
    first = aligned.divergence.point if aligned.divergence else None
    rows = [
        (point, passing.get(point, "-"), failing.get(point, "-"), "<< first divergence" if point == first else "")
        for point in (reached_points([aligned]) if points is None else points)
    ]
    header = ("point", f"passing #{aligned.passing_connection.index}", f"failing #{aligned.failing_connection.index}", "divergence")
    return format_table(header, rows)


def divergence_chart(isolation: ProfileIsolation) -> tuple[Figure, str]:
    """Where the aligned traces agree and differ, for the profiles and for dd's isolated pair."""
    pairs = [("profiles", isolation.first_divergence)]
    if isolation.isolated_divergence is not None:
        pairs.append(("isolated pair", isolation.isolated_divergence))
    figure = Figure(figsize=(9.0, 6.0), layout="constrained")
    axes = figure.add_subplot()
    points = reached_points([aligned for _, aligned in pairs])
    for column, (_, aligned) in enumerate(pairs):
        passing = {d.point: d.outcome for d in aligned.passing_connection.decisions}
        failing = {d.point: d.outcome for d in aligned.failing_connection.decisions}
        for row, point in enumerate(points):
            if point not in passing and point not in failing:
                colour = PAIR_COLOURS["not_reached"]
            else:
                colour = PAIR_COLOURS["same" if passing.get(point) == failing.get(point) else "different"]
            frame = aligned.divergence is not None and aligned.divergence.point == point
            axes.add_patch(_cell(column, row, colour, frame))
    axes.set_xlim(-0.5, len(pairs) - 0.5)
    axes.set_ylim(len(points) - 0.5, -0.5)
    axes.set_xticks(range(len(pairs)), [name for name, _ in pairs])
    axes.set_yticks(range(len(points)), points, fontsize=8)
    axes.set_title("decision points of the aligned passing and failing connections")
    handles = [Patch(facecolor=PAIR_COLOURS[name], edgecolor="#9e9e9e", label=text) for name, text in PAIR_LEGEND]
    handles.append(Patch(facecolor="none", edgecolor="black", linewidth=2.0, label="first divergence"))
    figure.legend(handles=handles, loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    tables = [f"{name}:\n{aligned_trace_table(aligned, points)}" for name, aligned in pairs]
    return figure, "\n\n".join(tables)


def reached_points(pairs: Sequence[AlignedDivergence]) -> list[str]:
    """The decision points any connection of ``pairs`` reached, in pipeline order."""
    reached = {d.point for aligned in pairs
               for connection in (aligned.passing_connection, aligned.failing_connection)
               for d in connection.decisions}
    return [point for point in DECISION_POINTS if point in reached]


def _cell(column: int, row: int, colour: str, frame: bool) -> Rectangle:
    return Rectangle((column - 0.45, row - 0.45), 0.9, 0.9, facecolor=colour,
                     edgecolor="black" if frame else "#cfd8dc", linewidth=2.0 if frame else 0.5)


def cause_chain_table(isolation: ProfileIsolation) -> str:
    """The failing connection's exceptions, outermost first; ``cause chain: none`` for a close no exception
    decided (the startup gate's, spec 1 step 9), as chapter 01 says it."""
    closed = f"connection #{isolation.failure.index} of {isolation.failing} closed {isolation.failure.close_code} " \
             f"{isolation.failure.close_reason}"
    if not isolation.failure.cause_chain:
        return f"{closed}; cause chain: none"
    rows = [(str(depth), link.type, link.message) for depth, link in enumerate(isolation.failure.cause_chain)]
    return f"{closed}; outermost exception first\n" + format_table(("depth", "type", "message"), rows)


def suspiciousness_chart(
    report: SuspiciousnessReport, count: int = 12, skip_refusal_reporting: bool = True
) -> tuple[Figure, str]:
    """The ``count`` most suspicious backend lines by Ochiai, with their Tarantula score.

    By default the lines that only report a refusal (``REFUSAL_FUNCTIONS``) are left out: they
    tie at the top after every failure; the table's first line says how many were left out.
    """
    top: Sequence[RankedLine] = report.top_lines(count, skip_refusal_reporting)
    tarantula = {(r.file, r.line): r.score for r in report.tarantula}
    figure = Figure(figsize=(10.0, 1.2 + 0.38 * len(top)), layout="constrained")
    axes = figure.add_subplot()
    positions = range(len(top))
    axes.barh([p - 0.2 for p in positions], [r.score for r in top], height=0.4, color="#c62828", label="Ochiai")
    axes.barh([p + 0.2 for p in positions], [tarantula[(r.file, r.line)] for r in top], height=0.4,
              color="#ef9a9a", label="Tarantula")
    axes.set_yticks(list(positions), [f"{r.location.removeprefix('investigation/backend/')} {r.function}" for r in top],
                    fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.05)
    axes.set_xlabel("suspiciousness")
    outside = " outside the refusal reporting" if skip_refusal_reporting else ""
    axes.set_title(f"most suspicious backend lines{outside} over {report.connections} connections "
                   f"({report.failing} closed 1011)")
    axes.legend(loc="lower right", fontsize=8)
    return figure, report.top_text(count, skip_refusal_reporting)
