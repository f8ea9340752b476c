"""A kernel forked from the fork server is indistinguishable, to a notebook, from a fresh one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from investigation.suite import execute
from investigation.suite.config import KERNEL_ENV
from investigation.suite.forkserver import ForkServer

PROBE = """\
import os, sys, signal
print(os.getcwd())
print(sys.argv[0].endswith("ipykernel_launcher.py"), sys.path)
print(os.environ.get("PROBE_VALUE"), os.environ.get("PYTHONHASHSEED"), "JPY_PARENT_PID" in os.environ)
print(hash("fixed by PYTHONHASHSEED"), os.getpgid(0) == os.getpid())
print("matplotlib.pyplot" in sys.modules)
"""


def probe_outputs(tmp_path: Path, name: str) -> list[str]:
    source = tmp_path / "work" / "probe.ipynb"
    source.parent.mkdir(exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(PROBE)], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), source)
    outcome = execute.execute_notebook_to(source, tmp_path / f"{name}.ipynb", {})
    assert outcome.error is None and outcome.notebook is not None
    return [output["text"] for output in outcome.notebook.cells[0].outputs]


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {**KERNEL_ENV, "PROBE_VALUE": "from-the-worker"}.items():
        monkeypatch.setenv(name, value)
    yield


@contextlib.contextmanager
def fork_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ForkServer]:
    """A server for this worker (started in the test body: pytest's own variables differ per phase)."""
    server = ForkServer.start(("matplotlib.pyplot",))
    monkeypatch.setattr(execute, "_worker_fork_socket", [str(server.socket_path)])
    try:
        yield server
    finally:
        server.stop()
        execute._worker_fork_socket.clear()


def test_forked_kernel_sees_what_a_fresh_kernel_sees(
    tmp_path: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fork_server(monkeypatch):
        forked = probe_outputs(tmp_path, "forked")
    fresh = probe_outputs(tmp_path, "fresh")
    assert forked[0].splitlines()[0] == str(tmp_path / "work")
    assert forked[0].splitlines()[1].startswith("True [")
    assert forked[0].splitlines()[2] == "from-the-worker 0 True"
    assert forked[0].splitlines()[1:4] == fresh[0].splitlines()[1:4]  # argv, sys.path, env, hash seed, own group
    assert forked[0].splitlines()[4] == "True" and fresh[0].splitlines()[4] == "False"  # only the import differs


def test_environment_changed_after_the_server_started_gives_a_fresh_kernel(
    tmp_path: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fork_server(monkeypatch):
        monkeypatch.setenv("PROBE_VALUE", "changed-later")
        lines = probe_outputs(tmp_path, "fallback")[0].splitlines()
    assert lines[2] == "changed-later 0 True"
    assert lines[4] == "False"  # not forked: the preloaded module is absent


def test_server_exits_and_cleans_up_when_its_owner_closes_stdin(kernel_env: None) -> None:
    server = ForkServer.start()
    assert server.socket_path.exists()
    server.stop()
    assert server.process.returncode == 0
    assert not server.socket_path.parent.exists()
    assert os.path.basename(server.socket_path) == "forkserver.sock"
