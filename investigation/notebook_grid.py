"""The investigation's notebook grid and ``investigation run``.

    grid = notebook_grid(profile_filter=None)        # validated GridEntry list, nothing runs
    failed = run_notebook_suite(None, None, jobs=2, out_dir=Path("artifacts"), profiles_dir=None)

What runs (only notebooks present in notebooks/ are included):

- ``01_reproduce``: once per profile (``profile=<name>``; ``--profile`` narrows it);
- ``02_divergence``, ``03_hypotheses``, ``05_variants``, ``06_postmortem``: once,
  with their default parameters;
- ``04_isolate``: once per pair (``local-debug``, F) for every profile F whose
  simulation fails (computed by simulating the candidates; ``--profile`` narrows
  the candidates).

``--profiles-dir DIR`` reaches the notebooks through the environment variable
``INVESTIGATION_PROFILES_DIR`` (``investigation.profiles.PROFILES_DIR_ENV``):
it is set, as an absolute path, for the worker processes and so for every kernel
they start, and ``investigation.reproduce`` honours it when a notebook loads
profiles by name. The grid itself is computed from the same directory.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from investigation.profiles import DEFAULT_PROFILES_DIR, PROFILES_DIR_ENV, list_profiles, load_profile
from investigation.run_cache import run_cache_exported
from investigation.simulate import simulate
from investigation.suite import DEFAULT_NOTEBOOK_DIR, GridEntry, SuiteInputError, build_grid, run_suite
from investigation.suite.execute import worker_pool
from investigation.suite.grid import selected_notebooks

REPRODUCE = "01_reproduce"
DIVERGENCE = "02_divergence"
HYPOTHESES = "03_hypotheses"
ISOLATE = "04_isolate"
VARIANTS = "05_variants"
POSTMORTEM = "06_postmortem"
SINGLE_RUN_NOTEBOOKS = (DIVERGENCE, HYPOTHESES, VARIANTS, POSTMORTEM)

EXPECTED_SECONDS = {REPRODUCE: 2.1, DIVERGENCE: 2.2, HYPOTHESES: 2.6, ISOLATE: 8.1, VARIANTS: 3.3, POSTMORTEM: 9.4}
"""Seconds one run of each notebook took (papermill, one kernel, 2-core machine): the runner
starts the longest first so that no long run is left alone at the end of the grid."""
UNKNOWN_NOTEBOOK_SECONDS = 2.0
KERNEL_PRELOAD = (
    "matplotlib.pyplot",
    "matplotlib_inline.backend_inline",
    "coverage",
    "jwt",
    "pydantic",
    "investigation.analysis.adversarial",
    "investigation.analysis.hypotheses",
    "investigation.analysis.isolate",
    "investigation.analysis.spectra",
    "investigation.analysis.variants",
    "investigation.charts.divergence",
    "investigation.charts.hypotheses",
    "investigation.charts.isolation",
    "investigation.charts.timeline",
    "investigation.charts.variants",
    "investigation.divergence_findings",
    "investigation.postmortem",
    "investigation.report",
    "investigation.reproduce",
)
"""What the notebooks' import cells import: each worker's fork server imports it once and
forks its kernels from there (import only, nothing runs; the bench checks the outputs equal
those of fresh kernels). The fork server starts with the run, so it imports the current code."""

ISOLATION_REFERENCE = "local-debug"
"""The passing side of every isolation pair: the report's local debug run."""
PASSING_PARAMETER = "passing"
FAILING_PARAMETER = "failing"

ParameterSets = Callable[[Sequence[str] | None], list[dict[str, object]]]


def known_profiles(profiles_dir: Path | None) -> list[str]:
    """Profile names of data/profiles plus ``profiles_dir``, sorted; every profile is loaded.

    Raises:
        ProfileError: ``profiles_dir`` is not a directory or holds an invalid profile.
    """
    return [profile.name for profile in list_profiles(profiles_dir)]


def selected_profiles(profile_filter: Sequence[str] | None, profiles_dir: Path | None) -> list[str]:
    """The profiles a run covers: all, or the filter (each must exist), sorted.

    Raises:
        SuiteInputError: a filtered name is not a known profile.
    """
    known = known_profiles(profiles_dir)
    if profile_filter is None:
        return known
    for name in profile_filter:
        if name not in known:
            where = str(profiles_dir or DEFAULT_PROFILES_DIR)
            raise SuiteInputError(where, "profile", f"unknown profile {name!r}; known: {', '.join(known)}")
    return sorted(set(profile_filter))


def profile_fails(name: str, profiles_dir: Path | None) -> bool:
    """Whether any connection of the profile's simulation (variant original) fails."""
    run = simulate(load_profile(name, profiles_dir))  # simulate leaves a running event loop itself
    return bool(run.failures)


def isolation_pairs(candidates: Sequence[str], profiles_dir: Path | None) -> list[tuple[str, str]]:
    """(local-debug, F) for every candidate F other than local-debug whose simulation fails."""
    return [
        (ISOLATION_REFERENCE, name)
        for name in sorted(candidates)
        if name != ISOLATION_REFERENCE and profile_fails(name, profiles_dir)
    ]


