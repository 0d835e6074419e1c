"""The PresenceSet reducer: Ably realtime presence for one channel (room).

API CONTRACT (fixed; the connection reducer, the simulator and outside conformance suites
drive PresenceSet exactly through these entry points):

* Frames for this channel: ``receive(message, now=...)`` for ATTACHED, DETACHED, PRESENCE,
  SYNC and ERROR naming the channel.  Other actions are ignored (a ``FrameIgnored`` event).
* Non-frame inputs:
  - ``set_connection(connection_id, client_id=..., now=...)`` on every CONNECTED, including a
    new id after a failed resume;
  - ``set_channel_state(state, reason=..., now=...)`` for the local channel-state changes that
    connection states cause (ATTACHING, SUSPENDED, DETACHED, FAILED; RTL3).
* User operations: ``attach``, ``detach``, ``enter``, ``update``, ``leave``, ``enter_client``,
  ``update_client``, ``leave_client``.  Presence operations put their handle in
  ``Output.operation``; an ACK or NACK settles it later through ``acknowledge`` / ``reject``.
* Every call returns one frozen :class:`~presence_core.Output`.
* Queries: ``get``, ``is_user_present``, ``sync_complete``, ``state``, ``own_members``,
  ``snapshot``.

Outgoing PRESENCE frames are :class:`~presence_core.SendPresence` commands without a
``msg_serial``; whoever owns the connection numbers them and routes the ACK/NACK back.

SEMANTIC CHOICES (ably-presence-rules.md §2-§5, decisions.md D1-D10; the rule -> test table is
in notes/readme-presence-set.md):

* Members are keyed by (connectionId, clientId).  The stored message is the received one (its
  action may be ENTER or UPDATE); :meth:`PresenceSet.get` presents it as PRESENT.  ABSENT
  tombstones are kept apart from visible members and never listed.
* Newness is :mod:`presence_core._newness` (strict ``<connectionId>:`` prefix; unparsable ids
  compare by timestamp; a missing timestamp lets the incoming message win).
* Events of one PRESENCE/SYNC frame are the applied messages themselves, in item order; on
  a final SYNC page the residual (RTP19) leaves follow the page's own events, in the order
  the members first appeared.  Synthesized leaves carry ``id=None`` and ``timestamp=now``.
* A LEAVE during a sync emits once and tombstones (D1); an unknown-member LEAVE during a sync
  tombstones silently (D2); a new sync id restarts the residual set, keeping tombstones (D3).
* On ATTACHED the state changes first, then the sync starts or RTP19a clears with leaves,
  then queued user operations and re-entries go out together in one PRESENCE frame (D9/D10).
  A clientId with a queued user operation in that frame is not also re-entered.
* Re-entry follows the user's latest intent, not only the echo-fed own-member map.  This
  extends RTP17 (which feeds that map from echoes only) to fix the ably-java#930 class of
  bugs, where operations in flight across a reconnect are lost or undone:
  - on an ATTACHED that re-enters (RTP17i), a clientId with a queued operation in the frame,
    or with an operation in flight (sent, awaiting ACK/NACK; the connection resends it), is
    not re-entered; other own members are re-entered as RTP17g/RTP17g1 say;
  - when an own ENTER/UPDATE (``*_client`` variants and re-entries included) is ACKed and
    the own-member map does not already hold its content, the content is recorded there
    without id or timestamp, so any later echo supersedes it; an ACKed LEAVE removes the
    clientId.  For a clientId's latest operation this always happens (an echo applied after
    it was sent may be an earlier operation's); for an earlier one only if the map did not
    change for that clientId since it was sent (a fallback should the later one fail).
    "Since" is tracked with a counter that steps once per operation sent (and on an RTP5a
    clear or a non-resumed ATTACHED); an echo changing the map stores it (one dict store);
  - if that latest ENTER/UPDATE was sent before a non-RESUMED ATTACHED and is ACKed with no
    echo for its clientId since that ATTACHED, the server deduplicated a resend whose effect
    it had lost: the ACK re-enters the clientId with the operation's data and extras and no
    id (the own entry's id does not describe this data);
  - a LEAVE in SUSPENDED/DETACHING/FAILED is refused (90001) when the intent is "present",
    and a no-op success otherwise; operations sent before an RTP5a clear carry no intent.
  The lead's first design re-entered from an in-flight ENTER/UPDATE at once; deferring to
  the ACK avoids a redundant id-less re-entry (a spurious UPDATE for peers) whenever the
  resend itself is applied: after a resume within the grace period, on a new connection id,
  and for frames the connection held back while disconnected.
  Scenarios (tests/test_simulator_regressions.py): an enter applied but its echo and ACK
  lost, resent after the grace period and deduplicated; a LEAVE in flight undone by the
  re-entry behind it; an UPDATE in flight overtaken by a re-entry of older data; an
  enter_client whose deduplicated resend is ACKed without an echo; a resume within the grace
  period with an enter in flight (no extra event for peers).
* Error model: caller misuse visible before sending (wrong channel state, room option
  ``enter`` false, anonymous or mismatched clientId) raises :class:`UsageError` and changes
  nothing; bad peer input raises :class:`ProtocolError` and changes nothing; failures that
  happen later (NACK, a state change failing queued work) settle the operation with an
  ``OperationFailed`` command.
* No timers: a retry after RTL13b (DETACHED while attaching -> SUSPENDED) is the owner's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, TypeAlias

import attrs

from presence_core._errors import ProtocolError, UsageError
from presence_core._newness import NO_POSITION, UNPARSED, newer_than, position, superseding
from presence_core._output import (
    EMPTY_OUTPUT,
    ChannelState,
    ChannelStateChanged,
    Command,
    Event,
    FrameIgnored,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    ReentryFailed,
    Send,
    SendPresence,
    events_output,
)
from presence_core._wire import (
    ChannelMode,
    ErrorInfo,
    Flag,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = ["RoomOptions", "PresenceMember", "PresenceSet", "PresenceSnapshot"]


@attrs.frozen(kw_only=True)
class RoomOptions:
    """Room options (decisions.md, "Room options and modes").

    ``enter`` is the permission to enter presence, ``subscribe`` the permission to receive
    presence events.  Both default to true and become explicit ATTACH mode flags.
    """

    enter: bool = True
    subscribe: bool = True

    @property
    def modes(self) -> ChannelMode:
        """The ATTACH mode flags: PUBLISH | SUBSCRIBE, plus PRESENCE and PRESENCE_SUBSCRIBE."""
        modes = ChannelMode.PUBLISH | ChannelMode.SUBSCRIBE
        if self.enter:
            modes |= ChannelMode.PRESENCE
        if self.subscribe:
            modes |= ChannelMode.PRESENCE_SUBSCRIBE
        return modes


@attrs.frozen(kw_only=True)
class PresenceMember:
    """A member as returned by :meth:`PresenceSet.get`: always action PRESENT."""

    action: PresenceAction
    client_id: str
    connection_id: str
    data: Any = None
    extras: dict[str, Any] | None = None
    #: Epoch ms of the message that last set this member.
    updated_at: int | None = None


@attrs.frozen(kw_only=True)
class PresenceSnapshot:
    """A comparable picture of a PresenceSet's whole state, for tests and debugging."""

    state: ChannelState
    connection_id: str | None
    client_id: str | None
    sync_complete: bool
    members: frozenset[Any]
    own_members: frozenset[Any]
    pending: tuple[Any, ...]
    extra: tuple[Any, ...] = ()


