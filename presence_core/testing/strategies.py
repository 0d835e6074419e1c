"""Hypothesis strategies for presence_core values.

Needs hypothesis (the ``testing`` extra).  Every strategy is a function returning a
``SearchStrategy``, so it can take options and be composed.

Wire values are generated *as* :func:`presence_core.decode` *returns them*: items already carry
what they would inherit from their frame (TP3a/d/g), data is decoded as far as RSL6 allows, and
an undecodable payload keeps its remaining encoding.  So for every generated message ``m``,
``decode(encode(m)) == m``; the codec's round-trip property relies on that.

Sections:

* JSON values, ids and scalars;
* payloads (``data`` with its remaining ``encoding``);
* wire values (ErrorInfo, ConnectionDetails, PresenceMessage, Message);
* protocol messages, one strategy per action shape presence uses, and :func:`protocol_messages`
  for any of them;
* simulator schedules: presence payloads, operation sequences, fault schedules, and both
  merged (:func:`schedules`), for :class:`presence_core.testing.Simulation`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs
from hypothesis import strategies as st

from presence_core._wire import (
    DEFAULT_MODES,
    ChannelMode,
    ConnectionDetails,
    ErrorInfo,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.testing._schedule import (
    Attach,
    ChannelFailure,
    ClockStep,
    Close,
    ConnectionFailure,
    Detach,
    DropTransport,
    Enter,
    FaultEvent,
    HalfOpen,
    Lag,
    Leave,
    OperationEvent,
    Partition,
    Restart,
    Resync,
    ScheduleEvent,
    ServerDetach,
    ServerRestart,
    Update,
)

__all__ = [
    # JSON values, ids and scalars
    "json_scalars",
    "json_values",
    "json_objects",
    "int64s",
    "timestamps",
    "client_ids",
    "connection_ids",
    "channel_names",
    "sync_serials",
    "mode_flags",
    # payloads
    "payloads",
    # wire values
    "error_infos",
    "connection_details",
    "presence_messages",
    "messages",
    # protocol messages
    "heartbeat_frames",
    "ack_frames",
    "nack_frames",
    "connected_frames",
    "attach_frames",
    "attached_frames",
    "detach_frames",
    "detached_frames",
    "error_frames",
    "presence_frames",
    "sync_frames",
    "message_frames",
    "generic_frames",
    "protocol_messages",
    "with_inheritance",
    # simulator schedules
    "presence_data",
    "operation_events",
    "operation_sequences",
    "partition_durations",
    "restart_downtimes",
    "fault_events",
    "fault_schedules",
    "schedules",
]

Strategy: TypeAlias = st.SearchStrategy

INT64_MIN: Final = -(1 << 63)
INT64_MAX: Final = (1 << 63) - 1
#: 2020-01-01 .. 2100-01-01 in epoch ms: realistic timestamps.
_EPOCH_MS_RANGE: Final = (1_577_836_800_000, 4_102_444_800_000)

# --- JSON values, ids and scalars ----------------------------------------------------------


def int64s() -> Strategy[int]:
    """Integers in the int64 range the wire allows."""
    return st.integers(min_value=INT64_MIN, max_value=INT64_MAX)


def json_scalars() -> Strategy[Any]:
    """``null``, booleans, int64 integers, finite floats and strings."""
    return st.one_of(
        st.none(),
        st.booleans(),
        int64s(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    )


def json_values(*, max_leaves: int = 12) -> Strategy[Any]:
    """Any JSON value, as ``json.loads`` could return it (lists, str-keyed dicts, scalars)."""
    return st.recursive(
        json_scalars(),
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(st.text(max_size=8), children, max_size=4),
        ),
        max_leaves=max_leaves,
    )


def json_objects(*, max_leaves: int = 8) -> Strategy[dict[str, Any]]:
    """A JSON object (such as ``extras``)."""
    return st.dictionaries(st.text(max_size=8), json_values(max_leaves=max_leaves), max_size=4)


def timestamps() -> Strategy[int]:
    """Epoch milliseconds, between 2020 and 2100."""
    return st.integers(*_EPOCH_MS_RANGE)


_ID_ALPHABET: Final = st.characters(
    min_codepoint=ord("0"), max_codepoint=ord("z"), categories=("Lu", "Ll", "Nd")
)


def client_ids() -> Strategy[str]:
    """Client ids: short names, sometimes with non-ASCII text."""
    return st.one_of(
        st.sampled_from(["alice", "bob", "carol", "dave"]),
        st.text(min_size=1, max_size=12),
    )


def connection_ids() -> Strategy[str]:
    """Connection ids as an Ably server makes them: letters and digits, no colon."""
    return st.text(_ID_ALPHABET, min_size=1, max_size=10)


def channel_names() -> Strategy[str]:
    """Channel names, including Chat rooms (``<room>::$chat``)."""
    return st.one_of(
        st.sampled_from(["room1::$chat", "lobby", "presence-test"]),
        st.text(min_size=1, max_size=16),
    )


def sync_serials(*, last: bool | None = None) -> Strategy[str]:
    """SYNC cursors ``<syncId>:<cursor>`` (RTP18a); ``last=True`` gives an empty cursor."""
    if last is None:
        cursor = st.text(max_size=8)
    else:
        cursor = st.just("") if last else st.text(min_size=1, max_size=8)
    return st.builds(lambda sid, cur: f"{sid}:{cur}", connection_ids(), cursor)


def mode_flags(*, extra: Sequence[int] = ()) -> Strategy[int]:
    """An ATTACH/ATTACHED ``flags`` value: any mix of mode bits plus optionally ``extra`` bits."""
    modes = st.sets(st.sampled_from(list(ChannelMode))).map(
        lambda chosen: sum(int(m) for m in chosen)
    )
    extras = st.sets(st.sampled_from(list(extra))) if extra else st.just(set[int]())
    return st.builds(
        lambda m, e: m | sum(int(bit) for bit in e),
        st.one_of(st.just(int(DEFAULT_MODES)), modes),
        extras,
    )


# --- payloads ------------------------------------------------------------------------------

_UNKNOWN_STEPS: Final = ("cipher+aes-128-cbc", "cipher+aes-256-cbc", "vcdiff", "x-custom")
_KNOWN_STEPS: Final = ("json", "utf-8", "base64")


def payloads() -> Strategy[tuple[Any, str | None]]:
    """``(data, encoding)`` pairs as the codec decodes them (RSL6, RSL6b).

    Either fully decoded data (text, bytes, or a JSON value) with encoding ``None``, or data
    decoded up to an unknown or cipher step, with the remaining encoding ending in that step.
    """
    decoded = st.one_of(
        st.none(),
        st.text(max_size=30),
        st.binary(max_size=30),
        json_values(max_leaves=8),
    )
    remaining = st.builds(
        lambda prefix, last: "/".join([*prefix, last]),
        st.lists(st.sampled_from(_KNOWN_STEPS + _UNKNOWN_STEPS), max_size=2),
        st.sampled_from(_UNKNOWN_STEPS),
    )
    raw = st.tuples(
        st.one_of(st.none(), st.text(max_size=30), st.binary(max_size=30), json_objects()),
        remaining,
    )
    return st.one_of(st.tuples(decoded, st.none()), raw)


# --- wire values ---------------------------------------------------------------------------


def error_infos(*, max_causes: int = 2) -> Strategy[ErrorInfo]:
    """ErrorInfo values, with a chain of at most ``max_causes`` causes."""
    base = st.builds(
        ErrorInfo,
        code=st.one_of(st.sampled_from([40000, 40012, 40160, 80008, 90001, 91004]), int64s()),
        status_code=st.sampled_from([400, 401, 404, 500]),
        message=st.text(max_size=30),
        href=st.none() | st.just("https://help.ably.io/error/40160"),
    )
    if max_causes <= 0:
        return base
    return st.one_of(
        base,
        st.builds(
            lambda error, cause: attrs.evolve(error, cause=cause),
            base,
            error_infos(max_causes=max_causes - 1),
        ),
    )


def connection_details(*, full: bool = False) -> Strategy[ConnectionDetails]:
    """ConnectionDetails; ``full=True`` sets every field, as a CONNECTED from our server does."""

    def opt(strategy: Strategy[Any]) -> Strategy[Any]:
        return strategy if full else st.none() | strategy

    durations = st.integers(0, 10_000_000)
    return st.builds(
        ConnectionDetails,
        client_id=opt(client_ids()),
        connection_key=opt(connection_ids()),
        max_message_size=opt(st.integers(0, 1 << 20)),
        max_idle_interval=opt(durations),
        connection_state_ttl=opt(durations),
        server_id=opt(st.text(max_size=12)),
        max_inbound_rate=opt(st.integers(0, 1000)),
        max_outbound_rate=opt(st.integers(0, 1000)),
        max_frame_size=opt(st.integers(0, 1 << 20)),
    )


def _optional(strategy: Strategy[Any]) -> Strategy[Any]:
    return st.none() | strategy


@st.composite
def presence_messages(
    draw: st.DrawFn,
    *,
    actions: Sequence[PresenceAction] = tuple(PresenceAction),
    complete: bool = False,
) -> PresenceMessage:
    """PresenceMessage values.

    Args:
        draw: Supplied by hypothesis.
        actions: The actions to draw from (default: all five).
        complete: When true, ``id``, ``client_id``, ``connection_id`` and ``timestamp`` are always
            set, and the id is ``connectionId:msgSerial:index`` as a server stamps it.
    """
    data, encoding = draw(payloads())
    if complete:
        connection_id = draw(connection_ids())
        serial, index = draw(st.integers(0, 10_000)), draw(st.integers(0, 50))
        return PresenceMessage(
            action=draw(st.sampled_from(actions)),
            client_id=draw(client_ids()),
            connection_id=connection_id,
            id=f"{connection_id}:{serial}:{index}",
            data=data,
            encoding=encoding,
            extras=draw(_optional(json_objects())),
            timestamp=draw(timestamps()),
        )
    return PresenceMessage(
        action=draw(st.sampled_from(actions)),
        client_id=draw(_optional(client_ids())),
        connection_id=draw(_optional(connection_ids())),
        id=draw(_optional(st.text(max_size=16))),
        data=data,
        encoding=encoding,
        extras=draw(_optional(json_objects())),
        timestamp=draw(_optional(int64s())),
    )


@st.composite
def messages(draw: st.DrawFn) -> Message:
    """Channel MESSAGE items, such as Chat typing indicators."""
    data, encoding = draw(payloads())
    return Message(
        name=draw(_optional(st.sampled_from(["typing.started", "typing.stopped", "chat"]))),
        data=data,
        encoding=encoding,
        extras=draw(_optional(st.just({"ephemeral": True}) | json_objects())),
        id=draw(_optional(st.text(max_size=16))),
        client_id=draw(_optional(client_ids())),
        connection_id=draw(_optional(connection_ids())),
        timestamp=draw(_optional(int64s())),
        serial=draw(_optional(st.text(max_size=16))),
        action=draw(_optional(st.integers(0, 5))),
    )


# --- protocol messages ---------------------------------------------------------------------


def with_inheritance(message: ProtocolMessage) -> ProtocolMessage:
    """Fill each item's missing id, connectionId and timestamp from its frame (TP3a/d/g, TM2).

    This is what :func:`presence_core.decode` does on receipt; the frame strategies apply it so
    that what they generate is a fixed point of decoding.
    """

    def fill(item: Any, index: int) -> Any:
        changes: dict[str, Any] = {}
        if item.id is None and message.id is not None:
            changes["id"] = f"{message.id}:{index}"
        if item.connection_id is None and message.connection_id is not None:
            changes["connection_id"] = message.connection_id
        if item.timestamp is None and message.timestamp is not None:
            changes["timestamp"] = message.timestamp
        return attrs.evolve(item, **changes) if changes else item

    changes: dict[str, Any] = {}
    if message.presence:
        changes["presence"] = tuple(fill(p, i) for i, p in enumerate(message.presence))
    if message.messages:
        changes["messages"] = tuple(fill(m, i) for i, m in enumerate(message.messages))
    return attrs.evolve(message, **changes) if changes else message


def _frame(action: ProtocolAction, **fields: Strategy[Any]) -> Strategy[ProtocolMessage]:
    return st.builds(ProtocolMessage, action=st.just(action), **fields).map(with_inheritance)


def _params() -> Strategy[dict[str, str]]:
    return st.dictionaries(st.sampled_from(["agent", "occupancy", "rewind"]), st.text(max_size=10))


def heartbeat_frames() -> Strategy[ProtocolMessage]:
    """HEARTBEAT, with an ``id`` when it is a ``connection.ping()`` or its reply."""
    return _frame(ProtocolAction.HEARTBEAT, id=_optional(st.text(max_size=12)))


def ack_frames() -> Strategy[ProtocolMessage]:
    """ACK ``{msgSerial, count, res?}``: ``res`` holds one ``{serials}`` per message."""
    res_entry = st.builds(lambda serials: {"serials": serials}, st.lists(st.text(max_size=10)))
    return _frame(
        ProtocolAction.ACK,
        msg_serial=st.integers(0, 1 << 40),
        count=st.integers(1, 100),
        res=_optional(st.lists(res_entry, max_size=3).map(tuple)),
    )


def nack_frames() -> Strategy[ProtocolMessage]:
    """NACK ``{msgSerial, count, error}``."""
    return _frame(
        ProtocolAction.NACK,
        msg_serial=st.integers(0, 1 << 40),
        count=st.integers(1, 100),
        error=error_infos(max_causes=1),
    )


def connected_frames() -> Strategy[ProtocolMessage]:
    """CONNECTED with full connectionDetails; an ``error`` means continuity was lost."""
    return _frame(
        ProtocolAction.CONNECTED,
        connection_id=connection_ids(),
        connection_key=_optional(connection_ids()),
        connection_details=connection_details(full=True),
        error=_optional(error_infos(max_causes=0)),
    )


def attach_frames() -> Strategy[ProtocolMessage]:
    """ATTACH with requested modes, optional params and a resume ``channelSerial``."""
    return _frame(
        ProtocolAction.ATTACH,
        channel=channel_names(),
        flags=_optional(mode_flags()),
        params=_optional(_params()),
        channel_serial=_optional(st.text(max_size=12)),
    )


def attached_frames() -> Strategy[ProtocolMessage]:
    """ATTACHED with granted modes plus HAS_PRESENCE and RESUMED as drawn."""
    return _frame(
        ProtocolAction.ATTACHED,
        channel=channel_names(),
        flags=mode_flags(extra=(Flag.HAS_PRESENCE, Flag.RESUMED)),
        channel_serial=_optional(st.text(max_size=12)),
        params=_optional(_params()),
        error=_optional(error_infos(max_causes=0)),
    )


def detach_frames() -> Strategy[ProtocolMessage]:
    """DETACH of one channel."""
    return _frame(ProtocolAction.DETACH, channel=channel_names())


def detached_frames() -> Strategy[ProtocolMessage]:
    """DETACHED, optionally with the error that caused it."""
    return _frame(
        ProtocolAction.DETACHED,
        channel=channel_names(),
        error=_optional(error_infos(max_causes=1)),
    )


def error_frames() -> Strategy[ProtocolMessage]:
    """ERROR: fatal to the connection without ``channel``, to that channel with it."""
    return _frame(
        ProtocolAction.ERROR,
        error=error_infos(),
        channel=_optional(channel_names()),
    )


_CLIENT_ACTIONS: Final = (PresenceAction.ENTER, PresenceAction.UPDATE, PresenceAction.LEAVE)


def presence_frames(*, max_items: int = 5) -> Strategy[ProtocolMessage]:
    """PRESENCE frames, as a server broadcasts them or as a client sends them.

    A broadcast has id, connectionId, timestamp and channelSerial, which its items inherit; a
    client's frame has a ``msgSerial`` and bare items.
    """
    broadcast = _frame(
        ProtocolAction.PRESENCE,
        channel=channel_names(),
        id=st.builds(lambda c, n: f"{c}:{n}", connection_ids(), st.integers(0, 10_000)),
        connection_id=connection_ids(),
        timestamp=timestamps(),
        channel_serial=_optional(st.text(max_size=12)),
        presence=st.lists(presence_messages(), min_size=1, max_size=max_items).map(tuple),
    )
    outbound = _frame(
        ProtocolAction.PRESENCE,
        channel=channel_names(),
        msg_serial=st.integers(0, 1 << 40),
        presence=st.lists(
            presence_messages(actions=_CLIENT_ACTIONS),
            min_size=1,
            max_size=max_items,
        ).map(tuple),
    )
    return broadcast | outbound


def sync_frames(*, max_items: int = 5, last: bool | None = None) -> Strategy[ProtocolMessage]:
    """SYNC pages with complete PRESENT items; sometimes no presence array at all (D7).

    The channelSerial is ``<syncId>:<cursor>``; ``last=True`` gives an empty cursor (the final
    page), ``last=False`` a non-empty one.
    """
    return _frame(
        ProtocolAction.SYNC,
        channel=channel_names(),
        channel_serial=_optional(sync_serials(last=last)),
        presence=_optional(
            st.lists(
                presence_messages(actions=(PresenceAction.PRESENT,), complete=True),
                max_size=max_items,
            ).map(tuple)
        ),
    )


def message_frames(*, max_items: int = 3) -> Strategy[ProtocolMessage]:
    """MESSAGE frames carrying channel messages (Chat typing uses these)."""
    return _frame(
        ProtocolAction.MESSAGE,
        channel=channel_names(),
        id=_optional(st.builds(lambda c, n: f"{c}:{n}", connection_ids(), st.integers(0, 99))),
        connection_id=_optional(connection_ids()),
        timestamp=_optional(timestamps()),
        msg_serial=_optional(st.integers(0, 1 << 40)),
        messages=st.lists(messages(), min_size=1, max_size=max_items).map(tuple),
    )


def generic_frames() -> Strategy[ProtocolMessage]:
    """Any combination of fields, with any action (unknown ones included) -- for codec tests."""
    res_entry = st.dictionaries(st.text(max_size=6), json_values(max_leaves=4), max_size=3)
    return st.builds(
        ProtocolMessage,
        action=st.sampled_from(list(ProtocolAction)) | st.integers(0, 1000) | int64s(),
        id=_optional(st.text(max_size=12)),
        channel=_optional(channel_names()),
        channel_serial=_optional(st.text(max_size=12)),
        connection_id=_optional(connection_ids()),
        connection_key=_optional(st.text(max_size=12)),
        connection_details=_optional(connection_details()),
        msg_serial=_optional(int64s()),
        count=_optional(int64s()),
        error=_optional(error_infos()),
        flags=_optional(int64s()),
        presence=_optional(st.lists(presence_messages(), max_size=4).map(tuple)),
        messages=_optional(st.lists(messages(), max_size=3).map(tuple)),
        timestamp=_optional(int64s()),
        params=_optional(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3)),
        res=_optional(st.lists(res_entry, max_size=3).map(tuple)),
    ).map(with_inheritance)


def protocol_messages() -> Strategy[ProtocolMessage]:
    """Any ProtocolMessage: the realistic shape of each action presence uses, or any mix."""
    return st.one_of(
        heartbeat_frames(),
        ack_frames(),
        nack_frames(),
        connected_frames(),
        attach_frames(),
        attached_frames(),
        detach_frames(),
        detached_frames(),
        error_frames(),
        presence_frames(),
        sync_frames(),
        message_frames(),
        generic_frames(),
    )


# --- simulator schedules -------------------------------------------------------------------
#
# Every strategy here draws times as offsets (ms after the simulation start) and returns
# schedules sorted by time, so shrinking moves events earlier and drops them.


def presence_data() -> Strategy[Any]:
    """Small presence payloads: none, small ints, short strings and one-key objects.

    Few distinct values, so updates often repeat data (the server's idempotent paths).
    """
    return st.one_of(
        st.none(),
        st.integers(min_value=0, max_value=3),
        st.sampled_from(["away", "busy", "\u00e9t\u00e9"]),
        st.builds(lambda n: {"status": n}, st.integers(min_value=0, max_value=2)),
    )


def _times(horizon: int) -> Strategy[int]:
    return st.integers(min_value=0, max_value=horizon)


def operation_events(
    *,
    clients: Sequence[str],
    rooms: Sequence[str],
    horizon: int = 60_000,
    acting_for: Mapping[str, Sequence[str]] | None = None,
) -> Strategy[OperationEvent]:
    """One user operation at a time in ``[0, horizon]`` ms: mostly enter/update/leave.

    Args:
        clients: Client names that may act.
        rooms: Room names they act in.
        horizon: Latest time.
        acting_for: Client name -> clientIds it enters for (``enter_client``); such a client
            always acts for one of them, as an unidentified backend connection does.
    """
    if not clients or not rooms:
        raise ValueError("clients and rooms must not be empty")
    acting = dict(acting_for or {})

    @st.composite
    def build(draw: st.DrawFn) -> OperationEvent:
        at = draw(_times(horizon))
        client = draw(st.sampled_from(list(clients)))
        room = draw(st.sampled_from(list(rooms)))
        kind = draw(st.sampled_from(["enter", "update", "leave", "enter", "attach", "detach"]))
        if kind == "attach":
            return Attach(at=at, client=client, room=room)
        if kind == "detach":
            return Detach(at=at, client=client, room=room)
        ids = acting.get(client)
        client_id = draw(st.sampled_from(list(ids))) if ids else None
        data = draw(presence_data())
        if kind == "enter":
            return Enter(at=at, client=client, room=room, data=data, client_id=client_id)
        if kind == "update":
            return Update(at=at, client=client, room=room, data=data, client_id=client_id)
        return Leave(at=at, client=client, room=room, data=data, client_id=client_id)

    return build()


def _sorted(events: Sequence[ScheduleEvent]) -> tuple[Any, ...]:
    return tuple(sorted(events, key=lambda event: event.at))


def operation_sequences(
    *,
    clients: Sequence[str],
    rooms: Sequence[str],
    max_size: int = 8,
    horizon: int = 60_000,
    acting_for: Mapping[str, Sequence[str]] | None = None,
) -> Strategy[tuple[OperationEvent, ...]]:
    """Up to ``max_size`` operations (see :func:`operation_events`), sorted by time."""
    ops = operation_events(clients=clients, rooms=rooms, horizon=horizon, acting_for=acting_for)
    return st.lists(ops, max_size=max_size).map(_sorted)


def partition_durations(
    *, grace_period: int = 15_000, connection_state_ttl: int = 120_000
) -> Strategy[int]:
    """Partition lengths in the four bands that behave differently.

    Shorter than the grace period (a resume loses nothing), between the grace period and the
    ttl (members leave, the resume keeps the connectionId and re-enters), around the ttl (a
    silent partition there makes the client resume a connection the server has forgotten:
    80008), and well beyond the ttl (the client suspends and starts afresh).
    """
    return st.one_of(
        st.integers(min_value=1_000, max_value=max(1_000, grace_period - 1_000)),
        st.integers(
            min_value=grace_period + 1_000,
            max_value=max(grace_period + 1_000, connection_state_ttl - 10_000),
        ),
        # The client notices a silent loss up to ~25 s late and retries every 15 s, so a
        # resume lands just after the server's ttl when the partition ends in this window.
        st.integers(
            min_value=max(1, connection_state_ttl - 5_000),
            max_value=connection_state_ttl + 10_000,
        ),
        st.integers(min_value=connection_state_ttl + 5_000, max_value=connection_state_ttl * 2),
    )


def restart_downtimes(
    *, grace_period: int = 15_000, connection_state_ttl: int = 120_000
) -> Strategy[int]:
    """How long a restarted client is down: well within the grace period, or well after it.

    Within it the new process recovers the connection with its members; after it the server
    has removed them, and beyond the ttl it has forgotten the connection too (80008).
    """
    return st.one_of(
        st.integers(min_value=100, max_value=max(100, grace_period - 5_000)),
        st.integers(
            min_value=grace_period + 5_000,
            max_value=max(grace_period + 5_000, connection_state_ttl + 30_000),
        ),
    )


def fault_events(
    *,
    clients: Sequence[str],
    rooms: Sequence[str],
    horizon: int = 60_000,
    grace_period: int = 15_000,
    connection_state_ttl: int = 120_000,
    max_idle_interval: int = 15_000,
) -> Strategy[FaultEvent]:
    """One fault, each kind about as likely as the others.

    The kinds: a dropped transport (also one whose sent frames still arrive, which makes
    resends duplicates), a half-open transport that breaks within ``max_idle_interval``, a
    partition (loud or silent), a server re-sync (also one restarted midway), a channel the
    server detaches or fails, a connection it fails, a client that closes and reopens, a client
    process restart, a server restart, a spell of heavy-tailed latency, and a client clock
    step (mostly backwards).  ``grace_period``, ``connection_state_ttl`` and
    ``max_idle_interval`` are the server's; durations are drawn around them (see
    :func:`partition_durations` and :func:`restart_downtimes`).
    """
    if not clients or not rooms:
        raise ValueError("clients and rooms must not be empty")
    client = st.sampled_from(list(clients))
    room = st.sampled_from(list(rooms))
    return st.one_of(
        st.builds(DropTransport, at=_times(horizon), client=client),
        # Three times the weight: it makes a duplicate only when it lands on a frame in flight.
        *(
            st.builds(DropTransport, at=_times(horizon), client=client, sent_arrive=st.just(True))
            for _ in range(3)
        ),
        st.builds(
            HalfOpen,
            at=_times(horizon),
            client=client,
            breaks_after=st.integers(min_value=0, max_value=max_idle_interval),
        ),
        *(
            st.builds(
                Partition,
                at=_times(horizon),
                client=client,
                duration=partition_durations(
                    grace_period=grace_period, connection_state_ttl=connection_state_ttl
                ),
                silent=st.just(silent),
            )
            for silent in (False, True)
        ),
        # A silent partition ending near the ttl: the client resumes a connection the server
        # has just forgotten (80008).  Rare by chance, so it gets its own branch.
        st.builds(
            Partition,
            at=_times(horizon),
            client=client,
            duration=st.integers(
                min_value=max(1, connection_state_ttl - 5_000),
                max_value=connection_state_ttl + 10_000,
            ),
            silent=st.just(True),
        ),
        st.builds(Resync, at=_times(horizon), room=st.sampled_from(list(rooms))),
        # A second sync soon after the first, restarting it midway when it is still paging.
        st.builds(
            Resync,
            at=_times(horizon),
            room=st.sampled_from(list(rooms)),
            restart_after=st.integers(min_value=1, max_value=300),
        ),
        st.builds(ServerDetach, at=_times(horizon), client=client, room=room),
        st.builds(
            ChannelFailure,
            at=_times(horizon),
            client=client,
            room=room,
            reattach_after=st.integers(min_value=100, max_value=20_000),
        ),
        st.builds(
            ConnectionFailure,
            at=_times(horizon),
            client=client,
            reconnect_after=st.integers(min_value=100, max_value=20_000),
        ),
        st.builds(
            Close,
            at=_times(horizon),
            client=client,
            reopen_after=st.integers(min_value=100, max_value=30_000),
        ),
        st.builds(
            Restart,
            at=_times(horizon),
            client=client,
            down_for=restart_downtimes(
                grace_period=grace_period, connection_state_ttl=connection_state_ttl
            ),
        ),
        st.builds(ServerRestart, at=_times(horizon)),
        st.builds(
            Lag,
            at=_times(horizon),
            client=client,
            duration=st.integers(min_value=1_000, max_value=30_000),
            scale=st.integers(min_value=50, max_value=5_000),
        ),
        st.builds(
            ClockStep,
            at=_times(horizon),
            client=client,
            step=st.one_of(
                st.integers(min_value=-120_000, max_value=-1),
                st.integers(min_value=-120_000, max_value=-1),
                st.integers(min_value=1, max_value=30_000),
            ),
        ),
    )


def fault_schedules(
    *,
    clients: Sequence[str],
    rooms: Sequence[str],
    max_size: int = 4,
    horizon: int = 60_000,
    grace_period: int = 15_000,
    connection_state_ttl: int = 120_000,
) -> Strategy[tuple[FaultEvent, ...]]:
    """Up to ``max_size`` faults (see :func:`fault_events`), sorted by time."""
    faults = fault_events(
        clients=clients,
        rooms=rooms,
        horizon=horizon,
        grace_period=grace_period,
        connection_state_ttl=connection_state_ttl,
    )
    return st.lists(faults, max_size=max_size).map(_sorted)


@st.composite
def _sync_overlap(
    draw: st.DrawFn,
    clients: Sequence[str],
    rooms: Sequence[str],
    horizon: int,
    acting_for: Mapping[str, Sequence[str]],
) -> list[ScheduleEvent]:
    """Two members enter ``room``, then a re-sync, with an update and a leave during it."""
    first, second = draw(st.lists(st.sampled_from(list(clients)), min_size=2, max_size=2))
    room = draw(st.sampled_from(list(rooms)))
    at = draw(_times(horizon))

    def acting(client: str) -> str | None:
        ids = acting_for.get(client)
        return ids[0] if ids else None

    return [
        Enter(at=at, client=first, room=room, data=1, client_id=acting(first)),
        Enter(at=at + 10, client=second, room=room, data=2, client_id=acting(second)),
        Resync(at=at + 2_000, room=room),
        Update(at=at + 2_010, client=first, room=room, data=3, client_id=acting(first)),
        Leave(at=at + 2_020, client=second, room=room, client_id=acting(second)),
    ]


def schedules(
    *,
    clients: Sequence[str],
    rooms: Sequence[str],
    max_operations: int = 8,
    max_faults: int = 4,
    horizon: int = 60_000,
    acting_for: Mapping[str, Sequence[str]] | None = None,
    grace_period: int = 15_000,
    connection_state_ttl: int = 120_000,
) -> Strategy[tuple[ScheduleEvent, ...]]:
    """Operations and faults merged into one schedule, sorted by time.

    Half of the faults land a few ms after an operation and hit that operation's client, while
    its frame or its ACK is on the wire, so resends after reconnect (and the server's
    deduplication by msgSerial) get exercised.  A third of the schedules also hold a sync
    that overlaps live presence: two clients enter a room, the server re-syncs it, and one of
    them updates and the other leaves while the pages go out (with a server that pages its
    SYNCs over time, as the simulator's does).
    """

    @st.composite
    def build(draw: st.DrawFn) -> tuple[ScheduleEvent, ...]:
        ops: tuple[OperationEvent, ...] = draw(
            operation_sequences(
                clients=clients,
                rooms=rooms,
                max_size=max_operations,
                horizon=horizon,
                acting_for=acting_for,
            )
        )
        faults = list(
            draw(
                fault_schedules(
                    clients=clients,
                    rooms=rooms,
                    max_size=max_faults,
                    horizon=horizon,
                    grace_period=grace_period,
                    connection_state_ttl=connection_state_ttl,
                )
            )
        )
        presence_ops = [op for op in ops if isinstance(op, Enter | Update | Leave)]
        for index, fault in enumerate(faults):
            # A drop that lets the sent frames arrive duplicates a resend only while a frame
            # is in flight, and a sync overlaps live presence only while an operation's
            # PRESENCE comes, so both always land next to a presence operation.
            resend = isinstance(fault, DropTransport) and fault.sent_arrive
            pinned = resend or isinstance(fault, Resync)
            near: bool = pinned or draw(st.booleans())
            anchors = presence_ops if pinned and presence_ops else ops
            if anchors and near:
                anchor: OperationEvent = draw(st.sampled_from(anchors))
                delay: int = draw(st.integers(min_value=0, max_value=15 if resend else 150))
                if isinstance(fault, Resync):
                    # Just before the operation, so that its PRESENCE comes between the pages.
                    at = max(0, anchor.at - delay)
                    faults[index] = attrs.evolve(fault, at=at, room=anchor.room)
                elif isinstance(fault, ServerRestart):
                    faults[index] = attrs.evolve(fault, at=anchor.at + delay)
                else:
                    # The operating client's own transport fails while its frame is on the wire.
                    faults[index] = attrs.evolve(fault, at=anchor.at + delay, client=anchor.client)
        overlap: list[ScheduleEvent] = []
        if draw(st.integers(min_value=0, max_value=2)) == 0:
            overlap = draw(_sync_overlap(clients, rooms, horizon, acting_for or {}))
        return _sorted([*ops, *faults, *overlap])

    return build()
