"""Transports: what the client asks of one, and the WebSocket transport (wsproto over anyio).

A :class:`Connector` opens a :class:`Link` per ``OpenTransport`` command, with that command's
query parameters.  A link only moves frames: ``send`` queues one and never blocks, ``run``
hands every frame read to the client until the transport ends and says why it ended, and
``close`` ends it from this side.  The reducer decides everything else (retries, resumes,
timeouts), so a link never reconnects or times out on its own.

The WebSocket transport uses wsproto, a sans-IO WebSocket implementation, over anyio byte
streams: one code path for asyncio and trio, the framing done by a maintained library, and TLS
(``wss://``) from the standard :mod:`ssl` module through ``anyio.connect_tcp``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Mapping
from typing import Final, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import anyio.abc
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState as WsState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import ProtocolError as WsProtocolError

from presence_core._codec import decode, encode_text
from presence_core._errors import PresenceError, ProtocolError, UsageError
from presence_core._wire import ErrorInfo, ProtocolMessage
from presence_core.client._support import Mailbox, redacted

__all__ = ["TransportError", "Link", "Connector", "WebSocketConnector"]

_log = logging.getLogger("presence_core.client.websocket")

#: How long a link closed from this side waits for the peer's closing handshake (seconds).
CLOSE_WAIT: Final = 2.0
_READ_SIZE: Final = 65_536


class TransportError(PresenceError):
    """A transport could not be opened or broke (code 80003, as Ably reports a lost one)."""

    def __init__(self, message: str, *, code: int = 80003, status_code: int = 503) -> None:
        super().__init__(message, code=code, status_code=status_code)


#: A link's receiver: called with every frame read, in order.  A receiver that also has a
#: ``many(frames)`` method (the client's has) gets the frames read together (from one read of
#: the socket, or queued while the reader waited) in one call, in the order they were read.
Deliver = Callable[[ProtocolMessage], None]


class Link(Protocol):
    """One open transport."""

    def send(self, message: ProtocolMessage) -> None:
        """Queue ``message`` for sending; never blocks (frames sent after ``close`` are dropped)."""

    def close(self) -> None:
        """End the transport from this side; ``run`` returns soon after."""

    async def run(self, deliver: Deliver) -> ErrorInfo | None:
        """Read frames into ``deliver`` until the transport ends; return why, if by an error."""


class Connector(Protocol):
    """Opens links to one peer."""

    async def open(self, params: Mapping[str, str]) -> Link:
        """Open a transport carrying the query parameters ``params``.

        Raises:
            TransportError: The transport could not be opened.
        """


def _lost(what: str) -> ErrorInfo:
    return ErrorInfo(code=80003, status_code=503, message=what)


class WebSocketConnector:
    """Opens WebSocket transports to one ``ws://`` or ``wss://`` URL.

    The connection's query parameters (``key`` or ``access_token``, ``clientId``,
    ``format=json``, ``v=6``, ``resume`` or ``recover``) are appended to any query the URL
    already has.

    Args:
        url: Where the server listens, such as ``ws://127.0.0.1:8765/``.
        ssl_context: The TLS settings of ``wss://``; :func:`ssl.create_default_context`
            (certificates verified against the system's store) otherwise.

    Raises:
        UsageError: The URL is not ``ws://`` or ``wss://`` with a host.
    """

    def __init__(self, url: str, *, ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise UsageError(f"not a ws:// or wss:// URL: {url!r}")
        self._url = url
        self._tls = parts.scheme == "wss"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._tls else 80)
        self._netloc = parts.netloc.rpartition("@")[2]
        self._path = parts.path or "/"
        self._query = parse_qsl(parts.query)
        self._ssl = ssl_context if ssl_context is not None or not self._tls else None

    @property
    def url(self) -> str:
        """The URL transports are opened to."""
        return self._url

    async def open(self, params: Mapping[str, str]) -> WebSocketLink:
        """Connect, upgrade to WebSocket, and return the open link.

        Raises:
            TransportError: The TCP or TLS connection failed, or the upgrade was refused.
        """
        target = f"{self._path}?{urlencode([*self._query, *params.items()])}"
        try:
            if self._tls:
                context = self._ssl if self._ssl is not None else ssl.create_default_context()
                stream: anyio.abc.ByteStream = await anyio.connect_tcp(
                    self._host,
                    self._port,
                    tls=True,
                    ssl_context=context,
                    tls_standard_compatible=False,
                )
            else:
                stream = await anyio.connect_tcp(self._host, self._port)
        except OSError as exc:
            raise TransportError(f"cannot connect to {self._url}: {exc}") from exc
        ws = WSConnection(ConnectionType.CLIENT)
        try:
            await stream.send(ws.send(Request(host=self._netloc, target=target)))
            while True:
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        return WebSocketLink(stream, ws)
                    if isinstance(event, RejectConnection):
                        raise TransportError(
                            f"WebSocket upgrade refused with HTTP {event.status_code}"
                        )
                ws.receive_data(await stream.receive(_READ_SIZE))
        except (OSError, anyio.EndOfStream, anyio.BrokenResourceError, WsProtocolError) as exc:
            await anyio.aclose_forcefully(stream)
            raise TransportError(f"WebSocket upgrade to {self._url} failed: {exc!r}") from exc
        except BaseException:
            await anyio.aclose_forcefully(stream)
            raise


class WebSocketLink:
    """One open WebSocket; frames are protocol v6 JSON text."""

    def __init__(self, stream: anyio.abc.ByteStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._out: Mailbox[bytes] = Mailbox()
        self._closing = False
        self._read_scope = anyio.CancelScope()
        self._flushed = anyio.Event()

    def send(self, message: ProtocolMessage) -> None:
        """Queue ``message`` as one text frame."""
        if self._closing:
            return
        text = encode_text(message)
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("send %r", redacted(message))
        self._out.put(self._ws.send(TextMessage(data=text)))

    def close(self) -> None:
        """Start the closing handshake; the peer gets :data:`CLOSE_WAIT` seconds to answer."""
        if self._closing:
            return
        self._closing = True
        if self._ws.state is WsState.OPEN:
            self._out.put(self._ws.send(CloseConnection(code=1000)))
        self._out.close()
        self._read_scope.deadline = anyio.current_time() + CLOSE_WAIT

    async def run(self, deliver: Deliver) -> ErrorInfo | None:
        """Read frames until the WebSocket ends (see :meth:`Link.run`)."""
        error: ErrorInfo | None = None
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._write)
                with self._read_scope:
                    error = await self._read(deliver)
                # Let the writer flush what is queued (a close frame, its answer), bounded.
                self._out.close()
                with anyio.move_on_after(CLOSE_WAIT):
                    await self._flushed.wait()
                tasks.cancel_scope.cancel()
        finally:
            await anyio.aclose_forcefully(self._stream)
        return None if self._closing else error

    async def _write(self) -> None:
        out = self._out
        try:
            while await out.ready():
                data = b"".join(out.items)
                out.items.clear()
                await self._stream.send(data)
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The reader sees the same failure and reports it.
            out.abort()
        finally:
            self._flushed.set()

    async def _read(self, deliver: Deliver) -> ErrorInfo | None:
        ws = self._ws
        texts: list[str] = []
        blobs: list[bytes] = []
        # The frames of one read of the socket, handed to the client together.
        frames: list[ProtocolMessage] = []
        while True:
            try:
                for event in ws.events():
                    if isinstance(event, TextMessage):
                        texts.append(event.data)
                        if event.message_finished:
                            self._decode("".join(texts), frames)
                            texts.clear()
                    elif isinstance(event, BytesMessage):
                        blobs.append(bytes(event.data))
                        if event.message_finished:
                            self._decode(b"".join(blobs), frames)
                            blobs.clear()
                    elif isinstance(event, Ping):
                        self._out.put(ws.send(event.response()))
                    elif isinstance(event, CloseConnection):
                        _hand_over(frames, deliver)
                        if ws.state is WsState.REMOTE_CLOSING:
                            self._out.put(ws.send(event.response()))
                        return _lost(f"closed by the server: {event.code} {event.reason}")
                _hand_over(frames, deliver)
                data = await self._stream.receive(_READ_SIZE)
                ws.receive_data(data)
            except WsProtocolError as exc:
                return _lost(f"WebSocket protocol error: {exc}")
            except (OSError, anyio.EndOfStream, anyio.BrokenResourceError) as exc:
                return _lost(f"WebSocket lost: {exc!r}")

    @staticmethod
    def _decode(frame: str | bytes, frames: list[ProtocolMessage]) -> None:
        try:
            message = decode(frame)
        except ProtocolError as exc:
            # A frame that cannot be read says nothing the reducer could use; the transport
            # stays up, as the reducer's own timers judge the connection.
            _log.warning("undecodable frame dropped: %s", exc)
            return
        if _log.isEnabledFor(logging.DEBUG):
            _log.debug("receive %r", redacted(message))
        frames.append(message)


def _hand_over(frames: list[ProtocolMessage], deliver: Deliver) -> None:
    """Give the frames read so far to ``deliver`` (see :data:`Deliver`) and empty the list."""
    if len(frames) <= 1:
        if frames:
            deliver(frames.pop())
        return
    batch = frames[:]
    frames.clear()
    many = getattr(deliver, "many", None)
    if many is not None:
        many(batch)
    else:
        for message in batch:
            deliver(message)
