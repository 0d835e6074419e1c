"""The connection reducer: one realtime connection and the rooms (PresenceSets) it owns.

A :class:`Connection` is the object an SDK embeds.  It is sans-IO, in the style of aioquic:
frames go in already decoded, commands come out, and time comes in as ``now`` (int epoch ms).

Inputs (each returns one frozen :class:`~presence_core.Output`):

* ``connect(now=)`` -- open a transport: an :class:`~presence_core.OpenTransport` command with the
  query parameters (``key`` or ``access_token``, ``resume``, ``clientId``, ``format``,
  ``heartbeats``, ``v``).
* ``receive(message, now=)`` -- every frame of the current transport.
* ``transport_closed(now=, error=)`` -- the transport of the latest ``OpenTransport`` was lost or
  could not be opened.  Do not report a transport the reducer itself closed with
  :class:`~presence_core.CloseTransport`: that one is already forgotten.
* ``close(now=)``, ``ping(id, now=)``, and the room operations (``attach``, ``detach``,
  ``enter``, ``update``, ``leave``, ``enter_client``, ``update_client``, ``leave_client``), or
  ``route(channel, output, now=)`` for an Output obtained by calling a room directly.
* ``tick(now)`` when ``now`` reaches ``next_deadline()``.

What the connection adds on top of its rooms:

* every PRESENCE frame a room wants sent gets the next ``msgSerial`` (RTN7b) and goes out as a
  :class:`~presence_core.Send` of a numbered frame; it stays pending until an ACK or NACK covers
  it (RTN7a), and is resent on the next transport (RTN19a): with its serial when the resume kept
  the connection, renumbered from 0 when the connection is new (RTN15c7);
* while there is no usable transport, such frames wait in a per-room queue and go out after
  that room is ATTACHED again (RTL3d2);
* connection states act on rooms (RTL3) and fail pending work (RTN7e);
* the idle deadline (RTN23a), retries (RTN14d, RTN15a) and suspension (RTN14e, RTN15g).

Room events come out as :class:`~presence_core.ChannelEvents` batches, one per room Output.

Time never goes backwards here: a ``now`` older than one already seen is treated as that one.
A malformed frame raises :class:`~presence_core.ProtocolError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

import attrs

from presence_core._errors import ProtocolError, UsageError
from presence_core._output import (
    EMPTY_OUTPUT,
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    CloseTransport,
    Command,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    FrameIgnored,
    OpenTransport,
    Operation,
    Output,
    PingAnswered,
    PingFailed,
    Send,
    SendPresence,
)
from presence_core._presence_set import PresenceSet, PresenceSnapshot, RoomOptions
from presence_core._wire import (
    ConnectionDetails,
    ErrorInfo,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = ["ConnectionSettings", "ConnectionSnapshot", "Connection"]

#: The protocol version sent as ``v`` (ably-wire-interop.md §2).
PROTOCOL_VERSION: Final = "6"

_CS = ConnectionState
_CH = ChannelState

# Frames that belong to one channel; they must name it and are routed to its room.
_CHANNEL_ACTIONS: Final = frozenset(
    {
        ProtocolAction.ATTACHED,
        ProtocolAction.DETACHED,
        ProtocolAction.PRESENCE,
        ProtocolAction.SYNC,
        ProtocolAction.MESSAGE,
        ProtocolAction.ANNOTATION,
        ProtocolAction.OBJECT,
        ProtocolAction.OBJECT_SYNC,
    }
)
_KNOWN_ACTIONS: Final = frozenset(int(a) for a in ProtocolAction)
# RTL3a/RTL3b: rooms in these states follow the connection into FAILED/CLOSED.
_ACTIVE: Final = frozenset({_CH.ATTACHING, _CH.ATTACHED, _CH.SUSPENDED, _CH.DETACHING})
# RTL11: a room entering one of these fails the frames queued for it.
_DEAD_ROOM: Final = frozenset({_CH.DETACHED, _CH.SUSPENDED, _CH.FAILED, _CH.INITIALIZED})
# States with a transport (opened or being opened).
_TRANSPORT_UP: Final = frozenset({_CS.CONNECTING, _CS.CONNECTED, _CS.CLOSING})
# States in which numbered frames wait for a transport instead of failing (RTP16a).
_QUEUEING: Final = frozenset({_CS.INITIALIZED, _CS.CONNECTING, _CS.DISCONNECTED})

_DISCONNECTED_ERROR: Final = ErrorInfo(code=80003, status_code=503, message="transport closed")
_CONNECT_TIMEOUT: Final = ErrorInfo(
    code=80014, status_code=503, message="no CONNECTED within realtime_request_timeout"
)
_SUSPENDED_ERROR: Final = ErrorInfo(
    code=80002, status_code=503, message="connection suspended: connectionStateTtl elapsed"
)
_CLOSED_ERROR: Final = ErrorInfo(code=80017, status_code=400, message="connection closed")
_FAILED_ERROR: Final = ErrorInfo(code=80000, status_code=400, message="connection failed")
_NACK_DEFAULT: Final = ErrorInfo(code=50000, status_code=500, message="NACK without an error")
_PING_TIMEOUT: Final = ErrorInfo(code=50003, status_code=504, message="ping timed out")


def _positive(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise UsageError(f"{attribute.name} must be a positive number of ms, got {value!r}")


@attrs.frozen(kw_only=True)
class ConnectionSettings:
    """Timeouts and switches of a :class:`Connection`; all durations are milliseconds.

    The defaults are ably-js's, so a connection behaves like the reference client by default.
    """

    #: realtimeRequestTimeout: how long to wait for CONNECTED, CLOSED or a ping answer, and the
    #: slack added to the server's maxIdleInterval before a silent transport is declared dead
    #: (RTN23a).  10 s as in ably-js.
    realtime_request_timeout: int = attrs.field(default=10_000, validator=_positive)
    #: disconnectedRetryTimeout: wait after a failed connection attempt (RTN14d).  15 s.
    disconnected_retry_timeout: int = attrs.field(default=15_000, validator=_positive)
    #: suspendedRetryTimeout: wait between attempts while SUSPENDED (RTN14e).  30 s.
    suspended_retry_timeout: int = attrs.field(default=30_000, validator=_positive)
    #: connectionStateTtl until a CONNECTED says otherwise: how long a lost connection stays
    #: resumable before the client gives up resuming and becomes SUSPENDED (RTN14e).  120 s.
    connection_state_ttl: int = attrs.field(default=120_000, validator=_positive)
    #: Ask the server for HEARTBEAT frames (``heartbeats=true``), so that an idle but healthy
    #: transport still shows activity.  Browsers do this; a WebSocket client that cannot see
    #: WS ping frames must.
    heartbeats: bool = True
    #: Bound on outstanding pings, so a caller pinging in a loop cannot grow memory.
    max_pending_pings: int = attrs.field(default=64, validator=_positive)


@attrs.frozen(kw_only=True)
class ConnectionSnapshot:
    """A comparable picture of a Connection's whole state, for tests and debugging."""

    state: ConnectionState
    connection_id: str | None
    connection_key: str | None
    client_id: str | None
    error: ErrorInfo | None
    #: The msgSerial the next numbered frame will get.
    msg_serial: int
    #: ``(msgSerial, channel, operation ids)`` of every frame awaiting an ACK, in serial order.
    pending: tuple[tuple[int, str, tuple[int, ...]], ...]
    #: ``(channel, operation ids)`` of every frame waiting for a transport (RTL3d2).
    queued: tuple[tuple[str, tuple[int, ...]], ...]
    rooms: tuple[tuple[str, PresenceSnapshot], ...]
    pings: tuple[tuple[str, int], ...]
    now: int | None
    next_deadline: int | None


