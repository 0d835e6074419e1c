"""Between a connection and its rooms: each room Output folded into the connection's Output.

The rules of that fold, applied here and nowhere else:

* **Events.**  A room's presence events, received messages and channel state changes do not
  name their channel, so they come out wrapped in :class:`~presence_core.ChannelEvents`, one
  per unbroken run, in their place among the room's other events; those name their channel
  and pass as they are.
* **Frames.**  PRESENCE and MESSAGE frames (:class:`~presence_core.SendPresence`,
  :class:`~presence_core.SendMessage`) go to the outbox, which splits, paces, numbers, holds
  or refuses them (:mod:`presence_core._outbox`); a refused frame's operations fail on their
  room at once.  ATTACH and DETACH frames go out only while
  the outbox is open: without a transport they are dropped, because on CONNECTED every
  attaching or detaching room sends them again (RTL3d).  Other commands pass.
* **Held frames** of a room go out, before that room's new frames, once the room is ATTACHED
  and the outbox open (RTL3d2); they fail with 90001 once the room is no longer attached
  (RTL11), also when it passed through DETACHED, FAILED or SUSPENDED within one call.
* **Settling.**  Operations an ACK or NACK covers, or the outbox fails, are settled on their
  room, and that room's Output is folded in the same way.
* **Rooms follow the connection (RTL3).**  On CONNECTED each room learns the connection and
  re-attaches (RTL3d); into FAILED or CLOSED every active room follows (RTL3a, RTL3b); on
  SUSPENDED attached and attaching rooms suspend and detaching ones detach (RTL3c).
* **Room timers.**  Each room is built with the connection's channel settings; a room's timer
  that fires gives an Output folded like any other (the connection says when they run).
* **Recovered channelSerials (RTN16j).**  A room named in the recovery key sends that key's
  channelSerial in its ATTACH until it has one of its own: until it is ATTACHED, or DETACHED
  or FAILED, which forget a serial (RTL15b2).  The room is made on first use, as any other,
  so that the application still chooses its options.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Protocol

import attrs

from presence_core._backoff import Jitter
from presence_core._errors import ProtocolError, UsageError
from presence_core._outbox import Frame, Outbox
from presence_core._output import (
    EMPTY_OUTPUT,
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    Command,
    ConnectionState,
    Event,
    FrameIgnored,
    Operation,
    Output,
    Send,
    SendMessage,
    SendPresence,
    channel_events_output,
)
from presence_core._presence_set import ChannelSettings, PresenceSet, RoomOptions
from presence_core._recovery import make_recovery_key, read_recovery_key
from presence_core._wire import (
    ConnectionDetails,
    ErrorInfo,
    Message,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

__all__: list[str] = []

_CH = ChannelState
# Rooms in these states follow the connection into FAILED or CLOSED.
_ACTIVE: Final = (_CH.ATTACHING, _CH.ATTACHED, _CH.SUSPENDED, _CH.DETACHING)
# RTL3a-RTL3c, by connection state: which room states move, and to what; others stay.
_FOLLOW: Final[dict[ConnectionState, dict[ChannelState, ChannelState]]] = {
    ConnectionState.FAILED: dict.fromkeys(_ACTIVE, _CH.FAILED),
    ConnectionState.CLOSED: dict.fromkeys(_ACTIVE, _CH.DETACHED),
    # A detaching room detaches: there is nobody left to confirm the detach.
    ConnectionState.SUSPENDED: {
        _CH.ATTACHING: _CH.SUSPENDED,
        _CH.ATTACHED: _CH.SUSPENDED,
        _CH.DETACHING: _CH.DETACHED,
    },
}
_NACK_DEFAULT: Final = ErrorInfo(code=50000, status_code=500, message="NACK without an error")
# A room in one of these states no longer needs a recovered channelSerial (RTN16j, RTL15b2).
_OWN_SERIAL: Final = (_CH.ATTACHED, _CH.DETACHED, _CH.FAILED)
# RTL11: a room in one of these states fails the frames held for it.
_DEAD_ROOM: Final = frozenset({_CH.DETACHED, _CH.SUSPENDED, _CH.FAILED, _CH.INITIALIZED})


def check_serial(message: ProtocolMessage) -> None:
    """Reject a negative msgSerial (the codec has already checked the types)."""
    if message.msg_serial is not None and message.msg_serial < 0:
        raise ProtocolError("msgSerial must not be negative", path="msgSerial")


class Out:
    """Accumulates one call's events and commands; frozen into an Output at the end."""

    __slots__ = ("commands", "events", "operation")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.commands: list[Command] = []
        self.operation: Operation | None = None

    def build(self) -> Output:
        """The Output of everything accumulated (the shared empty one if nothing was)."""
        if not (self.events or self.commands or self.operation is not None):
            return EMPTY_OUTPUT
        return Output(tuple(self.events), tuple(self.commands), self.operation)


