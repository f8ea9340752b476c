"""Headless execution: papermill runs one notebook per worker process.

Usage::

    outcome = execute_notebook_to(Path("notebooks/01_x.ipynb"), target, {"profile": "local"})
    results = map_in_workers(run_one, items, jobs=2, progress=True, description="notebooks")

Kernels run in the source notebook's directory (as under nbval and Jupyter
Lab, so relative paths mean the same everywhere) with ``KERNEL_ENV`` exported.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import nbformat
import papermill
import zmq
from jupyter_client import KernelManager
from nbconvert.preprocessors import CoalesceStreamsPreprocessor
from papermill.exceptions import PapermillExecutionError, strip_color
from tqdm import tqdm
from traitlets.config import Config

from investigation.suite.config import CELL_TIMEOUT_S, KERNEL_ENV, KERNEL_NAME, KERNEL_START_TIMEOUT_S
from investigation.suite.errors import SuiteInputError
from investigation.suite.files import write_text_atomic
from investigation.suite.forkserver import ForkingKernelManager, ForkServer

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_JOBS = 64
"""Most workers ``worker_pool`` starts: each is a process that starts Jupyter kernels, and the
whole grid has about twenty runs, so more never helps; ``--jobs 100000`` spawned processes
until the command was killed."""

KERNEL_TRANSPORT = "ipc"
"""How grid kernels and their manager connect: Unix sockets beside the connection file, no TCP port."""

_worker_fork_socket: list[str] = []
"""The socket of the fork server this worker's kernels come from (empty outside workers)."""


@dataclass(frozen=True)
class ExecutionOutcome:
    """What papermill left: the executed notebook (None if none was written) and an error line."""

    notebook: nbformat.NotebookNode | None
    error: str | None


def execute_notebook_to(source: Path, target: Path, parameters: Mapping[str, object]) -> ExecutionOutcome:
    """Execute ``source`` with ``parameters`` into ``target``; never raises for a failing run.

    ``target`` must be an absolute path ending in ``.ipynb``. A failing notebook
    keeps papermill's error banner; the error is a one-line ``type: message``.
    """
    error: str | None = None
    socket_dir = tempfile.TemporaryDirectory(prefix="investigation-kernel.")
    try:
        papermill.execute_notebook(
            str(source.resolve()),
            str(target),
            parameters=dict(parameters) or None,
            kernel_name=KERNEL_NAME,
            cwd=str(source.resolve().parent),
            progress_bar=False,
            log_output=False,
            execution_timeout=CELL_TIMEOUT_S,
            start_timeout=KERNEL_START_TIMEOUT_S,
            config=_kernel_manager_config(socket_dir.name),
            kernel_manager_class=ForkingKernelManager,
        )
    except PapermillExecutionError as exc:
        error = f"In [{exc.exec_count}]: {exc.ename}: {_first_line(strip_color(str(exc.evalue)))}"
    except Exception as exc:  # the run's boundary: any failure becomes this run's error line
        error = f"{type(exc).__name__}: {_first_line(str(exc))}"
    finally:
        socket_dir.cleanup()
    notebook = _read_if_written(target)
    if notebook is not None:
        notebook = coalesce_streams(notebook)
        write_text_atomic(target, nbformat.writes(notebook) + "\n")
    return ExecutionOutcome(notebook, error)


