"""Builders shared by the PresenceSet tests (no tests here).

Frames are built as already-decoded objects, as the codec would hand them to the reducer.
"""

from __future__ import annotations

from typing import Any

from presence_core import (
    ChannelState,
    ChannelStateChanged,
    Flag,
    Operation,
    Output,
    PresenceAction,
    PresenceMessage,
    PresenceSet,
    ProtocolAction,
    ProtocolMessage,
    RoomOptions,
    SendPresence,
)

CH = "room1::$chat"
NOW = 1_700_000_000_000
ME = "me"
MY_CONN = "myconn"

ENTER = PresenceAction.ENTER
UPDATE = PresenceAction.UPDATE
LEAVE = PresenceAction.LEAVE
PRESENT = PresenceAction.PRESENT
ABSENT = PresenceAction.ABSENT


def pm(
    action: PresenceAction,
    client: str,
    conn: str,
    serial: int = 0,
    index: int = 0,
    *,
    ts: int | None = 100,
    data: Any = None,
    id: str | None = "",
    extras: dict[str, Any] | None = None,
) -> PresenceMessage:
    """A received presence item; the id defaults to ``conn:serial:index``."""
    return PresenceMessage(
        action=action,
        client_id=client,
        connection_id=conn,
        id=f"{conn}:{serial}:{index}" if id == "" else id,
        timestamp=ts,
        data=data,
        extras=extras,
    )


def presence(*items: PresenceMessage, channel: str = CH, **kw: Any) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.PRESENCE, channel=channel, presence=items, **kw)


def sync(cursor: str | None, *items: PresenceMessage, **kw: Any) -> ProtocolMessage:
    return ProtocolMessage(
        action=ProtocolAction.SYNC, channel=CH, channel_serial=cursor, presence=items, **kw
    )


def attached(
    *, has_presence: bool = False, resumed: bool = False, modes: int = 0xF0000, **kw: Any
) -> ProtocolMessage:
    """An ATTACHED; ``modes`` are the granted mode bits (all four by default)."""
    flags = modes
    if has_presence:
        flags |= Flag.HAS_PRESENCE
    if resumed:
        flags |= Flag.RESUMED
    kw.setdefault("channel", CH)
    return ProtocolMessage(action=ProtocolAction.ATTACHED, flags=flags, **kw)


def detached(**kw: Any) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.DETACHED, channel=CH, **kw)


def make_set(
    *,
    attach: bool = True,
    client_id: str | None = ME,
    conn: str | None = MY_CONN,
    options: RoomOptions | None = None,
) -> PresenceSet:
    """A PresenceSet, connected as ``conn`` and (by default) attached with an empty set."""
    ps = PresenceSet(CH, client_id=client_id, options=options)
    if conn is not None:
        ps.set_connection(conn, client_id=client_id, now=NOW)
    if attach:
        ps.attach(now=NOW)
        ps.receive(attached(), now=NOW)
    return ps


def with_members(*items: PresenceMessage, **kw: Any) -> PresenceSet:
    ps = make_set(**kw)
    ps.receive(presence(*items), now=NOW)
    return ps


def presence_events(out: Output) -> list[PresenceMessage]:
    return [e for e in out.events if isinstance(e, PresenceMessage)]


def actions(out: Output) -> list[tuple[str, str | None]]:
    return [(e.action.event_name, e.client_id) for e in presence_events(out)]


def state_changes(out: Output) -> list[ChannelStateChanged]:
    return [e for e in out.events if isinstance(e, ChannelStateChanged)]


def sends(out: Output) -> list[SendPresence]:
    return [c for c in out.commands if isinstance(c, SendPresence)]


def state_of(ps: PresenceSet) -> ChannelState:
    """The state, read through a call so that mypy does not narrow it between steps."""
    return ps.state


def is_complete(ps: PresenceSet) -> bool:
    """sync_complete, read through a call so that mypy does not narrow it between steps."""
    return ps.sync_complete


def keys(ps: PresenceSet) -> set[tuple[str, str]]:
    return {(m.connection_id, m.client_id) for m in ps.get()}


def echo(
    ps: PresenceSet, out: Output, *, conn: str = MY_CONN, serial: int = 0, ts: int = 200
) -> Output:
    """Play the server: echo the PRESENCE frame of ``out`` back (RTP17a), then ACK it."""
    (send,) = sends(out)
    items = tuple(
        PresenceMessage(
            action=p.action,
            client_id=p.client_id or ps.client_id,
            connection_id=conn,
            id=f"{conn}:{serial}:{i}",
            timestamp=ts,
            data=p.data,
            extras=p.extras,
        )
        for i, p in enumerate(send.message.presence or ())
    )
    echoed = ps.receive(presence(*items), now=NOW)
    acked = ps.acknowledge(send.operations, now=NOW)
    return Output(echoed.events + acked.events, acked.commands)


def ops_of(out: Output) -> tuple[Operation, ...]:
    return tuple(op for s in sends(out) for op in s.operations)


__all__ = [
    "ABSENT",
    "CH",
    "ENTER",
    "LEAVE",
    "ME",
    "MY_CONN",
    "NOW",
    "PRESENT",
    "UPDATE",
    "ChannelState",
    "actions",
    "attached",
    "detached",
    "echo",
    "is_complete",
    "keys",
    "state_of",
    "make_set",
    "ops_of",
    "pm",
    "presence",
    "presence_events",
    "sends",
    "state_changes",
    "sync",
    "with_members",
]
