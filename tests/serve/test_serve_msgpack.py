"""``format=msgpack`` end to end, against a ``presence-core serve`` subprocess over real sockets.

The JSON side is presence_core.client; the msgpack side is a bare wsproto client defined here,
which speaks the protocol frame by frame as ably-js does on Node (binary WebSocket messages,
bin data, objects as JSON text).  Nothing waits for time: every wait is for a frame or an
event, with a generous hang guard.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import anyio
import anyio.abc
import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    decode,
    encode_text,
)
from presence_core._msgpack import decode_msgpack, encode_msgpack
from tests.client.support import Recorder, clients
from tests.serve.support import HANG, KEY, served

pytestmark = pytest.mark.anyio

P = ProtocolAction
ROOM = "room1"
#: The channel of that room: presence_core.client opens rooms as @ably/chat does.
CHANNEL = f"{ROOM}::$chat"
_READ = 65_536


class RawClient:
    """A WebSocket client that sends and reads protocol frames itself, in any format."""

    def __init__(self, stream: anyio.abc.ByteStream, ws: WSConnection, fmt: str) -> None:
        self._stream = stream
        self._ws = ws
        self._format = fmt
        self._serial = 0
        self.frames: list[ProtocolMessage] = []
        #: The kind of every WebSocket message read: ``bytes`` or ``text``.
        self.kinds: list[str] = []
        self.closed = False
        self._parts: list[bytes | str] = []

    async def send(self, message: ProtocolMessage) -> None:
        if self._format == "msgpack":
            data = self._ws.send(BytesMessage(data=encode_msgpack(message)))
        else:
            data = self._ws.send(TextMessage(data=encode_text(message)))
        await self._stream.send(data)

    async def publish_presence(self, action: PresenceAction, data: Any) -> None:
        item = PresenceMessage(action=action, data=data)
        await self.send(
            ProtocolMessage(
                action=P.PRESENCE, channel=CHANNEL, msg_serial=self._serial, presence=(item,)
            )
        )
        self._serial += 1

    async def wait_for(self, condition: Callable[[list[ProtocolMessage]], bool]) -> None:
        """Read frames until ``condition`` holds for what was read, or the socket closes."""
        with anyio.fail_after(HANG):
            # The upgrade's answer may have brought the first frames with it.
            await self._handle_events()
            while not condition(self.frames) and not self.closed:
                try:
                    self._ws.receive_data(await self._stream.receive(_READ))
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    self.closed = True
                await self._handle_events()
        assert condition(self.frames), self.frames

    async def _handle_events(self) -> None:
        for event in self._ws.events():
            if isinstance(event, BytesMessage | TextMessage):
                self._parts.append(event.data if isinstance(event.data, str) else bytes(event.data))
                if event.message_finished:
                    self._frame(self._parts)
                    self._parts = []
            elif isinstance(event, Ping):
                await self._stream.send(self._ws.send(event.response()))
            elif isinstance(event, CloseConnection):
                self.closed = True

    def _frame(self, parts: list[bytes | str]) -> None:
        if isinstance(parts[0], str):
            self.kinds.append("text")
            self.frames.append(decode("".join(p for p in parts if isinstance(p, str))))
        else:
            self.kinds.append("bytes")
            self.frames.append(decode_msgpack(b"".join(p for p in parts if isinstance(p, bytes))))

    def presence_seen(self) -> list[tuple[int, str | None, Any]]:
        return [
            (item.action, item.client_id, item.data)
            for frame in self.frames
            if frame.action in (P.PRESENCE, P.SYNC)
            for item in frame.presence or ()
        ]


@asynccontextmanager
async def raw_client(port: int, **params: str) -> AsyncIterator[RawClient]:
    """Open a WebSocket to the server with these query parameters."""
    fmt = params.get("format", "json")
    stream = await anyio.connect_tcp("127.0.0.1", port)
    try:
        ws = WSConnection(ConnectionType.CLIENT)
        target = "/?" + urlencode({"v": "6", "heartbeats": "false", **params})
        await stream.send(ws.send(Request(host=f"127.0.0.1:{port}", target=target)))
        with anyio.fail_after(HANG):
            accepted = False
            while not accepted:
                ws.receive_data(await stream.receive(_READ))
                # Only up to the acceptance: frames after it stay queued for the client.
                accepted = any(isinstance(e, AcceptConnection) for e in ws.events())
        yield RawClient(stream, ws, fmt)
    finally:
        await anyio.aclose_forcefully(stream)


def seen_from(client_id: str, data: Any) -> Callable[[list[PresenceMessage]], bool]:
    return lambda events: any(e.client_id == client_id and e.data == data for e in events)


def has(action: int) -> Callable[[list[ProtocolMessage]], bool]:
    return lambda frames: action in [f.action for f in frames]


async def test_json_and_msgpack_clients_see_each_others_presence_with_any_data() -> None:
    """String, object and binary data, each way: bin on msgpack, base64 on JSON."""
    datas: list[Any] = [b"\x00\x01\xff", {"mood": "calm", "n": [1, 2]}, "just text"]
    with anyio.fail_after(HANG):
        async with (
            served() as server,
            clients(server.url, "alice") as (alice,),
            raw_client(server.port, key=KEY, clientId="mia", format="msgpack") as mia,
        ):
            room = await alice.rooms.get(ROOM)
            recorder = Recorder()
            room.presence.subscribe(recorder)
            await room.attach()
            await mia.wait_for(has(P.CONNECTED))
            await mia.send(ProtocolMessage(action=P.ATTACH, channel=CHANNEL))
            await mia.wait_for(has(P.ATTACHED))
            # msgpack -> JSON
            for n, data in enumerate(datas):
                action = PresenceAction.ENTER if n == 0 else PresenceAction.UPDATE
                await mia.publish_presence(action, data)
                await recorder.wait_for(seen_from("mia", data))
            # JSON -> msgpack
            await room.presence.enter(datas[0])
            for data in datas[1:]:
                await room.presence.update(data)
            await mia.wait_for(
                lambda _: [d for _, who, d in mia.presence_seen() if who == "alice"] == datas
            )
            assert [
                (e.action.event_name, e.data) for e in recorder.events if e.client_id == "mia"
            ] == [
                ("enter", datas[0]),
                ("update", datas[1]),
                ("update", datas[2]),
            ]
            assert {m.client_id: m.data for m in await room.presence.get()} == {
                "mia": datas[2],
                "alice": datas[2],
            }
            assert set(mia.kinds) == {"bytes"}
            # A SYNC carries binary data as bin too.
            await room.presence.update(datas[0])
            await mia.wait_for(lambda _: mia.presence_seen()[-1][1:] == ("alice", datas[0]))
            async with raw_client(server.port, key=KEY, clientId="max", format="msgpack") as late:
                await late.wait_for(has(P.CONNECTED))
                await late.send(ProtocolMessage(action=P.ATTACH, channel=CHANNEL))
                await late.wait_for(has(P.SYNC))
                synced = {who: data for _, who, data in late.presence_seen()}
                assert synced == {"alice": datas[0], "mia": datas[2]}


async def test_refusals_reach_a_msgpack_client_in_msgpack_and_an_unknown_format_in_json() -> None:
    with anyio.fail_after(HANG):
        async with served() as server:
            async with raw_client(
                server.port, key="app.key:wrong", clientId="mia", format="msgpack"
            ) as mia:
                await mia.wait_for(has(P.ERROR))
                (refusal,) = mia.frames
                assert refusal.error is not None
                assert refusal.error.code == 40101
                assert mia.kinds == ["bytes"]
            async with raw_client(server.port, key=KEY, clientId="xavier", format="xml") as xml:
                await xml.wait_for(has(P.ERROR))
                (refusal,) = xml.frames
                assert refusal.error is not None
                assert (refusal.error.code, refusal.error.message) == (
                    40000,
                    "Unsupported format 'xml'",
                )
                assert xml.kinds == ["text"]
            # A malformed msgpack frame is NACKed, in msgpack.
            async with raw_client(server.port, key=KEY, clientId="mia", format="msgpack") as mia:
                await mia.wait_for(has(P.CONNECTED))
                await mia.send(ProtocolMessage(action=P.ATTACH, channel=CHANNEL))
                await mia.wait_for(has(P.ATTACHED))
                bad = ProtocolMessage(action=P.PRESENCE, channel=CHANNEL, msg_serial=0, presence=())
                await mia.send(bad)
                await mia.wait_for(has(P.NACK))
                assert set(mia.kinds) == {"bytes"}
