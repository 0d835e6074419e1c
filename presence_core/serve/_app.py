"""The ASGI application: WebSocket upgrades on ``/`` to the server reducer, and two HTTP routes.

RULES OF THIS MODULE

* One :class:`~presence_core.client.ServerHost` drives the reducer: every WebSocket is a
  transport of that host, and the host's one timer ticks the reducer at ``next_deadline()``.
  The timer runs in the lifespan task when the ASGI server sends lifespan events, and otherwise
  in the task of any open WebSocket (the host hands it over as sockets come and go).
* Frames go in raw (``receive_frame``), so a frame the codec refuses gets the reducer's NACK or
  ERROR.
* Each socket has the format its upgrade's ``format`` names: ``msgpack`` frames go out as
  binary WebSocket messages, ``json`` ones as text.  Every frame a socket is sent is in its
  format, the answer to a refused connect included, so a client can always parse the answer
  to what it asked.  A socket whose format the app cannot write (``format=xml``, or msgpack
  when it is not installed) is written in JSON, so the reducer's refusal of that format
  (40000) reaches its client readably.
* A broadcast is one ``Deliver`` whose recipients are performed one after another; the
  :class:`_Encoder` keeps, per format, the last frame it encoded, so each broadcast is encoded
  once per format in use and the same string or bytes are written to every recipient.
* A frame that cannot be encoded in a socket's format (a value that only a caller-built
  message can hold) is logged and that socket closed, so the other recipients still get it.
* Each socket has one writer task and a bounded queue, so its frames go out in order and a slow
  reader never blocks the reducer or the other sockets.  A socket whose queue is full is sent
  DISCONNECTED with error 80020 (Ably's code for a subscriber too slow for its message rate)
  and closed; its client resumes, and the SYNC of its re-attach rebuilds its presence view.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl

import anyio
import anyio.abc

from presence_core._codec import encode_text
from presence_core._errors import UsageError
from presence_core._msgpack import FORMAT as MSGPACK, available as msgpack_available, encode_msgpack
from presence_core._wire import ErrorInfo, ProtocolAction, ProtocolMessage
from presence_core.client import ServerHost
from presence_core.serve._rest import Rest
from presence_core.server import Server

__all__ = ["PresenceApp", "OVERFLOW"]

_log = logging.getLogger("presence_core.serve")

#: ASGI's connection scope, and its two channels.
Scope: TypeAlias = Mapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send: TypeAlias = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: A frame as a WebSocket carries it: text for JSON, bytes for a binary format.
Frame: TypeAlias = str | bytes

#: The serializer of each format the app writes.
_SERIALIZERS: Final[Mapping[str, Callable[[ProtocolMessage], Frame]]] = {
    "json": encode_text,
    MSGPACK: encode_msgpack,
}

#: What a client whose send queue overflowed is told before its socket closes.
OVERFLOW: Final = ErrorInfo(
    code=80020, status_code=503, message="Connection too slow: its send queue overflowed"
)


def _socket_format(params: Mapping[str, str]) -> str:
    """The format a socket's frames are written in, from its upgrade's query parameters."""
    fmt = params.get("format", "json")
    if fmt == MSGPACK and msgpack_available():
        return fmt
    return "json"


class _Encoder:
    """Encodes each delivered frame once per format, shared by that format's recipients.

    A broadcast is one message handed to :meth:`frame` once per recipient, one after another.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, tuple[ProtocolMessage, Frame]] = {}

    def frame(self, message: ProtocolMessage, fmt: str) -> Frame:
        """``message`` encoded in ``fmt``; the same object while the message is the same.

        Raises:
            UsageError: ``message`` cannot be encoded in ``fmt``.
        """
        last = self._last.get(fmt)
        if last is not None and last[0] is message:
            return last[1]
        encoded = _SERIALIZERS[fmt](message)
        self._last[fmt] = (message, encoded)
        return encoded