class _Room:
    """A room owned by the connection, with the numbered frames waiting for its ATTACHED."""

    __slots__ = ("options", "presence", "queued")

    def __init__(self, presence: PresenceSet, options: RoomOptions) -> None:
        self.presence = presence
        self.options = options
        self.queued: list[tuple[ProtocolMessage, tuple[Operation, ...]]] = []


class _Pending:
    """A numbered frame awaiting its ACK or NACK.  The frame is kept without its serial."""

    __slots__ = ("channel", "message", "operations")

    def __init__(
        self, channel: str, message: ProtocolMessage, operations: tuple[Operation, ...]
    ) -> None:
        self.channel = channel
        self.message = message
        self.operations = operations


class _Out:
    """Accumulates one call's events and commands; frozen into an Output at the end."""

    __slots__ = ("commands", "events", "operation")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.commands: list[Command] = []
        self.operation: Operation | None = None

    def build(self) -> Output:
        if not (self.events or self.commands or self.operation is not None):
            return EMPTY_OUTPUT
        return Output(tuple(self.events), tuple(self.commands), self.operation)


class Connection:
    """Deterministic reducer for one realtime connection and its rooms.  See the module docs.

    Args:
        key: An API key ``name:secret``, sent as ``key``.
        token: A token string, sent as ``access_token``.  Exactly one of ``key`` and ``token``
            must be given.
        client_id: The clientId to connect as.  When ``None``, the clientId the server puts in
            CONNECTED is adopted.  When set, a CONNECTED naming another clientId fails the
            connection with 40102.
        settings: Timeouts and switches; :class:`ConnectionSettings` defaults otherwise.

    Raises:
        UsageError: Neither or both of ``key`` and ``token``, or an invalid ``client_id``.
    """

    def __init__(
        self,
        *,
        key: str | None = None,
        token: str | None = None,
        client_id: str | None = None,
        settings: ConnectionSettings | None = None,
    ) -> None:
        if (key is None) == (token is None):
            raise UsageError("give exactly one of key= and token=", code=40106)
        if client_id is not None and (not client_id or client_id == "*"):
            # RSA7c: the wildcard is a capability, never a connection's own identity.
            raise UsageError(f"invalid clientId {client_id!r}", code=40012)
        self._key = key
        self._token = token
        self._settings = settings if settings is not None else ConnectionSettings()
        self._client_id = client_id
        self._state = _CS.INITIALIZED
        self._now: int | None = None
        self._connection_id: str | None = None
        self._connection_key: str | None = None
        self._details: ConnectionDetails | None = None
        self._error: ErrorInfo | None = None
        # True when the next transport must not resume (first connect, or after the
        # connection was suspended, closed or failed: RTN15g).
        self._fresh = True
        self._msg_serial = 0
        self._pending: dict[int, _Pending] = {}
        self._rooms: dict[str, _Room] = {}
        self._ttl = self._settings.connection_state_ttl
        self._max_idle = 0
        self._last_activity = 0
        # The one timer of the current state: the connect timeout (CONNECTING), the next retry
        # (DISCONNECTED, SUSPENDED) or the close timeout (CLOSING).
        self._deadline: int | None = None
        # When the DISCONNECTED/CONNECTING retry cycle gives up and suspends (RTN14e).
        self._suspend_at: int | None = None
        # Whether a failed attempt returns to SUSPENDED (the cycle started there) or not.
        self._suspended_cycle = False
        self._pings: dict[str, int] = {}

    # -- queries ----------------------------------------------------------------------------
    @property
    def state(self) -> ConnectionState:
        """The connection state (RTN4)."""
        return self._state

    @property
    def connection_id(self) -> str | None:
        """The id from the latest CONNECTED, or ``None`` before the first one."""
        return self._connection_id

    @property
    def connection_key(self) -> str | None:
        """The key a resume would send; ``None`` when the next transport starts afresh."""
        return None if self._fresh else self._connection_key

    @property
    def client_id(self) -> str | None:
        """The clientId: the constructor's, or the one adopted from CONNECTED."""
        return self._client_id

    @property
    def details(self) -> ConnectionDetails | None:
        """The connectionDetails of the latest CONNECTED (maxIdleInterval, ttl, sizes)."""
        return self._details

    @property
    def error_reason(self) -> ErrorInfo | None:
        """Why the connection last changed state, if an error caused it (RTN25)."""
        return self._error

    @property
    def msg_serial(self) -> int:
        """The msgSerial the next numbered frame will get."""
        return self._msg_serial

    @property
    def settings(self) -> ConnectionSettings:
        """The settings given to the constructor."""
        return self._settings

    @property
    def rooms(self) -> Mapping[str, PresenceSet]:
        """The rooms this connection owns, by channel name (a read-only view)."""
        return MappingProxyType({name: room.presence for name, room in self._rooms.items()})

    def room(self, channel: str, *, options: RoomOptions | None = None) -> PresenceSet:
        """Return the room (PresenceSet) for ``channel``, creating it on first use.

        Args:
            channel: The channel name, such as ``"room1::$chat"``.
            options: Room options for a new room.  For an existing room they must equal the
                options it was created with, or be omitted.

        Raises:
            UsageError: An empty channel name (40010), or options differing from the room's.
        """
        room = self._rooms.get(channel)
        if room is None:
            room = self._new_room(channel, options)
            self._rooms[channel] = room
        elif options is not None and options != room.options:
            raise UsageError(f"room {channel!r} already exists with other options", code=40000)
        return room.presence

    def next_deadline(self) -> int | None:
        """The earliest ``now`` at which :meth:`tick` has something to do, or ``None``."""
        state = self._state
        if state is _CS.CONNECTED:
            deadline = self._idle_deadline()
            for sent in self._pings.values():
                due = sent + self._settings.realtime_request_timeout
                deadline = due if deadline is None else min(deadline, due)
            return deadline
        if state in (_CS.CONNECTING, _CS.DISCONNECTED) and self._suspend_at is not None:
            if self._deadline is None:
                return self._suspend_at
            return min(self._deadline, self._suspend_at)
        return self._deadline

    def snapshot(self) -> ConnectionSnapshot:
        """A comparable picture of the whole state, rooms included."""
        return ConnectionSnapshot(
            state=self._state,
            connection_id=self._connection_id,
            connection_key=self.connection_key,
            client_id=self._client_id,
            error=self._error,
            msg_serial=self._msg_serial,
            pending=tuple(
                (serial, p.channel, tuple(op.id for op in p.operations))
                for serial, p in self._pending.items()
            ),
            queued=tuple(
                (name, tuple(op.id for op in ops))
                for name, room in self._rooms.items()
                for _, ops in room.queued
            ),
            rooms=tuple((name, room.presence.snapshot()) for name, room in self._rooms.items()),
            pings=tuple(self._pings.items()),
            now=self._now,
            next_deadline=self.next_deadline(),
        )

    # -- connection lifecycle ---------------------------------------------------------------
    def connect(self, *, now: int) -> Output:
        """Open a transport (RTN11): an OpenTransport command, state CONNECTING.

        From DISCONNECTED this retries at once, resuming.  From CLOSED or FAILED it starts a
        new connection.  While CONNECTING or CONNECTED it does nothing.  While CLOSING the close
        is completed first.
        """
        t = self._advance(now)
        b = _Out()
        state = self._state
        if state in (_CS.CONNECTING, _CS.CONNECTED):
            return EMPTY_OUTPUT
        if state is _CS.CLOSING:
            b.commands.append(CloseTransport())
            self._to_closed(t, b)
        if self._state in (_CS.INITIALIZED, _CS.CLOSED, _CS.FAILED):
            self._fresh = True
            self._suspended_cycle = False
            self._suspend_at = None
        self._open(t, b)
        return b.build()

    def close(self, *, now: int) -> Output:
        """Close the connection (RTN12).

        When CONNECTED this sends CLOSE and waits up to ``realtime_request_timeout`` for CLOSED.
        Without an established transport it becomes CLOSED at once.  Pending and queued frames
        fail with 80017 (RTN7e); rooms become DETACHED (RTL3b).
        """
        t = self._advance(now)
        b = _Out()
        state = self._state
        if state in (_CS.CLOSING, _CS.CLOSED, _CS.FAILED):
            return EMPTY_OUTPUT
        if state is _CS.CONNECTED:
            self._set_state(_CS.CLOSING, None, b)
            self._deadline = t + self._settings.realtime_request_timeout
            b.commands.append(Send(message=ProtocolMessage(action=ProtocolAction.CLOSE)))
            return b.build()
        if state is _CS.CONNECTING:
            b.commands.append(CloseTransport())
        self._to_closed(t, b)
        return b.build()

    def transport_closed(self, *, now: int, error: ErrorInfo | None = None) -> Output:
        """The current transport was lost, or could not be opened.

        From CONNECTED this is an unexpected loss: DISCONNECTED, then an immediate attempt to
        resume (RTN15a).  From CONNECTING the attempt failed: DISCONNECTED with a retry after
        ``disconnected_retry_timeout`` (RTN14d), or SUSPENDED once ``connectionStateTtl`` has
        passed (RTN14e).  From CLOSING it completes the close.  Otherwise nothing happens: the
        reducer had already given that transport up.
        """
        t = self._advance(now)
        b = _Out()
        state = self._state
        if state is _CS.CLOSING:
            self._to_closed(t, b)
        elif state in (_CS.CONNECTED, _CS.CONNECTING):
            self._lost(error if error is not None else _DISCONNECTED_ERROR, t, b)
        return b.build()

    def tick(self, *, now: int) -> Output:
        """Fire every deadline that ``now`` has reached (see :meth:`next_deadline`)."""
        t = self._advance(now)
        b = _Out()
        # Each step moves the state or a timer forward, so this ends; the bound is a guard.
        for _ in range(16):
            if not self._fire(t, b):
                break
        return b.build()

    def ping(self, ping_id: str, *, now: int) -> Output:
        """Send a HEARTBEAT carrying ``ping_id`` (RTN13).

        The server's HEARTBEAT with the same id gives a :class:`~presence_core.PingAnswered`
        event; no answer within ``realtime_request_timeout``, or the loss of the transport,
        gives :class:`~presence_core.PingFailed`.

        Raises:
            UsageError: Not CONNECTED (80003), an id already in flight, or too many pings.
        """
        if self._state is not _CS.CONNECTED:
            raise UsageError(f"cannot ping while {self._state.value}", code=80003)
        if not ping_id or ping_id in self._pings:
            raise UsageError(f"ping id {ping_id!r} is empty or already in flight")
        if len(self._pings) >= self._settings.max_pending_pings:
            raise UsageError("too many pings in flight")
        t = self._advance(now)
        self._pings[ping_id] = t
        heartbeat = ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=ping_id)
        return Output(commands=(Send(message=heartbeat),))

    # -- frames -----------------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, now: int) -> Output:
        """Apply one frame from the current transport.

        Raises:
            ProtocolError: The frame is malformed (for example a CONNECTED without
                connectionDetails, an ACK without msgSerial, or a room frame its room rejects).
                Nothing was changed.
        """
        t = self._clock(now)
        action = message.action
        b = _Out()
        if action not in _KNOWN_ACTIONS:
            # Forward compatibility: a newer server may send actions this library predates.
            self._validate_only(message)
            self._commit_activity(t)
            b.events.append(FrameIgnored(message=message, reason="unknown action"))
            return b.build()
        if action in _CHANNEL_ACTIONS or (
            action == ProtocolAction.ERROR and message.channel is not None
        ):
            self._route_frame(message, t, b)
        elif action == ProtocolAction.CONNECTED:
            self._on_connected(message, t, b)
        elif action in (ProtocolAction.ACK, ProtocolAction.NACK):
            self._on_ack(message, t, b)
        elif self._state not in _TRANSPORT_UP:
            b.events.append(
                FrameIgnored(message=message, reason=f"no transport while {self._state.value}")
            )
            self._now = t
        elif action == ProtocolAction.HEARTBEAT:
            self._commit_activity(t)
            sent = self._pings.pop(message.id, None) if message.id is not None else None
            if sent is not None:
                b.events.append(PingAnswered(id=message.id or "", round_trip=t - sent))
        elif action == ProtocolAction.ERROR:
            # RTN15i/RTN14g: a connection-wide ERROR is fatal.
            self._now = t
            self._fail(message.error if message.error is not None else _FAILED_ERROR, t, b)
        elif action == ProtocolAction.DISCONNECTED:
            # RTN15h: the server drops the transport; retry (resuming) as for a lost transport.
            self._now = t
            if self._state is _CS.CLOSING:
                b.commands.append(CloseTransport(reason=message.error))
                self._to_closed(t, b)
            else:
                b.commands.append(CloseTransport(reason=message.error))
                self._lost(message.error or _DISCONNECTED_ERROR, t, b)
        elif action == ProtocolAction.CLOSED:
            self._now = t
            if self._state is _CS.CONNECTING:
                b.events.append(FrameIgnored(message=message, reason="CLOSED while connecting"))
            else:
                b.commands.append(CloseTransport())
                self._to_closed(t, b)
        else:
            # CONNECT, DISCONNECT, CLOSE, ATTACH, DETACH, AUTH ... are client-to-server frames
            # or features outside presence; they are logged, not acted on.
            self._commit_activity(t)
            b.events.append(FrameIgnored(message=message, reason="not handled by the client"))
        return b.build()

    # -- room operations --------------------------------------------------------------------
    def attach(self, channel: str, *, now: int) -> Output:
        """Attach the room ``channel`` (created with default options if new)."""
        return self._room_call(channel, now, lambda ps, t: ps.attach(now=t))

    def detach(self, channel: str, *, now: int) -> Output:
        """Detach the room ``channel``."""
        return self._room_call(channel, now, lambda ps, t: ps.detach(now=t))

    def enter(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Enter the room's presence with the connection's clientId (RTP8)."""
        return self._room_call(channel, now, lambda ps, t: ps.enter(data, extras=extras, now=t))

    def update(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Update own presence data in the room (RTP9)."""
        return self._room_call(channel, now, lambda ps, t: ps.update(data, extras=extras, now=t))

    def leave(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Leave the room's presence (RTP10)."""
        return self._room_call(channel, now, lambda ps, t: ps.leave(data, extras=extras, now=t))

    def enter_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Enter on behalf of ``client_id`` (RTP14/RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.enter_client(client_id, data, extras=extras, now=t)
        )

    def update_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Update on behalf of ``client_id`` (RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.update_client(client_id, data, extras=extras, now=t)
        )

    def leave_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Leave on behalf of ``client_id`` (RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.leave_client(client_id, data, extras=extras, now=t)
        )

    def route(self, channel: str, output: Output, *, now: int) -> Output:
        """Post-process an Output got by calling the room's PresenceSet directly.

        Numbers its PRESENCE frames, queues or drops its other frames as the connection state
        requires, and batches its events, exactly as the room operations above do.

        Raises:
            UsageError: ``channel`` is not a room of this connection.
        """
        room = self._rooms.get(channel)
        if room is None:
            raise UsageError(f"{channel!r} is not a room of this connection")
        t = self._advance(now)
        b = _Out()
        self._absorb(room, output, t, b)
        return b.build()

    # -- internals: time --------------------------------------------------------------------
    def _clock(self, now: int) -> int:
        # A clock step backwards must not move deadlines back or raise: time stands still.
        return now if self._now is None or now > self._now else self._now

    def _advance(self, now: int) -> int:
        self._now = t = self._clock(now)
        return t

    def _commit_activity(self, t: int) -> None:
        self._now = t
        if self._state is _CS.CONNECTED:
            self._last_activity = t

    def _idle_deadline(self) -> int | None:
        # RTN23a: with no maxIdleInterval there is no idle timer.
        if not self._max_idle:
            return None
        return self._last_activity + self._max_idle + self._settings.realtime_request_timeout

    def _fire(self, t: int, b: _Out) -> bool:
        """Handle one due deadline; return whether anything was due."""
        state = self._state
        if state is _CS.CONNECTED:
            idle = self._idle_deadline()
            if idle is not None and t >= idle:
                error = ErrorInfo(
                    code=80003,
                    status_code=503,
                    message=f"no activity seen from the server in {t - self._last_activity} ms",
                )
                # ably-js says goodbye with DISCONNECT so the server can start its grace period.
                b.commands.append(Send(message=ProtocolMessage(action=ProtocolAction.DISCONNECT)))
                b.commands.append(CloseTransport(reason=error))
                self._lost(error, t, b)
                return True
            limit = self._settings.realtime_request_timeout
            late = [pid for pid, sent in self._pings.items() if t >= sent + limit]
            for pid in late:
                del self._pings[pid]
                b.events.append(PingFailed(id=pid, error=_PING_TIMEOUT))
            return bool(late)
        if state in (_CS.CONNECTING, _CS.DISCONNECTED) and (
            self._suspend_at is not None and t >= self._suspend_at
        ):
            if state is _CS.CONNECTING:
                b.commands.append(CloseTransport(reason=_SUSPENDED_ERROR))
            self._suspend(_SUSPENDED_ERROR, t, b)
            return True
        if self._deadline is None or t < self._deadline:
            return False
        if state is _CS.CONNECTING:
            b.commands.append(CloseTransport(reason=_CONNECT_TIMEOUT))
            self._lost(_CONNECT_TIMEOUT, t, b)
        elif state in (_CS.DISCONNECTED, _CS.SUSPENDED):
            self._open(t, b)
        elif state is _CS.CLOSING:
            b.commands.append(CloseTransport())
            self._to_closed(t, b)
        else:  # pragma: no cover - no other state keeps a deadline
            self._deadline = None
        return True

    # -- internals: state changes -----------------------------------------------------------
    def _set_state(self, state: ConnectionState, reason: ErrorInfo | None, b: _Out) -> None:
        b.events.append(ConnectionStateChanged(previous=self._state, current=state, reason=reason))
        self._state = state
        self._error = reason

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self._key is not None:
            params["key"] = self._key
        else:
            params["access_token"] = self._token or ""
        if not self._fresh and self._connection_key is not None:
            params["resume"] = self._connection_key
        if self._client_id is not None:
            params["clientId"] = self._client_id
        params["format"] = "json"
        params["heartbeats"] = "true" if self._settings.heartbeats else "false"
        params["v"] = PROTOCOL_VERSION
        return params

    def _open(self, t: int, b: _Out) -> None:
        self._set_state(_CS.CONNECTING, self._error, b)
        self._deadline = t + self._settings.realtime_request_timeout
        b.commands.append(OpenTransport(params=self._params()))

    def _lost(self, error: ErrorInfo, t: int, b: _Out) -> None:
        """The transport of a CONNECTING or CONNECTED connection is gone."""
        self._fail_pings(error, b)
        if self._state is _CS.CONNECTED:
            # RTN15a: an established connection that drops is retried at once, resuming.  The
            # ttl clock starts now (RTN14e, RTN15g).
            self._suspend_at = t + self._ttl
            self._set_state(_CS.DISCONNECTED, error, b)
            self._open(t, b)
            return
        if self._suspended_cycle:
            self._suspend(error, t, b)
            return
        if self._suspend_at is None:
            self._suspend_at = t + self._ttl
        elif t >= self._suspend_at:
            self._suspend(error, t, b)
            return
        self._set_state(_CS.DISCONNECTED, error, b)
        self._deadline = t + self._settings.disconnected_retry_timeout

    def _suspend(self, error: ErrorInfo, t: int, b: _Out) -> None:
        """RTN14e: give up resuming; fail pending work (RTN7e); rooms suspend (RTL3c)."""
        self._fail_pings(error, b)
        self._set_state(_CS.SUSPENDED, error, b)
        self._deadline = t + self._settings.suspended_retry_timeout
        self._suspend_at = None
        self._suspended_cycle = True
        self._fresh = True
        self._fail_pending(_SUSPENDED_ERROR, t, b)
        for room in self._rooms.values():
            state = room.presence.state
            if state in (_CH.ATTACHING, _CH.ATTACHED):
                target = _CH.SUSPENDED
            elif state is _CH.DETACHING:
                target = _CH.DETACHED  # nobody left to confirm the detach
            else:
                continue
            self._absorb(room, room.presence.set_channel_state(target, reason=error, now=t), t, b)

    def _to_closed(self, t: int, b: _Out) -> None:
        """RTN12: CLOSED.  Pending work fails (RTN7e); rooms become DETACHED (RTL3b)."""
        self._fail_pings(_CLOSED_ERROR, b)
        self._set_state(_CS.CLOSED, None, b)
        self._reset_cycle()
        self._fail_pending(_CLOSED_ERROR, t, b)
        self._rooms_to(_CH.DETACHED, None, t, b)

    def _fail(self, error: ErrorInfo, t: int, b: _Out) -> None:
        """FAILED.  Pending work fails (RTN7e); rooms become FAILED (RTL3a)."""
        if self._state in _TRANSPORT_UP:
            b.commands.append(CloseTransport(reason=error))
        self._fail_pings(error, b)
        self._set_state(_CS.FAILED, error, b)
        self._reset_cycle()
        self._fail_pending(error, t, b)
        self._rooms_to(_CH.FAILED, error, t, b)

    def _reset_cycle(self) -> None:
        self._deadline = None
        self._suspend_at = None
        self._suspended_cycle = False
        self._fresh = True

    def _rooms_to(self, target: ChannelState, reason: ErrorInfo | None, t: int, b: _Out) -> None:
        for room in self._rooms.values():
            if room.presence.state in _ACTIVE:
                out = room.presence.set_channel_state(target, reason=reason, now=t)
                self._absorb(room, out, t, b)

    def _fail_pings(self, error: ErrorInfo, b: _Out) -> None:
        pings, self._pings = self._pings, {}
        b.events.extend(PingFailed(id=pid, error=error) for pid in pings)

    def _fail_pending(self, error: ErrorInfo, t: int, b: _Out) -> None:
        """RTN7e: every frame awaiting an ACK, and every queued frame, fails with ``error``."""
        pending, self._pending = self._pending, {}
        for p in pending.values():
            room = self._rooms[p.channel]
            self._absorb(room, room.presence.reject(p.operations, error, now=t), t, b)
        for room in self._rooms.values():
            queued, room.queued = room.queued, []
            for _, ops in queued:
                self._absorb(room, room.presence.reject(ops, error, now=t), t, b)

    # -- internals: frames ------------------------------------------------------------------
    def _validate_only(self, message: ProtocolMessage) -> None:
        """Checks shared by every frame (the codec has already checked the types)."""
        if message.msg_serial is not None and message.msg_serial < 0:
            raise ProtocolError("msgSerial must not be negative", path="msgSerial")

    def _on_connected(self, m: ProtocolMessage, t: int, b: _Out) -> None:
        if not m.connection_id:
            raise ProtocolError("CONNECTED without a connectionId", path="connectionId")
        details = m.connection_details
        if details is None:
            raise ProtocolError("CONNECTED without connectionDetails", path="connectionDetails")
        for name in ("max_idle_interval", "connection_state_ttl", "max_message_size"):
            value = getattr(details, name)
            if value is not None and value < 0:
                raise ProtocolError("must not be negative", path=f"connectionDetails.{name}")
        if self._state not in (_CS.CONNECTING, _CS.CONNECTED):
            self._now = t
            b.events.append(FrameIgnored(message=m, reason=f"CONNECTED while {self._state.value}"))
            return
        self._now = t
        server_client_id = details.client_id
        if (
            server_client_id is not None
            and self._client_id is not None
            and server_client_id != self._client_id
        ):
            # The identity the server granted is not the one asked for: continuing would act
            # under someone else's name (ably-js fails with 40102 too).
            self._fail(
                ErrorInfo(
                    code=40102,
                    status_code=401,
                    message=(
                        f"clientId mismatch: asked for {self._client_id!r}, "
                        f"server granted {server_client_id!r}"
                    ),
                ),
                t,
                b,
            )
            return
        previous = self._state
        resumed = not self._fresh and m.connection_id == self._connection_id
        self._connection_id = m.connection_id
        self._connection_key = details.connection_key or m.connection_key
        self._details = details
        if server_client_id is not None:
            self._client_id = server_client_id
        if details.connection_state_ttl:
            self._ttl = details.connection_state_ttl
        self._max_idle = details.max_idle_interval or 0
        self._last_activity = t
        self._deadline = None
        self._suspend_at = None
        self._suspended_cycle = False
        self._fresh = False
        # An error in CONNECTED means connected, but continuity was lost (RTN15c7).
        b.events.append(
            ConnectionStateChanged(previous=previous, current=_CS.CONNECTED, reason=m.error)
        )
        self._error = m.error
        if previous is _CS.CONNECTED:
            # A connection update (RTN24): new details, nothing to re-attach or resend.
            return
        if not resumed:
            # RTN15c7/RTN19a2: a new connection numbers from 0.  Unacked frames keep their
            # order and are renumbered, so the server sees each exactly once on this id.
            pending, self._pending = self._pending, {}
            self._msg_serial = 0
            for p in pending.values():
                self._pending[self._msg_serial] = p
                self._msg_serial += 1
        # Rooms are handled while the state still reads CONNECTING, so a numbered frame one
        # of them produces here waits in its queue; their ATTACH and DETACH frames do go out.
        for room in self._rooms.values():
            ps = room.presence
            ps.set_connection(m.connection_id, client_id=self._client_id, now=t)  # no output
            # RTL3d: ATTACHED, ATTACHING and SUSPENDED rooms send ATTACH and are ATTACHING
            # until their ATTACHED arrives; a DETACHING room sends DETACH again.
            self._absorb(room, ps.set_channel_state(_CH.ATTACHING, now=t), t, b, send=True)
        self._state = _CS.CONNECTED
        # RTN19a: resend every unacked frame on the new transport, after the ATTACHes so that
        # a new connection has the channel attached before the presence arrives.
        for serial, p in self._pending.items():
            b.commands.append(Send(message=attrs.evolve(p.message, msg_serial=serial)))

    def _on_ack(self, m: ProtocolMessage, t: int, b: _Out) -> None:
        serial = m.msg_serial
        if serial is None:
            raise ProtocolError("ACK/NACK without msgSerial", path="msgSerial")
        if serial < 0:
            raise ProtocolError("msgSerial must not be negative", path="msgSerial")
        count = 1 if m.count is None else m.count
        if count < 1:
            raise ProtocolError("count must be at least 1", path="count")
        if self._state not in (_CS.CONNECTED, _CS.CLOSING):
            self._now = t
            b.events.append(FrameIgnored(message=m, reason=f"ACK/NACK while {self._state.value}"))
            return
        self._commit_activity(t)
        end = serial + count
        # A duplicate ACK, or one for frames already settled, matches nothing and is ignored.
        covered = [s for s in self._pending if serial <= s < end]
        if not covered:
            b.events.append(FrameIgnored(message=m, reason="ACK/NACK matches no pending frame"))
            return
        nack = m.action == ProtocolAction.NACK
        error = m.error if m.error is not None else _NACK_DEFAULT
        for s in covered:
            p = self._pending.pop(s)
            room = self._rooms[p.channel]
            if nack:
                out = room.presence.reject(p.operations, error, now=t)
            else:
                out = room.presence.acknowledge(p.operations, now=t)
            self._absorb(room, out, t, b)

    def _route_frame(self, m: ProtocolMessage, t: int, b: _Out) -> None:
        channel = m.channel
        if channel is None:
            raise ProtocolError("a channel frame must name its channel", path="channel")
        self._validate_only(m)
        if self._state not in (_CS.CONNECTED, _CS.CLOSING):
            self._now = t
            b.events.append(
                FrameIgnored(message=m, reason=f"channel frame while {self._state.value}")
            )
            return
        room = self._rooms.get(channel)
        if room is None:
            self._commit_activity(t)
            b.events.append(FrameIgnored(message=m, reason=f"unknown channel {channel!r}"))
            return
        out = room.presence.receive(m, now=t)  # raises ProtocolError before changing anything
        self._commit_activity(t)
        self._absorb(room, out, t, b)

    # -- internals: rooms -------------------------------------------------------------------
    def _new_room(self, channel: str, options: RoomOptions | None) -> _Room:
        if not channel:
            raise UsageError("channel name must not be empty", code=40010)
        opts = options if options is not None else RoomOptions()
        presence = PresenceSet(channel, client_id=self._client_id, options=opts)
        if self._connection_id is not None:
            # A room made between two CONNECTEDs learns the connection it lives on now; the
            # next CONNECTED tells every room again.  set_connection has no output.
            presence.set_connection(
                self._connection_id, client_id=self._client_id, now=self._now or 0
            )
        return _Room(presence, opts)

    def _room_call(
        self, channel: str, now: int, call: Callable[[PresenceSet, int], Output]
    ) -> Output:
        state = self._state
        if state is _CS.SUSPENDED:
            raise UsageError("connection suspended", code=80002)
        if state in (_CS.CLOSING, _CS.CLOSED):
            raise UsageError(f"connection {state.value}", code=80017)
        if state is _CS.FAILED:
            raise UsageError("connection failed", code=80000)
        room = self._rooms.get(channel)
        new = room is None
        if room is None:
            room = self._new_room(channel, None)
        t = self._clock(now)
        out = call(room.presence, t)  # a UsageError here leaves everything as it was
        self._now = t
        if new:
            self._rooms[channel] = room
        b = _Out()
        self._absorb(room, out, t, b)
        return b.build()

    def _absorb(self, room: _Room, out: Output, t: int, b: _Out, *, send: bool = False) -> None:
        """Fold a room's Output into ``b``: batch events, number or queue its frames.

        ``send`` lets ATTACH/DETACH frames out while CONNECTED is being applied.
        """
        # Frames queued while there was no transport go out before the room's own new frames,
        # in the order they were issued (RTL3d2), or fail if the room can no longer take them.
        if room.queued:
            self._settle_queued(room, t, b)
        if out.events:
            # Presence events and channel state changes come wrapped per room, since they do
            # not name their channel; every other event does, and goes out as it is.  Runs of
            # room events keep their place among the others.
            channel = room.presence.channel
            batch: list[PresenceMessage | ChannelStateChanged] = []
            for event in out.events:
                if isinstance(event, (PresenceMessage, ChannelStateChanged)):
                    batch.append(event)
                    continue
                if batch:
                    b.events.append(ChannelEvents(channel=channel, events=tuple(batch)))
                    batch = []
                b.events.append(event)
            if batch:
                b.events.append(ChannelEvents(channel=channel, events=tuple(batch)))
        for command in out.commands:
            if isinstance(command, SendPresence):
                self._dispatch(room, command.message, command.operations, t, b)
            elif isinstance(command, Send):
                # Without a transport, ATTACH/DETACH are dropped: on CONNECTED every attaching
                # or detaching room sends them again (RTL3d).
                if send or self._state is _CS.CONNECTED:
                    b.commands.append(command)
            else:
                b.commands.append(command)
        if out.operation is not None:
            b.operation = out.operation

    def _dispatch(
        self,
        room: _Room,
        message: ProtocolMessage,
        operations: tuple[Operation, ...],
        t: int,
        b: _Out,
    ) -> None:
        state = self._state
        if state is _CS.CONNECTED:
            serial = self._msg_serial
            self._msg_serial = serial + 1
            self._pending[serial] = _Pending(room.presence.channel, message, operations)
            b.commands.append(Send(message=attrs.evolve(message, msg_serial=serial)))
        elif state in _QUEUEING:
            room.queued.append((message, operations))
        else:
            error = _SUSPENDED_ERROR if state is _CS.SUSPENDED else (self._error or _CLOSED_ERROR)
            self._absorb(room, room.presence.reject(operations, error, now=t), t, b)

    def _settle_queued(self, room: _Room, t: int, b: _Out) -> None:
        state = room.presence.state
        if state is _CH.ATTACHED and self._state is _CS.CONNECTED:
            queued, room.queued = room.queued, []
            for message, ops in queued:
                self._dispatch(room, message, ops, t, b)
        elif state in _DEAD_ROOM:
            # RTL11: a room that is no longer attached fails what was waiting for it.
            error = ErrorInfo(
                code=90001,
                status_code=400,
                message=f"channel became {state.value} before a queued presence frame was sent",
            )
            queued, room.queued = room.queued, []
            for _, ops in queued:
                self._absorb(room, room.presence.reject(ops, error, now=t), t, b)
