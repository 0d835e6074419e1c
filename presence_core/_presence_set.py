"""The PresenceSet reducer: Ably realtime presence for one channel (room).

Entry points (the connection reducer, the simulator and outside conformance suites drive a
PresenceSet exactly through these):

* Frames for this channel: ``receive(message, now=)`` for ATTACHED, DETACHED, PRESENCE, SYNC
  and ERROR.  Any other action gives a :class:`~presence_core.FrameIgnored` event.
* Inputs that are not frames: ``set_connection(connection_id, client_id=, now=)`` on every
  CONNECTED, and ``set_channel_state(state, reason=, now=)`` for the channel-state changes that
  connection states cause (RTL3).
* User calls: ``attach``, ``detach``, ``enter``, ``update``, ``leave``, ``enter_client``,
  ``update_client`` and ``leave_client``.  A presence operation puts its handle in
  ``Output.operation``; an ACK or NACK settles it later through ``acknowledge`` or ``reject``,
  which give :class:`~presence_core.OperationSucceeded` or
  :class:`~presence_core.OperationFailed` events.
* Queries: ``get``, ``is_user_present``, ``sync_complete``, ``state``, ``own_members``,
  ``pending`` and ``snapshot``.

Every call returns one frozen :class:`~presence_core.Output`.  Outgoing PRESENCE frames are
:class:`~presence_core.SendPresence` commands without a ``msgSerial``: whoever owns the
connection numbers them and routes the ACK or NACK back.

The rules live with the state they govern:

* the member map and its sync (RTP2, RTP18, RTP19, D1-D3): :mod:`presence_core._member_map`;
* the own-member map and automatic re-entry (RTP17, the intent rule, D4):
  :mod:`presence_core._own_members`;
* the channel states, as a table of (state, input) -> (handler, next state):
  :mod:`presence_core._channel_state`.  The ``_h_*`` methods below are its handlers.

On ATTACHED the state changes first, then the sync starts or RTP19a clears with leaves, then
queued user operations and re-entries go out together in one PRESENCE frame (D9/D10).

Errors: caller misuse that is visible before anything is sent (a refusing channel state, the
room option ``enter`` false, an anonymous or mismatched clientId) raises
:class:`~presence_core.UsageError`; bad peer input raises :class:`~presence_core.ProtocolError`.
Either way nothing changes.  Failures that happen later (a NACK, a state change failing queued
work) settle the operation with an :class:`~presence_core.OperationFailed` event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TypeAlias

import attrs

from presence_core._channel_state import (
    LOCAL_INPUTS,
    TRANSITIONS,
    ChannelInput,
    InputKind,
    attached_input,
)
from presence_core._codec import check_outgoing
from presence_core._errors import ProtocolError, UsageError
from presence_core._member_map import (
    MemberMap,
    PresenceMember,
    checked_items,
    normalized_items,
    picture,
)
from presence_core._output import (
    EMPTY_OUTPUT,
    ChannelState,
    ChannelStateChanged,
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
from presence_core._own_members import OwnMembers
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
    """Room options: the permission to enter presence, and to receive presence events.

    ``enter`` and ``subscribe`` both default to true and become explicit ATTACH mode flags:
    PUBLISH | SUBSCRIBE, plus PRESENCE if ``enter``, plus PRESENCE_SUBSCRIBE if ``subscribe``.
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
_ENTER: Final = PresenceAction.ENTER
_LEAVE: Final = PresenceAction.LEAVE
_UPDATE: Final = PresenceAction.UPDATE
_ABSENT: Final = PresenceAction.ABSENT
_A_PRESENCE: Final = int(ProtocolAction.PRESENCE)
_A_SYNC: Final = int(ProtocolAction.SYNC)
_A_ATTACHED: Final = int(ProtocolAction.ATTACHED)
_A_DETACHED: Final = int(ProtocolAction.DETACHED)
_A_ERROR: Final = int(ProtocolAction.ERROR)
_ATTACHED: Final = ChannelState.ATTACHED
_OP_INPUTS: Final = {_ENTER: ChannelInput.ENTER, _UPDATE: ChannelInput.UPDATE}

