"""uvicorn around the app: `serve` for people, `running_server` for runs in one event loop.

    serve(load_profile("staging-e2e"), port=8765, announce=show)   # show("ws://127.0.0.1:8765/ws")

    async with running_server(app) as url:           # ephemeral loopback port
        ...                                          # connect to url

Nothing here prints: `serve` hands its URL to the caller's `announce` (the CLI
prints it). uvicorn's log lines name each WebSocket request with its query
string; `serve` logs them with the value of every parameter whose key decodes
to `token` (`token=`, `%74oken=`, `token%3D`) replaced by "<redacted>", so a
client that sends its token in the query leaves no whole token in the log.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import re
import socket
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from investigation.profiles import Profile
from investigation.wire.app import BACKEND_LOGGER_NAME, LOGGER_NAME, WS_PATH, build_app

LOOPBACK = "127.0.0.1"
#: Seconds the server waits for a client's close reply and for tasks on shutdown.
GRACEFUL_SHUTDOWN_S = 5.0
#: A query parameter in a logged request target: its key as sent, the first `=` (literal or
#: percent-encoded: Starlette decodes the pair, so `token%3D...` is a key and value joined), and
#: its value up to the next `&` or blank; a `"` right before that is the log format's, not the value's.
QUERY_PAIR = re.compile(r'(?<=[?&])(?P<key>[^&=\s]*?)(?P<equals>=|%3[dD])(?P<value>[^&\s]*?)(?="?(?:[&\s]|$))')
REDACTED = "<redacted>"

Announce = Callable[[str], None]


def _redact_token_pair(pair: re.Match[str]) -> str:
    """A query pair whose key decodes to `token` (any case, blanks around) with "<redacted>" as its value."""
    if urllib.parse.unquote_plus(pair["key"]).strip().lower() != "token":
        return pair[0]
    return f"{pair['key']}{pair['equals']}{REDACTED}"


class TokenQueryRedactor(logging.Filter):
    """Replaces the value of every query parameter whose key decodes to `token` with "<redacted>".

    Keys are judged percent-decoded, as Starlette reads them: `?%74oken=` is the
    backend's query token (spec 3.1) and `?token%3D<JWT>` carries a whole token too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = QUERY_PAIR.sub(_redact_token_pair, message)
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def redacting_log_config() -> dict[str, Any]:
    """uvicorn's default logging plus the harness logger and the backends' warnings, every handler
    passing records through `TokenQueryRedactor`."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_tokens"] = {"()": TokenQueryRedactor}
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), "redact_tokens"]
    config["loggers"][LOGGER_NAME] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # The backend's warnings and errors only: its INFO lines (several per connection) cost a
    # served connection about a tenth of its handshake rate in an A/B run of bench_wire.
    config["loggers"][BACKEND_LOGGER_NAME] = {"level": "WARNING"}
    return config


def server_config(app: Any, host: str = LOOPBACK, port: int = 0, **overrides: Any) -> uvicorn.Config:
    """uvicorn's settings for this app: no protocol-level pings, no access log, logging left alone.

    The protocol keep-alive pings are off because the route runs its own
    heartbeat (spec step 11) and, on a virtual clock, uvicorn's pings would be
    timers that chop virtual time into 20 s slices.
    """
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "ws": "websockets-sansio",
        "http": "h11",
        "lifespan": "on",
        "ws_ping_interval": None,
        "ws_ping_timeout": None,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
    }
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


def ws_url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"ws://{shown}:{port}{WS_PATH}"


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), TCP_NODELAY for its connections; port 0 picks a free one."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is
    # IPPROTO_TCP, and with Nagle on, small frames wait for delayed ACKs (~40 ms).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except (OSError, OverflowError):  # OverflowError: a port outside 0..65535
        listener.close()
        raise
    listener.setblocking(False)
    return listener


@contextlib.asynccontextmanager
async def running_server(app: Any, host: str = LOOPBACK, port: int = 0) -> AsyncIterator[str]:
    """Serve `app` in the running event loop; yields its ws:// URL; shuts it down on exit.

    Runs uvicorn's startup and shutdown without its main loop (a 0.1 s tick that
    only refreshes the Date header and watches for signals), so on a virtual
    clock no timer advances time except the run's own.
    """
    config = server_config(app, host, port)
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    listener = bound_socket(host, port)
    sockets = [listener]
    try:
        await server.startup(sockets=sockets)
        yield ws_url(host, listener.getsockname()[1])
    finally:
        if server.started:
            await server.shutdown(sockets=sockets)
        listener.close()


class _AnnouncingServer(uvicorn.Server):
    """A uvicorn server that reports its URL once it accepts connections."""

    def __init__(self, config: uvicorn.Config, announce: Announce | None, host: str) -> None:
        super().__init__(config)
        self._announce = announce
        self._host = host

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and sockets and self._announce is not None:
            self._announce(ws_url(self._host, sockets[0].getsockname()[1]))


def serve_app(
    app: Any,
    host: str = LOOPBACK,
    port: int = 8765,
    announce: Announce | None = None,
) -> None:
    """Serve any ASGI app with these settings until interrupted; `announce` gets the URL once it accepts."""
    config = server_config(app, host, port, log_config=redacting_log_config(), log_level="info")
    server = _AnnouncingServer(config, announce, host)
    listener = bound_socket(host, port)
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()


def serve(
    profile: Profile,
    host: str = LOOPBACK,
    port: int = 8765,
    variant: str = "original",
    announce: Announce | None = None,
) -> None:
    """Serve the profile's backend at ws://HOST:PORT/ws on the real clock until interrupted.

    The app accepts `?client=NAME` connections as the profile's clients (the
    profile-client shim, investigation.wire.profile_client). `announce`
    receives the URL once the server accepts connections (port 0: the port
    picked); uvicorn's log lines and the backend's own warnings and errors go
    to stderr, tokens redacted.
    """
    serve_app(build_app(profile, variant, profile_clients=True, forward_backend_logs=True), host, port, announce)