class Batch(Out):
    """An :class:`Out` for several frames folded as one call (``Connection.receive_many``).

    Each frame's events are appended in order, and a room's run of wrapped events continues
    across frames until another event comes between: the batch holds exactly the events the
    frames would give one by one, with fewer :class:`~presence_core.ChannelEvents` around them.
    """

    __slots__ = ("channel", "run")

    def __init__(self) -> None:
        super().__init__()
        #: The channel of the open run, and its events so far.
        self.channel: str | None = None
        self.run: list[PresenceMessage | Message | ChannelStateChanged] = []

    def start_run(
        self, channel: str, events: Iterable[PresenceMessage | Message | ChannelStateChanged]
    ) -> None:
        """Close the open run and open one for ``channel`` with ``events``."""
        self._close_run()
        self.channel = channel
        self.run = list(events)

    def add(self, out: Output) -> None:
        """Append one call's Output."""
        for event in out.events:
            if event.__class__ is ChannelEvents:
                batch: ChannelEvents = event
                if batch.channel == self.channel:
                    self.run.extend(batch.events)
                else:
                    self.start_run(batch.channel, batch.events)
            else:
                self._close_run()
                self.events.append(event)
        self.commands.extend(out.commands)
        if out.operation is not None:
            self.operation = out.operation

    def build(self) -> Output:
        """The Output of every frame added."""
        self._close_run()
        return super().build()

    def _close_run(self) -> None:
        if self.run:
            assert self.channel is not None
            self.events.append(ChannelEvents(channel=self.channel, events=tuple(self.run)))
            self.run = []
        self.channel = None


class Room:
    """A room owned by the connection: its PresenceSet and the options it was created with."""

    __slots__ = ("channel", "options", "presence")

    def __init__(self, presence: PresenceSet, options: RoomOptions) -> None:
        self.presence = presence
        self.options = options
        self.channel = presence.channel


class Identity(Protocol):
    """Whom a new room acts for: the connection's clientId and current connection id."""

    @property
    def client_id(self) -> str | None:
        """The clientId, or ``None`` while unknown."""

    @property
    def connection_id(self) -> str | None:
        """The current connection id, or ``None`` before the first CONNECTED."""


