"""The handlers of the channel state table, and the room state they act on.

:data:`~presence_core._channel_state.TRANSITIONS` says which handler runs for a (state, input)
pair and which state follows; this module says what each handler does: the frames it sends,
the events it emits, and what it does to the member map (:mod:`presence_core._member_map`),
the own-member map (:mod:`presence_core._own_members`) and the queue of user operations.
A published message (RTL6) is a user operation like enter: it attaches, queues and is refused
in the same cells (D8), and it is settled by its ACK or NACK; only its frame differs.
:class:`~presence_core.PresenceSet` builds its public calls on :class:`ChannelMachine`.

Rules of this module:

* Every change of channel state goes through :meth:`ChannelMachine._transition`.  A handler
  runs after the state has moved; if it refuses (raises), the state moves back, and a handler
  refuses before it changes anything else.
* The channel has one timer.  Entering ATTACHING or DETACHING, or sending ATTACH or DETACH
  again while in it, sets the timer to the request timeout (RTL4f, RTL5f); entering SUSPENDED
  sets it to the channel retry timeout, with RTB1's backoff and jitter over the retries since
  the channel was last ATTACHED (RTL13b); every other state has no timer.
  :meth:`ChannelMachine._tick` feeds the TIMEOUT input when it is due.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, TypeAlias

import attrs

from presence_core._backoff import Jitter, no_jitter, retry_delay
from presence_core._channel_state import TRANSITIONS, ChannelInput, InputKind
from presence_core._errors import UsageError
from presence_core._member_map import MemberMap
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
    SendMessage,
    SendPresence,
)
from presence_core._own_members import OwnMembers
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

__all__ = ["RoomOptions", "ChannelSettings"]

_ENTER: Final = PresenceAction.ENTER
_ATTACHED: Final = ChannelState.ATTACHED
_ATTACHING: Final = ChannelState.ATTACHING
_DETACHING: Final = ChannelState.DETACHING
_SUSPENDED: Final = ChannelState.SUSPENDED
_A_ATTACH: Final = int(ProtocolAction.ATTACH)
_A_DETACH: Final = int(ProtocolAction.DETACH)
_ATTACH_TIMEOUT: Final = ErrorInfo(code=90007, status_code=408, message="channel attach timed out")
_DETACH_TIMEOUT: Final = ErrorInfo(code=90007, status_code=408, message="channel detach timed out")


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


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value <= 0:
        raise UsageError(f"{attribute.name} must be a positive number of ms, got {value!r}")


@attrs.frozen(kw_only=True)
class ChannelSettings:
    """The timeouts of a room's channel, in milliseconds; the defaults are ably-js's."""

    #: realtimeRequestTimeout: how long an ATTACH or DETACH waits for its answer before the
    #: channel gives up (RTL4f: SUSPENDED; RTL5f: back to where the detach started).  10 s.
    request_timeout: int = attrs.field(default=10_000, validator=_positive)
    #: channelRetryTimeout: how long a SUSPENDED channel waits before it attaches again
    #: (RTL13b).  15 s.
    channel_retry_timeout: int = attrs.field(default=15_000, validator=_positive)


#: A user's presence request: (action, clientId argument, the clientId acted for, data, extras).
Request: TypeAlias = tuple[PresenceAction, str | None, str | None, Any, dict[str, Any] | None]
#: What a user operation sends: a presence item, or a channel message to publish.
Item: TypeAlias = PresenceMessage | Message


class _Operations:
    """A room's operation handles, operations waiting for ATTACHED (RTP16b), messages sent."""

    __slots__ = ("channel", "next_id", "queued", "sent")

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.next_id = 1
        self.queued: list[tuple[Operation, Item]] = []
        #: Published messages sent and not yet settled, by operation id.
        self.sent: dict[int, Operation] = {}

    def new(
        self,
        action: PresenceAction | None,
        client_id: str | None,
        *,
        reentry: bool = False,
        name: str | None = None,
    ) -> Operation:
        """A handle with the next id, unique within the room."""
        op = Operation(
            id=self.next_id,
            channel=self.channel,
            action=action,
            client_id=client_id,
            reentry=reentry,
            name=name,
        )
        self.next_id += 1
        return op

    def from_request(self, request: Request | Message) -> tuple[Operation, Item]:
        """A handle and the item for a user's request: a PRESENCE item, or the message."""
        if isinstance(request, Message):
            return self.new(None, None, name=request.name), request
        action, client_id, _, data, extras = request
        op = self.new(action, client_id)
        return op, PresenceMessage(action=action, client_id=client_id, data=data, extras=extras)

    def queue(self, request: Request | Message) -> Operation:
        """Queue a user's request until ATTACHED; return its handle."""
        op, item = self.from_request(request)
        self.queued.append((op, item))
        return op

    def settle_sent(self, op: Operation) -> bool:
        """Take ``op`` if it is a published message awaiting its ACK; return whether it was."""
        if self.sent.get(op.id) != op:
            return False
        del self.sent[op.id]
        return True

    def take_queued(self) -> list[tuple[Operation, Item]]:
        """The queued operations, in order, leaving the queue empty."""
        queued, self.queued = self.queued, []
        return queued

    def fail_queued(self, error: ErrorInfo) -> tuple[Event, ...]:
        """RTL11: every queued operation fails with ``error``."""
        return tuple(OperationFailed(operation=op, error=error) for op, _ in self.take_queued())


