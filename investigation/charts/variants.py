"""Variant x profile: how many connections each candidate change lets fail, and when the first fails.

    figure, table = variant_chart(variant_report())
    print(table)     # the numbers every cell and the safety panel draw
    figure

Rows are the variants in spec order (original on top), columns the profiles
sorted by name. A cell shows the connections the server closed and the time of
the first one; its colour says how that compares with the original on the same
profile (``failure_effect``). The panel on the right draws each variant's
safety: adversarial members accepted, and whether an unsigned token got in.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from investigation.analysis.variants import (
    DELAYED,
    EARLIER,
    FORGED_SET_ASIDE,
    INTRODUCED,
    MORE_FAILURES,
    NEITHER_FAILS,
    REMOVED,
    SAME_TIME,
    SET_ASIDE,
    SHOWN_CLOSE_CODES,
    MatrixCell,
    VariantReport,
    close_column,
    effect_label,
)
from investigation.backend.variants import ORIGINAL
from investigation.charts.grid import outline_cells
from investigation.report import format_table

ORIGINAL_FAILS = "original fails"

#: Cell classes, their colours and legend texts, in colour-map order.
EFFECT_COLOURS: tuple[tuple[str, str, str], ...] = (
    (NEITHER_FAILS, "#ffffff", "no failure"),
    (ORIGINAL_FAILS, "#bdbdbd", "original fails"),
    (REMOVED, "#81c784", "failures removed"),
    (DELAYED, "#fff176", "first failure later"),
    (SAME_TIME, "#ffb74d", "first failure at the same time"),
    (EARLIER, "#e57373", "first failure earlier"),
    (INTRODUCED, "#ba68c8", "failures where the original had none"),
    (MORE_FAILURES, "#ce93d8", "more failures (the original's set aside)"),
    (SET_ASIDE, "#e0e0e0", "failures no candidate changes (set aside)"),
    (FORGED_SET_ASIDE, "#c5e1a5", "forged tokens refused (set aside)"),
)
EFFECT_INDEX = {name: index for index, (name, _, _) in enumerate(EFFECT_COLOURS)}
COLUMN_WIDTH_IN = 1.15
ROW_HEIGHT_IN = 0.62
LEFT_MARGIN_IN = 3.6
SAFETY_PANEL_IN = 2.0
TOP_MARGIN_IN = 1.7
BOTTOM_MARGIN_IN = 1.3


def cell_effect(report: VariantReport, cell: MatrixCell) -> str:
    """The colour class of one cell: the original's own row says whether it fails, :data:`SET_ASIDE` when its
    failures are all ones no candidate changes; a candidate's is its effect as the verdicts judge it
    (:meth:`VariantMatrix.judged`: set-aside and forged-token refusals left out), labelled so that it agrees with
    the cell's raw counts (:func:`effect_label`)."""
    matrix = report.matrix
    if cell.variant != ORIGINAL.name:
        return effect_label(matrix, cell.variant, cell.profile)
    if not cell.fails:
        return NEITHER_FAILS
    return ORIGINAL_FAILS if matrix.judged(ORIGINAL.name, cell.profile).fails else SET_ASIDE


def cell_text(cell: MatrixCell) -> str:
    if not cell.fails:
        return "0"
    return f"{cell.refused}\nfirst {cell.first_failure_s:.0f} s"


def chart_table(report: VariantReport) -> str:
    """The numbers the chart draws: one row per variant and profile, then the safety rows."""
    matrix = report.matrix
    header = ("variant", "profile", "refused", *map(close_column, SHOWN_CLOSE_CODES), "first failure s", "vs original")
    rows = [
        (
            cell.variant,
            cell.profile,
            str(cell.refused),
            *(str(cell.count(code)) for code in SHOWN_CLOSE_CODES),
            "-" if cell.first_failure_s is None else f"{cell.first_failure_s:.1f}",
            cell_effect(report, cell),
        )
        for variant in matrix.variants
        for cell in (matrix.cell(variant, profile) for profile in matrix.profiles)
    ]
    safety_header = ("variant", "adversarial accepted", "unsigned token accepted (staging/production)")
    safety_rows = [
        (row.variant, f"{len(row.accepted)} of {row.total}", "yes" if row.unsigned_accepted else "no")
        for row in matrix.safety
    ]
    return (
        "Connections refused per variant and profile\n"
        + format_table(header, rows)
        + "\n\nSafety: adversarial set per variant\n"
        + format_table(safety_header, safety_rows)
    )