class Router:
    """A connection's rooms, by channel name, and the outbox of their frames.

    See the module docs.  Methods given an :class:`Out` fold what the rooms return into it.
    """

    __slots__ = ("jitter", "outbox", "recovered", "rooms", "settings")

    def __init__(self, settings: ChannelSettings, jitter: Jitter, max_frames: int) -> None:
        #: The rooms in the order they were made; read directly by the connection.
        self.rooms: dict[str, Room] = {}
        self.outbox = Outbox(max_frames)
        #: The timeouts and the jitter source every new room is built with.
        self.settings = settings
        self.jitter = jitter
        #: The recovery key's channelSerials still to be sent, by channel (RTN16j).
        self.recovered: dict[str, str] = {}

    def room(self, channel: str, options: RoomOptions | None, owner: Identity, now: int) -> Room:
        """The room for ``channel``, made for ``owner`` and added on first use.

        Raises:
            UsageError: An empty channel name (40010), or options differing from the room's.
        """
        room = self.rooms.get(channel)
        if room is None:
            room = self._new_room(channel, options, owner, now)
            self._add(room)
        elif options is not None and options != room.options:
            raise UsageError(f"room {channel!r} already exists with other options", code=40000)
        return room

    def call(
        self, channel: str, call: Callable[[PresenceSet, int], Output], t: int, owner: Identity
    ) -> Output:
        """Run a room operation on ``channel``'s room and fold its Output.

        A room made for the call is added only once the call has succeeded: a UsageError from
        the call leaves everything as it was.
        """
        room = self.rooms.get(channel)
        if room is not None:
            return self.fold(room, call(room.presence, t), t)
        room = self._new_room(channel, None, owner, t)
        out = call(room.presence, t)
        self._add(room)
        return self.fold(room, out, t)

    def next_timer(self) -> int | None:
        """The earliest deadline of the rooms' timers, or ``None``."""
        due = [
            d for room in self.rooms.values() if (d := room.presence.next_deadline()) is not None
        ]
        return min(due, default=None)

    def fire_timers(self, t: int, b: Out) -> bool:
        """Fire every room timer due at ``t`` into ``b``; return whether any was due."""
        fired = False
        for room in self.rooms.values():
            deadline = room.presence.next_deadline()
            if deadline is not None and t >= deadline:
                self.absorb(room, room.presence.tick(now=t), t, b)
                fired = True
        return fired

    def receive(self, channel: str, message: ProtocolMessage, t: int, b: Out) -> None:
        """Route a frame naming ``channel`` to its room (the connection has checked its state).

        Raises:
            ProtocolError: The room rejected the frame; nothing was changed.
        """
        room = self.rooms.get(channel)
        if room is None:
            b.events.append(FrameIgnored(message=message, reason=f"unknown channel {channel!r}"))
        else:
            self.absorb(room, room.presence.receive(message, now=t), t, b)

    def receive_presence(self, message: ProtocolMessage) -> Output | None:
        """A PRESENCE frame in its usual case: :meth:`receive` without the general fold.

        ``None`` when the frame needs the general path (an unknown channel, frames held in the
        outbox, a room that is not attached); nothing was changed then.

        Raises:
            ProtocolError: The frame is malformed; nothing was changed.
        """
        events = self._presence_events(message)
        if not events:
            return events if events is None else EMPTY_OUTPUT
        return channel_events_output(message.channel, events)  # type: ignore[arg-type]

    def presence_into(self, message: ProtocolMessage, batch: Batch) -> bool:
        """:meth:`receive_presence` for a batch: the events go into ``batch``.

        Returns False, having changed nothing, when the frame needs the general path.

        Raises:
            ProtocolError: The frame is malformed; nothing was changed.
        """
        events = self._presence_events(message)
        if events is None:
            return False
        if events:
            channel = message.channel
            if channel == batch.channel:
                batch.run.extend(events)
            else:
                batch.start_run(channel, events)  # type: ignore[arg-type]
        return True

    def _presence_events(self, message: ProtocolMessage) -> tuple[PresenceMessage, ...] | None:
        """A PRESENCE frame applied by its room, or ``None`` for the general path.

        The frame names a room's channel whenever this returns events.
        """
        room = self.rooms.get(message.channel)  # type: ignore[arg-type]
        if room is None or self.outbox.holding:
            return None
        if message.msg_serial is not None:
            check_serial(message)
        return room.presence.presence_events(message)

    def fold(self, room: Room, out: Output, t: int) -> Output:
        """``room``'s Output as the connection returns it."""
        b = Out()
        self.absorb(room, out, t, b)
        return b.build()

    def absorb(self, room: Room, out: Output, t: int, b: Out, *, send: bool = False) -> None:
        """Fold ``room``'s Output into ``b``.

        ``send`` lets ATTACH and DETACH frames out while CONNECTED is being applied, before the
        outbox opens.
        """
        outbox = self.outbox
        if outbox.holding:
            # The Output's own state changes count too: a detach that completes and lets a
            # waiting attach start (RTL4h) passes through DETACHED within one call.
            passed = [
                e.current
                for e in out.events
                if e.__class__ is ChannelStateChanged and e.current in _DEAD_ROOM
            ]
            self._settle_held(room, t, b, passed[0] if passed else None)
        if out.events:
            channel = room.channel
            batch: list[PresenceMessage | Message | ChannelStateChanged] = []
            for event in out.events:
                if isinstance(event, (PresenceMessage, Message, ChannelStateChanged)):
                    batch.append(event)
                    continue
                if batch:
                    b.events.append(ChannelEvents(channel=channel, events=tuple(batch)))
                    batch = []
                b.events.append(event)
            if batch:
                b.events.append(ChannelEvents(channel=channel, events=tuple(batch)))
        for command in out.commands:
            if isinstance(command, (SendPresence, SendMessage)):
                self._submit(room, Frame(room.channel, command.message, command.operations), t, b)
            elif isinstance(command, Send):
                if send or outbox.is_open:
                    b.commands.append(self._with_serial(command) if self.recovered else command)
            else:
                b.commands.append(command)
        if out.operation is not None:
            b.operation = out.operation
        if self.recovered and room.presence.state in _OWN_SERIAL:
            self.recovered.pop(room.channel, None)

    def recover(self, key: str) -> str | None:
        """Continue the connection recovery key ``key`` names; return its connectionKey.

        A key that cannot be read is ignored (RTN16f1): ``None``, and nothing changes.
        """
        recovery = read_recovery_key(key)
        if recovery is None:
            return None
        self.outbox.recover(recovery.msg_serial)  # RTN16f
        self.recovered.update(recovery.channel_serials)  # RTN16j
        return recovery.connection_key

    def recovery_key(self, connection_key: str) -> str:
        """The recovery key of the connection ``connection_key`` names, as it is now (RTN16g)."""
        serials = {
            name: serial
            for name, room in self.rooms.items()
            if room.presence.state is _CH.ATTACHED
            and (serial := room.presence.channel_serial) is not None
        }
        return make_recovery_key(connection_key, self.outbox.serial, serials)

    def _with_serial(self, command: Send) -> Send:
        """``command``, carrying its room's recovered channelSerial if it is a bare ATTACH."""
        m = command.message
        if m.action != ProtocolAction.ATTACH or m.channel_serial is not None or m.channel is None:
            return command
        serial = self.recovered.get(m.channel)
        if serial is None:
            return command
        return Send(message=attrs.evolve(m, channel_serial=serial))

    def acked(self, m: ProtocolMessage, serial: int, count: int, t: int, b: Out) -> None:
        """Settle what an ACK or NACK frame covers (RTN7a); a NACK's error fails it."""
        frames = self.outbox.settle(serial, count)
        if not frames:
            b.events.append(FrameIgnored(message=m, reason="ACK/NACK matches no pending frame"))
        elif m.action == ProtocolAction.NACK:
            self.settle(frames, m.error if m.error is not None else _NACK_DEFAULT, t, b)
        else:
            self.settle(frames, None, t, b)

    def settle(self, frames: list[Frame], error: ErrorInfo | None, t: int, b: Out) -> None:
        """Settle each frame's operations on its room: succeeded, or failed with ``error``."""
        for frame in frames:
            room = self.rooms[frame.channel]
            presence = room.presence
            if error is None:
                out = presence.acknowledge(frame.operations, now=t)
            else:
                out = presence.reject(frame.operations, error, now=t)
            self.absorb(room, out, t, b)

    def reconnect(
        self,
        connection_id: str,
        client_id: str | None,
        previous_id: str | None,
        details: ConnectionDetails,
        *,
        resumed: bool,
        t: int,
        b: Out,
    ) -> None:
        """CONNECTED: rooms re-attach (RTL3d), then the outbox opens and resends (RTN19a).

        ``previous_id`` is the connection id before this CONNECTED, whose item ids a failed
        resume drops from the frames it renumbers (RTN15c7, RTP17g1).
        """
        outbox = self.outbox
        outbox.configure(details, t, fresh=not resumed)
        if not resumed:
            outbox.restart(previous_id)
        # The outbox still holds here, so a PRESENCE frame a room produces waits for that
        # room's ATTACHED; the ATTACH and DETACH frames do go out.
        for room in self.rooms.values():
            presence = room.presence
            presence.set_connection(connection_id, client_id=client_id, now=t)  # no output
            out = presence.set_channel_state(_CH.ATTACHING, now=t)
            self.absorb(room, out, t, b, send=True)
        outbox.open()
        # After the ATTACHes, so that a new connection has the channel attached before the
        # presence arrives.
        b.commands.extend(outbox.resend(t))

    def end(
        self,
        state: ConnectionState,
        reason: ErrorInfo | None,
        failure: ErrorInfo,
        t: int,
        b: Out,
    ) -> None:
        """The connection entered FAILED, CLOSED or SUSPENDED (``state``, because of ``reason``).

        All the outbox's work fails with ``failure`` (RTN7e), then the rooms follow (RTL3).
        """
        self.settle(self.outbox.drain(), failure, t, b)
        moves = _FOLLOW[state]
        for room in self.rooms.values():
            target = moves.get(room.presence.state)
            if target is not None:
                out = room.presence.set_channel_state(target, reason=reason, now=t)
                self.absorb(room, out, t, b)

    def _new_room(
        self, channel: str, options: RoomOptions | None, owner: Identity, now: int
    ) -> Room:
        if not channel:
            raise UsageError("channel name must not be empty", code=40010)
        opts = options if options is not None else RoomOptions()
        client_id = owner.client_id
        presence = PresenceSet(
            channel, client_id=client_id, options=opts, settings=self.settings, jitter=self.jitter
        )
        if owner.connection_id is not None:
            # A room made between two CONNECTEDs learns the connection it lives on now; the
            # next CONNECTED tells every room again.  set_connection has no output.
            presence.set_connection(owner.connection_id, client_id=client_id, now=now)
        return Room(presence, opts)

    def _add(self, room: Room) -> None:
        self.rooms[room.channel] = room
        self.outbox.add_channel(room.channel)

    def _submit(self, room: Room, frame: Frame, t: int, b: Out) -> None:
        error = self.outbox.submit(frame, b.commands, t)
        if error is not None:
            self.absorb(room, room.presence.reject(frame.operations, error, now=t), t, b)

    def _settle_held(self, room: Room, t: int, b: Out, passed: ChannelState | None) -> None:
        state = passed or room.presence.state
        if state is _CH.ATTACHED and self.outbox.is_open:
            for frame in self.outbox.release(room.channel):
                self._submit(room, frame, t, b)
        elif state in _DEAD_ROOM:
            frames = self.outbox.release(room.channel)
            if not frames:
                return
            error = ErrorInfo(
                code=90001,
                status_code=400,
                message=f"channel became {state.value} before a queued frame was sent",
            )
            for frame in frames:
                self.absorb(room, room.presence.reject(frame.operations, error, now=t), t, b)