class ChannelMachine:
    """A room's state and the handlers of its channel state table (see the module docstring).

    Args:
        channel: The channel name (for a Chat room ``R``, ``R::$chat``).
        client_id: The library's clientId if already known (``None`` until CONNECTED tells).
        options: The room options; defaults to entering and subscribing allowed.
        settings: The channel's timeouts; :class:`ChannelSettings` defaults otherwise.
        jitter: The jitter source of the SUSPENDED retries (RTB1b): a callable returning
            floats in ``[0, 1)``; no jitter by default.
    """

    __slots__ = (
        "_attach_waiting",
        "_channel",
        "_channel_serial",
        "_client_id",
        "_connection_id",
        "_deadline",
        "_detach_from",
        "_granted_modes",
        "_jitter",
        "_map",
        "_ops",
        "_options",
        "_own",
        "_retries",
        "_settings",
        "_state",
    )

    def __init__(
        self,
        channel: str,
        *,
        client_id: str | None = None,
        options: RoomOptions | None = None,
        settings: ChannelSettings | None = None,
        jitter: Jitter = no_jitter,
    ) -> None:
        if type(channel) is not str or not channel:
            raise UsageError("channel name must be a non-empty string", code=40010)
        self._channel = channel
        self._client_id = client_id
        self._options = options if options is not None else RoomOptions()
        self._settings = settings if settings is not None else ChannelSettings()
        self._state = ChannelState.INITIALIZED
        self._connection_id: str | None = None
        self._granted_modes: ChannelMode | None = None
        # RTL15b: the last channelSerial seen on ATTACHED/PRESENCE, sent back in ATTACH.
        self._channel_serial: str | None = None
        self._own = OwnMembers()
        self._map = MemberMap(self._own)
        self._ops = _Operations(channel)
        # RTL4h, D14: attach() while DETACHING waits for the detach to complete.
        self._attach_waiting = False
        # The channel's one timer: the attach or detach timeout, or the retry of a SUSPENDED
        # channel; and the state a timed-out detach returns to (RTL5f).
        self._deadline: int | None = None
        self._detach_from = ChannelState.ATTACHED
        # RTB1: the jitter source, and the SUSPENDED retries since the channel was attached.
        self._jitter = jitter
        self._retries = 0

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
                return ignored(payload, f"{input.value} while {previous.value}")
            return EMPTY_OUTPUT
        self._state = cell.next_state if cell.next_state is not None else self._detach_from
        try:
            output: Output = getattr(self, cell.handler)(previous, reason, payload, now)
        except BaseException:
            self._state = previous  # a handler that refuses leaves the state as it was
            raise
        self._set_timer(previous, output, now)
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
        self._detach_from = previous
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
        self, previous: ChannelState, reason: Any, request: Request | Message, now: int
    ) -> Output:
        op, item = self._ops.from_request(request)
        if isinstance(item, Message):
            self._ops.sent[op.id] = op
            return Output(commands=(send_message(self._channel, (item,), (op,)),), operation=op)
        self._track(op, item)
        return Output(commands=(send_presence(self._channel, (item,), (op,)),), operation=op)

    def _h_queue(
        self, previous: ChannelState, reason: Any, request: Request | Message, now: int
    ) -> Output:
        return Output(operation=self._ops.queue(request))

    def _h_queue_and_attach(
        self, previous: ChannelState, reason: Any, request: Request | Message, now: int
    ) -> Output:
        return Output(
            (self._changed(previous, None),),
            (_attach_frame(self._channel, self._channel_serial, self._options),),
            operation=self._ops.queue(request),
        )

    def _h_leave_noop(
        self, previous: ChannelState, reason: Any, request: Request, now: int
    ) -> Output:
        op = self._ops.new(request[0], request[1])
        return Output((OperationSucceeded(operation=op),), operation=op)

    def _h_leave_by_intent(
        self, previous: ChannelState, reason: Any, request: Request, now: int
    ) -> Output:
        """Rule 5 in :mod:`presence_core._own_members`: refused only while present."""
        if self._own.present_by_intent(request[2]):
            raise UsageError(
                f"cannot leave presence on channel {self._channel!r} in state {previous.value}",
                code=90001,
            )
        return self._h_leave_noop(previous, reason, request, now)

    def _tick(self, now: int) -> Output:
        """Feed the TIMEOUT input if the channel's timer is due."""
        deadline = self._deadline
        if deadline is None or now < deadline:
            return EMPTY_OUTPUT
        self._deadline = None
        return self._transition(ChannelInput.TIMEOUT, None, None, now)

    def _set_timer(self, previous: ChannelState, output: Output, now: int) -> None:
        """The module's timer rule, applied after every transition."""
        state = self._state
        if state is _ATTACHING or state is _DETACHING:
            if state is not previous or any(
                command.__class__ is Send and command.message.action in (_A_ATTACH, _A_DETACH)
                for command in output.commands
            ):
                self._deadline = now + self._settings.request_timeout
        elif state is _SUSPENDED:
            if previous is not _SUSPENDED:
                self._retries += 1
                delay = retry_delay(
                    self._settings.channel_retry_timeout, self._retries, self._jitter()
                )
                self._deadline = now + delay
        else:
            self._deadline = None
            if state is _ATTACHED:
                self._retries = 0

    def _h_attach_timeout(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        """RTL4f: no ATTACHED in time: SUSPENDED, and the queued operations fail."""
        return self._h_suspend(previous, _ATTACH_TIMEOUT, payload, now)

    def _h_detach_timeout(
        self, previous: ChannelState, reason: Any, payload: Any, now: int
    ) -> Output:
        """RTL5f: no DETACHED in time: back to the state the detach started from."""
        self._attach_waiting = False
        return Output((self._changed(previous, _DETACH_TIMEOUT),))

    # -- helpers ----------------------------------------------------------------------------
    def _flush_and_reenter(self, resumed: bool) -> tuple[SendPresence | SendMessage, ...]:
        """RTP5b and rule 2 of :mod:`presence_core._own_members`: queued ops first.

        Queued messages follow, in their order, in one MESSAGE frame after the PRESENCE one.
        """
        ops: list[Operation] = []
        items: list[PresenceMessage] = []
        published: list[tuple[Operation, Message]] = []
        acted: set[str | None] = set()
        for op, item in self._ops.take_queued():
            if isinstance(item, Message):
                published.append((op, item))
                continue
            ops.append(op)
            items.append(item)
            acted.add(op.client_id if op.client_id is not None else self._client_id)
        for item in self._own.reentries(acted, resumed=resumed, connection_id=self._connection_id):
            ops.append(self._ops.new(_ENTER, item.client_id, reentry=True))
            items.append(item)
        commands: list[SendPresence | SendMessage] = []
        if ops:
            for op, item in zip(ops, items, strict=True):
                self._track(op, item)
            commands.append(send_presence(self._channel, items, ops))
        if published:
            self._ops.sent.update((op.id, op) for op, _ in published)
            commands.append(
                send_message(
                    self._channel, [item for _, item in published], [op for op, _ in published]
                )
            )
        return tuple(commands)

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


def send_presence(
    channel: str, items: Sequence[PresenceMessage], ops: Sequence[Operation]
) -> SendPresence:
    return SendPresence(
        message=ProtocolMessage(
            action=ProtocolAction.PRESENCE, channel=channel, presence=tuple(items)
        ),
        operations=tuple(ops),
    )


def send_message(channel: str, items: Sequence[Message], ops: Sequence[Operation]) -> SendMessage:
    return SendMessage(
        message=ProtocolMessage(
            action=ProtocolAction.MESSAGE, channel=channel, messages=tuple(items)
        ),
        operations=tuple(ops),
    )


def reentry_failed(
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


def ignored(message: ProtocolMessage, reason: str) -> Output:
    return Output((FrameIgnored(message=message, reason=reason),))