def coalesce_streams(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` with consecutive outputs of one stream merged, as the kernel's flushes split them
    at random (``print(x)`` can arrive as ``x`` and ``\\n``), so every run records the same outputs."""
    merged, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
    return merged


def _kernel_manager_config(socket_dir: str) -> Config:
    """Kernels talk over Unix sockets (``KERNEL_TRANSPORT``), encrypted (CurveZMQ) when supported.

    Over TCP, jupyter_client picks five free ports and closes them; the kernel binds them
    a moment later, and any process that took one meanwhile (another worker's kernel or a
    notebook's server on an ephemeral port, other load on the machine) makes the kernel exit:
    "Kernel died before replying to kernel_info". The sockets go in ``socket_dir`` (one kernel's
    own directory): jupyter_client's default is ``kernel-ipc-N`` in the working directory, the
    same names for every kernel there, so two workers' kernels took each other's sockets.
    """
    config = Config()
    config.KernelManager.transport = KERNEL_TRANSPORT
    config.KernelManager.ip = os.path.join(socket_dir, "kernel")
    if _worker_fork_socket:
        config.ForkingKernelManager.fork_server = _worker_fork_socket[0]
    if zmq.has("curve") and KernelManager.class_traits().get("transport_encryption") is not None:
        config.KernelManager.transport_encryption = "auto"
    return config


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0] if lines else ""


def _read_if_written(path: Path) -> nbformat.NotebookNode | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    return nbformat.read(path, as_version=nbformat.NO_CONVERT)


def default_jobs() -> int:
    """One worker per CPU (2 when the count is unknown)."""
    return os.cpu_count() or 2


def map_in_workers(
    function: Callable[[Item], Result],
    items: Sequence[Item],
    jobs: int | None,
    progress: bool,
    description: str,
    cost: Callable[[Item], float] | None = None,
    preload: Sequence[str] = (),
    pool: ProcessPoolExecutor | None = None,
) -> list[Result]:
    """``[function(item) for item in items]`` in worker processes, with a progress bar on stderr.

    Workers are spawned (not forked) and export ``KERNEL_ENV`` before any
    kernel starts; the parent's environment stays untouched. With ``cost``
    (expected seconds of an item), the costliest items start first
    (longest-processing-time-first), so no long run is left for the end;
    the result order is always the order of ``items``. The workers start
    their kernels from one fork server that has imported ipykernel and the
    ``preload`` modules (see ``forkserver``). A ``pool`` from ``worker_pool``
    (started earlier) is used as it is; ``jobs`` and ``preload`` are then its own.
    """
    if not items:
        return []
    if pool is not None:
        return _map_in_pool(pool, function, items, progress, description, cost)
    workers = max(1, min(jobs or default_jobs(), len(items)))
    with _new_pool(workers, preload) as own_pool:
        return _map_in_pool(own_pool, function, items, progress, description, cost)


@contextlib.contextmanager
def worker_pool(jobs: int | None, preload: Sequence[str] = ()) -> Iterator[ProcessPoolExecutor]:
    """Workers (``jobs``, default one per CPU) that start now, for a later ``map_in_workers``.

    Starting them first lets their imports and the fork server's overlap whatever the
    caller does before it has the items (building the grid).

    Raises:
        SuiteInputError: ``jobs`` above ``MAX_JOBS`` (before any worker starts).
    """
    if jobs is not None and jobs > MAX_JOBS:
        raise SuiteInputError("<command line>", "--jobs", f"must be at most {MAX_JOBS}, got {jobs}")
    workers = max(1, jobs or default_jobs())
    with _new_pool(workers, preload) as pool:
        for _ in range(workers):
            pool.submit(int)  # each submit to an idle-less pool spawns one more worker
        yield pool


@contextlib.contextmanager
def _new_pool(workers: int, preload: Sequence[str]) -> Iterator[ProcessPoolExecutor]:
    """Workers sharing one fork server, which starts first with the workers' environment.

    Without a server (the kernelspec's command cannot be forked) the workers start kernels normally.
    """
    server = ForkServer.for_kernel(KERNEL_NAME, preload, env={**os.environ, **KERNEL_ENV})
    fork_socket = "" if server is None else str(server.socket_path)
    context = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(fork_socket,)) as pool:
            yield pool
    finally:
        if server is not None:
            server.stop()


def _map_in_pool(
    pool: ProcessPoolExecutor,
    function: Callable[[Item], Result],
    items: Sequence[Item],
    progress: bool,
    description: str,
    cost: Callable[[Item], float] | None,
) -> list[Result]:
    results: dict[int, Result] = {}
    futures = {pool.submit(function, items[index]): index for index in _start_order(items, cost)}
    with tqdm(total=len(items), desc=description, unit="run", file=sys.stderr, disable=not progress) as bar:
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            bar.update()
    return [results[index] for index in range(len(items))]


def _start_order(items: Sequence[Item], cost: Callable[[Item], float] | None) -> list[int]:
    """Item indexes, costliest first (ties keep the item order); the item order without ``cost``."""
    if cost is None:
        return list(range(len(items)))
    return sorted(range(len(items)), key=lambda index: -cost(items[index]))


def _init_worker(fork_socket: str) -> None:
    os.environ.update(KERNEL_ENV)
    if fork_socket:
        _worker_fork_socket.append(fork_socket)