def grid_spec(profiles_dir: Path | None = None, notebook_dir: Path = DEFAULT_NOTEBOOK_DIR) -> dict[str, ParameterSets]:
    """Notebook stem -> parameter sets, for the notebooks present in ``notebook_dir``."""

    def reproduce(profile_filter: Sequence[str] | None) -> list[dict[str, object]]:
        return [{"profile": name} for name in selected_profiles(profile_filter, profiles_dir)]

    def isolate(profile_filter: Sequence[str] | None) -> list[dict[str, object]]:
        pairs = isolation_pairs(selected_profiles(profile_filter, profiles_dir), profiles_dir)
        return [{PASSING_PARAMETER: passing, FAILING_PARAMETER: failing} for passing, failing in pairs]

    def defaults(profile_filter: Sequence[str] | None) -> list[dict[str, object]]:
        return [{}]

    spec: dict[str, ParameterSets] = {REPRODUCE: reproduce, ISOLATE: isolate}
    spec.update({stem: defaults for stem in SINGLE_RUN_NOTEBOOKS})
    present = {path.stem for path in notebook_dir.glob("*.ipynb")}
    return {stem: sets for stem, sets in sorted(spec.items()) if stem in present}


def expected_seconds(entry: GridEntry) -> float:
    """How long the entry's run is expected to take (scheduling only; never affects outputs)."""
    return EXPECTED_SECONDS.get(entry.stem, UNKNOWN_NOTEBOOK_SECONDS)


def notebook_grid(
    notebooks: Sequence[str] | None = None,
    profiles: Sequence[str] | None = None,
    profiles_dir: Path | None = None,
    notebook_dir: Path = DEFAULT_NOTEBOOK_DIR,
) -> list[GridEntry]:
    """The validated grid (unknown notebook, profile or parameter raise before anything runs).

    Raises:
        SuiteInputError: bad notebook name, profile name, or parameter.
        ProfileError: ``profiles_dir`` is not a directory or holds an invalid profile.
    """
    selected_profiles(profiles, profiles_dir)
    return build_grid(notebook_dir, grid_spec(profiles_dir, notebook_dir), notebooks, profiles)


def check_run_options(jobs: int | None, out_dir: Path) -> None:
    """Reject a job count below 1 and an output directory that is, or lies below, an existing file.

    Raises:
        SuiteInputError: naming ``--jobs`` or ``--out`` and the reason.
    """
    if jobs is not None and jobs < 1:
        raise SuiteInputError("<command line>", "--jobs", f"must be at least 1, got {jobs}")
    existing = next((path for path in (out_dir, *out_dir.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise SuiteInputError(str(existing), "--out", "not a directory (an existing file is in the way)")


@contextlib.contextmanager
def profiles_dir_exported(profiles_dir: Path | None) -> Iterator[None]:
    """Export ``INVESTIGATION_PROFILES_DIR`` (absolute) inside the block; restore it after."""
    previous = os.environ.get(PROFILES_DIR_ENV)
    if profiles_dir is None:
        os.environ.pop(PROFILES_DIR_ENV, None)
    else:
        os.environ[PROFILES_DIR_ENV] = str(profiles_dir.resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROFILES_DIR_ENV, None)
        else:
            os.environ[PROFILES_DIR_ENV] = previous


def run_notebook_suite(
    notebooks: Sequence[str] | None,
    profiles: Sequence[str] | None,
    jobs: int | None,
    out_dir: Path,
    profiles_dir: Path | None,
    notebook_dir: Path = DEFAULT_NOTEBOOK_DIR,
    progress: bool = True,
) -> list[str]:
    """Execute the grid into ``out_dir``; the names (``stem/slug: error``) of failed runs.

    Writes ``out_dir/<notebook>/<parameters>.ipynb`` and ``.html`` per run, then
    ``index.html`` and ``manifest.json``. Bad input raises before anything is
    written (see ``notebook_grid`` and ``check_run_options``).
    """
    check_run_options(jobs, out_dir)
    selected_notebooks(notebook_dir, notebooks)  # a bad name is refused before any worker starts
    selected_profiles(profiles, profiles_dir)
    hashed_dirs = (DEFAULT_PROFILES_DIR,) if profiles_dir is None else (DEFAULT_PROFILES_DIR, profiles_dir)
    # exported before the workers start (they and their kernels inherit both); the workers
    # start while the grid is computed; the run cache lets the grid's notebooks share results
    with profiles_dir_exported(profiles_dir), run_cache_exported(), worker_pool(jobs, KERNEL_PRELOAD) as pool:
        grid = notebook_grid(notebooks, profiles, profiles_dir, notebook_dir)
        summary = run_suite(
            grid, out_dir, profile_dirs=hashed_dirs, progress=progress, expected_seconds=expected_seconds, pool=pool,
            start_here=POSTMORTEM,
        )
    return [f"{run.notebook}/{run.slug}: {run.error}" for run in summary.failed]