#: A user's presence request: (action, clientId argument, the clientId acted for, data, extras).
_Request: TypeAlias = tuple[PresenceAction, str | None, str | None, Any, dict[str, Any] | None]


class _Operations:
    """A room's operation handles, and the user operations waiting for ATTACHED (RTP16b)."""

    __slots__ = ("channel", "next_id", "queued")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.next_id = 1
        self.queued: list[tuple[Operation, PresenceMessage]] = []

    def new(
        self, action: PresenceAction, client_id: str | None, *, reentry: bool = False
    ) -> Operation:
        """A handle with the next id, unique within the room."""
        op = Operation(
            id=self.next_id,
            channel=self.channel,
            action=action,
            client_id=client_id,
            reentry=reentry,
        )
        self.next_id += 1
        return op

    def from_request(self, request: _Request) -> tuple[Operation, PresenceMessage]:
        """A handle and the PRESENCE item for a user's request."""
        action, client_id, _, data, extras = request
        op = self.new(action, client_id)
        return op, PresenceMessage(action=action, client_id=client_id, data=data, extras=extras)

    def queue(self, request: _Request) -> Operation:
        """Queue a user's request until ATTACHED; return its handle."""
        op, item = self.from_request(request)
        self.queued.append((op, item))
        return op

    def take_queued(self) -> list[tuple[Operation, PresenceMessage]]:
        """The queued operations, in order, leaving the queue empty."""
        queued, self.queued = self.queued, []
        return queued

    def fail_queued(self, error: ErrorInfo) -> tuple[Event, ...]:
        """RTL11: every queued operation fails with ``error``."""
        return tuple(OperationFailed(operation=op, error=error) for op, _ in self.take_queued())


