"""Drive the ASGI app directly, without sockets: thousands of connections a second.

    outcome = await asgi_connection(app, headers=[(b"authorization", b"Bearer x")],
                                    messages=[{"type": "websocket.receive", "text": "{}"}])
    outcome.close_code, outcome.frames, outcome.app_error

What the app sends is recorded as a client would see it; an exception that
escapes the app (which a server would log as "Exception in ASGI application")
is kept in `app_error` instead of being raised.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from investigation.wire.app import WS_PATH

#: Virtual seconds after which a connection that is still running is cut off.
CONNECTION_DEADLINE_S = 600.0


@dataclass
class AsgiOutcome:
    """What the client side saw of one in-process connection."""

    accepted: bool = False
    subprotocol: str | None = None
    frames: list[Any] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str | None = None
    client_left: bool = False
    app_error: BaseException | None = None
    timed_out: bool = False


def websocket_scope(
    headers: Sequence[tuple[bytes, bytes]], query_string: bytes, subprotocols: Sequence[str]
) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "server": ("127.0.0.1", 8765),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": WS_PATH,
        "raw_path": WS_PATH.encode(),
        "query_string": query_string,
        "headers": list(headers),
        "subprotocols": list(subprotocols),
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }


class _Client:
    """The client end: feeds the app's `receive`, records its `send`."""

    def __init__(self, messages: Sequence[dict[str, Any]], hold_s: float) -> None:
        self.outcome = AsgiOutcome()
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._incoming.put_nowait({"type": "websocket.connect"})
        self._messages = list(messages)
        self._hold_s = hold_s
        self._driver: asyncio.Task[None] | None = None
        self._finished = False

    async def receive(self) -> dict[str, Any]:
        return await self._incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self._finished:
            raise OSError("connection closed")
        if kind == "websocket.accept":
            self.outcome.accepted = True
            self.outcome.subprotocol = message.get("subprotocol")
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        elif kind == "websocket.send":
            text = message.get("text")
            self.outcome.frames.append(json.loads(text) if text is not None else message.get("bytes"))
        elif kind == "websocket.close":
            self.outcome.close_code = int(message.get("code", 1000))
            self.outcome.close_reason = message.get("reason") or ""
            self._finish({"type": "websocket.disconnect", "code": self.outcome.close_code})
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _drive(self) -> None:
        for message in self._messages:
            self._incoming.put_nowait(message)
        await asyncio.sleep(self._hold_s)
        if not self._finished:
            self.outcome.client_left = True
            self._finish({"type": "websocket.disconnect", "code": 1000})

    def _finish(self, disconnect: dict[str, Any]) -> None:
        self._finished = True
        self._incoming.put_nowait(disconnect)

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)


async def asgi_connection(
    app: Any,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    subprotocols: Sequence[str] = (),
    messages: Sequence[dict[str, Any]] = (),
    hold_s: float = 5.0,
) -> AsgiOutcome:
    """One connection through `app`: messages sent right after accept, the client leaves after `hold_s`."""
    client = _Client(messages, hold_s)
    scope = websocket_scope(headers, query_string, subprotocols)
    try:
        await asyncio.wait_for(app(scope, client.receive, client.send), timeout=CONNECTION_DEADLINE_S)
    except TimeoutError:
        client.outcome.timed_out = True
    except Exception as error:
        client.outcome.app_error = error
    finally:
        await client.stop()
    return client.outcome
