"""The kernel command under a fork server: ``python -S forklauncher.py SOCKET COMMAND_JSON``.

Asks the fork server (see ``forkserver.py``) for a kernel forked from it, passes
signals on to it and exits when it exits. When the server declines or cannot be
reached, it replaces itself with ``COMMAND_JSON`` (the kernelspec command), so
the kernel starts the ordinary way. Standard library only: it runs without site.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
"""What jupyter_client sends to interrupt, stop or kill a kernel."""


def forked_kernel_pid(socket_path: str, command: list[str]) -> int | None:
    """The pid of a kernel the server forked for ``command``; None when it declines or is absent."""
    request = {"command": command, "cwd": os.getcwd(), "env": dict(os.environ)}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(socket_path)
            connection.sendall(json.dumps(request).encode())
            connection.shutdown(socket.SHUT_WR)
            reply = b""
            while chunk := connection.recv(4096):
                reply += chunk
    except OSError:
        return None
    return json.loads(reply or b"{}").get("pid")


def wait_for(pid: int) -> None:
    """Block until the (non-child) process ``pid`` exits, passing signals on to its group."""
    def forward(signum: int, frame: object) -> None:
        try:
            os.killpg(pid, signum)
        except OSError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    while not select.select([pidfd], [], [])[0]:
        pass


def main() -> None:
    socket_path, command = sys.argv[1], json.loads(sys.argv[2])
    pid = forked_kernel_pid(socket_path, command)
    if pid is None:
        os.execv(command[0], command)
    wait_for(pid)


if __name__ == "__main__":
    main()
