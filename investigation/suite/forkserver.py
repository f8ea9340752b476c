"""Kernels forked from a warm process: the kernel start and heavy imports are paid once per worker.

Usage::

    server = ForkServer.for_kernel("python3", preload=("matplotlib.pyplot",))  # None: no fork possible
    config = Config(); config.ForkingKernelManager.fork_server = str(server.socket_path)
    papermill.execute_notebook(..., kernel_manager_class=ForkingKernelManager, config=config)
    server.stop()

The fork server is a Python process started with the worker's environment and
the kernelspec's interpreter and interpreter flags (``python -Xfrozen_modules=off``
as ``ipykernel install`` writes it), so ``sys.flags`` and ``sys._xoptions`` are
the kernel's. It does what ``python -m ipykernel_launcher`` does before the kernel starts
(drops the current directory from ``sys.path``, imports ipykernel) and imports
the ``preload`` modules; it starts no thread. For each kernel, jupyter_client
runs the small launcher script (``forklauncher.py``) instead of the kernelspec's
command. The launcher sends the command, working directory and environment to
the server, which forks: the child changes to the directory, takes the
environment, sets ``sys.argv`` and ``sys.orig_argv`` to the kernel command's and
runs the ipykernel app, exactly as a fresh kernel would, minus
the interpreter start and the imports. The launcher waits for the child and
passes signals on, so jupyter_client's interrupt, shutdown and kill work.

Whenever a fork would not be exactly a fresh kernel (a command that does not
start with the server's own ``python FLAGS -m ipykernel_launcher``, an
environment that differs from the server's in anything but ``JPY_*``, no
server), the launcher runs the kernelspec command itself. No server is started
for a kernelspec whose command is not this interpreter running ``ipykernel_launcher``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager, KernelManager
from traitlets import Unicode

LAUNCHER = Path(__file__).resolve().with_name("forklauncher.py")
SOCKET_NAME = "forkserver.sock"
PER_KERNEL_ENV_PREFIX = "JPY_"
"""Environment variables jupyter_client sets per kernel; read by ipykernel after the fork."""
KERNEL_MODULE = "ipykernel_launcher"
NOT_A_FLAG = frozenset({"-", "-c", "-m", "-X", "-W", "--check-hash-based-pycs"})
"""Interpreter options that end the options or take their value from the next word."""
REAP_INTERVAL_S = 1.0
STOP_TIMEOUT_S = 120.0
"""How long ``stop`` waits for the server; it reads stdin only after its imports, which took
35 s at a load of 10 on 2 cores (the former 5 s left it running, and its Popen with it)."""
IMPORT_TIME_TRAITS = (("parent_handle", "JPY_PARENT_PID"), ("interrupt", "JPY_INTERRUPT_EVENT"))
"""IPKernelApp traits whose defaults come from the environment when ipykernel is imported."""


class ForkingKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels are launched through a fork server (``fork_server`` socket)."""

    fork_server = Unicode("", config=True, help="Unix socket of the fork server; empty: launch normally")

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        if not self.fork_server:
            return command
        return [sys.executable, "-S", str(LAUNCHER), self.fork_server, json.dumps(command)]


@dataclass
class ForkServer:
    """A running fork server; it exits when its stdin closes (``stop`` or the owner's exit)."""

    process: subprocess.Popen[bytes]
    socket_path: Path

    @classmethod
    def for_kernel(
        cls, kernel_name: str, preload: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> ForkServer | None:
        """A server for the kernels of ``kernel_name``; None when its command cannot be forked."""
        interpreter = kernel_interpreter(KernelManager(kernel_name=kernel_name).format_kernel_cmd())
        if interpreter is None or interpreter[0] != sys.executable:
            return None
        return cls.start(interpreter, preload, env)

    @classmethod
    def start(
        cls, interpreter: Sequence[str], preload: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> ForkServer:
        """Start the server as ``interpreter`` (this python and flags) with ``env`` (default: this process's).

        It listens before this returns. Only kernels launched as ``interpreter -m
        ipykernel_launcher`` with exactly this environment (but ``JPY_*``) are forked.
        """
        directory = Path(tempfile.mkdtemp(prefix="investigation-forkserver."))
        socket_path = directory / SOCKET_NAME
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(socket_path))
        listener.listen(16)
        code = "from investigation.suite.forkserver import serve; serve()"
        process = subprocess.Popen(
            [*interpreter, "-c", code, str(listener.fileno()), str(directory), json.dumps(list(interpreter)), *preload],
            stdin=subprocess.PIPE,
            pass_fds=(listener.fileno(),),
            env=None if env is None else dict(env),
        )
        listener.close()
        return cls(process, socket_path)

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def kernel_interpreter(command: Sequence[str]) -> list[str] | None:
    """``[python, *flags]`` of a ``python FLAGS -m ipykernel_launcher ...`` command; None for another command.

    Every flag must be one word (``-Xfrozen_modules=off``, ``-E``), see ``NOT_A_FLAG``.
    """
    words = list(command)
    for index in range(1, len(words) - 1):
        if words[index : index + 2] == ["-m", KERNEL_MODULE]:
            flags = words[1:index]
            one_word_flags = all(flag.startswith("-") and flag not in NOT_A_FLAG for flag in flags)
            return words[:index] if one_word_flags else None
    return None


def serve() -> None:
    """The server's main (``sys.argv``: listening fd, its directory, its interpreter as JSON, preload modules)."""
    listener = socket.socket(fileno=int(sys.argv[1]))
    directory = Path(sys.argv[2])
    kernel_start = [*json.loads(sys.argv[3]), "-m", KERNEL_MODULE]
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]  # as ipykernel_launcher does; the kernel app puts it back
    importlib.import_module("ipykernel.kernelapp")
    for name in sys.argv[4:]:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    startup_env = dict(os.environ)
    children: set[int] = set()
    try:
        _accept_until_stdin_closes(listener, kernel_start, startup_env, children)
    finally:
        _reap(children)
        for pid in children:  # still running, so the pid is still theirs
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGTERM)
        shutil.rmtree(directory, ignore_errors=True)


