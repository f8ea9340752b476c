"""Importing any module of the package prints nothing and starts nothing."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import investigation

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(investigation.__path__, prefix="investigation.")
    if not info.name.endswith("__main__")
)


def test_every_module_imports_silently() -> None:
    program = "import importlib, threading\n" + "".join(
        f"importlib.import_module({name!r})\n" for name in MODULES
    ) + "assert threading.active_count() == 1, threading.enumerate()\n"
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert (completed.stdout, completed.stderr) == ("", "")


def test_the_walk_finds_the_modules() -> None:
    assert {"investigation.backend.route", "investigation.simulate", "investigation.cli"} <= set(MODULES)