class _SocketPeer:
    """The server end of one WebSocket: its format, a bounded queue of frames and its writer."""

    __slots__ = ("_closing", "_encoder", "_format", "_limit", "_queue", "_wake")

    def __init__(self, encoder: _Encoder, limit: int, fmt: str) -> None:
        self._encoder = encoder
        self._limit = limit
        self._format = fmt
        self._queue: deque[Frame] = deque()
        self._closing: int | None = None  # the close code, once the socket is to close
        self._wake = anyio.Event()

    def deliver(self, message: ProtocolMessage) -> None:
        """Queue one frame; on overflow, replace the queue with DISCONNECTED and close."""
        if self._closing is not None:
            return
        if len(self._queue) >= self._limit:
            _log.warning("send queue overflowed (%d frames): disconnecting", self._limit)
            self._queue.clear()
            frame = ProtocolMessage(action=ProtocolAction.DISCONNECTED, error=OVERFLOW)
            self._queue.append(_SERIALIZERS[self._format](frame))
            self._closing = 1008
        else:
            try:
                encoded = self._encoder.frame(message, self._format)
            except UsageError as exc:
                _log.error("cannot send a frame as %s (%s): closing the socket", self._format, exc)
                self.abort()
                return
            self._queue.append(encoded)
        self._wake.set()

    def disconnect(self, reason: ErrorInfo | None) -> None:
        """Close after the queued frames."""
        if self._closing is None:
            self._closing = 1000
            self._wake.set()

    def abort(self) -> None:
        """Close at once, dropping the queued frames."""
        self._queue.clear()
        self._closing = 1011
        self._wake.set()

    async def write(self, send: Send, done: anyio.CancelScope) -> None:
        """Write queued frames in order until the socket is to close; then close it."""
        queue = self._queue
        while True:
            while queue:
                frame = queue.popleft()
                if isinstance(frame, str):
                    await send({"type": "websocket.send", "text": frame})
                else:
                    await send({"type": "websocket.send", "bytes": frame})
            if self._closing is not None:
                await send({"type": "websocket.close", "code": self._closing})
                done.cancel()
                return
            self._wake = anyio.Event()
            await self._wake.wait()


class PresenceApp:
    """An ASGI application serving a presence :class:`~presence_core.server.Server`.

    * WebSocket on ``/`` (the app's root): Ably protocol v6, the query parameters of the
      upgrade as :meth:`Server.connect` reads them.
    * ``GET /channels/{channel}/presence``: the channel's members, as Ably's REST presence
      endpoint lists them (RSP3), for ably-js's ``Rest`` client.
    * ``GET /health``: whether the server is up, with its counters.

    Args:
        server: The reducer to serve (its :class:`ServerHost` is found or made), or a host.
        send_queue: Frames queued per socket before it counts as too slow and is
            disconnected (80020).  1,000 frames is a full SYNC of a 100,000-member room at
            the default page size, or minutes of a busy room's presence traffic.
    """

    def __init__(self, server: Server | ServerHost, *, send_queue: int = 1_000) -> None:
        self._host = server if isinstance(server, ServerHost) else ServerHost.of(server)
        self._encoder = _Encoder()
        self._send_queue = send_queue
        self._rest = Rest(self._host)
        self._sockets = 0
        self._idle = anyio.Event()
        self._idle.set()
        self._stopping = False

    @property
    def host(self) -> ServerHost:
        """The host that drives the reducer."""
        return self._host

    @property
    def server(self) -> Server:
        """The reducer."""
        return self._host.server

    @asynccontextmanager
    async def running(self) -> AsyncIterator[PresenceApp]:
        """Run the reducer's timer for as long as the context lasts.

        Use it as (part of) a Starlette or FastAPI ``lifespan`` when the app is mounted in
        one: a mounted app gets no lifespan events of its own.
        """
        async with anyio.create_task_group() as group:
            self._host.run_in(group)
            try:
                yield self
            finally:
                self._host.release(group)
                group.cancel_scope.cancel()

    def shutdown(self) -> None:
        """Tell every client DISCONNECTED (80003) and close its socket; refuse new ones."""
        self._stopping = True
        self._host.shutdown()

    async def closed(self) -> None:
        """Wait until no WebSocket is open."""
        await self._idle.wait()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        kind = scope["type"]
        if kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "http":
            await self._rest.handle(_route(scope), scope, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with self.running():
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
        await send({"type": "lifespan.shutdown.complete"})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = await receive()
        if event["type"] != "websocket.connect":
            return
        if _route(scope) != "/" or self._stopping:
            await send({"type": "websocket.close", "code": 1008})  # answered with HTTP 403
            return
        await send({"type": "websocket.accept"})
        query = scope.get("query_string", b"").decode("latin-1")
        params = dict(parse_qsl(query, keep_blank_values=True))
        host = self._host
        peer = _SocketPeer(self._encoder, self._send_queue, _socket_format(params))
        self._sockets += 1
        self._idle = anyio.Event()
        try:
            async with anyio.create_task_group() as group:
                host.run_in(group)
                tid = host.open(params, peer)
                try:
                    group.start_soon(peer.write, send, group.cancel_scope)
                    await self._read(receive, tid)
                    group.cancel_scope.cancel()
                finally:
                    host.closed(tid)
                    host.release(group)
        finally:
            self._sockets -= 1
            if not self._sockets:
                self._idle.set()

    async def _read(self, receive: Receive, tid: int) -> None:
        host = self._host
        while True:
            event = await receive()
            kind = event["type"]
            if kind == "websocket.receive":
                frame = event.get("text")
                if frame is None:
                    frame = event.get("bytes")
                if frame is not None:
                    host.receive_frame(tid, frame)
            elif kind == "websocket.disconnect":
                return


def _route(scope: Scope) -> str:
    """The path below the app's mount point (ASGI servers and routers differ on which they send)."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"
