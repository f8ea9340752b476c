"""Run every benchmarks/bench_*.py module's `main()` in turn (sorted by name)."""

from __future__ import annotations

import importlib
from pathlib import Path


def bench_module_names() -> list[str]:
    here = Path(__file__).resolve().parent
    return [f"benchmarks.{path.stem}" for path in sorted(here.glob("bench_*.py"))]


def run_all() -> dict[str, object]:
    results: dict[str, object] = {}
    for name in bench_module_names():
        print(f"== {name}")
        results[name] = importlib.import_module(name).main()
    return results


if __name__ == "__main__":
    run_all()
