"""The papermill grid runner: notebooks x parameters -> executed notebooks, HTML, index, manifest.

Usage::

    grid = build_grid(DEFAULT_NOTEBOOK_DIR, GRID_SPEC, notebook_filter=["01"], profile_filter=None)
    summary = run_suite(grid, Path("artifacts"), jobs=2)
    assert scan_for_secrets(summary.out_dir, secrets) == []

Modules: ``grid`` (what runs), ``execute`` (papermill in worker processes),
``run`` (the orchestrator), ``artifacts`` (HTML, index, manifest), ``chapters``
(notebook titles, links between the chapters' pages), ``goldens``
(refreshing the committed notebooks), ``redact`` (secret scan), ``config``.
"""

from investigation.suite.artifacts import KEY_RESULT_TAG, RunRecord
from investigation.suite.config import (
    DEFAULT_NOTEBOOK_DIR,
    DEFAULT_PROFILES_DIR,
    KERNEL_ENV,
    install_kernelspec,
)
from investigation.suite.errors import SuiteInputError
from investigation.suite.goldens import GoldenRefresh, refresh_goldens, strip_volatile_metadata
from investigation.suite.grid import GridEntry, GridSpec, build_grid, parameter_slug
from investigation.suite.redact import scan_for_secrets
from investigation.suite.run import SuiteSummary, run_suite

__all__ = [
    "DEFAULT_NOTEBOOK_DIR",
    "DEFAULT_PROFILES_DIR",
    "KERNEL_ENV",
    "KEY_RESULT_TAG",
    "GoldenRefresh",
    "GridEntry",
    "GridSpec",
    "RunRecord",
    "SuiteInputError",
    "SuiteSummary",
    "build_grid",
    "install_kernelspec",
    "parameter_slug",
    "refresh_goldens",
    "run_suite",
    "scan_for_secrets",
    "strip_volatile_metadata",
]
