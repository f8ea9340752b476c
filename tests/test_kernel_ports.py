"""Grid kernels start whatever other processes bind meanwhile.

Over TCP, jupyter_client picks a kernel's ports, closes them, and the kernel binds them
later; a process that takes one in between makes the kernel exit before it answers
kernel_info. Each test here plays that process by holding the port the kernel is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from traitlets.config import Config

from investigation.suite import execute
from investigation.suite.config import KERNEL_ENV, KERNEL_NAME
from investigation.suite.forkserver import ForkingKernelManager, ForkServer


@contextlib.contextmanager
def port_taken_by_another_process() -> Iterator[int]:
    """A loopback port that is listened on (as a notebook's server on port 0 would) inside the block."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


@contextlib.contextmanager
def worker_fork_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a grid worker has: ``KERNEL_ENV`` exported and a fork server (started here, so capfd sees its kernels)."""
    for name, value in KERNEL_ENV.items():
        monkeypatch.setenv(name, value)
    server = ForkServer.for_kernel(KERNEL_NAME)
    assert server is not None, "the kernelspec's command is not this python running ipykernel_launcher"
    monkeypatch.setattr(execute, "_worker_fork_socket", [str(server.socket_path)])
    try:
        yield
    finally:
        server.stop()


async def start_error(config: Config, shell_port: int) -> str | None:
    """The error of starting a kernel whose shell port is ``shell_port``; None when it answers kernel_info."""
    manager = ForkingKernelManager(kernel_name=KERNEL_NAME, config=config)
    manager.cache_ports = False  # else jupyter_client picks every port anew
    manager.shell_port = shell_port  # 0: jupyter_client picks it
    await manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        return None
    except RuntimeError as exc:
        return str(exc)
    finally:
        client.stop_channels()
        await manager.shutdown_kernel()


def test_grid_kernels_use_no_tcp_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with worker_fork_server(monkeypatch), port_taken_by_another_process() as taken:
        error = asyncio.run(start_error(execute._kernel_manager_config(str(tmp_path)), taken))
    assert error is None


def test_a_tcp_kernel_whose_port_was_taken_dies_and_says_why(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with worker_fork_server(monkeypatch), port_taken_by_another_process() as taken:
        config = execute._kernel_manager_config(str(tmp_path))
        config.KernelManager.transport = "tcp"
        config.KernelManager.ip = "127.0.0.1"
        error = asyncio.run(start_error(config, taken))
    kernel_stderr = capfd.readouterr().err
    assert error == "Kernel died before replying to kernel_info"
    assert f"Address already in use (addr='tcp://127.0.0.1:{taken}')" in kernel_stderr
    assert "forkserver.py" in kernel_stderr  # the forked kernel's own traceback, not a fresh kernel's


async def two_kernel_errors(first_dir: Path, second_dir: Path) -> list[str | None]:
    """Start two kernels at once, as two grid workers do, in the same working directory."""
    configs = [execute._kernel_manager_config(str(directory)) for directory in (first_dir, second_dir)]
    return list(await asyncio.gather(*(start_error(config, 0) for config in configs)))


def test_two_kernels_started_at_once_keep_their_own_sockets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    with worker_fork_server(monkeypatch):
        errors = asyncio.run(two_kernel_errors(tmp_path / "first", tmp_path / "second"))
    assert errors == [None, None]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first", "second"]  # no socket in the cwd
