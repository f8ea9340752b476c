"""Golden notebooks: re-execute in place with default parameters, minus volatile metadata.

Usage::

    failures = [r for r in refresh_goldens(sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))) if r.error]

The committed notebooks are nbval's goldens; what papermill records about one
particular execution (times, durations, paths) would change them on every
refresh, so it is stripped. The parameters stay.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nbformat

from investigation.suite.artifacts import reproducible
from investigation.suite.errors import SuiteInputError
from investigation.suite.execute import execute_notebook_to, map_in_workers
from investigation.suite.files import temporary_sibling

VOLATILE_NOTEBOOK_KEYS = ("exception", "input_path", "output_path")
"""Keys of the notebook's ``metadata.papermill`` that describe one execution only, besides its
times (which ``artifacts.reproducible`` removes)."""


@dataclass(frozen=True)
class GoldenRefresh:
    """The outcome of refreshing one golden; ``error`` is None when it was replaced."""

    path: str
    error: str | None


def strip_volatile_metadata(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without execution times, durations, paths or per-cell status."""
    stripped = reproducible(nb)
    papermill_metadata = stripped.metadata.get("papermill", {})
    for key in VOLATILE_NOTEBOOK_KEYS:
        papermill_metadata.pop(key, None)
    for cell in stripped.cells:
        cell.metadata.pop("papermill", None)
    return stripped


def refresh_goldens(
    notebook_paths: Sequence[Path], jobs: int | None = None, progress: bool = True
) -> list[GoldenRefresh]:
    """Re-execute each notebook in place with its default parameters, then strip volatile metadata.

    A notebook that fails keeps its old content and is reported with its error.

    Raises:
        SuiteInputError: a path is not an existing ``.ipynb`` file (nothing runs).
    """
    for path in notebook_paths:
        if path.suffix != ".ipynb" or not path.is_file():
            raise SuiteInputError(str(path), "notebook", "not an existing .ipynb file")
    absolute_paths = sorted(path.resolve() for path in notebook_paths)
    return map_in_workers(refresh_golden, absolute_paths, jobs, progress, "goldens")


def refresh_golden(path: Path) -> GoldenRefresh:
    """Refresh one golden notebook (an absolute path); see ``refresh_goldens``."""
    executed = temporary_sibling(path, ".ipynb")
    try:
        outcome = execute_notebook_to(path, executed, {})
        if outcome.error is None and outcome.notebook is not None:
            nbformat.write(strip_volatile_metadata(outcome.notebook), executed)
            os.replace(executed, path)
        return GoldenRefresh(str(path), outcome.error)
    finally:
        executed.unlink(missing_ok=True)
