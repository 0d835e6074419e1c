"""Prebuilt, seeded inputs shared by the pytest-benchmark suite and ``compare.py``.

Everything here is built with presence_core's public API only, outside any timed region.
The same :class:`Room` (one member per connection, as in a large public room) feeds every
peer: our PresenceSet and the dict floors consume the :class:`~presence_core.ProtocolMessage`
values directly; ``compare.py`` converts the same member tuples into each peer's own input
shape.

Ids follow what an Ably server sends, ``connId:msgSerial:index``, so that newness is decided
by the id, and every item carries its own id, connectionId and timestamp (as after TP3
inheritance in the codec).
"""

from __future__ import annotations

import json
import random
import string
from typing import Any, Final, NamedTuple

from presence_core import (
    Flag,
    PresenceAction,
    PresenceMessage,
    PresenceSet,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = [
    "CHANNEL",
    "SEED",
    "SIZES",
    "T0",
    "OWN_CONNECTION",
    "SYNC_ID",
    "RESYNC_ID",
    "PAGE",
    "Member",
    "Room",
    "make_room",
    "presence_frames",
    "sync_pages",
    "attached",
    "attached_set",
    "entered_set",
    "synced_set",
    "wire_item",
    "wire_presence_frame",
    "wire_sync_frame",
]

CHANNEL: Final = "bench-room::$chat"
#: The seed of every room; inputs are identical from run to run.
SEED: Final = 20240613
#: Room sizes in members.
SIZES: Final = (1_000, 10_000, 100_000)
#: Epoch ms of the first message; later messages are stamped T0 + i.
T0: Final = 1_718_000_000_000
#: The connection id of the observing client (never one of the members' connections).
OWN_CONNECTION: Final = "OWNCONN000"
#: Where the sync ids of the initial and the repeated SYNC come from.
SYNC_ID: Final = "sync1"
RESYNC_ID: Final = "sync2"
#: A SYNC page holds this many members, as Ably's server pages them.
PAGE: Final = 100

_ALPHABET: Final = string.ascii_letters + string.digits


class Member(NamedTuple):
    """One member of a benchmark room: its clientId, connectionId and entered data."""

    client_id: str
    connection_id: str
    data: dict[str, Any]


class Room(NamedTuple):
    """A seeded room: its members, in the order they enter."""

    size: int
    members: list[Member]


def make_room(size: int, seed: int = SEED) -> Room:
    """Build ``size`` distinct members from ``seed``: random ids, small JSON-object data."""
    rng = random.Random(seed)
    seen: set[str] = set()
    members: list[Member] = []
    while len(members) < size:
        connection_id = "".join(rng.choices(_ALPHABET, k=10))
        if connection_id in seen:
            continue
        seen.add(connection_id)
        client_id = f"user-{rng.getrandbits(40):010x}"
        data = {"status": "online", "name": f"User {len(members)}"}
        members.append(Member(client_id, connection_id, data))
    return Room(size, members)


def _item(
    member: Member, action: PresenceAction, serial: int, index: int, data: Any
) -> PresenceMessage:
    return PresenceMessage(
        action=action,
        client_id=member.client_id,
        connection_id=member.connection_id,
        id=f"{member.connection_id}:{serial}:0",
        data=data,
        timestamp=T0 + serial * 1_000_000 + index,
    )


def presence_frames(
    room: Room, action: PresenceAction, *, per_message: int = 1
) -> list[ProtocolMessage]:
    """PRESENCE frames applying ``action`` to every member, ``per_message`` items each.

    ENTER carries msgSerial 0, UPDATE 1 and LEAVE 2, so each is newer than the one before.
    UPDATE changes the data; LEAVE carries the last data, as the server sends it.
    """
    serial = {PresenceAction.ENTER: 0, PresenceAction.UPDATE: 1, PresenceAction.LEAVE: 2}[action]
    items = []
    for index, member in enumerate(room.members):
        data: Any = member.data
        if action != PresenceAction.ENTER:
            data = {"status": "away", "name": member.data["name"]}
        items.append(_item(member, action, serial, index, data))
    return [
        ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=CHANNEL,
            presence=tuple(items[start : start + per_message]),
            timestamp=items[start].timestamp,
        )
        for start in range(0, len(items), per_message)
    ]


