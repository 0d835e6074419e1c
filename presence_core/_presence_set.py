"""The PresenceSet reducer: Ably realtime presence for one channel (room).

Entry points (the connection reducer, the simulator and outside conformance suites drive a
PresenceSet exactly through these):

* Frames for this channel: ``receive(message, now=)`` for ATTACHED, DETACHED, PRESENCE, SYNC,
  MESSAGE and ERROR.  Any other action gives a :class:`~presence_core.FrameIgnored` event.
* Inputs that are not frames: ``set_connection(connection_id, client_id=, now=)`` on every
  CONNECTED, and ``set_channel_state(state, reason=, now=)`` for the channel-state changes that
  connection states cause (RTL3).
* User calls: ``attach``, ``detach``, ``enter``, ``update``, ``leave``, ``enter_client``,
  ``update_client``, ``leave_client`` and ``publish``.  An operation puts its handle in
  ``Output.operation``; an ACK or NACK settles it later through ``acknowledge`` or ``reject``,
  which give :class:`~presence_core.OperationSucceeded` or
  :class:`~presence_core.OperationFailed` events.
* Queries: ``get``, ``is_user_present``, ``sync_complete``, ``state``, ``own_members``,
  ``pending`` and ``snapshot``.

Every call returns one frozen :class:`~presence_core.Output`.  Outgoing PRESENCE and MESSAGE
frames are :class:`~presence_core.SendPresence` and :class:`~presence_core.SendMessage`
commands without a ``msgSerial``: whoever owns the connection numbers them and routes the ACK
or NACK back.

The rules live with the state they govern:

* the member map and its sync (RTP2, RTP18, RTP19, D1-D3): :mod:`presence_core._member_map`;
* the own-member map and automatic re-entry (RTP17, the intent rule, D4):
  :mod:`presence_core._own_members`;
* the channel states, as a table of (state, input) -> (handler, next state):
  :mod:`presence_core._channel_state`, whose handlers are in :mod:`presence_core._channel_machine`.

On ATTACHED the state changes first, then the sync starts or RTP19a clears with leaves, then
queued user operations and re-entries go out together in one SendPresence, which the
connection splits by the server's limits (D9/D10).

Errors: caller misuse that is visible before anything is sent (a refusing channel state, the
room option ``enter`` false, an anonymous or mismatched clientId) raises
:class:`~presence_core.UsageError`; bad peer input raises :class:`~presence_core.ProtocolError`.
Either way nothing changes.  Failures that happen later (a NACK, a state change failing queued
work) settle the operation with an :class:`~presence_core.OperationFailed` event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

import attrs

from presence_core._channel_machine import (
    ChannelMachine,
    ChannelSettings,
    Request,
    RoomOptions,
    ignored,
    reentry_failed,
    send_presence,
)
from presence_core._channel_state import (
    LOCAL_INPUTS,
    ChannelInput,
    attached_input,
)
from presence_core._codec import check_outgoing
from presence_core._errors import ProtocolError, UsageError
from presence_core._member_map import (
    PresenceMember,
    checked_items,
    normalized_items,
    picture,
)
from presence_core._output import (
    EMPTY_OUTPUT,
    ChannelState,
    Event,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    events_output,
)
from presence_core._wire import (
    ChannelMode,
    ErrorInfo,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = ["RoomOptions", "ChannelSettings", "PresenceMember", "PresenceSet", "PresenceSnapshot"]


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
_A_MESSAGE: Final = int(ProtocolAction.MESSAGE)
_ATTACHED: Final = ChannelState.ATTACHED
_OP_INPUTS: Final = {_ENTER: ChannelInput.ENTER, _UPDATE: ChannelInput.UPDATE}


def _wrong_channel(message: ProtocolMessage, channel: str) -> ProtocolError:
    return ProtocolError(
        f"frame for channel {message.channel!r} given to {channel!r}", path="channel"
    )


class PresenceSet(ChannelMachine):
    """Deterministic presence reducer for one channel.  See the module docstring.

    Args:
        channel: The channel name (for a Chat room ``R``, ``R::$chat``).
        client_id: The library's clientId if already known (``None`` until CONNECTED tells).
        options: The room options; defaults to entering and subscribing allowed.
        settings: The channel's timeouts; :class:`ChannelSettings` defaults otherwise.
        jitter: The jitter source of the SUSPENDED retries (RTB1b): a callable returning
            floats in ``[0, 1)``; no jitter by default.
    """

    __slots__ = ()

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
    def channel_serial(self) -> str | None:
        """The channelSerial the next ATTACH carries (RTL15b), and a recovery key records."""
        return self._channel_serial

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
        ops = self._ops
        return tuple(op for op, _ in ops.queued) + self._own.in_flight + tuple(ops.sent.values())

    # -- frames -----------------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, now: int) -> Output:
        """Apply one frame for this channel.

        Handles PRESENCE, SYNC, MESSAGE, ATTACHED, DETACHED and ERROR; any other action (known
        or unknown) gives a :class:`~presence_core.FrameIgnored` event.  PRESENCE, SYNC and
        MESSAGE frames are ignored unless the channel is ATTACHED (RTL17).  A MESSAGE frame's
        items are its events, as :class:`~presence_core.Message` values.

        Raises:
            ProtocolError: The frame names another channel, a presence item lacks a clientId
                or connectionId (after TP3 inheritance) or has a non-integer timestamp, a
                MESSAGE frame's items are not Messages, or a SYNC ``channelSerial`` has no
                colon.  Nothing was changed.
        """
        action = message.action
        if action == _A_PRESENCE:
            events = self.presence_events(message)
            if events is None:
                return ignored(message, "channel not attached")
            return events_output(events) if events else EMPTY_OUTPUT
        if message.channel != self._channel:
            raise _wrong_channel(message, self._channel)
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
        if action == _A_MESSAGE:
            return self._on_message(message)
        return ignored(message, "action not handled by presence")

    def presence_events(self, message: ProtocolMessage) -> tuple[PresenceMessage, ...] | None:
        """Apply a PRESENCE frame as :meth:`receive` does; return its events, unwrapped.

        The connection's hot path, which builds no Output per frame.  ``None`` when the frame
        is valid but not applied because the channel is not ATTACHED (``receive`` reports that
        with a FrameIgnored event); ``()`` when nothing changed.

        Raises:
            ProtocolError: As :meth:`receive`.  Nothing was changed.
        """
        if message.channel != self._channel:
            raise _wrong_channel(message, self._channel)
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
            return None
        if message.channel_serial is not None:
            self._channel_serial = message.channel_serial
        if len(items) == 1:
            # The common frame: one item, applied without building an events list.
            m = items[0]
            if not self._map.apply_one(m):
                return ()
            return items if items.__class__ is tuple else (m,)
        if not items:
            return ()
        return self._map.apply(items)

    def _on_message(self, message: ProtocolMessage) -> Output:
        raw = message.messages or ()
        messages = tuple(raw)
        for index, item in enumerate(messages):
            if not isinstance(item, Message):
                raise ProtocolError("not a channel message", path=f"messages[{index}]")
        if self._state is not _ATTACHED:
            return ignored(message, "channel not attached")
        if message.channel_serial is not None:
            self._channel_serial = message.channel_serial  # RTL15b
        return events_output(messages) if messages else EMPTY_OUTPUT

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
            return ignored(message, "channel not attached")
        events = self._map.sync_page(
            sync_id,
            items,
            last=cursor == "",
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
        self._connection_id = self._map.own_connection = connection_id
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

    def publish(
        self,
        name: str | None,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Publish a channel message on this room's channel (RTL6), settled by its ACK or NACK.

        The room must be attached: like :meth:`enter`, it is sent at once on ATTACHED, queued
        on ATTACHING, and attaches implicitly on INITIALIZED or DETACHED (D8).  Queued messages
        go out after the queued presence operations, in their own order.

        Raises:
            UsageError: The channel is SUSPENDED, DETACHING or FAILED (90001), ``name`` is not
                a string or ``None`` (40000), the data cannot be encoded (40013), or
                ``extras`` is not a JSON object (40000).  Nothing was changed.
        """
        if name is not None and type(name) is not str:
            raise UsageError(f"message name must be a string or None, got {name!r}")
        check_outgoing(data, extras)
        item = Message(name=name, data=data, extras=extras)
        return self._transition(ChannelInput.PUBLISH, None, item, now)

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
        request: Request = (action, client_id, acting, data, extras)
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
            if op.action is None:
                if self._ops.settle_sent(op):
                    events.append(OperationSucceeded(operation=op))
                continue
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
            return Output(tuple(events), (send_presence(self._channel, reentries, ops),))
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
            if op.action is None:
                found = self._ops.settle_sent(op)
            else:
                found, _ = self._own.settle(
                    op, acked=False, connection_id=self._connection_id, attached=False
                )
            if not found:
                continue
            events.append(OperationFailed(operation=op, error=error))
            if op.reentry:
                events.extend(reentry_failed(self._channel, self._state, op, error))
        return Output(tuple(events)) if events else EMPTY_OUTPUT

    # -- time -------------------------------------------------------------------------------
    def next_deadline(self) -> int | None:
        """The ``now`` at which :meth:`tick` has something to do, or ``None``.

        The channel has one timer: the attach timeout while ATTACHING (RTL4f), the detach
        timeout while DETACHING (RTL5f), and the retry while SUSPENDED (RTL13b).
        """
        return self._deadline

    def tick(self, *, now: int) -> Output:
        """Fire the channel's timer if ``now`` has reached :meth:`next_deadline`.

        A timed-out attach makes the channel SUSPENDED with error 90007 and fails the queued
        operations; a timed-out detach returns the channel to the state it came from; a
        SUSPENDED channel attaches again.
        """
        return self._tick(now)

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
            pending=queued
            + self._own.pending_pictures()
            + tuple(("published", op) for op in self._ops.sent.values()),
            extra=(
                *self._map.extra(),
                ("granted_modes", self._granted_modes),
                ("channel_serial", self._channel_serial),
                ("next_op", self._ops.next_id),
                ("attach_waiting", self._attach_waiting),
                ("timer", (self._deadline, self._detach_from)),
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
