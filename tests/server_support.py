"""Shared harness for the server reducer tests (holds no tests itself)."""

from __future__ import annotations

import random
from typing import Any

import attrs

from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server import (
    ApiKey,
    Deliver,
    Server,
    ServerConfig,
    ServerOutput,
)

KEY = ApiKey(name="app.key", secret="s3cret")
T0 = 1_700_000_000_000


def make_server(seed: int = 1, **settings: Any) -> Server:
    settings.setdefault("keys", (KEY,))
    settings.setdefault("max_messages_per_second", 10_000)
    return Server(ServerConfig(**settings), random.Random(seed).randbytes)


@attrs.define
class Client:
    """One transport seen from the test: its id, its connection id and its key."""

    tid: str
    connection_id: str
    connection_key: str
    serial: int = 0


def connect(
    server: Server,
    tid: str,
    client_id: str | None = "alice",
    *,
    now: int = T0,
    key: str = KEY.key,
    **params: str,
) -> tuple[Client, ServerOutput]:
    query = {"format": "json", "v": "6", "heartbeats": "false", **params}
    if key:
        query["key"] = key
    if client_id is not None:
        query["clientId"] = client_id
    out = server.connect(tid, query, now=now)
    (connected,) = [m for m in out.messages_for(tid) if m.action == ProtocolAction.CONNECTED]
    assert connected.connection_id is not None
    assert connected.connection_details is not None
    assert connected.connection_details.connection_key is not None
    client = Client(tid, connected.connection_id, connected.connection_details.connection_key)
    return client, out


def attach(
    server: Server, client: Client, channel: str, flags: int | None = None, *, now: int = T0
) -> ServerOutput:
    return server.receive(
        client.tid,
        ProtocolMessage(action=ProtocolAction.ATTACH, channel=channel, flags=flags),
        now=now,
    )


def presence(
    server: Server,
    client: Client,
    channel: str,
    action: PresenceAction,
    data: Any = None,
    *,
    now: int = T0,
    client_id: str | None = None,
    id: str | None = None,
    serial: int | None = None,
) -> ServerOutput:
    if serial is None:
        serial = client.serial
        client.serial += 1
    item = PresenceMessage(action=action, data=data, client_id=client_id, id=id)
    frame = ProtocolMessage(
        action=ProtocolAction.PRESENCE, channel=channel, msg_serial=serial, presence=(item,)
    )
    return server.receive(client.tid, frame, now=now)


def actions(out: ServerOutput, tid: str) -> list[int]:
    return [m.action for m in out.messages_for(tid)]


def presence_items(out: ServerOutput, tid: str) -> list[PresenceMessage]:
    return [
        item
        for m in out.messages_for(tid)
        if m.action == ProtocolAction.PRESENCE
        for item in m.presence or ()
    ]


def only_deliver(out: ServerOutput) -> list[Deliver]:
    return [c for c in out.commands if isinstance(c, Deliver)]


def member_view(server: Server, channel: str) -> dict[tuple[str | None, str | None], Any]:
    return {(m.connection_id, m.client_id): m.data for m in server.members(channel)}
