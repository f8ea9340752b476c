"""A kernel forked from the fork server is indistinguishable, to a notebook, from a fresh one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager
from nbformat.v4 import new_code_cell, new_notebook

from investigation.suite import execute
from investigation.suite.config import KERNEL_ENV, KERNEL_NAME
from investigation.suite.forkserver import ForkServer, kernel_interpreter

PROBE = """\
import os, sys, signal
print(os.getcwd())
print(sys.argv[0].endswith("ipykernel_launcher.py"), sys.path)
print(os.environ.get("PROBE_VALUE"), os.environ.get("PYTHONHASHSEED"), "JPY_PARENT_PID" in os.environ)
print(hash("fixed by PYTHONHASHSEED"), os.getpgid(0) == os.getpid())
print("matplotlib.pyplot" in sys.modules)
print([word for word in sys.orig_argv if not word.endswith(".json")], sys._xoptions, sys.flags)
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


def kernelspec_interpreter() -> list[str]:
    """The python and flags of the installed kernelspec (``-Xfrozen_modules=off`` in ``make install``'s venv)."""
    interpreter = kernel_interpreter(KernelManager(kernel_name=KERNEL_NAME).format_kernel_cmd())
    assert interpreter is not None
    return interpreter


def command_start(words: list[str]) -> str:
    """How the probe prints a command that starts with ``words``."""
    return str(words)[:-1] + ","


@contextlib.contextmanager
def fork_server(monkeypatch: pytest.MonkeyPatch, interpreter: list[str] | None = None) -> Iterator[ForkServer]:
    """A server for this worker (started in the test body: pytest's own variables differ per phase).

    By default the server the runner starts: the kernelspec's python and flags.
    """
    server = (
        ForkServer.for_kernel(KERNEL_NAME, ("matplotlib.pyplot",))
        if interpreter is None
        else ForkServer.start(interpreter, ("matplotlib.pyplot",))
    )
    assert server is not None, "the kernelspec's command is not this python running ipykernel_launcher"
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
    assert forked[0].splitlines()[5] == fresh[0].splitlines()[5]  # the kernel command, interpreter flags
    assert forked[0].splitlines()[5].startswith(command_start([*kernelspec_interpreter(), "-m", "ipykernel_launcher"]))


def test_a_server_with_other_interpreter_flags_gives_a_fresh_kernel(
    tmp_path: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    kernel_flags = kernelspec_interpreter()
    other_flags = [word for word in kernel_flags if word != "-Xfrozen_modules=off"]
    if other_flags == kernel_flags:
        other_flags.append("-Xfrozen_modules=off")
    with fork_server(monkeypatch, other_flags):
        lines = probe_outputs(tmp_path, "other-flags")[0].splitlines()
    assert lines[4] == "False"  # not forked: the preloaded module is absent
    assert lines[5].startswith(command_start([*kernel_flags, "-m", "ipykernel_launcher"]))  # the kernelspec's own


def test_environment_changed_after_the_server_started_gives_a_fresh_kernel(
    tmp_path: Path, kernel_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fork_server(monkeypatch):
        monkeypatch.setenv("PROBE_VALUE", "changed-later")
        lines = probe_outputs(tmp_path, "fallback")[0].splitlines()
    assert lines[2] == "changed-later 0 True"
    assert lines[4] == "False"  # not forked: the preloaded module is absent


@pytest.mark.parametrize(
    ("command", "interpreter"),
    [
        (
            ["/v/bin/python", "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{c}"],
            ["/v/bin/python", "-Xfrozen_modules=off"],
        ),
        (["/v/bin/python", "-m", "ipykernel_launcher", "-f", "{c}"], ["/v/bin/python"]),
        (["/v/bin/python", "-E", "-s", "-m", "ipykernel_launcher"], ["/v/bin/python", "-E", "-s"]),
        (["/v/bin/python", "-X", "frozen_modules=off", "-m", "ipykernel_launcher"], None),
        (["/v/bin/python", "-c", "pass", "-m", "ipykernel_launcher"], None),
        (["/usr/bin/env", "python", "-m", "ipykernel_launcher"], None),
        (["/v/bin/python", "-m", "other_launcher", "-f", "{c}"], None),
        (["R", "--slave", "-e", "IRkernel::main()"], None),
    ],
)
def test_only_a_python_with_one_word_flags_running_ipykernel_launcher_is_forked(
    command: list[str], interpreter: list[str] | None
) -> None:
    assert kernel_interpreter(command) == interpreter


def test_server_exits_and_cleans_up_when_its_owner_closes_stdin(kernel_env: None) -> None:
    server = ForkServer.start(kernelspec_interpreter())
    assert server.socket_path.exists()
    server.stop()
    assert server.process.returncode == 0
    assert not server.socket_path.parent.exists()
    assert os.path.basename(server.socket_path) == "forkserver.sock"
