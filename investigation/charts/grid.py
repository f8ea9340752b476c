"""Cell outlines for the charts that draw one coloured cell per (row, column), as ``imshow`` does."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes


def outline_cells(axes: Axes, columns: int, rows: int, colour: str) -> None:
    """Thin lines on every edge of the cells of a ``rows`` x ``columns`` grid centred on whole coordinates.

    The lines run on the minor ticks at the cell edges (``-0.5, 0.5, ...``), which carry no tick mark.
    """
    axes.set_xticks(np.arange(-0.5, columns), minor=True)
    axes.set_yticks(np.arange(-0.5, rows), minor=True)
    axes.grid(which="minor", color=colour, linewidth=0.5)
    axes.tick_params(which="minor", length=0)
