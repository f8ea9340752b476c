"""``investigation run`` over the full grid against a sequential loop of the ``papermill`` CLI.

Goal (notebook-suite issue): ``investigation run`` takes at most 0.35 of the
loop's wall time. Both run in this benchmark, one after the other, as
subprocesses of the same environment (the ``investigation`` and ``papermill``
scripts next to ``sys.executable``), over the same grid entries
(``notebook_grid()``), with the same kernel environment (``KERNEL_ENV``) and
kernel working directory (the notebook's directory). Fairness check: every
executed notebook of the runner has the same cells (source, execution count,
outputs) as the loop's, metadata stripped.

    PYTHONPATH=. python benchmarks/bench_grid.py [--repeats N] [--order loop-first|runner-first]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import nbformat

from investigation.notebook_grid import notebook_grid
from investigation.suite import GridEntry
from investigation.suite.config import KERNEL_ENV, KERNEL_NAME

GOAL_RATIO = 0.35
BIN_DIR = Path(sys.executable).parent


def benchmark_env() -> dict[str, str]:
    """This process's environment plus the pinned kernel environment (both sides get it)."""
    return {**os.environ, **KERNEL_ENV}


def runner_command(out_dir: Path) -> list[str]:
    script = BIN_DIR / "investigation"
    if script.exists():
        return [str(script), "run", "--out", str(out_dir)]
    return [sys.executable, "-m", "investigation.cli", "run", "--out", str(out_dir)]


def papermill_command(entry: GridEntry, out_dir: Path) -> list[str]:
    """``papermill IN OUT -p name value ... -k python3 --cwd NOTEBOOK_DIR`` for one entry.

    Parameters go in the entry's order, as the runner injects them.
    """
    target = out_dir / entry.stem / f"{entry.slug}.ipynb"
    parameters = [
        part
        for name in entry.parameters
        for part in ("-p", name, _cli_value(entry.parameters[name]))
    ]
    return [
        str(BIN_DIR / "papermill"),
        str(entry.notebook),
        str(target),
        *parameters,
        "-k",
        KERNEL_NAME,
        "--cwd",
        str(entry.notebook.parent),
        "--no-progress-bar",
    ]


def _cli_value(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def time_runner(out_dir: Path) -> float:
    started = time.perf_counter()
    subprocess.run(runner_command(out_dir), env=benchmark_env(), check=True, capture_output=True)
    return time.perf_counter() - started


def time_papermill_loop(grid: Sequence[GridEntry], out_dir: Path) -> float:
    started = time.perf_counter()
    for entry in grid:
        (out_dir / entry.stem).mkdir(parents=True, exist_ok=True)
        subprocess.run(papermill_command(entry, out_dir), env=benchmark_env(), check=True, capture_output=True)
    return time.perf_counter() - started


def comparable_cells(path: Path) -> list[dict[str, object]]:
    """The notebook's cells without metadata: type, source, execution count, outputs."""
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    return [
        {
            "cell_type": cell.cell_type,
            "source": cell.source,
            "execution_count": cell.get("execution_count"),
            "outputs": cell.get("outputs"),
        }
        for cell in nb.cells
    ]


def differing_outputs(grid: Sequence[GridEntry], runner_dir: Path, loop_dir: Path) -> list[str]:
    """``stem/slug cell N`` for every entry whose runner notebook differs from the loop's (first cell)."""
    differing = []
    for entry in grid:
        path = Path(entry.stem) / f"{entry.slug}.ipynb"
        runner_cells, loop_cells = comparable_cells(runner_dir / path), comparable_cells(loop_dir / path)
        if runner_cells != loop_cells:
            first = next((index for index, pair in enumerate(zip(runner_cells, loop_cells)) if pair[0] != pair[1]), None)
            shown = "" if first is None else f": runner {_outputs_text(runner_cells[first])!r} loop {_outputs_text(loop_cells[first])!r}"
            differing.append(f"{entry.stem}/{entry.slug} cell {first}{shown}")
    return sorted(differing)


def tree_state() -> str:
    """HEAD, uncommitted changes and untracked files: the code both sides run (others may edit it meanwhile)."""
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    diff = subprocess.run(["git", "diff", "HEAD"], cwd=root, capture_output=True, text=True).stdout
    diff += subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout
    return head.strip() + ":" + hashlib.sha256(diff.encode()).hexdigest()[:12]


def _outputs_text(cell: dict[str, object], limit: int = 160) -> str:
    return json.dumps(cell["outputs"], sort_keys=True)[:limit]


def one_round(grid: Sequence[GridEntry], scratch: Path, runner_first: bool) -> dict[str, object]:
    runner_dir, loop_dir = scratch / "runner", scratch / "loop"
    code_before = tree_state()
    if runner_first:
        runner_s = time_runner(runner_dir)
        loop_s = time_papermill_loop(grid, loop_dir)
    else:
        loop_s = time_papermill_loop(grid, loop_dir)
        runner_s = time_runner(runner_dir)
    return {
        "runner_s": round(runner_s, 2),
        "loop_s": round(loop_s, 2),
        "ratio": round(runner_s / loop_s, 3),
        "differing": differing_outputs(grid, runner_dir, loop_dir),
        "code_changed_meanwhile": tree_state() != code_before,
    }


def main(repeats: int = 1, runner_first: bool = False) -> dict[str, object]:
    grid = notebook_grid()
    rounds = []
    for index in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench_grid.") as scratch:
            result = one_round(grid, Path(scratch), runner_first if index % 2 == 0 else not runner_first)
        rounds.append(result)
        print(f"round {index + 1}: investigation run {result['runner_s']:.2f} s, papermill loop "
              f"{result['loop_s']:.2f} s, ratio {result['ratio']:.3f} (goal <= {GOAL_RATIO}); "
              f"differing notebooks: {result['differing'] or 'none'}"
              f"{' (the working tree changed during the round)' if result['code_changed_meanwhile'] else ''}",
              flush=True)
    ratios = [float(result["ratio"]) for result in rounds]  # type: ignore[arg-type]
    summary: dict[str, object] = {
        "runs": len(grid),
        "rounds": rounds,
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "within_goal": max(ratios) <= GOAL_RATIO,
        "outputs_equal": all(not result["differing"] for result in rounds),
    }
    print(f"{len(grid)} runs; ratio {summary['ratio_min']:.3f}-{summary['ratio_max']:.3f} "
          f"(goal <= {GOAL_RATIO}); outputs equal: {summary['outputs_equal']}")
    return summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="rounds; the order alternates between rounds")
    parser.add_argument("--order", choices=("loop-first", "runner-first"), default="loop-first")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse_args()
    main(arguments.repeats, arguments.order == "runner-first")
