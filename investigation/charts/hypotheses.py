"""The hypothesis ledger as a chart: per claim, the runs where its prediction held or was not met.

    figure, table = ledger_chart(build_ledger())
    print(table)
    figure
"""

from __future__ import annotations

from matplotlib.figure import Figure
from matplotlib.patches import Patch

from investigation.analysis.hypotheses import Ledger, Verdict
from investigation.report import format_table

VERDICT_COLOURS = {Verdict.SUPPORTED: "#2e7d32", Verdict.REFUTED: "#c62828", Verdict.INCONCLUSIVE: "#9e9e9e"}
HELD_COLOUR = "#81c784"
FAILED_COLOUR = "#e57373"
UNTESTED_COLOUR = "#e0e0e0"


def ledger_counts(ledger: Ledger) -> list[tuple[str, str, int, int, int]]:
    """(claim, verdict, runs where the prediction held, was not met, did not test it) per claim."""
    rows = []
    for finding in ledger.findings:
        holds = [o.holds for o in finding.observations]
        rows.append((finding.key, finding.verdict.value, holds.count(True), holds.count(False), holds.count(None)))
    return rows


def ledger_chart(ledger: Ledger) -> tuple[Figure, str]:
    """Stacked bars per claim (report order, top to bottom); the claim's name is coloured by its verdict."""
    rows = ledger_counts(ledger)
    figure = Figure(figsize=(10.0, 1.6 + 0.32 * len(rows)), layout="constrained")
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    held = [row[2] for row in rows]
    not_met = [row[3] for row in rows]
    untested = [row[4] for row in rows]
    axes.barh(positions, held, color=HELD_COLOUR)
    axes.barh(positions, not_met, left=held, color=FAILED_COLOUR)
    axes.barh(positions, untested, left=[h + n for h, n in zip(held, not_met, strict=True)], color=UNTESTED_COLOUR)
    axes.set_yticks(positions, [row[0] for row in rows], fontsize=8)
    for label, finding in zip(axes.get_yticklabels(), ledger.findings, strict=True):
        label.set_color(VERDICT_COLOURS[finding.verdict])
    axes.invert_yaxis()
    axes.set_xlabel("runs")
    axes.set_title("each claim of the report: runs where its prediction held, was not met, or was not tested\n"
                   "(claim names coloured by verdict: green supported, red refuted, grey inconclusive)")
    axes.legend(handles=[Patch(color=HELD_COLOUR, label="prediction held"),
                         Patch(color=FAILED_COLOUR, label="prediction not met"),
                         Patch(color=UNTESTED_COLOUR, label="run did not test it")],
                loc="lower right", fontsize=8)
    axes.grid(axis="x", alpha=0.3)
    table = format_table(("claim", "verdict", "held", "not met", "untested"),
                         [(k, v, str(h), str(f), str(u)) for k, v, h, f, u in rows])
    return figure, table
