"""Run a notebook grid: execute every entry, then write HTML, index.html and manifest.json.

Usage::

    grid = build_grid(DEFAULT_NOTEBOOK_DIR, GRID_SPEC, ["01"], None)
    summary = run_suite(grid, Path("artifacts"), jobs=2)
    [run.notebook for run in summary.failed]

Layout of the output directory::

    OUT/<notebook stem>/<parameter slug>.ipynb   executed notebook (kept when it fails)
    OUT/<notebook stem>/<parameter slug>.html    its outputs and markdown, no code; links to
                                                 another notebook of the grid lead to its page
    OUT/index.html                               a section per notebook, one line per run
    OUT/manifest.json                            versions, commit, profile hashes, runs
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from investigation.suite.artifacts import (
    INDEX_NAME,
    RunRecord,
    notebook_to_html,
    read_key_result,
    reproducible,
    write_index,
    write_manifest,
)
from investigation.suite.chapters import chapter_pages, notebook_title, rewrite_chapter_links
from investigation.suite.config import DEFAULT_PROFILES_DIR, REPO_ROOT
from investigation.suite.execute import execute_notebook_to, map_in_workers
from investigation.suite.files import display_path, temporary_sibling, write_text_atomic
from investigation.suite.grid import GridEntry


@dataclass(frozen=True)
class SuiteSummary:
    """All runs of a grid (sorted by notebook, then parameters) and the files describing them."""

    out_dir: Path
    runs: tuple[RunRecord, ...]
    index_path: Path
    manifest_path: Path

    @property
    def failed(self) -> tuple[RunRecord, ...]:
        return tuple(run for run in self.runs if run.failed)


def run_suite(
    grid: Sequence[GridEntry],
    out_dir: Path,
    jobs: int | None = None,
    profile_dirs: Sequence[Path] = (DEFAULT_PROFILES_DIR,),
    progress: bool = True,
    expected_seconds: Callable[[GridEntry], float] | None = None,
    preload: Sequence[str] = (),
    pool: ProcessPoolExecutor | None = None,
    start_here: str | None = None,
) -> SuiteSummary:
    """Execute the grid (validated by ``build_grid``) into ``out_dir``; failed runs do not stop it.

    Args:
        grid: the runs, as returned by ``build_grid``.
        out_dir: where the artifacts go (created if missing).
        jobs: worker processes; None = one per CPU.
        profile_dirs: directories whose ``*.toml`` files are hashed into the manifest.
        progress: show a progress bar over the grid on stderr.
        expected_seconds: an entry's expected run time; the longest runs start first.
        preload: modules every kernel imports anyway; each worker imports them once,
            before forking its kernels (see ``forkserver``).
        pool: workers started earlier by ``execute.worker_pool`` (then ``jobs`` and
            ``preload`` are the pool's); None: start them here.
        start_here: the notebook stem index.html sends readers to first; None = the last one.
    """
    absolute_out = out_dir.resolve()
    pages = chapter_pages((entry.stem, entry.slug) for entry in grid)
    titles = _chapter_titles(grid)
    tasks = [(entry, absolute_out, pages) for entry in sorted(grid, key=lambda entry: (entry.stem, entry.slug))]
    cost = None if expected_seconds is None else (lambda task: expected_seconds(task[0]))
    records = tuple(map_in_workers(run_entry, tasks, jobs, progress, "notebooks", cost, preload, pool))
    absolute_out.mkdir(parents=True, exist_ok=True)
    return SuiteSummary(
        out_dir=out_dir,
        runs=records,
        index_path=write_index(absolute_out, records, titles, start_here),
        manifest_path=write_manifest(absolute_out, records, profile_dirs, REPO_ROOT),
    )


def _chapter_titles(grid: Sequence[GridEntry]) -> dict[str, str]:
    """Notebook stem -> the title its first markdown heading gives (stems without one are left out)."""
    notebooks = {entry.stem: entry.notebook for entry in grid}
    titles = {stem: notebook_title(notebook) for stem, notebook in sorted(notebooks.items())}
    return {stem: title for stem, title in titles.items() if title is not None}


def run_entry(task: tuple[GridEntry, Path, dict[str, str]]) -> RunRecord:
    """Execute one grid entry into the (absolute) output directory and export its HTML.

    ``task`` is (entry, output directory, ``chapter_pages`` of the grid): the HTML's links
    to the grid's notebooks are sent to those pages (the executed notebook keeps them).
    """
    entry, out_dir, pages = task
    notebook_path = f"{entry.stem}/{entry.slug}.ipynb"
    html_path = f"{entry.stem}/{entry.slug}.html"
    executed = temporary_sibling(out_dir / notebook_path, ".ipynb")
    try:
        outcome = execute_notebook_to(entry.notebook, executed, entry.parameters)
        if outcome.notebook is None:
            return _record(entry, outcome.error, None, None, None)
        nb = reproducible(outcome.notebook)
        nb.metadata.papermill["input_path"] = display_path(entry.notebook, REPO_ROOT)
        nb.metadata.papermill["output_path"] = notebook_path
        nbformat.write(nb, executed)
        os.replace(executed, out_dir / notebook_path)
        key_result = read_key_result(nb)
        try:
            page = notebook_to_html(nb, f"{entry.stem} {entry.slug}", index_href=f"../{INDEX_NAME}")
            write_text_atomic(out_dir / html_path, rewrite_chapter_links(page, pages, "../"))
        except Exception as exc:  # the run's boundary: a failed export fails this run only
            error = outcome.error or f"HTML export: {type(exc).__name__}: {exc}"
            return _record(entry, error, notebook_path, None, key_result)
        return _record(entry, outcome.error, notebook_path, html_path, key_result)
    finally:
        executed.unlink(missing_ok=True)


def _record(
    entry: GridEntry,
    error: str | None,
    notebook_path: str | None,
    html_path: str | None,
    key_result: str | None,
) -> RunRecord:
    return RunRecord(
        notebook=entry.stem,
        parameters=dict(entry.parameters),
        slug=entry.slug,
        status="ok" if error is None else "failed",
        error=error,
        notebook_path=notebook_path,
        html_path=html_path,
        key_result=key_result,
    )