# Hot-path constants: comparing against module globals is cheaper than enum attribute lookups.
_PRESENT: Final = PresenceAction.PRESENT
_ENTER: Final = PresenceAction.ENTER
_LEAVE: Final = PresenceAction.LEAVE
_UPDATE: Final = PresenceAction.UPDATE
_ABSENT: Final = PresenceAction.ABSENT
_UNPARSED: Final = UNPARSED
_A_PRESENCE: Final = int(ProtocolAction.PRESENCE)
_A_SYNC: Final = int(ProtocolAction.SYNC)
_A_ATTACHED: Final = int(ProtocolAction.ATTACHED)
_A_DETACHED: Final = int(ProtocolAction.DETACHED)
_A_ERROR: Final = int(ProtocolAction.ERROR)

_INITIALIZED: Final = ChannelState.INITIALIZED
_ATTACHING: Final = ChannelState.ATTACHING
_ATTACHED: Final = ChannelState.ATTACHED
_DETACHING: Final = ChannelState.DETACHING
_DETACHED: Final = ChannelState.DETACHED
_SUSPENDED: Final = ChannelState.SUSPENDED
_FAILED: Final = ChannelState.FAILED

#: States in which enter/update (and a leave while present) are refused with 90001 (D8).
_REFUSING: Final = frozenset({_SUSPENDED, _DETACHING, _FAILED})
#: States that a connection-level DETACHED or FAILED moves to DETACHED/FAILED (RTL3a/b).
_ACTIVE: Final = frozenset({_ATTACHING, _ATTACHED, _SUSPENDED, _DETACHING})

#: A stored message with its cached RTP2b position: (message, msgSerial or -1, index).
_Entry: TypeAlias = tuple[PresenceMessage, int, int]
#: memberKey (TP3h): (connectionId, clientId).
_Key: TypeAlias = tuple[str, str]
#: An operation sent and awaiting its ACK/NACK: (operation, the clientId it acts for or None
#: if unknown, the PRESENCE item sent, its send stamp).
_Sent: TypeAlias = tuple[Operation, str | None, PresenceMessage, int]


def _freeze(value: Any) -> Any:
    """A hashable, comparable stand-in for decoded data (dicts and lists are unhashable)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((repr(k), _freeze(v)) for k, v in value.items()))))
    if isinstance(value, list | tuple):
        return ("list", tuple(_freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def _message_picture(message: PresenceMessage) -> tuple[Any, ...]:
    return (
        message.connection_id,
        message.client_id,
        message.id,
        message.timestamp,
        _freeze(message.data),
        message.encoding,
        _freeze(message.extras),
    )


def _as_member(message: PresenceMessage) -> PresenceMember:
    return PresenceMember(
        action=_PRESENT,
        client_id=message.client_id,  # type: ignore[arg-type]  # validated on receipt
        connection_id=message.connection_id,  # type: ignore[arg-type]
        data=message.data,
        extras=message.extras,
        updated_at=message.timestamp,
    )


def _reentry_item(client: str, sent: PresenceMessage) -> PresenceMessage:
    """A re-entry carrying an in-flight ENTER/UPDATE's content, without an id."""
    return PresenceMessage(
        action=_ENTER,
        client_id=client,
        data=sent.data,
        encoding=sent.encoding,
        extras=sent.extras,
    )


def _same_content(stored: PresenceMessage, item: PresenceMessage) -> bool:
    """Whether a stored own member already carries an operation's data, encoding and extras."""
    return (
        stored.encoding == item.encoding
        and type(stored.data) is type(item.data)
        and bool(stored.data == item.data)
        and bool(stored.extras == item.extras)
    )


def _synthesized_leave(message: PresenceMessage, now: int) -> PresenceMessage:
    """RTP19/RTP19a: the member's stored attributes, action LEAVE, id None, timestamp now."""
    return PresenceMessage(
        action=_LEAVE,
        client_id=message.client_id,
        connection_id=message.connection_id,
        id=None,
        data=message.data,
        encoding=message.encoding,
        extras=message.extras,
        timestamp=now,
    )


