"""Results shared by the notebooks of one grid run.

`investigation run` gives its kernels a fresh, empty directory for the duration of the run
(the environment variable named by `RUN_CACHE_ENV`). A computation that several notebooks of
the grid repeat with the same inputs (the SBFL sweep of every chapter-04 run) is then made
once: the first kernel computes and pickles it, the others wait for it and read it. Outside a
grid run (JupyterLab, nbval, the tests) the variable is unset and everything is computed.

    report = shared("spectra:" + inputs_digest, lambda: expensive(...))
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

RUN_CACHE_ENV = "INVESTIGATION_RUN_CACHE"

Result = TypeVar("Result")


def shared(key: str, compute: Callable[[], Result]) -> Result:
    """`compute()`, made once per grid run for a given `key` (every input it depends on)."""
    directory = os.environ.get(RUN_CACHE_ENV)
    if not directory:
        return compute()
    stem = Path(directory) / hashlib.sha256(key.encode()).hexdigest()
    with open(stem.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stored = stem.with_suffix(".pickle")
        if stored.exists():
            result: Result = pickle.loads(stored.read_bytes())
            return result
        result = compute()
        partial = stem.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(result))
        os.replace(partial, stored)
        return result


@contextlib.contextmanager
def run_cache_exported() -> Iterator[Path]:
    """A fresh cache directory exported in `RUN_CACHE_ENV` inside the block, removed after."""
    previous = os.environ.get(RUN_CACHE_ENV)
    directory = Path(tempfile.mkdtemp(prefix="investigation-run-cache-"))
    os.environ[RUN_CACHE_ENV] = str(directory)
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop(RUN_CACHE_ENV, None)
        else:
            os.environ[RUN_CACHE_ENV] = previous
        shutil.rmtree(directory, ignore_errors=True)
