"""A Starlette WebSocket seen through the route's `ServerSocket` protocol.

    socket = StarletteServerSocket(websocket, hidden_headers={"x-investigation-instance"})
    await backend.handle(socket)

It mirrors `SimulatedSocket` (investigation.simulate) so both runs can match:
once accepted, a reader task moves the client's messages into a queue and
notices the client leaving at once, so `connected` turns false when the client
goes, not only when the route next reads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from investigation.backend.route import ClientDisconnected

#: How many client messages wait for the route before the reader stops reading
#: (uvicorn then stops reading the socket: TCP back-pressure instead of memory).
INCOMING_QUEUE_SIZE = 32
ABNORMAL_CLOSURE = 1006


def lowered_headers(websocket: WebSocket, hidden: Collection[str] = ()) -> dict[str, str]:
    """Header names lower-cased; a repeated header keeps its first value (Starlette's `get`)."""
    headers: dict[str, str] = {}
    for name, value in websocket.headers.items():
        key = name.lower()
        if key not in hidden and key not in headers:
            headers[key] = value
    return headers


class StarletteServerSocket:
    """The route's ServerSocket over a real (or ASGI in-process) WebSocket."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        hidden_headers: Collection[str] = (),
        hidden_query: Collection[str] = (),
    ) -> None:
        self.headers: Mapping[str, str] = lowered_headers(websocket, hidden_headers)
        self.query: Mapping[str, str] = {
            name: value for name, value in websocket.query_params.items() if name not in hidden_query
        }
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self._websocket = websocket
        self._incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue(INCOMING_QUEUE_SIZE)
        self._reader: asyncio.Task[None] | None = None
        self._client_gone = False
        self._server_closed = False

    @property
    def connected(self) -> bool:
        return not self._client_gone and not self._server_closed

    def wire_subprotocol(self, subprotocol: str | None) -> str | None:
        """The subprotocol sent in the handshake response for the route's choice (the same here)."""
        return subprotocol

    async def accept(self, subprotocol: str | None) -> None:
        self.subprotocol = subprotocol
        try:
            await self._websocket.accept(subprotocol=self.wire_subprotocol(subprotocol))
        except (WebSocketDisconnect, OSError) as error:
            self._client_gone = True
            raise ClientDisconnected(ABNORMAL_CLOSURE) from error
        self._reader = asyncio.get_running_loop().create_task(self._read_client())

    async def _read_client(self) -> None:
        """Queue every client message; the disconnect message marks the client gone."""
        while True:
            try:
                message = await self._websocket.receive()
            except (RuntimeError, OSError):
                message = {"type": "websocket.disconnect", "code": ABNORMAL_CLOSURE}
            if message["type"] == "websocket.disconnect":
                self._client_gone = True
                await self._incoming.put(message)
                return
            await self._incoming.put(message)

    async def send_json(self, frame: dict[str, Any]) -> None:
        if not self.connected:
            raise ClientDisconnected(ABNORMAL_CLOSURE)
        try:
            await self._websocket.send_text(json.dumps(frame))
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            self._client_gone = True
            raise ClientDisconnected(ABNORMAL_CLOSURE) from error

    async def receive_text(self) -> str:
        """The next text message, like Starlette's `receive_text` that the original called.

        A binary frame has no "text" entry, so it raises KeyError exactly as
        `WebSocket.receive_text()` does in the original's stack; the route then
        treats it as an unhandled error after setup (1011 "Internal error").
        """
        message = await self._incoming.get()
        if message["type"] == "websocket.disconnect":
            raise ClientDisconnected(int(message.get("code") or ABNORMAL_CLOSURE))
        text = message.get("text")
        if text is None:
            raise KeyError("text")
        return str(text)

    async def close(self, code: int, reason: str) -> None:
        if self._client_gone:
            raise ClientDisconnected(ABNORMAL_CLOSURE)
        self._server_closed = True
        try:
            await self._websocket.close(code, reason)
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            self._client_gone = True
            raise ClientDisconnected(ABNORMAL_CLOSURE) from error
        self.close_code, self.close_reason = code, reason

    async def stop(self) -> None:
        """Stop reading from the client (the route is done with the connection)."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
