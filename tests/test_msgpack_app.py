"""The ASGI app on two formats: each socket written in its own, each broadcast encoded once per
format in use, and every answer, refusals included, in the format the client asked for.

The app is driven in memory through its ASGI interface, on asyncio; the end-to-end test over
real sockets is ``tests/serve/test_serve_msgpack.py``.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    decode,
    encode_text,
)
from presence_core._msgpack import decode_msgpack, encode_msgpack
from presence_core.serve import PresenceApp, _app
from presence_core.server import ApiKey, Server, ServerConfig

pytestmark = pytest.mark.anyio

P = ProtocolAction
KEY = "app.key:s3cret"
HANG = 20.0
CH = "room"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


class Socket:
    """One WebSocket session of the app, in memory: frames in, ASGI messages out."""

    def __init__(self, query: str) -> None:
        self.query = query
        self.sent: list[MutableMapping[str, Any]] = []
        self._changed = anyio.Event()
        self._inbox: deque[MutableMapping[str, Any]] = deque([{"type": "websocket.connect"}])
        self._arrived = anyio.Event()

    def put(self, message: dict[str, Any]) -> None:
        """Hand the app one ASGI message, as a server does when the client sent something."""
        self._inbox.append(message)
        self._arrived.set()

    async def receive(self) -> MutableMapping[str, Any]:
        while not self._inbox:
            self._arrived = anyio.Event()
            await self._arrived.wait()
        return self._inbox.popleft()

    async def send(self, message: MutableMapping[str, Any]) -> None:
        self.sent.append(message)
        self._changed.set()
        self._changed = anyio.Event()

    def push(self, message: ProtocolMessage) -> None:
        """Send a frame as a client of this socket's format does."""
        if "format=msgpack" in self.query:
            self.put({"type": "websocket.receive", "bytes": encode_msgpack(message)})
        else:
            self.put({"type": "websocket.receive", "text": encode_text(message)})

    def hang_up(self) -> None:
        self.put({"type": "websocket.disconnect", "code": 1000})

    @property
    def frames(self) -> list[ProtocolMessage]:
        """Every frame written, decoded by the kind of WebSocket message it came in."""
        out = []
        for message in self.sent:
            if message["type"] != "websocket.send":
                continue
            if message.get("bytes") is not None:
                assert message.get("text") is None
                out.append(decode_msgpack(message["bytes"]))
            else:
                out.append(decode(message["text"]))
        return out

    @property
    def kinds(self) -> set[str]:
        """Which kinds of WebSocket message were written: ``text``, ``bytes``."""
        return {k for m in self.sent if m["type"] == "websocket.send" for k in m if m[k]} - {"type"}

    async def wait_for(self, condition: Callable[[list[ProtocolMessage]], bool]) -> None:
        with anyio.fail_after(HANG):
            while not condition(self.frames):
                await self._changed.wait()

    async def wait_closed(self) -> None:
        with anyio.fail_after(HANG):
            while not any(m["type"] == "websocket.close" for m in self.sent):
                await self._changed.wait()


@asynccontextmanager
async def app_with_sockets() -> AsyncIterator[Callable[[str], Socket]]:
    """Yield a function that opens a socket on a fresh app; every socket ends with the block."""
    server = Server(
        ServerConfig(keys=(ApiKey(name="app.key", secret="s3cret"),)), secrets.token_bytes
    )
    app = PresenceApp(server)
    sockets: list[Socket] = []
    async with anyio.create_task_group() as group:

        def open_socket(query: str) -> Socket:
            socket = Socket(query)
            sockets.append(socket)
            scope = {"type": "websocket", "path": "/", "query_string": query.encode()}
            group.start_soon(app, scope, socket.receive, socket.send)
            return socket

        yield open_socket
        for socket in sockets:
            socket.hang_up()


def query(client_id: str, fmt: str, key: str = KEY) -> str:
    return f"key={key}&clientId={client_id}&format={fmt}&v=6&heartbeats=false"


def actions(socket: Socket) -> list[int]:
    return [m.action for m in socket.frames]


async def attached(socket: Socket) -> None:
    await socket.wait_for(lambda fs: P.CONNECTED in [f.action for f in fs])
    socket.push(ProtocolMessage(action=P.ATTACH, channel=CH))
    await socket.wait_for(lambda fs: P.ATTACHED in [f.action for f in fs])


def enter(data: Any) -> ProtocolMessage:
    return ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        msg_serial=0,
        presence=(PresenceMessage(action=PresenceAction.ENTER, data=data),),
    )


def presence_data(frames: list[ProtocolMessage]) -> dict[str | None, Any]:
    return {
        item.client_id: item.data
        for frame in frames
        if frame.action == P.PRESENCE
        for item in frame.presence or ()
    }


# --- one format per socket -----------------------------------------------------------------