class PresenceSet:
    """Deterministic presence reducer for one channel.  See the module docstring.

    Args:
        channel: The channel name (for a Chat room ``R``, ``R::$chat``).
        client_id: The library's clientId if already known (``None`` until CONNECTED tells).
        options: The room options; defaults to entering and subscribing allowed.
    """

    __slots__ = (
        "_attach_waiting",
        "_channel",
        "_channel_serial",
        "_client_id",
        "_connection_id",
        "_granted_modes",
        "_map",
        "_ops",
        "_options",
        "_own",
        "_state",
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
        self._state = ChannelState.INITIALIZED
        self._connection_id: str | None = None
        self._granted_modes: ChannelMode | None = None
        # RTL15b: the last channelSerial seen on ATTACHED/PRESENCE, sent back in ATTACH.
        self._channel_serial: str | None = None
        self._map = MemberMap()
        self._own = OwnMembers()
        self._ops = _Operations(channel)
        # RTL4h, D14: attach() while DETACHING waits for the detach to complete.
        self._attach_waiting = False

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
        return not self._map.syncing

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
        and no timestamp (rule 3 in :mod:`presence_core._own_members`).
        """
        return self._own.members

    @property
    def pending(self) -> tuple[Operation, ...]:
        """Operations not yet settled: queued ones first, then those sent and awaiting ACK."""
        return tuple(op for op, _ in self._ops.queued) + self._own.in_flight

    # -- frames -----------------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, now: int) -> Output:
        """Apply one frame for this channel.

        Handles PRESENCE, SYNC, ATTACHED, DETACHED and ERROR; any other action (known or
        unknown) gives a :class:`~presence_core.FrameIgnored` event.  PRESENCE and SYNC frames
        are ignored unless the channel is ATTACHED (RTL17).

        Raises:
            ProtocolError: The frame names another channel, a presence item lacks a clientId
                or connectionId (after TP3 inheritance) or has a non-integer timestamp, or a
                SYNC ``channelSerial`` has no colon.  Nothing was changed.
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
                # checked_items, inlined for the hot path.
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
                        items = normalized_items(message)
                        break
            else:
                items = checked_items(message)
            if self._state is not _ATTACHED:
                return _ignored(message, "channel not attached")
            if message.channel_serial is not None:
                self._channel_serial = message.channel_serial
            if len(items) == 1:
                # The common frame: one item, applied without building an events list.
                m = items[0]
                if not self._map.apply_one(m, self._connection_id, self._own):
                    return EMPTY_OUTPUT
                return events_output(items if items.__class__ is tuple else (m,))
            if not items:
                return EMPTY_OUTPUT
            events = self._map.apply(items, self._connection_id, self._own)
            return events_output(events) if events else EMPTY_OUTPUT
        if action == _A_SYNC:
            return self._on_sync(message, now)
        if action == _A_ATTACHED:
            flagged = attached_input(
                resumed=message.has_flag(Flag.RESUMED),
                has_presence=message.has_flag(Flag.HAS_PRESENCE),
            )
            return self._transition(flagged, message.error, message, now)
        if action == _A_DETACHED:
            return self._transition(ChannelInput.DETACHED, message.error, message, now)
        if action == _A_ERROR:
            return self._transition(ChannelInput.ERROR, message.error, message, now)
        return _ignored(message, "action not handled by presence")

    def _on_sync(self, message: ProtocolMessage, now: int) -> Output:
        serial = message.channel_serial
        if serial is None:
            sync_id: str | None = None
            cursor = ""  # RTP18c: a sync of one page
        else:
            if type(serial) is not str or ":" not in serial:
                raise ProtocolError("sync cursor must be '<syncId>:<cursor>'", path="channelSerial")
            sync_id, _, cursor = serial.partition(":")
        items = checked_items(message)
        if self._state is not _ATTACHED:
            return _ignored(message, "channel not attached")
        events = self._map.sync_page(
            sync_id,
            items,
            last=cursor == "",
            own_connection=self._connection_id,
            own=self._own,
            now=now,
        )
        return events_output(events) if events else EMPTY_OUTPUT

    # -- inputs that are not frames ---------------------------------------------------------
    def set_connection(
        self, connection_id: str, *, client_id: str | None = None, now: int
    ) -> Output:
        """Record the current connection id (on every CONNECTED).

        ``client_id`` is the clientId CONNECTED confirmed (``connectionDetails.clientId``);
        ``None`` keeps the one already known.  Once a connection id is known, a clientId of
        ``None`` or ``"*"`` makes enter/update/leave fail with 40012 (RTP8j).  Own-member
        records from an older connection id are re-entered without their id (RTP17g1).
        Returns no output.
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

        ``state`` is ATTACHING (RTL3d, on CONNECTED), SUSPENDED (RTL3c), DETACHED (RTL3b,
        connection CLOSED) or FAILED (RTL3a); the channel state table says what each does in
        each state.  Operations already sent keep waiting for their ACK/NACK (RTL11a).

        Raises:
            UsageError: Any other target state.
        """
        target = LOCAL_INPUTS.get(state)
        if target is None:
            raise UsageError(
                f"set_channel_state cannot apply {state!r} (RTL3 gives no such change)"
            )
        return self._transition(target, reason, None, now)

    # -- user calls -------------------------------------------------------------------------
    def attach(self, *, now: int) -> Output:
        """Start attaching: send ATTACH with the room's mode flags.

        Does nothing when already ATTACHING or ATTACHED.
        """
        return self._transition(ChannelInput.ATTACH, None, None, now)

    def detach(self, *, now: int) -> Output:
        """Start detaching: send DETACH.

        From SUSPENDED the channel is DETACHED at once (RTL5j); from INITIALIZED, DETACHING or
        DETACHED nothing happens.  Queued operations fail when DETACHED is reached (RTP5a).

        Raises:
            UsageError: The channel is FAILED (90001, RTL5b).
        """
        return self._transition(ChannelInput.DETACH, None, None, now)

    def enter(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Enter with the connection's clientId (RTP8).

        The PRESENCE item carries no clientId (RTP8c).  On ATTACHED it is sent at once; on
        ATTACHING it is queued; on INITIALIZED or DETACHED the channel attaches implicitly and
        it is queued (D8).

        Raises:
            UsageError: The channel is SUSPENDED, DETACHING or FAILED (90001), the room option
                ``enter`` is false (40000), the connection is anonymous (40012, RTP8j), the
                data cannot be encoded (40013), or ``extras`` is not a JSON object (40000).
                Nothing was changed.
        """
        return self._operation(_ENTER, None, data, extras, now)

    def update(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Update own data (RTP9); the same rules as :meth:`enter`."""
        return self._operation(_UPDATE, None, data, extras, now)

    def leave(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Leave (RTP10).

        Never attaches (D8): on INITIALIZED or DETACHED, and on SUSPENDED, DETACHING or FAILED
        while the intent is not to be present, it succeeds at once as a no-op (an
        :class:`~presence_core.OperationSucceeded` event in the same Output).  So it does in
        any state when the room option ``enter`` is false.  On ATTACHING it is queued, on
        ATTACHED sent.

        Raises:
            UsageError: SUSPENDED, DETACHING or FAILED while present (90001).
        """
        return self._operation(_LEAVE, None, data, extras, now)

    def enter_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Enter on behalf of ``client_id`` (RTP14/RTP15).

        Raises 40012 if the library has a concrete clientId that differs (RTP15f), and
        otherwise follows :meth:`enter`.  It never touches the connection's own enter.
        """
        return self._operation(_ENTER, client_id, data, extras, now)

    def update_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Update on behalf of ``client_id`` (RTP15)."""
        return self._operation(_UPDATE, client_id, data, extras, now)

    def leave_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Leave on behalf of ``client_id`` (RTP15)."""
        return self._operation(_LEAVE, client_id, data, extras, now)

    def _operation(
        self,
        action: PresenceAction,
        client_id: str | None,
        data: Any,
        extras: dict[str, Any] | None,
        now: int,
    ) -> Output:
        # The request is checked before the state table runs, so a refusal changes nothing.
        acting = _acting_client(
            action, client_id, self._client_id, self._connection_id, self._options
        )
        request: _Request = (action, client_id, acting, data, extras)
        if action is _LEAVE and not self._options.enter:
            # Without the permission to enter nobody is present here: nothing to leave.
            return self._h_leave_noop(self._state, None, request, now)
        check_outgoing(data, extras)
        return self._transition(_OP_INPUTS.get(action, ChannelInput.LEAVE), None, request, now)

    def acknowledge(self, operations: Iterable[Operation], *, now: int) -> Output:
        """The frame carrying ``operations`` was ACKed: settle them as succeeded.

        Works in every channel state (RTL11a).  An own operation ACKed without its echo
        updates the own-member map, and a re-entry may go out here (a
        :class:`~presence_core.SendPresence` after the settlements): rules 3 and 4 in
        :mod:`presence_core._own_members`.  Operations that are not awaiting an ACK here
        (already settled, never sent, or another channel's) are ignored, so a duplicate ACK
        settles nothing twice.
        """
        events: list[Event] = []
        reentries: list[PresenceMessage] = []
        attached = self._state is _ATTACHED
        for op in operations:
            found, item = self._own.settle(
                op, acked=True, connection_id=self._connection_id, attached=attached
            )
            if found:
                events.append(OperationSucceeded(operation=op))
                if item is not None:
                    reentries.append(item)
        if reentries:
            ops = [self._ops.new(_ENTER, item.client_id, reentry=True) for item in reentries]
            for op, item in zip(ops, reentries, strict=True):
                self._track(op, item)
            return Output(tuple(events), (_send_presence(self._channel, reentries, ops),))
        return Output(tuple(events)) if events else EMPTY_OUTPUT

    def reject(self, operations: Iterable[Operation], error: ErrorInfo, *, now: int) -> Output:
        """The frame carrying ``operations`` was NACKed (or lost): settle them as failed.

        A failed automatic re-entry (RTP17e) also gives a
        :class:`~presence_core.ReentryFailed` event and a channel update event (``previous ==
        current``, ``resumed`` true), both with error 91004 naming the clientId and carrying
        ``error`` as its cause.  The channel state does not change.
        """
        events: list[Event] = []
        for op in operations:
            found, _ = self._own.settle(
                op, acked=False, connection_id=self._connection_id, attached=False
            )
            if not found:
                continue
            events.append(OperationFailed(operation=op, error=error))
            if op.reentry:
                events.extend(_reentry_failed(self._channel, self._state, op, error))
        return Output(tuple(events)) if events else EMPTY_OUTPUT

    # -- the channel state table ------------------------------------------------------------
    def _transition(
        self, input: ChannelInput, reason: ErrorInfo | None, payload: Any, now: int
    ) -> Output:
        """Look the input up in the channel state table, move the state, run the handler."""
        previous = self._state
        cell = TRANSITIONS.get((previous, input))
        if cell is None:
            kind = input.kind
            if kind is InputKind.USER:
                raise UsageError(
                    f"cannot {input.value} on channel {self._channel!r} in state {previous.value}",
                    code=90001,
                )
            if kind is InputKind.FRAME:
                return _ignored(payload, f"{input.value} while {previous.value}")
            return EMPTY_OUTPUT
        self._state = cell.next_state
        try:
            output: Output = getattr(self, cell.handler)(previous, reason, payload, now)
        except BaseException:
            self._state = previous  # a handler that refuses leaves the state as it was
            raise
        return output

    def _h_nothing(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        return EMPTY_OUTPUT

    def _h_send_attach(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        return Output(
            (self._changed(previous, reason),),
            (_attach_frame(self._channel, self._channel_serial, self._options),),
        )

    def _h_resend_attach(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        return Output(commands=(_attach_frame(self._channel, self._channel_serial, self._options),))

    def _h_send_detach(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        return Output((self._changed(previous, reason),), (_detach_frame(self._channel),))

    def _h_resend_detach(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        return Output(commands=(_detach_frame(self._channel),))

    def _h_suspend(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        """RTP5f, RTL11: fail queued operations and keep both maps."""
        return Output((self._changed(previous, reason), *self._fail_queued(reason)))

    def _h_clear(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        """RTP5a, RTL11: fail queued operations and clear both maps, with no leave events."""
        self._attach_waiting = False
        failed = self._fail_queued(reason)
        self._map.clear()
        self._own.clear()
        self._channel_serial = None  # RTL15b2
        return Output((self._changed(previous, reason), *failed))

    def _h_attach_after_detach(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        self._attach_waiting = True
        return EMPTY_OUTPUT

    def _h_cancel_attach(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        self._attach_waiting = False
        return EMPTY_OUTPUT

    def _h_detached(self, previous: ChannelState, reason: Any, payload: Any, now: int) -> Output:
        """The detach completed: RTP5a, then the attach that waited for it (RTL4h)."""
        waiting = self._attach_waiting
        cleared = self._h_clear(previous, reason, payload, now)
        if not waiting:
            return cleared
        attached = self._transition(ChannelInput.ATTACH, None, None, now)
        return Output(cleared.events + attached.events, cleared.commands + attached.commands)

    def _h_attached(
        self, previous: ChannelState, reason: Any, message: ProtocolMessage, now: int
    ) -> Output:
        """RTP1 or RTP19a, then queued operations and re-entries in one frame (D9/D10)."""
        resumed = message.has_flag(Flag.RESUMED)
        self._granted_modes = message.modes
        if message.channel_serial is not None:
            self._channel_serial = message.channel_serial
        events: list[Event] = [
            ChannelStateChanged(
                channel=self._channel,
                previous=previous,
                current=_ATTACHED,
                reason=reason,
                resumed=resumed,
            )
        ]
        if message.has_flag(Flag.HAS_PRESENCE):
            self._map.start_sync(None)  # RTP1; D3 for a sync that was still running
        else:
            vouched = _vouched(message.modes, self._connection_id, self._own)
            events.extend(self._map.clear_with_leaves(now, vouched))  # RTP19a, D13
        return Output(tuple(events), self._flush_and_reenter(resumed))

    def _h_attached_resumed(
        self, previous: ChannelState, reason: Any, message: ProtocolMessage, now: int
    ) -> Output:
        """RTL12, RTP17i: continuity kept; only the granted modes and serial are new."""
        self._granted_modes = message.modes
        if message.channel_serial is not None:
            self._channel_serial = message.channel_serial
        return EMPTY_OUTPUT

    def _h_send_operation(
        self, previous: ChannelState, reason: Any, request: _Request, now: int
    ) -> Output:
        op, item = self._ops.from_request(request)
        self._track(op, item)
        return Output(commands=(_send_presence(self._channel, (item,), (op,)),), operation=op)

    def _h_queue(self, previous: ChannelState, reason: Any, request: _Request, now: int) -> Output:
        return Output(operation=self._ops.queue(request))

    def _h_queue_and_attach(
        self, previous: ChannelState, reason: Any, request: _Request, now: int
    ) -> Output:
        return Output(
            (self._changed(previous, None),),
            (_attach_frame(self._channel, self._channel_serial, self._options),),
            operation=self._ops.queue(request),
        )

    def _h_leave_noop(
        self, previous: ChannelState, reason: Any, request: _Request, now: int
    ) -> Output:
        op = self._ops.new(request[0], request[1])
        return Output((OperationSucceeded(operation=op),), operation=op)

    def _h_leave_by_intent(
        self, previous: ChannelState, reason: Any, request: _Request, now: int
    ) -> Output:
        """Rule 5 in :mod:`presence_core._own_members`: refused only while present."""
        if self._own.present_by_intent(request[2]):
            raise UsageError(
                f"cannot leave presence on channel {self._channel!r} in state {previous.value}",
                code=90001,
            )
        return self._h_leave_noop(previous, reason, request, now)

    # -- helpers ----------------------------------------------------------------------------
    def _flush_and_reenter(self, resumed: bool) -> tuple[SendPresence, ...]:
        """RTP5b and rule 2 of :mod:`presence_core._own_members`: queued ops first."""
        ops: list[Operation] = []
        items: list[PresenceMessage] = []
        acted: set[str | None] = set()
        for op, item in self._ops.take_queued():
            ops.append(op)
            items.append(item)
            acted.add(op.client_id if op.client_id is not None else self._client_id)
        for item in self._own.reentries(acted, resumed=resumed, connection_id=self._connection_id):
            ops.append(self._ops.new(_ENTER, item.client_id, reentry=True))
            items.append(item)
        if not ops:
            return ()
        for op, item in zip(ops, items, strict=True):
            self._track(op, item)
        return (_send_presence(self._channel, items, ops),)

    def _fail_queued(self, reason: ErrorInfo | None) -> tuple[Event, ...]:
        error = reason or ErrorInfo(
            code=90001,
            status_code=400,
            message=f"channel {self._channel!r} became {self._state.value}",
        )
        return self._ops.fail_queued(error)

    def _track(self, op: Operation, item: PresenceMessage) -> None:
        client = op.client_id if op.client_id is not None else self._client_id
        if client == "*":
            client = None  # a wildcard identity cannot be re-entered (RTP8j)
        self._own.track(op, client, item)

    def _changed(self, previous: ChannelState, reason: ErrorInfo | None) -> ChannelStateChanged:
        return ChannelStateChanged(
            channel=self._channel, previous=previous, current=self._state, reason=reason
        )

    # -- queries ----------------------------------------------------------------------------
    def get(
        self, *, client_id: str | None = None, connection_id: str | None = None
    ) -> list[PresenceMember]:
        """Current members (never ABSENT), optionally filtered (RTP11c2/c3).

        A clientId filter goes through the clientId index (cost independent of room size);
        a connectionId-only filter scans.  Order: the order in which members first appeared.
        """
        return self._map.get(client_id, connection_id)

    def is_user_present(self, client_id: str) -> bool:
        """Whether any connection has a member with this clientId."""
        return client_id in self._map.by_client

    def snapshot(self) -> PresenceSnapshot:
        """A comparable picture of the whole state.

        ``members`` holds ``("present" | "absent", picture)`` pairs: tombstones are part of
        the state (they decide future newness) although never visible through :meth:`get`.
        """
        queued = tuple(("queued", op, picture(item)) for op, item in self._ops.queued)
        return PresenceSnapshot(
            state=self._state,
            connection_id=self._connection_id,
            client_id=self._client_id,
            sync_complete=not self._map.syncing,
            members=self._map.pictures(),
            own_members=self._own.pictures(),
            pending=queued + self._own.pending_pictures(),
            extra=(
                *self._map.extra(),
                ("granted_modes", self._granted_modes),
                ("channel_serial", self._channel_serial),
                ("next_op", self._ops.next_id),
                ("attach_waiting", self._attach_waiting),
                *self._own.extra(),
            ),
        )


def _acting_client(
    action: PresenceAction,
    client_id: str | None,
    own: str | None,
    connection_id: str | None,
    options: RoomOptions,
) -> str | None:
    """The clientId a presence request acts for; raises UsageError for a request refused as is."""
    if action is not _LEAVE and not options.enter:
        raise UsageError(f"cannot {action.event_name} presence: the room option 'enter' is false")
    if client_id is None:
        if connection_id is not None and (own is None or own == "*"):
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
    return acting


def _vouched(
    modes: ChannelMode, connection_id: str | None, own: OwnMembers
) -> Callable[[tuple[str, str]], bool] | None:
    """D13: which members an ATTACHED without HAS_PRESENCE keeps (RTP19a).

    With PRESENCE_SUBSCRIBE granted (or no mode bits at all), none: the server would have
    synced any member.  Without it the server sends no SYNC at all, so the ATTACHED says
    nothing about who is present; only the members this client can vouch for stay: its own
    connection's members that it means to be present (and re-enters or has in flight).
    """
    if not modes or modes & ChannelMode.PRESENCE_SUBSCRIBE:
        return None
    present = own.present_by_intent
    return lambda key: key[0] == connection_id and present(key[1])


def _attach_frame(channel: str, serial: str | None, options: RoomOptions) -> Send:
    return Send(
        message=ProtocolMessage(
            action=ProtocolAction.ATTACH,
            channel=channel,
            channel_serial=serial,
            flags=int(options.modes),
        )
    )


def _detach_frame(channel: str) -> Send:
    return Send(message=ProtocolMessage(action=ProtocolAction.DETACH, channel=channel))


def _send_presence(
    channel: str, items: Sequence[PresenceMessage], ops: Sequence[Operation]
) -> SendPresence:
    return SendPresence(
        message=ProtocolMessage(
            action=ProtocolAction.PRESENCE, channel=channel, presence=tuple(items)
        ),
        operations=tuple(ops),
    )


def _reentry_failed(
    channel: str, state: ChannelState, op: Operation, error: ErrorInfo
) -> tuple[Event, Event]:
    """RTP17e: error 91004 naming the clientId, as an event and as a channel update."""
    client = op.client_id or ""
    reason = ErrorInfo(
        code=91004,
        status_code=400,
        message=f"automatic re-entry of clientId {client!r} on channel {channel!r} failed: "
        f"{error.message}",
        cause=error,
    )
    return (
        ReentryFailed(channel=channel, client_id=client, error=reason),
        ChannelStateChanged(
            channel=channel, previous=state, current=state, reason=reason, resumed=True
        ),
    )


def _ignored(message: ProtocolMessage, reason: str) -> Output:
    return Output((FrameIgnored(message=message, reason=reason),))
