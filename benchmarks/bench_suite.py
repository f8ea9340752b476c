"""Benchmark of the grid runner against plain papermill on the test fixture notebooks.

Measures, for the same runs (03_params with RUNS parameter sets):
- plain papermill, sequential in this process (the anchor: no HTML, no workers);
- run_suite with 1 worker (overhead ratio = suite / plain: spawn, HTML, manifest);
- run_suite with 2 workers (speed-up = 1 worker / 2 workers; ideal 2.0 on 2 cores).

Usage: ``.venv/bin/python benchmarks/bench_suite.py`` (``make bench``).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import papermill

from investigation.suite import build_grid, run_suite
from investigation.suite.config import KERNEL_NAME

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "notebooks"
RUNS = 8


def seconds(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def plain_papermill(out_dir: Path) -> None:
    for a in range(RUNS):
        papermill.execute_notebook(
            str(FIXTURES / "03_params.ipynb"),
            str(out_dir / f"a={a}.ipynb"),
            parameters={"a": a},
            kernel_name=KERNEL_NAME,
            progress_bar=False,
        )


def main() -> None:
    grid = build_grid(FIXTURES, {"03_params": lambda profiles: [{"a": a} for a in range(RUNS)]}, ["03"])
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "plain").mkdir()
        plain = seconds(lambda: plain_papermill(root / "plain"))
        one = seconds(lambda: run_suite(grid, root / "jobs1", jobs=1, profile_dirs=(), progress=False))
        two = seconds(lambda: run_suite(grid, root / "jobs2", jobs=2, profile_dirs=(), progress=False))
    print(f"{RUNS} runs of 03_params")
    print(f"plain papermill, sequential : {plain:6.2f} s")
    print(f"run_suite jobs=1            : {one:6.2f} s   overhead ratio {one / plain:.2f}")
    print(f"run_suite jobs=2            : {two:6.2f} s   speed-up vs jobs=1 {one / two:.2f}")


if __name__ == "__main__":
    main()