def _accept_until_stdin_closes(
    listener: socket.socket, kernel_start: list[str], startup_env: dict[str, str], children: set[int]
) -> None:
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(sys.stdin.buffer, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select(timeout=REAP_INTERVAL_S):
            if key.fileobj is not listener:
                if not sys.stdin.buffer.read1(4096):
                    return
                continue
            connection, _ = listener.accept()
            with connection:
                pid = _serve_one(connection, listener, kernel_start, startup_env)
            if pid is not None:
                children.add(pid)
        _reap(children)


def _reap(children: set[int]) -> None:
    """Collect the exit status of every kernel that has ended; drop it from ``children``."""
    for pid in sorted(children):
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                continue
        children.discard(pid)


def _serve_one(
    connection: socket.socket, listener: socket.socket, kernel_start: list[str], startup_env: dict[str, str]
) -> int | None:
    request = json.loads(_read_all(connection))
    command, env = request["command"], request["env"]
    if not _fork_is_exact(command, env, kernel_start, startup_env):
        connection.sendall(b'{"pid": null}')
        return None
    pid = os.fork()
    if pid == 0:
        listener.close()
        _run_kernel(connection, command, len(kernel_start), request["cwd"], env)
    connection.sendall(json.dumps({"pid": pid}).encode())
    return pid


def _fork_is_exact(
    command: list[str], env: dict[str, str], kernel_start: list[str], startup_env: dict[str, str]
) -> bool:
    """``kernel_start``: the server's own interpreter and flags, then ``-m ipykernel_launcher``."""

    def fixed(variables: dict[str, str]) -> dict[str, str]:
        return {name: value for name, value in variables.items() if not name.startswith(PER_KERNEL_ENV_PREFIX)}

    same_start = command[: len(kernel_start)] == kernel_start
    return same_start and fixed(env) == fixed(startup_env) and threading.active_count() == 1


def _run_kernel(connection: socket.socket, command: list[str], start_length: int, cwd: str, env: dict[str, str]) -> None:
    """In the forked child: become the kernel a fresh ``command`` would be.

    The first ``start_length`` words of ``command`` are the server's own (``python FLAGS -m ipykernel_launcher``).
    """
    status = 1
    arguments = command[start_length:]
    try:
        connection.close()
        os.setsid()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        from ipykernel import kernelapp

        launcher_spec = importlib.util.find_spec(KERNEL_MODULE)
        sys.argv = [launcher_spec.origin if launcher_spec and launcher_spec.origin else KERNEL_MODULE, *arguments]
        sys.orig_argv = list(command)
        # the app read JPY_* into trait defaults when the server imported it; give the kernel's own values
        per_kernel = [f"--IPKernelApp.{trait}={int(env.get(name) or 0)}" for trait, name in IMPORT_TIME_TRAITS]
        kernelapp.launch_new_instance(argv=[*arguments, *per_kernel])
        status = 0
    except SystemExit as exit_request:
        status = exit_request.code if isinstance(exit_request.code, int) else int(exit_request.code is not None)
    except BaseException:
        sys.excepthook(*sys.exc_info())  # on stderr, as a fresh kernel's interpreter shows it
    finally:
        os._exit(status)


def _read_all(connection: socket.socket) -> bytes:
    chunks = []
    while chunk := connection.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