def variant_chart(report: VariantReport) -> tuple[Figure, str]:
    """The variant x profile figure and the text table of what it draws."""
    matrix = report.matrix
    cells = [[matrix.cell(variant, profile) for profile in matrix.profiles] for variant in matrix.variants]
    classes = np.array([[EFFECT_INDEX[cell_effect(report, cell)] for cell in row] for row in cells], dtype=float)
    grid_width = COLUMN_WIDTH_IN * len(matrix.profiles)
    grid_height = ROW_HEIGHT_IN * len(matrix.variants)
    width = LEFT_MARGIN_IN + grid_width + SAFETY_PANEL_IN + 0.4
    height = TOP_MARGIN_IN + grid_height + BOTTOM_MARGIN_IN
    figure = Figure(figsize=(width, height))
    grid = figure.add_axes((LEFT_MARGIN_IN / width, BOTTOM_MARGIN_IN / height, grid_width / width, grid_height / height))
    colour_map = ListedColormap([colour for _, colour, _ in EFFECT_COLOURS])
    grid.imshow(classes, cmap=colour_map, vmin=-0.5, vmax=len(EFFECT_COLOURS) - 0.5, aspect="auto")
    for row_index, row in enumerate(cells):
        for column_index, cell in enumerate(row):
            grid.text(column_index, row_index, cell_text(cell), ha="center", va="center", fontsize=7)
    _label_grid(grid, report)
    safety = figure.add_axes((
        (LEFT_MARGIN_IN + grid_width + 0.25) / width, BOTTOM_MARGIN_IN / height,
        (SAFETY_PANEL_IN - 0.3) / width, grid_height / height,
    ))
    _draw_safety(safety, report)
    handles = [Patch(facecolor=colour, edgecolor="#9e9e9e", label=text) for _, colour, text in EFFECT_COLOURS]
    figure.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.suptitle(
        "Connections refused (any close code) and time of the first failure, per candidate change and profile; "
        "colour: compared with the original on the same profile",
        fontsize=10,
        y=1 - 0.15 / height,
    )
    return figure, chart_table(report)


def _label_grid(axes: Axes, report: VariantReport) -> None:
    matrix = report.matrix
    verdicts = {verdict.variant: report.failure_label(verdict) for verdict in report.verdicts}
    row_labels = [f"{variant}: {verdicts.get(variant, 'as deployed')}" for variant in matrix.variants]
    axes.set_yticks(range(len(matrix.variants)), row_labels, fontsize=8)
    axes.set_xticks(range(len(matrix.profiles)), matrix.profiles, rotation=30, ha="left",
                    rotation_mode="anchor", fontsize=8)
    axes.xaxis.tick_top()
    axes.set_xlabel("profile (cell: connections refused, first failure in virtual seconds)")
    axes.set_ylabel("variant and its computed failure verdict")
    outline_cells(axes, len(matrix.profiles), len(matrix.variants), "#9e9e9e")


def _draw_safety(axes: Axes, report: VariantReport) -> None:
    matrix = report.matrix
    rows = [matrix.safety_of(variant) for variant in matrix.variants]
    positions = np.arange(len(rows))
    colours = ["#e57373" if row.unsigned_accepted else "#81c784" for row in rows]
    axes.barh(positions, [len(row.accepted) for row in rows], color=colours, edgecolor="#616161")
    for position, row in zip(positions, rows, strict=True):
        unsigned = "unsigned in" if row.unsigned_accepted else "unsigned out"
        axes.text(0.3, position, f"{len(row.accepted)}/{row.total}, {unsigned}", va="center", fontsize=7)
    axes.set_ylim(len(rows) - 0.5, -0.5)
    axes.set_xlim(0, max(row.total for row in rows))
    axes.set_yticks([])
    axes.set_xlabel("adversarial members accepted\n(red: an unsigned token got in)", fontsize=8)
    axes.set_title("safety", fontsize=9)
