"""Build-time entry point (used by the Makefile): ``python -m investigation.suite COMMAND``.

``refresh [NOTEBOOK ...]`` re-executes the golden notebooks (default:
notebooks/NN_*.ipynb) in place; ``install-kernel`` installs the venv's
``python3`` kernelspec with the pinned kernel environment.
Exit codes follow the ``investigation`` command: 0 done, 1 a notebook failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from investigation.suite.config import DEFAULT_NOTEBOOK_DIR, install_kernelspec
from investigation.suite.errors import SuiteInputError
from investigation.suite.goldens import refresh_goldens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m investigation.suite")
    commands = parser.add_subparsers(dest="command", required=True)
    refresh = commands.add_parser("refresh", help="re-execute golden notebooks in place")
    refresh.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    refresh.add_argument("--jobs", type=int, default=None)
    commands.add_parser("install-kernel", help="install the python3 kernelspec into this venv")
    args = parser.parse_args(argv)
    if args.command == "install-kernel":
        sys.stdout.write(f"installed kernelspec in {install_kernelspec()}\n")
        return 0
    return _refresh(args.notebooks or sorted(DEFAULT_NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb")), args.jobs)


def _refresh(notebooks: list[Path], jobs: int | None) -> int:
    try:
        outcomes = refresh_goldens(notebooks, jobs=jobs)
    except SuiteInputError as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    for outcome in failed:
        sys.stderr.write(f"{outcome.path}: {outcome.error}\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
