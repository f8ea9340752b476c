"""Decision point x profile: the outcome each profile's compared connection took at every point.

    runs = {name: simulate(load_profile(name)) for name in names}
    figure, table = divergence_chart(runs, reference="local-debug")
    table            # DivergenceTable: the outcomes the chart draws (Markdown in a notebook)
    figure

Which connection of a profile is compared: its first failing connection (a
close code other than 1000), else its first connection (``compared_connection``).
Rows follow ``DECISION_POINTS`` (pipeline order, top to bottom); the reference
profile is the leftmost column. A cell is coloured by how its outcome relates
to the reference's outcome at that point; a black frame marks each profile's
first divergence from the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Rectangle

from investigation.analysis.divergence import NO_DIVERGENCE, NOT_REACHED, DivergenceTable, divergence_table
from investigation.charts.grid import outline_cells
from investigation.notebook_errors import NotebookParameterError
from investigation.report import format_table
from investigation.trace import DECISION_POINTS, ConnectionResult, Decision, RunResult, close_code_label, is_adverse

CELL_TEXT_CHARS = 18
ROW_HEIGHT_IN = 0.3
COLUMN_WIDTH_IN = 1.25
LEFT_MARGIN_IN = 2.0
RIGHT_MARGIN_IN = 1.4
TOP_MARGIN_IN = 2.2
BOTTOM_MARGIN_IN = 1.2

#: Cell classes, their colours and legend texts, in colour-map order.
CELL_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("not_reached", "#ffffff", "point not reached"),
    ("same", "#e3e8ee", "same outcome as the reference"),
    ("different", "#ffcc80", "different outcome from the reference"),
    ("adverse", "#e57373", "outcome that takes the connection off its normal path"),
)
CLASS_INDEX = {name: index for index, (name, _, _) in enumerate(CELL_CLASSES)}
FAILING_CLOSE_PREFIXES = ("1008", "1011", "1013")


def compared_connection(run: RunResult) -> ConnectionResult | None:
    """The connection of ``run`` that the divergence analysis compares.

    Its first failing connection, else its first connection; None if it has none.
    """
    return run.first_failure() or (run.connections[0] if run.connections else None)


def visible_outcome(outcome: str) -> str:
    """The outcome as shown: quoted when it is empty or when leading or trailing whitespace would hide a
    difference (an empty ENVIRONMENT reads ``''``, not a blank the eye takes for "not reached")."""
    return repr(outcome) if not outcome or outcome != outcome.strip() else outcome


def compared_trace(run: RunResult) -> tuple[Decision, ...]:
    """The decision trace of the compared connection, with whitespace made visible."""
    connection = compared_connection(run)
    if connection is None:
        return ()
    return tuple(Decision(d.point, visible_outcome(d.outcome)) for d in connection.decisions)


def column_order(profiles: Sequence[str], reference: str) -> list[str]:
    """The reference first, then the other profiles sorted by name."""
    return [reference, *sorted(profile for profile in profiles if profile != reference)]


def run_divergence(runs: Mapping[str, RunResult], reference: str) -> DivergenceTable:
    """Outcomes of every decision point for each profile's compared connection, reference first.

    Raises:
        NotebookParameterError: ``reference`` (notebook 02's parameter) is not one of ``runs``.
    """
    if reference not in runs:
        raise NotebookParameterError(
            "reference", f"{reference!r} is not among the profiles run: {', '.join(sorted(runs))}"
        )
    traces = {name: compared_trace(runs[name]) for name in column_order(list(runs), reference)}
    return divergence_table(traces, reference, DECISION_POINTS)


def is_adverse_cell(point: str, outcome: str) -> bool:
    """An outcome that ends the connection's normal path (``trace.is_adverse``), a failing close included."""
    if point == "route.close":
        return outcome.startswith(FAILING_CLOSE_PREFIXES)
    return is_adverse(point, outcome)


def cell_class(point: str, outcome: str, reference_outcome: str) -> str:
    """How a cell is coloured: not reached, same as the reference, different, or adverse."""
    if outcome == NOT_REACHED:
        return "not_reached"
    if is_adverse_cell(point, outcome):
        return "adverse"
    return "same" if outcome == reference_outcome else "different"


def cell_classes(table: DivergenceTable) -> list[list[str]]:
    """The class of every cell, rows x profiles (the reference column is compared to itself)."""
    reference_column = table.profiles.index(table.reference)
    return [
        [cell_class(row.point, outcome, row.outcomes[reference_column]) for outcome in row.outcomes]
        for row in table.rows
    ]


def comparison_table(runs: Mapping[str, RunResult], table: DivergenceTable) -> str:
    """Per profile: the compared connection, how it ended, and where it first diverges."""
    header = ("profile", "compared", "close", "decided by", "first divergence", "reference", "profile's")
    rows = [_comparison_row(name, runs[name], table) for name in table.profiles]
    title = f"Compared connection per profile (first failing, else first); reference {table.reference}"
    return title + "\n" + format_table(header, rows)


def _comparison_row(name: str, run: RunResult, table: DivergenceTable) -> tuple[str, ...]:
    connection = compared_connection(run)
    if connection is None:
        return (name, "no connection", "-", "-", "-", "-", "-")
    deciding = connection.deciding_decision()
    divergence = table.first_divergence_of(name)
    if name == table.reference:
        where, before, after = "(reference)", "-", "-"
    elif divergence is None:
        where, before, after = NO_DIVERGENCE, "-", "-"
    else:
        where = divergence.point
        # None: that side never reached the point (outcomes come visible from compared_trace: an empty one reads '')
        before, after = (NOT_REACHED if side is None else side for side in (divergence.passing, divergence.failing))
    return (
        name,
        f"#{connection.index} {'failing' if connection.failed else 'first'}",
        close_code_label(connection.close_code),
        f"{deciding.point}={visible_outcome(deciding.outcome)}" if deciding else "-",
        where,
        before,
        after,
    )


def _short(text: str) -> str:
    return text if len(text) <= CELL_TEXT_CHARS else text[: CELL_TEXT_CHARS - 1] + "\u2026"


def divergence_chart(runs: Mapping[str, RunResult], reference: str) -> tuple[Figure, DivergenceTable]:
    """The decision point x profile figure and the table of outcomes it draws."""
    table = run_divergence(runs, reference)
    classes = cell_classes(table)
    matrix = np.array([[CLASS_INDEX[name] for name in row] for row in classes], dtype=float)
    width = LEFT_MARGIN_IN + COLUMN_WIDTH_IN * len(table.profiles) + RIGHT_MARGIN_IN
    height = TOP_MARGIN_IN + ROW_HEIGHT_IN * len(table.rows) + BOTTOM_MARGIN_IN
    figure = Figure(figsize=(width, height))
    axes = figure.add_axes((
        LEFT_MARGIN_IN / width,
        BOTTOM_MARGIN_IN / height,
        COLUMN_WIDTH_IN * len(table.profiles) / width,
        ROW_HEIGHT_IN * len(table.rows) / height,
    ))
    colour_map = ListedColormap([colour for _, colour, _ in CELL_CLASSES])
    axes.imshow(matrix, cmap=colour_map, vmin=-0.5, vmax=len(CELL_CLASSES) - 0.5, aspect="auto")
    for row_index, row in enumerate(table.rows):
        for column_index, outcome in enumerate(row.outcomes):
            axes.text(column_index, row_index, _short(outcome), ha="center", va="center", fontsize=6.5)
    for column_index, (name, divergence) in enumerate(table.first_divergences):
        if divergence is not None and name != table.reference:
            row_index = [row.point for row in table.rows].index(divergence.point)
            axes.add_patch(Rectangle((column_index - 0.5, row_index - 0.5), 1, 1, fill=False,
                                     edgecolor="black", linewidth=2.2))
    _label_axes(axes, runs, table)
    handles = [Patch(facecolor=colour, edgecolor="#9e9e9e", label=text) for _, colour, text in CELL_CLASSES]
    handles.append(Patch(facecolor="none", edgecolor="black", linewidth=2.2,
                         label="first divergence from the reference"))
    figure.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    figure.suptitle(
        f"Outcome at each decision point of each profile's compared connection "
        f"(first failing, else first), against reference {reference}",
        fontsize=10,
        y=1 - 0.15 / height,
    )
    return figure, table


def _label_axes(axes: Axes, runs: Mapping[str, RunResult], table: DivergenceTable) -> None:
    labels = []
    for name in table.profiles:
        connection = compared_connection(runs[name])
        ending = "-" if connection is None else close_code_label(connection.close_code)
        suffix = " (reference)" if name == table.reference else ""
        labels.append(f"{name}{suffix}\n#{connection.index if connection else '-'} {ending}")
    axes.set_xticks(range(len(table.profiles)), labels, rotation=30, ha="left", rotation_mode="anchor", fontsize=8)
    axes.xaxis.tick_top()
    axes.set_yticks(range(len(table.rows)), [row.point for row in table.rows], fontsize=8)
    axes.set_ylabel("decision point (pipeline order)")
    axes.set_xlabel("profile, compared connection and its close code")
    outline_cells(axes, len(table.profiles), len(table.rows), "#bdbdbd")
