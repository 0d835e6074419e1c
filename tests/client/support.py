"""What the client tests share: a server, the two transports, a test-only WebSocket host, and
helpers that wait for events instead of time.

The WebSocket host serves a :class:`~presence_core.client.ServerHost` on 127.0.0.1 with
wsproto's server side over anyio listeners; it exists for the end-to-end tests only.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState as WsState
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request, TextMessage

from presence_core import (
    ErrorInfo,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    decode,
    encode_text,
)
from presence_core.client import Client, ServerHost, TransportError, connect
from presence_core.client._support import Mailbox
from presence_core.client._transport import Connector, Deliver, Link
from presence_core.server import ApiKey, Server, ServerConfig

KEY: Final = "app.key:s3cret"
#: The hang guard of every wait: far beyond anything a test needs, never a timing assertion.
HANG: Final = 20.0
TRANSPORTS: Final = ("inprocess", "websocket")


def make_server(**config: Any) -> Server:
    return Server(
        ServerConfig(keys=(ApiKey(name="app.key", secret="s3cret"),), **config),
        secrets.token_bytes,
    )


class Recorder:
    """A presence listener that keeps every event, and lets a test wait for what it expects."""

    def __init__(self) -> None:
        self.events: list[PresenceMessage] = []
        self._changed = anyio.Event()

    def __call__(self, event: PresenceMessage) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = anyio.Event()

    @property
    def seen(self) -> list[tuple[str, str | None]]:
        return [(e.action.event_name, e.client_id) for e in self.events]

    async def wait_for(self, condition: Callable[[list[PresenceMessage]], bool]) -> None:
        with anyio.fail_after(HANG):
            while not condition(self.events):
                await self._changed.wait()

    async def wait_seen(self, action: str, client_id: str, count: int = 1) -> None:
        await self.wait_for(lambda _: self.seen.count((action, client_id)) >= count)


# -- the test-only WebSocket host -------------------------------------------------------------


class _WsPeer:
    """The server end of one test WebSocket, as the ServerHost sees it."""

    def __init__(self, ws: WSConnection) -> None:
        self.ws = ws
        self.out: Mailbox[bytes] = Mailbox()
        self.scope = anyio.CancelScope()

    def deliver(self, message: ProtocolMessage) -> None:
        if self.ws.state is WsState.OPEN:
            self.out.put(self.ws.send(TextMessage(data=encode_text(message))))

    def disconnect(self, reason: ErrorInfo | None) -> None:
        if self.ws.state is WsState.OPEN:
            self.out.put(self.ws.send(CloseConnection(code=1000)))
        self.out.close()

    def abort(self) -> None:
        self.out.abort()
        self.scope.cancel()


class WebSocketHost:
    """Serves a ServerHost over WebSockets on 127.0.0.1; records every upgrade's parameters."""

    def __init__(self, host: ServerHost) -> None:
        self.host = host
        self.upgrades: list[dict[str, str]] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[WebSocketHost]:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        self.port = listener.extra(SocketAttribute.local_port)
        async with listener, anyio.create_task_group() as group:
            group.start_soon(listener.serve, self._serve)
            try:
                yield self
            finally:
                group.cancel_scope.cancel()

    async def _serve(self, stream: anyio.abc.SocketStream) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        try:
            params = await self._handshake(stream, ws)
            if params is not None:
                await self._run(stream, ws, params)
        finally:
            await anyio.aclose_forcefully(stream)

    async def _handshake(
        self, stream: anyio.abc.SocketStream, ws: WSConnection
    ) -> dict[str, str] | None:
        while True:
            for event in ws.events():
                if isinstance(event, Request):
                    params = dict(parse_qsl(urlsplit(event.target).query))
                    self.upgrades.append(params)
                    await stream.send(ws.send(AcceptConnection()))
                    return params
            try:
                ws.receive_data(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return None

    async def _run(
        self, stream: anyio.abc.SocketStream, ws: WSConnection, params: Mapping[str, str]
    ) -> None:
        peer = _WsPeer(ws)
        tid = self.host.open(params, peer)
        try:
            with peer.scope:
                async with anyio.create_task_group() as group:
                    group.start_soon(self._write, stream, peer)
                    await self._read(stream, ws, peer, tid)
                    group.cancel_scope.cancel()
        finally:
            self.host.closed(tid)

    @staticmethod
    async def _write(stream: anyio.abc.SocketStream, peer: _WsPeer) -> None:
        out = peer.out
        while await out.ready():
            data = b"".join(out.items)
            out.items.clear()
            await stream.send(data)
        peer.scope.cancel()  # the server disconnected it: the socket ends with the close frame

    async def _read(
        self, stream: anyio.abc.SocketStream, ws: WSConnection, peer: _WsPeer, tid: int
    ) -> None:
        while True:
            for event in ws.events():
                if isinstance(event, TextMessage):
                    self.host.receive(tid, decode(event.data))
                elif isinstance(event, Ping):
                    peer.out.put(ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    if ws.state is WsState.REMOTE_CLOSING:
                        peer.out.put(ws.send(event.response()))
                    peer.out.close()
                    return
            try:
                ws.receive_data(await stream.receive())
            except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                return


# -- transports for the tests -----------------------------------------------------------------


@asynccontextmanager
async def target(kind: str, server: Server) -> AsyncIterator[tuple[Any, WebSocketHost | None]]:
    """What a client connects to for ``kind``: the Server itself, or a WebSocket URL to it."""
    host = ServerHost.of(server)
    if kind == "inprocess":
        yield server, None
        return
    async with host, WebSocketHost(host).serving() as ws_host:
        yield ws_host.url, ws_host


@asynccontextmanager
async def clients(where: Any, *client_ids: str, **options: Any) -> AsyncIterator[list[Client]]:
    """Open one client per clientId, all connected; close them all at the end."""
    opened: list[Client] = []
    try:
        for client_id in client_ids:
            client = connect(where, key=KEY, client_id=client_id, **options)
            await client.__aenter__()
            opened.append(client)
        yield opened
    finally:
        for client in reversed(opened):
            await client.__aexit__(None, None, None)


class Gate:
    """A connector that can hold back the SYNC or PRESENCE frames its links receive, or refuse
    to open."""

    def __init__(self, inner: Connector) -> None:
        self.inner = inner
        self.hold_sync = False
        self.hold_presence = False
        self.refuse = False
        self.held: list[tuple[Deliver, ProtocolMessage]] = []
        self.opened = 0

    async def open(self, params: Mapping[str, str]) -> Link:
        if self.refuse:
            raise TransportError("refused by the test")
        self.opened += 1
        return _GatedLink(self, await self.inner.open(params))

    def release(self) -> None:
        self.hold_sync = False
        held, self.held = self.held, []
        for deliver, message in held:
            deliver(message)

    def release_together(self) -> None:
        """Hand the held frames to the client in one ``many`` call, as a link does with frames
        read together."""
        self.hold_sync = self.hold_presence = False
        held, self.held = self.held, []
        deliver = held[0][0]
        deliver.many([message for _, message in held])  # type: ignore[attr-defined]


class _GatedLink:
    def __init__(self, gate: Gate, inner: Link) -> None:
        self._gate = gate
        self._inner = inner

    def send(self, message: ProtocolMessage) -> None:
        self._inner.send(message)

    def close(self) -> None:
        self._inner.close()

    async def run(self, deliver: Deliver) -> ErrorInfo | None:
        gate = self._gate

        def gated(message: ProtocolMessage) -> None:
            if (gate.hold_sync and message.action == ProtocolAction.SYNC) or (
                gate.hold_presence and message.action == ProtocolAction.PRESENCE
            ):
                gate.held.append((deliver, message))
            else:
                deliver(message)

        return await self._inner.run(gated)