def sync_pages(room: Room, *, sync_id: str = SYNC_ID, keep: float = 1.0) -> list[ProtocolMessage]:
    """SYNC pages of :data:`PAGE` PRESENT members; the last page has an empty cursor.

    ``keep`` < 1 leaves out the last members of the room: with ``keep=0.9`` after a full sync,
    10% of the members are residual and leave when the sync ends (RTP19).
    """
    kept = room.members[: int(len(room.members) * keep)]
    items = [
        _item(member, PresenceAction.PRESENT, 0, index, member.data)
        for index, member in enumerate(kept)
    ]
    starts = list(range(0, len(items), PAGE)) or [0]
    pages = []
    for number, start in enumerate(starts):
        cursor = "" if number == len(starts) - 1 else str(number + 1)
        pages.append(
            ProtocolMessage(
                action=ProtocolAction.SYNC,
                channel=CHANNEL,
                channel_serial=f"{sync_id}:{cursor}",
                presence=tuple(items[start : start + PAGE]),
            )
        )
    return pages


def attached(*, has_presence: bool) -> ProtocolMessage:
    """An ATTACHED frame granting the default modes, with or without HAS_PRESENCE."""
    flags = 0xF0000 | (Flag.HAS_PRESENCE if has_presence else 0)
    return ProtocolMessage(
        action=ProtocolAction.ATTACHED,
        channel=CHANNEL,
        flags=int(flags),
        channel_serial=f"{CHANNEL}@0",
    )


def attached_set(*, has_presence: bool = False) -> PresenceSet:
    """A PresenceSet that knows its connection id and is ATTACHED (a sync pending if asked)."""
    presence = PresenceSet(CHANNEL)
    presence.set_connection(OWN_CONNECTION, now=T0)
    presence.attach(now=T0)
    presence.receive(attached(has_presence=has_presence), now=T0)
    return presence


def entered_set(frames: list[ProtocolMessage]) -> PresenceSet:
    """An ATTACHED PresenceSet that has applied ``frames`` (for instance, every member's enter)."""
    presence = attached_set()
    for frame in frames:
        presence.receive(frame, now=T0)
    return presence


def synced_set(pages: list[ProtocolMessage]) -> PresenceSet:
    """A PresenceSet attached with HAS_PRESENCE that has applied a whole SYNC."""
    presence = attached_set(has_presence=True)
    for page in pages:
        presence.receive(page, now=T0)
    return presence


# -- wire frames for the codec --------------------------------------------------------------


def wire_item(member: Member, action: int, serial: int, index: int) -> dict[str, Any]:
    """One presence item as an Ably server sends it: object data as a JSON string."""
    return {
        "id": f"{member.connection_id}:{serial}:0",
        "clientId": member.client_id,
        "connectionId": member.connection_id,
        "timestamp": T0 + index,
        "data": json.dumps(member.data, separators=(",", ":")),
        "encoding": "json",
        "action": action,
    }


def wire_presence_frame(members: list[Member]) -> dict[str, Any]:
    """A PRESENCE frame (action 14) entering ``members``, in wire form."""
    first = members[0]
    return {
        "action": int(ProtocolAction.PRESENCE),
        "channel": CHANNEL,
        "id": f"{first.connection_id}:0",
        "connectionId": first.connection_id,
        "timestamp": T0,
        "channelSerial": f"{CHANNEL}@1",
        "presence": [
            wire_item(member, int(PresenceAction.ENTER), 0, index)
            for index, member in enumerate(members)
        ],
    }


def wire_sync_frame(members: list[Member], cursor: str = "") -> dict[str, Any]:
    """A SYNC frame (action 16) listing ``members`` as PRESENT, in wire form."""
    return {
        "action": int(ProtocolAction.SYNC),
        "channel": CHANNEL,
        "channelSerial": f"{SYNC_ID}:{cursor}",
        "presence": [
            wire_item(member, int(PresenceAction.PRESENT), 0, index)
            for index, member in enumerate(members)
        ],
    }