class PresenceSet:
    """Deterministic presence reducer for one channel.  See the module docstring.

    Args:
        channel: The channel name (for a Chat room ``R``, ``R::$chat``).
        client_id: The library's clientId if already known (``None`` until CONNECTED tells).
        options: The room options; defaults to entering and subscribing allowed.
    """

    __slots__ = (
        "_by_client",
        "_channel",
        "_channel_serial",
        "_cleared_at",
        "_client_id",
        "_connection_id",
        "_granted_modes",
        "_in_flight",
        "_last_sent",
        "_members",
        "_next_op",
        "_options",
        "_own",
        "_own_seen",
        "_queued",
        "_reattached_at",
        "_recorded",
        "_residual",
        "_stamp",
        "_state",
        "_sync_id",
        "_syncing",
        "_tombstones",
    )

    def __init__(
        self,
        channel: str,
        *,
        client_id: str | None = None,
        options: RoomOptions | None = None,
    ) -> None:
        if type(channel) is not str or not channel:
            raise UsageError("channel name must be a non-empty string", code=40010)
        self._channel = channel
        self._client_id = client_id
        self._options = options if options is not None else RoomOptions()
        self._state = _INITIALIZED
        self._connection_id: str | None = None
        self._granted_modes: ChannelMode | None = None
        # RTL15b: the last channelSerial seen on ATTACHED/PRESENCE, sent back in ATTACH.
        self._channel_serial: str | None = None
        # RTP2: visible members only.  ABSENT tombstones live apart in _tombstones, so get()
        # never has to filter and the clientId index only covers visible members.
        self._members: dict[_Key, _Entry] = {}
        self._tombstones: dict[_Key, _Entry] = {}
        # clientId -> connectionId, or an ordered dict of connectionIds when the same clientId
        # is present on several connections (rare; a plain str keeps memory low).
        self._by_client: dict[str, str | dict[str, None]] = {}
        self._syncing = False
        self._sync_id: str | None = None
        # RTP19 residual set; a dict (insertion ordered) so synthesized leaves come out in a
        # deterministic order in every process, whatever the string hash seed.
        self._residual: dict[_Key, None] = {}
        # RTP17 own-member map, keyed by clientId (RTP17h).
        self._own: dict[str, _Entry] = {}
        self._queued: list[tuple[Operation, PresenceMessage]] = []
        # Sent operations in send order (so stamps increase along the dict).
        self._in_flight: dict[int, _Sent] = {}
        self._next_op = 1
        # The user's intent across lost echoes (see "Re-entry follows the user's latest
        # intent" in the module docstring).  _stamp grows by one per operation sent (and on
        # an RTP5a clear or a non-resumed ATTACHED); an echo that changes the own-member map
        # stores the current _stamp in _own_seen, a change made by an ACK in _recorded, so
        # "changed after operation N was sent" is ``stored stamp >= stamp of N``.  _last_sent
        # holds the stamp of each clientId's latest sent operation until that one settles.
        # Operations sent before _cleared_at (an RTP5a clear) carry no intent any more;
        # _reattached_at is the stamp of the last non-resumed re-entering ATTACHED.
        self._stamp = 0
        self._cleared_at = 0
        self._reattached_at = 0
        self._own_seen: dict[str, int] = {}
        self._recorded: dict[str, int] = {}
        self._last_sent: dict[str, int] = {}

    # -- properties -------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        """The channel name."""
        return self._channel

    @property
    def state(self) -> ChannelState:
        """The channel state as this PresenceSet knows it."""
        return self._state

    @property
    def sync_complete(self) -> bool:
        """RTP13: true when no sync is in progress."""
        return not self._syncing

    @property
    def options(self) -> RoomOptions:
        """The room options given at construction."""
        return self._options

    @property
    def connection_id(self) -> str | None:
        """The current connection id (``None`` before the first :meth:`set_connection`)."""
        return self._connection_id

    @property
    def client_id(self) -> str | None:
        """The library's clientId as currently known."""
        return self._client_id

    @property
    def granted_modes(self) -> ChannelMode | None:
        """The modes granted by the last ATTACHED (RTL4m), or ``None`` before one arrived."""
        return self._granted_modes

    @property
    def own_members(self) -> dict[str, PresenceMessage]:
        """A copy of the RTP17 own-member map: clientId -> the last applied echo.

        An own operation ACKed without its echo is recorded here too, as a message with no id
        and no timestamp (any later echo supersedes it); see the module docstring.
        """
        return {client: entry[0] for client, entry in self._own.items()}

    @property
    def pending(self) -> tuple[Operation, ...]:
        """Operations not yet settled: queued ones first, then those sent and awaiting ACK."""
        return tuple(op for op, _ in self._queued) + tuple(s[0] for s in self._in_flight.values())

    # -- inputs: frames ---------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, now: int) -> Output:
        """Apply one frame for this channel.  Raises ProtocolError and changes nothing if bad.

        Handles PRESENCE, SYNC, ATTACHED, DETACHED and ERROR.  Any other action (known or
        unknown) gives a :class:`~presence_core.FrameIgnored` event.  A frame naming another
        channel, a presence item without clientId or connectionId (after TP3 inheritance), a
        non-integer timestamp, or a SYNC ``channelSerial`` without a colon raise
        :class:`~presence_core.ProtocolError`.  PRESENCE and SYNC frames are ignored unless the
        channel is ATTACHED (RTL17).
        """
        if message.channel != self._channel:
            raise ProtocolError(
                f"frame for channel {message.channel!r} given to {self._channel!r}",
                path="channel",
            )
        action = message.action
        if action == _A_PRESENCE:
            items: Sequence[PresenceMessage]
            presence = message.presence
            if presence.__class__ is tuple:
                # _checked_items, inlined for the hot path.
                items = presence
                for m in items:
                    if (
                        m.__class__ is not PresenceMessage
                        or m.client_id.__class__ is not str
                        or m.connection_id.__class__ is not str
                        or m.id.__class__ is not str
                        or m.timestamp.__class__ is not int
                        or m.action.__class__ is not PresenceAction
                        or m.action is _ABSENT
                    ):
                        items = self._normalized_items(message)
                        break
            else:
                items = self._checked_items(message)
            if self._state is not _ATTACHED:
                return _ignored(message, "channel not attached")
            if message.channel_serial is not None:
                self._channel_serial = message.channel_serial
            if len(items) == 1:
                # The common frame: one item, applied without building an events list.
                m = items[0]
                if not self._apply_one(m):
                    return EMPTY_OUTPUT
                return events_output(items if items.__class__ is tuple else (m,))
            if not items:
                return EMPTY_OUTPUT
            events = self._apply(items)
            return events_output(events) if events else EMPTY_OUTPUT
        if action == _A_SYNC:
            return self._on_sync(message, now)
        if action == _A_ATTACHED:
            return self._on_attached(message, now)
        if action == _A_DETACHED:
            return self._on_detached(message)
        if action == _A_ERROR:
            if self._state is _FAILED:
                return _ignored(message, "channel already failed")
            return self._to_cleared(_FAILED, message.error)
        return _ignored(message, "action not handled by presence")

    def _checked_items(self, message: ProtocolMessage) -> Sequence[PresenceMessage]:
        """Validate a frame's presence items; return them (TP3-inherited if needed)."""
        items = message.presence
        if items.__class__ is not tuple:
            if items is None:
                return ()
            return self._normalized_items(message)
        for m in items:
            # The common case first: a decoded item needing no inheritance or coercion.
            if (
                m.__class__ is not PresenceMessage
                or m.client_id.__class__ is not str
                or m.connection_id.__class__ is not str
                or m.id.__class__ is not str
                or m.timestamp.__class__ is not int
                or m.action.__class__ is not PresenceAction
                or m.action is _ABSENT
            ):
                return self._normalized_items(message)
        return items

    def _normalized_items(self, message: ProtocolMessage) -> list[PresenceMessage]:
        """The slow path of :meth:`_checked_items`: inherit, coerce, drop unknown, or raise."""
        items: Any = message.presence
        if not isinstance(items, tuple | list):
            raise ProtocolError("presence must be an array", path="presence")
        parent_id = message.id
        parent_conn = message.connection_id
        parent_ts = message.timestamp
        out: list[PresenceMessage] = []
        for i, m in enumerate(items):
            path = f"presence[{i}]"
            if not isinstance(m, PresenceMessage):
                raise ProtocolError("not a presence message", path=path)
            action: Any = m.action
            if action.__class__ is not PresenceAction:
                if type(action) is not int or action not in _KNOWN_ACTIONS:
                    continue  # an unknown presence action is forward-compatible: skip it
                action = PresenceAction(action)
            if action is _ABSENT:
                continue  # ABSENT is a local marker; a peer never sends it (rules §1.4)
            conn = m.connection_id if m.connection_id is not None else parent_conn
            mid = m.id
            if mid is None and type(parent_id) is str:
                mid = f"{parent_id}:{i}"
            ts = m.timestamp if m.timestamp is not None else parent_ts
            if type(m.client_id) is not str:
                raise ProtocolError("missing or non-string clientId", path=f"{path}.clientId")
            if type(conn) is not str:
                raise ProtocolError(
                    "missing or non-string connectionId", path=f"{path}.connectionId"
                )
            if ts is not None and type(ts) is not int:
                raise ProtocolError("timestamp must be an integer", path=f"{path}.timestamp")
            if mid is not None and type(mid) is not str:
                raise ProtocolError("id must be a string", path=f"{path}.id")
            if (
                action is not m.action
                or conn is not m.connection_id
                or mid is not m.id
                or ts is not m.timestamp
            ):
                out.append(attrs.evolve(m, action=action, connection_id=conn, id=mid, timestamp=ts))
            else:
                out.append(m)
        return out

    def _apply(self, items: Sequence[PresenceMessage]) -> tuple[Event, ...]:
        """Apply validated PRESENCE or SYNC items (RTP2, RTP17b); return the events.

        This is the hot path: per item one dict lookup, a newness check only if the key is
        stored already, a dict write, the clientId index update when a key appears or
        disappears, and the message itself kept as the event.  An id is parsed into its RTP2b
        position only when a comparison needs it: a new member is stored ``UNPARSED`` and
        parsed (and the parse cached in its entry) on its first comparison.
        """
        members = self._members
        tombstones = self._tombstones
        by_client = self._by_client
        syncing = self._syncing
        residual = self._residual
        own_conn = self._connection_id
        applied: list[PresenceMessage] = []
        for m in items:
            # Validated on receipt: both are str here.
            cid: str = m.connection_id  # type: ignore[assignment]
            client: str = m.client_id  # type: ignore[assignment]
            key = (cid, client)
            old = members.get(key)
            if m.action is _LEAVE:
                if old is not None:
                    entry = superseding(m, cid, old, members, key)
                    if entry is not None:
                        del members[key]
                        conns = by_client.pop(client)
                        if conns.__class__ is not str:
                            self._unindex_many(client, cid, conns)
                        if syncing:
                            # RTP2h2a + D1: tombstone, one leave now, no residual leave later.
                            tombstones[key] = entry
                            residual.pop(key, None)
                        applied.append(m)
                elif syncing:
                    # D2: a leave for an unknown member during a sync is a silent tombstone,
                    # so an older SYNC entry for it cannot resurrect it.
                    old = tombstones.get(key)
                    if old is None:
                        tombstones[key] = (m, _UNPARSED, 0)
                    else:
                        entry = superseding(m, cid, old, tombstones, key)
                        if entry is not None:
                            tombstones[key] = entry
            else:
                if syncing:
                    # RTP19 (UTS clarification): seen counts even if it loses newness.
                    residual.pop(key, None)
                if old is not None:
                    entry = superseding(m, cid, old, members, key)
                    if entry is not None:
                        members[key] = entry
                        applied.append(m)
                elif not tombstones or self._beats_tombstone(key, m):
                    members[key] = (m, _UNPARSED, 0)
                    if by_client.setdefault(client, cid) is not cid:
                        self._index_many(client, cid)
                    applied.append(m)
            if cid == own_conn:
                self._apply_own(m)
        return tuple(applied)

    def _apply_one(self, m: PresenceMessage) -> bool:
        """:meth:`_apply` for a frame of one item (step for step); return whether it applied.

        Kept in step with :meth:`_apply` by the stateful model test, which mixes frames of
        one and of several items, and by ``test_one_item_frames_match_one_frame``.
        """
        # Validated on receipt: both are str here.
        cid: str = m.connection_id  # type: ignore[assignment]
        client: str = m.client_id  # type: ignore[assignment]
        key = (cid, client)
        members = self._members
        old = members.get(key)
        applied = False
        if m.action is _LEAVE:
            if old is not None:
                entry = superseding(m, cid, old, members, key)
                if entry is not None:
                    del members[key]
                    conns = self._by_client.pop(client)
                    if conns.__class__ is not str:
                        self._unindex_many(client, cid, conns)
                    if self._syncing:
                        # RTP2h2a + D1: tombstone, one leave now, no residual leave later.
                        self._tombstones[key] = entry
                        self._residual.pop(key, None)
                    applied = True
            elif self._syncing:
                # D2: a silent tombstone (see _apply).
                tombstones = self._tombstones
                old = tombstones.get(key)
                if old is None:
                    tombstones[key] = (m, _UNPARSED, 0)
                else:
                    entry = superseding(m, cid, old, tombstones, key)
                    if entry is not None:
                        tombstones[key] = entry
        else:
            if self._syncing:
                # RTP19 (UTS clarification): seen counts even if it loses newness.
                self._residual.pop(key, None)
            if old is not None:
                entry = superseding(m, cid, old, members, key)
                if entry is not None:
                    members[key] = entry
                    applied = True
            elif not self._tombstones or self._beats_tombstone(key, m):
                members[key] = (m, _UNPARSED, 0)
                if self._by_client.setdefault(client, cid) is not cid:
                    self._index_many(client, cid)
                applied = True
        if cid == self._connection_id:
            self._apply_own(m)
        return applied

    def _beats_tombstone(self, key: _Key, m: PresenceMessage) -> bool:
        """Whether a member message supersedes the tombstone for its key (and drop it if so)."""
        tombstones = self._tombstones
        old = tombstones.get(key)
        if old is None:
            return True
        if superseding(m, key[0], old, tombstones, key) is not None:
            del tombstones[key]
            return True
        return False

    def _index_many(self, client: str, cid: str) -> None:
        current = self._by_client[client]
        if isinstance(current, str):
            self._by_client[client] = {current: None, cid: None}
        else:
            current[cid] = None

    def _unindex_many(self, client: str, cid: str, conns: str | dict[str, None]) -> None:
        """Put back the index entry ``conns`` (popped for ``client``) without ``cid``.

        Callers pop the entry first, which is all a clientId on one connection needs; only a
        clientId on several connections (a dict entry) comes here.
        """
        assert type(conns) is dict  # the str case is handled by the callers
        del conns[cid]
        self._by_client[client] = next(iter(conns)) if len(conns) == 1 else conns

    def _index_remove(self, client: str, cid: str) -> None:
        conns = self._by_client.pop(client)
        if type(conns) is not str:
            self._unindex_many(client, cid, conns)

    def _apply_own(self, m: PresenceMessage) -> None:
        """RTP17b/RTP17h/D4: feed the own-member map from an echo on the current connection."""
        serial, index = position(m.id, m.connection_id)
        client: str = m.client_id  # type: ignore[assignment]
        old = self._own.get(client)
        if m.action is _LEAVE:
            # A synthesized leave (no position) must not drop the re-entry record (RTP17b).
            if serial < 0 or old is None:
                return
            if old[0].connection_id != m.connection_id or newer_than(m, serial, index, old):
                del self._own[client]
                self._own_seen[client] = self._stamp
        elif (
            old is None
            or old[0].connection_id != m.connection_id  # D4: another connection always wins
            or newer_than(m, serial, index, old)
        ):
            self._own[client] = (m, serial, index)
            self._own_seen[client] = self._stamp

    def _on_sync(self, message: ProtocolMessage, now: int) -> Output:
        serial = message.channel_serial
        if serial is None:
            sync_id: str | None = None
            cursor = ""
        else:
            if type(serial) is not str or ":" not in serial:
                raise ProtocolError("sync cursor must be '<syncId>:<cursor>'", path="channelSerial")
            sync_id, _, cursor = serial.partition(":")
        items = self._checked_items(message)
        if self._state is not _ATTACHED:
            return _ignored(message, "channel not attached")
        if not self._syncing:
            self._start_sync(sync_id)  # RTP18: the server may start a sync at any time
        elif self._sync_id is None:
            self._sync_id = sync_id  # the sync announced by ATTACHED's HAS_PRESENCE
        elif sync_id is None or sync_id != self._sync_id:
            self._start_sync(sync_id)  # RTP18a + D3: restart; tombstones are kept
        events = self._apply(items) if items else ()
        if cursor == "":
            events += self._end_sync(now)  # RTP18b: this page's events first
        return events_output(events) if events else EMPTY_OUTPUT

    def _start_sync(self, sync_id: str | None) -> None:
        """RTP19: every visible member is residual until seen."""
        self._syncing = True
        self._sync_id = sync_id
        self._residual = dict.fromkeys(self._members)

    def _end_sync(self, now: int) -> tuple[Event, ...]:
        """RTP19 residual leaves (id None, timestamp now), RTP2h2b silent tombstone removal."""
        events: list[Event] = []
        members = self._members
        for key in self._residual:
            message = members.pop(key)[0]
            self._index_remove(key[1], key[0])
            events.append(_synthesized_leave(message, now))
        self._residual = {}
        self._tombstones.clear()
        self._syncing = False
        self._sync_id = None
        return tuple(events)

    def _clear_with_leaves(self, now: int) -> list[Event]:
        """RTP19a: a leave for every member, then an empty, complete set."""
        events: list[Event] = [
            _synthesized_leave(entry[0], now) for entry in self._members.values()
        ]
        self._members.clear()
        self._by_client.clear()
        self._tombstones.clear()
        self._residual = {}
        self._syncing = False
        self._sync_id = None
        return events

    def _on_attached(self, message: ProtocolMessage, now: int) -> Output:
        state = self._state
        if state is _DETACHING or state is _DETACHED:
            # RTL5k: an ATTACHED while (being) detached is answered with a fresh DETACH.
            return Output(commands=(self._send_detach(),))
        if state is _FAILED:
            return _ignored(message, "channel failed")
        resumed = message.has_flag(Flag.RESUMED)
        self._granted_modes = message.modes
        if message.channel_serial is not None:
            self._channel_serial = message.channel_serial
        if state is _ATTACHED and resumed:
            return EMPTY_OUTPUT  # RTL12/RTP17i: continuity kept, nothing to redo
        # D10: the channel is ATTACHED before presence handling and re-entry run.
        self._state = _ATTACHED
        events: list[Event] = [
            ChannelStateChanged(
                channel=self._channel,
                previous=state,
                current=_ATTACHED,
                reason=message.error,
                resumed=resumed,
            )
        ]
        if message.has_flag(Flag.HAS_PRESENCE):
            self._start_sync(None)  # RTP1; D3 for a sync that was still running
        else:
            events.extend(self._clear_with_leaves(now))  # RTP19a
        return Output(tuple(events), self._flush_and_reenter(resumed))

    def _flush_and_reenter(self, resumed: bool) -> tuple[Command, ...]:
        """RTP5b + RTP17i/RTP17g/RTP17g1 + D9/D10: one PRESENCE frame, queued ops first.

        Each clientId is re-entered according to the user's latest intent (ably-java#930):

        * a queued user operation in this frame decides its presence: no re-entry;
        * else an operation of it in flight (sent, awaiting ACK/NACK) decides, and is resent
          by the connection: no re-entry now.  If the ATTACHED is not RESUMED and the last
          such ENTER/UPDATE is later ACKed with no echo for the clientId since this ATTACHED
          (the server deduplicated a resend whose effect it had lost), :meth:`acknowledge`
          re-enters with that operation's content;
        * else its own-member entry: re-enter with its data, extras and, on the same
          connection, its id (RTP17g, RTP17g1).
        """
        ops: list[Operation] = []
        items: list[PresenceMessage] = []
        acted: set[str | None] = set()
        for op, item in self._queued:
            ops.append(op)
            items.append(item)
            acted.add(op.client_id if op.client_id is not None else self._client_id)
        self._queued = []
        if not resumed:
            # Echoes applied from now on store a stamp >= _reattached_at in _own_seen.
            self._stamp += 1
            self._reattached_at = self._stamp
        latest = self._latest_in_flight() if self._in_flight else {}
        conn = self._connection_id
        for client, (stored, _, _) in self._own.items():
            if client in acted or client in latest:
                continue
            ops.append(self._new_op(_ENTER, client, reentry=True))
            items.append(
                PresenceMessage(
                    action=_ENTER,
                    client_id=client,
                    id=stored.id if stored.connection_id == conn else None,
                    data=stored.data,
                    encoding=stored.encoding,
                    extras=stored.extras,
                )
            )
        if not ops:
            return ()
        for op, item in zip(ops, items, strict=True):
            self._track(op, item)
        return (self._send_presence(items, ops),)

    def _latest_in_flight(self) -> dict[str, PresenceMessage]:
        """Map each clientId to the item of its last operation sent since the last RTP5a clear.

        Costs one pass over the operations in flight; used on ATTACHED and by a leave in a
        refusing state only, never per received message.
        """
        latest: dict[str, PresenceMessage] = {}
        cleared = self._cleared_at
        for _, client, item, stamp in self._in_flight.values():
            if client is not None and stamp > cleared:
                latest[client] = item  # send order: a later operation overwrites
        return latest

    def _present_by_intent(self, client: str | None) -> bool:
        """Whether the user's latest intent for ``client`` is to be present (see re-entry)."""
        if client is None:
            return False
        sent = self._latest_in_flight().get(client)
        if sent is not None:
            return sent.action is not _LEAVE
        return client in self._own

    def _track(self, op: Operation, item: PresenceMessage) -> None:
        """Record ``op`` as sent (in flight) with a fresh send stamp."""
        self._stamp = stamp = self._stamp + 1
        client = op.client_id if op.client_id is not None else self._client_id
        if client == "*":
            client = None  # an anonymous/wildcard identity cannot be re-entered (RTP8j)
        self._in_flight[op.id] = (op, client, item, stamp)
        if client is not None:
            self._last_sent[client] = stamp

    def _settled(self, sent: _Sent, acked: bool) -> PresenceMessage | None:
        """Keep the own-member map on the user's intent when an own operation settles.

        An ACKed ENTER/UPDATE whose content the own-member map does not hold is recorded there
        without id or timestamp, so any later echo supersedes it; an ACKed LEAVE removes the
        clientId.  For the clientId's latest operation this always happens (an echo applied
        after it was sent may be an earlier operation's, so the content decides); for an
        earlier one (a later one is unsettled, or settled first) only if the map did not change
        since it was sent, as the fallback should the later one fail.

        Returns the re-entry item deferred by :meth:`_flush_and_reenter`, if one is due: the
        latest ENTER/UPDATE of a clientId, sent before a non-resumed ATTACHED and ACKed with
        no echo for that clientId since, while ATTACHED.
        """
        op, client, item, stamp = sent
        if client is None:
            return None
        latest = self._last_sent.get(client) == stamp
        if latest:
            del self._last_sent[client]
        if not acked or stamp < self._cleared_at:
            return None
        echoed = self._own_seen.get(client, -1)
        unchanged = max(echoed, self._recorded.get(client, -1)) < stamp
        own = self._own
        if op.action is _LEAVE:
            if (latest or unchanged) and own.pop(client, None) is not None:
                self._recorded[client] = self._stamp
            return None
        reenter = latest and stamp < self._reattached_at and echoed < self._reattached_at
        if latest or unchanged:
            old = own.get(client)
            # An echo holding the same content is kept: its id makes a better re-entry.
            if old is None or not _same_content(old[0], item):
                own[client] = (
                    PresenceMessage(
                        action=op.action,
                        client_id=client,
                        connection_id=self._connection_id,
                        data=item.data,
                        encoding=item.encoding,
                        extras=item.extras,
                    ),
                    NO_POSITION,
                    0,
                )
                self._recorded[client] = self._stamp
        if reenter and self._state is _ATTACHED:
            return _reentry_item(client, item)
        return None

    def _on_detached(self, message: ProtocolMessage) -> Output:
        state = self._state
        if state is _ATTACHED or state is _SUSPENDED:
            # RTL13a: reattach at once; both maps are kept and re-entry follows the ATTACHED.
            self._state = _ATTACHING
            return Output(
                (self._changed(state, _ATTACHING, message.error),), (self._send_attach(),)
            )
        if state is _ATTACHING:
            # RTL13b: the attach was refused; retrying later is the owner's job (no timers).
            return self._to_suspended(message.error)
        if state is _DETACHING:
            return self._to_cleared(_DETACHED, message.error)
        return _ignored(message, "channel not attached")

    # -- inputs: non-frame ------------------------------------------------------------------
    def set_connection(
        self, connection_id: str, *, client_id: str | None = None, now: int
    ) -> Output:
        """Record the current connection id (on every CONNECTED).

        ``client_id`` is the clientId CONNECTED confirmed (``connectionDetails.clientId``); ``None``
        keeps the one already known.  Once a connection id is known, a clientId of ``None`` or
        ``"*"`` makes enter/update/leave fail with 40012 (RTP8j).  Own-member records from an
        older connection id are re-entered without their id (RTP17g1).  Returns no output.
        """
        if type(connection_id) is not str or not connection_id:
            raise UsageError("connection_id must be a non-empty string")
        self._connection_id = connection_id
        if client_id is not None:
            self._client_id = client_id
        return EMPTY_OUTPUT

    def set_channel_state(
        self, state: ChannelState, *, reason: ErrorInfo | None = None, now: int
    ) -> Output:
        """Apply a local channel-state change caused by the connection (RTL3).

        * ATTACHING (RTL3d, on CONNECTED): an ATTACHED, ATTACHING or SUSPENDED channel
          (re)sends ATTACH and is ATTACHING; a DETACHING one resends DETACH; others unchanged.
        * SUSPENDED (RTL3c): an ATTACHING or ATTACHED channel becomes SUSPENDED; queued
          operations fail, the member map and own-member map are kept (RTP5f).
        * DETACHED (RTL3b, connection CLOSED) and FAILED (RTL3a): an ATTACHING, ATTACHED,
          SUSPENDED or DETACHING channel takes that state; queued operations fail and both
          maps are cleared with no leave events (RTP5a).

        Operations already sent keep waiting for their ACK/NACK (RTL11a).  Any other target
        state raises :class:`~presence_core.UsageError`.
        """
        current = self._state
        if state is _ATTACHING:
            if current is _ATTACHED or current is _ATTACHING or current is _SUSPENDED:
                self._state = _ATTACHING
                events = () if current is _ATTACHING else (self._changed(current, state, reason),)
                return Output(events, (self._send_attach(),))
            if current is _DETACHING:
                return Output(commands=(self._send_detach(),))
            return EMPTY_OUTPUT
        if state is _SUSPENDED:
            if current is _ATTACHING or current is _ATTACHED:
                return self._to_suspended(reason)
            return EMPTY_OUTPUT
        if state is _DETACHED or state is _FAILED:
            if current in _ACTIVE:
                return self._to_cleared(state, reason)
            return EMPTY_OUTPUT
        raise UsageError(f"set_channel_state cannot apply {state!r} (RTL3 gives no such change)")

    def attach(self, *, now: int) -> Output:
        """Start attaching (sends ATTACH with the room's mode flags).

        Does nothing when already ATTACHING or ATTACHED.
        """
        current = self._state
        if current is _ATTACHING or current is _ATTACHED:
            return EMPTY_OUTPUT
        self._state = _ATTACHING
        return Output((self._changed(current, _ATTACHING, None),), (self._send_attach(),))

    def detach(self, *, now: int) -> Output:
        """Start detaching (sends DETACH).

        From SUSPENDED the channel is DETACHED at once (RTL5j); from INITIALIZED, DETACHING or
        DETACHED nothing happens; from FAILED it raises 90001 (RTL5b).  Queued operations fail
        when DETACHED is reached (RTP5a).
        """
        current = self._state
        if current is _FAILED:
            raise UsageError("cannot detach a failed channel", code=90001)
        if current is _SUSPENDED:
            return self._to_cleared(_DETACHED, None)
        if current is _ATTACHED or current is _ATTACHING:
            self._state = _DETACHING
            return Output((self._changed(current, _DETACHING, None),), (self._send_detach(),))
        return EMPTY_OUTPUT

    def _to_suspended(self, reason: ErrorInfo | None) -> Output:
        """RTP5f/RTL11: fail queued operations, keep both maps."""
        previous = self._state
        self._state = _SUSPENDED
        failed = self._fail_queued(reason, _SUSPENDED)
        return Output((self._changed(previous, _SUSPENDED, reason), *failed))

    def _to_cleared(self, state: ChannelState, reason: ErrorInfo | None) -> Output:
        """RTP5a/RTL11: DETACHED or FAILED: fail queued operations, clear both maps silently."""
        previous = self._state
        self._state = state
        failed = self._fail_queued(reason, state)
        self._members.clear()
        self._by_client.clear()
        self._tombstones.clear()
        self._residual = {}
        self._own.clear()
        # RTP5a: operations still in flight no longer carry an intent to re-enter.
        self._own_seen.clear()
        self._recorded.clear()
        self._last_sent.clear()
        self._stamp += 1
        self._cleared_at = self._stamp
        self._syncing = False
        self._sync_id = None
        self._channel_serial = None  # RTL15b2
        return Output((self._changed(previous, state, reason), *failed))

    def _fail_queued(self, reason: ErrorInfo | None, state: ChannelState) -> tuple[Event, ...]:
        if not self._queued:
            return ()
        error = reason or ErrorInfo(
            code=90001, status_code=400, message=f"channel {self._channel!r} became {state.value}"
        )
        failed = tuple(OperationFailed(operation=op, error=error) for op, _ in self._queued)
        self._queued = []
        return failed

    # -- inputs: user operations ------------------------------------------------------------
    def enter(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Enter with the connection's clientId (RTP8).

        The PRESENCE item carries no clientId (RTP8c).  On ATTACHED it is sent at once; on
        ATTACHING it is queued; on INITIALIZED or DETACHED the channel attaches implicitly and
        it is queued (D8).  Raises :class:`~presence_core.UsageError` (and changes nothing) on
        SUSPENDED, DETACHING or FAILED (90001), when the room option ``enter`` is false
        (40000), or when the connection is known to be anonymous (40012, RTP8j).
        """
        return self._operation(_ENTER, None, data, extras)

    def update(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Update own data (RTP9); same rules as :meth:`enter`."""
        return self._operation(_UPDATE, None, data, extras)

    def leave(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Leave (RTP10).

        Never attaches (D8): on INITIALIZED or DETACHED, and on SUSPENDED, DETACHING or FAILED
        while not in the own-member map, it succeeds at once as a no-op (an
        :class:`~presence_core.OperationSucceeded` in the same Output).  On SUSPENDED or
        DETACHING while present it raises 90001.  On ATTACHING it is queued, on ATTACHED sent.
        """
        return self._operation(_LEAVE, None, data, extras)

    def enter_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Enter on behalf of ``client_id`` (RTP14/RTP15).

        Raises 40012 if the library has a concrete clientId that differs (RTP15f), and
        otherwise follows :meth:`enter`.  It never touches the connection's own enter.
        """
        return self._operation(_ENTER, client_id, data, extras)

    def update_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Update on behalf of ``client_id`` (RTP15)."""
        return self._operation(_UPDATE, client_id, data, extras)

    def leave_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Leave on behalf of ``client_id`` (RTP15)."""
        return self._operation(_LEAVE, client_id, data, extras)

    def _operation(
        self,
        action: PresenceAction,
        client_id: str | None,
        data: Any,
        extras: dict[str, Any] | None,
    ) -> Output:
        # Every check comes before any change: a refused operation changes nothing.
        if action is not _LEAVE and not self._options.enter:
            raise UsageError(
                f"cannot {action.event_name} presence: the room option 'enter' is false"
            )
        own = self._client_id
        if client_id is None:
            if self._connection_id is not None and (own is None or own == "*"):
                raise UsageError(
                    f"cannot {action.event_name} presence without a concrete clientId "
                    f"(connection clientId is {own!r}; RTP8j)",
                    code=40012,
                )
            acting = own
        else:
            if type(client_id) is not str or not client_id or client_id == "*":
                raise UsageError(f"invalid clientId {client_id!r}", code=40012)
            if own is not None and own not in ("*", client_id):
                raise UsageError(
                    f"clientId {client_id!r} does not match the connection's {own!r} (RTP15f)",
                    code=40012,
                )
            acting = client_id
        state = self._state
        if action is _LEAVE and (
            state is _INITIALIZED
            or state is _DETACHED
            or (state in _REFUSING and not self._present_by_intent(acting))
        ):
            op = self._new_op(action, client_id)
            return Output((OperationSucceeded(operation=op),), operation=op)
        if state in _REFUSING:
            raise UsageError(
                f"cannot {action.event_name} presence on channel {self._channel!r} "
                f"in state {state.value}",
                code=90001,
            )
        op = self._new_op(action, client_id)
        item = PresenceMessage(action=action, client_id=client_id, data=data, extras=extras)
        if state is _ATTACHED:
            self._track(op, item)
            return Output(commands=(self._send_presence((item,), (op,)),), operation=op)
        self._queued.append((op, item))
        if state is _ATTACHING:
            return Output(operation=op)
        # D8: INITIALIZED or DETACHED attaches implicitly.
        self._state = _ATTACHING
        return Output(
            (self._changed(state, _ATTACHING, None),), (self._send_attach(),), operation=op
        )

    def acknowledge(self, operations: Iterable[Operation], *, now: int) -> Output:
        """The frame carrying ``operations`` was ACKed: settle them as succeeded.

        Works in every channel state (RTL11a).  An own ENTER/UPDATE/LEAVE ACKed without its
        echo updates the own-member map, and a re-entry deferred by a non-resumed ATTACHED may
        go out here (a :class:`~presence_core.SendPresence` after the settlements); see the
        module docstring.  Operations that are not awaiting an ACK here
        (already settled, never sent, or another channel's) are ignored, so a duplicate ACK
        settles nothing twice.
        """
        in_flight = self._in_flight
        events: list[Event] = []
        reentries: list[PresenceMessage] = []
        for op in operations:
            sent = in_flight.pop(op.id, None)
            if sent is not None:
                events.append(OperationSucceeded(operation=op))
                item = self._settled(sent, True)
                if item is not None:
                    reentries.append(item)
        if reentries:
            ops = [self._new_op(_ENTER, item.client_id, reentry=True) for item in reentries]
            for op, item in zip(ops, reentries, strict=True):
                self._track(op, item)
            return Output(tuple(events), (self._send_presence(reentries, ops),))
        return Output(tuple(events)) if events else EMPTY_OUTPUT

    def reject(self, operations: Iterable[Operation], error: ErrorInfo, *, now: int) -> Output:
        """The frame carrying ``operations`` was NACKed (or lost): settle them as failed.

        A failed automatic re-entry also gives (RTP17e) a :class:`~presence_core.ReentryFailed`
        command and a channel update event (``previous == current``, ``resumed`` true), both
        with error 91004 naming the clientId and carrying ``error`` as its cause.  The channel
        state does not change.
        """
        events: list[Event] = []
        for op in operations:
            sent = self._in_flight.pop(op.id, None)
            if sent is None:
                continue
            self._settled(sent, False)
            events.append(OperationFailed(operation=op, error=error))
            if op.reentry:
                client = op.client_id or ""
                reason = ErrorInfo(
                    code=91004,
                    status_code=400,
                    message=(
                        f"automatic re-entry of clientId {client!r} on channel "
                        f"{self._channel!r} failed: {error.message}"
                    ),
                    cause=error,
                )
                events.append(ReentryFailed(channel=self._channel, client_id=client, error=reason))
                events.append(
                    ChannelStateChanged(
                        channel=self._channel,
                        previous=self._state,
                        current=self._state,
                        reason=reason,
                        resumed=True,
                    )
                )
        return Output(tuple(events)) if events else EMPTY_OUTPUT

    # -- helpers ----------------------------------------------------------------------------
    def _new_op(
        self, action: PresenceAction, client_id: str | None, *, reentry: bool = False
    ) -> Operation:
        op = Operation(
            id=self._next_op,
            channel=self._channel,
            action=action,
            client_id=client_id,
            reentry=reentry,
        )
        self._next_op += 1
        return op

    def _changed(
        self, previous: ChannelState, current: ChannelState, reason: ErrorInfo | None
    ) -> ChannelStateChanged:
        return ChannelStateChanged(
            channel=self._channel, previous=previous, current=current, reason=reason
        )

    def _send_attach(self) -> Send:
        return Send(
            message=ProtocolMessage(
                action=ProtocolAction.ATTACH,
                channel=self._channel,
                channel_serial=self._channel_serial,
                flags=int(self._options.modes),
            )
        )

    def _send_detach(self) -> Send:
        return Send(message=ProtocolMessage(action=ProtocolAction.DETACH, channel=self._channel))

    def _send_presence(
        self, items: Sequence[PresenceMessage], ops: Sequence[Operation]
    ) -> SendPresence:
        return SendPresence(
            message=ProtocolMessage(
                action=ProtocolAction.PRESENCE, channel=self._channel, presence=tuple(items)
            ),
            operations=tuple(ops),
        )

    # -- queries ----------------------------------------------------------------------------
    def get(
        self, *, client_id: str | None = None, connection_id: str | None = None
    ) -> list[PresenceMember]:
        """Current members (never ABSENT), optionally filtered (RTP11c2/c3).

        A clientId filter goes through the clientId index (cost independent of room size);
        a connectionId-only filter scans.  Order: the order in which members first appeared.
        """
        members = self._members
        if client_id is not None:
            conns = self._by_client.get(client_id)
            if conns is None:
                return []
            if type(conns) is str:
                if connection_id is not None and connection_id != conns:
                    return []
                return [_as_member(members[(conns, client_id)][0])]
            return [
                _as_member(members[(conn, client_id)][0])
                for conn in conns
                if connection_id is None or conn == connection_id
            ]
        if connection_id is not None:
            return [_as_member(e[0]) for k, e in members.items() if k[0] == connection_id]
        return [_as_member(e[0]) for e in members.values()]

    def is_user_present(self, client_id: str) -> bool:
        """Whether any connection has a member with this clientId."""
        return client_id in self._by_client

    def snapshot(self) -> PresenceSnapshot:
        """A comparable picture of the whole state.

        ``members`` holds ``("present" | "absent", picture)`` pairs: tombstones are part of
        the state (they decide future newness) although never visible through :meth:`get`.
        """
        members = frozenset(
            [("present", _message_picture(e[0])) for e in self._members.values()]
            + [("absent", _message_picture(e[0])) for e in self._tombstones.values()]
        )
        own = frozenset((client, _message_picture(e[0])) for client, e in self._own.items())
        pending: tuple[Any, ...] = tuple(
            ("queued", op, _message_picture(item)) for op, item in self._queued
        )
        pending += tuple(
            ("sent", s[0], s[1], _message_picture(s[2]), s[3]) for s in self._in_flight.values()
        )
        return PresenceSnapshot(
            state=self._state,
            connection_id=self._connection_id,
            client_id=self._client_id,
            sync_complete=not self._syncing,
            members=members,
            own_members=own,
            pending=pending,
            extra=(
                ("sync_id", self._sync_id),
                ("residual", frozenset(self._residual)),
                ("granted_modes", self._granted_modes),
                ("channel_serial", self._channel_serial),
                ("next_op", self._next_op),
                ("stamps", (self._stamp, self._cleared_at, self._reattached_at)),
                ("own_seen", frozenset(self._own_seen.items())),
                ("recorded", frozenset(self._recorded.items())),
                ("last_sent", frozenset(self._last_sent.items())),
                ("index", frozenset((c, _freeze(v)) for c, v in self._by_client.items())),
            ),
        )


_KNOWN_ACTIONS: Final = frozenset(int(a) for a in PresenceAction)


def _ignored(message: ProtocolMessage, reason: str) -> Output:
    return Output((FrameIgnored(message=message, reason=reason),))