async def test_each_socket_is_written_in_its_format() -> None:
    """msgpack frames go as binary WebSocket messages, JSON ones as text, both ways readable."""
    async with app_with_sockets() as open_socket:
        mia = open_socket(query("mia", "msgpack"))
        jay = open_socket(query("jay", "json"))
        bare = open_socket(f"key={KEY}&clientId=bo")  # no format: JSON
        for socket in (mia, jay, bare):
            await attached(socket)
        mia.push(enter(b"\x00\xff"))
        jay.push(enter({"mood": "calm"}))
        for socket in (mia, jay, bare):
            await socket.wait_for(lambda frames: len(presence_data(frames)) == 2)
            assert presence_data(socket.frames) == {"mia": b"\x00\xff", "jay": {"mood": "calm"}}
    assert mia.kinds == {"bytes"}
    assert jay.kinds == bare.kinds == {"text"}


async def test_a_broadcast_is_encoded_once_per_format_in_use(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: Counter[tuple[str, int]] = Counter()
    for fmt, serializer in dict(_app._SERIALIZERS).items():

        def counting(message: ProtocolMessage, fmt: str = fmt, inner: Any = serializer) -> Any:
            calls[fmt, message.action] += 1
            return inner(message)

        monkeypatch.setitem(_app._SERIALIZERS, fmt, counting)
    async with app_with_sockets() as open_socket:
        sockets = [
            open_socket(query(f"u{n}", fmt)) for n, fmt in enumerate(["msgpack", "json"] * 3)
        ]
        for socket in sockets:
            await attached(socket)
        calls.clear()
        sockets[0].push(enter("hi"))
        for socket in sockets:
            await socket.wait_for(lambda frames: presence_data(frames) == {"u0": "hi"})
    # One PRESENCE to six sockets: one encoding per format, not one per recipient.
    assert calls["msgpack", P.PRESENCE] == 1
    assert calls["json", P.PRESENCE] == 1


# --- refusals in the client's format -------------------------------------------------------


async def test_a_refused_connect_is_answered_in_the_clients_format() -> None:
    async with app_with_sockets() as open_socket:
        mia = open_socket(query("mia", "msgpack", key="app.key:wrong"))
        jay = open_socket(query("jay", "json", key="app.key:wrong"))
        for socket in (mia, jay):
            await socket.wait_closed()
            (refusal,) = socket.frames
            assert refusal.action == P.ERROR
            assert refusal.error is not None
            assert refusal.error.code == 40101
    assert mia.kinds == {"bytes"}
    assert jay.kinds == {"text"}


async def test_a_refused_frame_is_answered_in_the_clients_format() -> None:
    async with app_with_sockets() as open_socket:
        mia = open_socket(query("mia", "msgpack"))
        await attached(mia)
        mia.put({"type": "websocket.receive", "text": '{"action":0,"msgSerial":2}'})
        await mia.wait_for(lambda fs: fs[-1].action == P.NACK)
        (nack,) = [f for f in mia.frames if f.action == P.NACK]
        assert (nack.msg_serial, nack.error is not None and nack.error.code) == (2, 40000)
    assert mia.kinds == {"bytes"}


async def test_an_unknown_format_is_refused_in_json() -> None:
    async with app_with_sockets() as open_socket:
        xml = open_socket(query("xavier", "xml"))
        await xml.wait_closed()
    (refusal,) = xml.frames
    assert refusal.action == P.ERROR
    assert refusal.error is not None
    assert (refusal.error.code, refusal.error.message) == (40000, "Unsupported format 'xml'")
    assert xml.kinds == {"text"}


async def test_a_frame_that_cannot_be_encoded_closes_only_that_socket(
    caplog: pytest.LogCaptureFixture,
) -> None:
    encoder = _app._Encoder()
    peers = [_app._SocketPeer(encoder, 10, fmt) for fmt in ("msgpack", "json", "msgpack")]
    unencodable = ProtocolMessage(
        action=P.PRESENCE, presence=(PresenceMessage(action=PresenceAction.ENTER, data={1}),)
    )
    good = ProtocolMessage(action=P.HEARTBEAT)
    with caplog.at_level(logging.ERROR, logger="presence_core.serve"):
        for peer in peers:
            peer.deliver(unencodable)  # never raises into the host
    assert [peer._closing for peer in peers] == [1011, 1011, 1011]
    assert "cannot send a frame as msgpack" in caplog.text
    fresh = _app._SocketPeer(encoder, 10, "msgpack")
    fresh.deliver(good)
    assert list(fresh._queue) == [encode_msgpack(good)]


def test_an_overflowing_msgpack_socket_is_told_in_msgpack() -> None:
    peer = _app._SocketPeer(_app._Encoder(), 1, "msgpack")
    peer.deliver(ProtocolMessage(action=P.HEARTBEAT))
    peer.deliver(ProtocolMessage(action=P.HEARTBEAT, id="x"))
    (frame,) = peer._queue
    assert isinstance(frame, bytes)
    assert decode_msgpack(frame) == ProtocolMessage(action=P.DISCONNECTED, error=_app.OVERFLOW)
    assert peer._closing == 1008


def test_a_socket_without_msgpack_installed_is_written_in_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client asked for msgpack, which cannot be written: the JSON refusal is all it gets."""
    assert _app._socket_format({"format": "msgpack"}) == "msgpack"
    assert _app._socket_format({}) == _app._socket_format({"format": "xml"}) == "json"
    monkeypatch.setitem(sys.modules, "msgpack", None)
    assert _app._socket_format({"format": "msgpack"}) == "json"
