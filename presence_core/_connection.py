"""The connection reducer: one realtime connection and the rooms (PresenceSets) it owns.

A :class:`Connection` is the object an SDK embeds.  It is sans-IO, in the style of aioquic:
frames go in already decoded, commands come out, and time comes in as ``now`` (int epoch ms).

Inputs (each returns one frozen :class:`~presence_core.Output`):

* ``connect(now=)`` -- open a transport: an :class:`~presence_core.OpenTransport` command with
  its transport id and the query parameters (``key`` or ``access_token``, ``resume``,
  ``clientId``, ``format``, ``heartbeats``, ``v``).
* ``receive(message, transport_id=, now=)`` -- every frame read from a transport.
* ``transport_closed(transport_id=, now=, error=)`` -- a transport was lost or could not be
  opened.
* ``authorize(token, expires_at=, now=)`` -- switch to a new token (RTC8), for example in
  answer to a :class:`~presence_core.RenewToken` command.
* ``close(now=)``, ``ping(id, now=)``, and the room operations (``attach``, ``detach``,
  ``enter``, ``update``, ``leave``, ``enter_client``, ``update_client``, ``leave_client``), or
  ``route(channel, output, now=)`` for an Output obtained by calling a room directly.
* ``tick(now=)`` when ``now`` reaches ``next_deadline()``.

The work is split like this, and each module states the rules it applies:

* this module: the connection's states and every timer (below);
* :mod:`presence_core._routing`: how each room's Output folds into the connection's (events
  batched per room as :class:`~presence_core.ChannelEvents`), how rooms follow the
  connection's states (RTL3), and the recovered rooms' channelSerials (RTN16j);
* :mod:`presence_core._outbox`: msgSerial numbering, frames pending an ACK or held for a
  transport, resends, and failing them all (RTN7, RTN19a, RTL3d2);
* :mod:`presence_core._pings` and :mod:`presence_core._recovery`: the pings in flight
  (RTN13) and the recovery key (RTN16);
* :mod:`presence_core._credentials`: the key or token every transport sends, what a token
  error does, and when to ask for a new token (RTN15h, RTN14b, RSA4).

The connection's own rules:

* **Connecting.**  CONNECTED gives the id, the key a resume sends, the clientId (adopted when
  none was given; a different one fails the connection with 40102, as in ably-js) and the
  details.  A resume is kept when CONNECTED names the same id; an error in CONNECTED means
  connected without continuity (RTN15c7).  A connection made with ``recover=`` sends it on
  every attempt until the first CONNECTED (RTN16k), which keeps the recovered connection
  unless it carries an error (RTN16l).  A CONNECTED while CONNECTED is a connection update
  (RTN24): new details, nothing re-attached or resent.
* **Transport identity.**  Each OpenTransport names a new transport id, counting from 1; that
  transport is the current one until the reducer closes it with
  :class:`~presence_core.CloseTransport` or is told it was lost.  Input naming any other
  transport is stale: its frame gives only a :class:`~presence_core.FrameIgnored` event and
  its loss an empty Output.  Stale input changes nothing at all, the clock included, and a
  stale frame is not even validated: whatever an old socket still delivers says nothing about
  the connection.
* **Timers.**  One per state: the connect timeout while CONNECTING and the close timeout while
  CLOSING (both ``realtime_request_timeout``), the next retry while DISCONNECTED or SUSPENDED.
  In any state but CLOSING, CLOSED and FAILED, the renewal of a token whose expiry is known.
  While CONNECTED, the idle deadline (RTN23a: ``maxIdleInterval`` plus
  ``realtime_request_timeout`` after the last frame; none without a ``maxIdleInterval``),
  each ping's answer timeout (``realtime_request_timeout``), when the outbox may send the
  next frame held back by ``maxInboundRate`` (D10), and each room's timer (RTL4f, RTL5f,
  RTL13b; rooms are built with ``realtime_request_timeout`` and ``channel_retry_timeout``).
  The rooms' timers run only while CONNECTED (RTL13c): without a transport a room's attach
  cannot be answered, and on CONNECTED every room attaches again anyway (RTL3d).
* **Pings (RTN13)** are answered on the transport they were sent on, so every state change
  but CONNECTED to CLOSING fails the outstanding ones (the rest is in
  :mod:`presence_core._pings`).
* **Losing the transport.**  A CONNECTED connection retries at once, resuming (RTN15a); a
  failed attempt waits ``disconnected_retry_timeout`` with RTB1's backoff and jitter (RTN14d;
  see :mod:`presence_core._backoff`), the nth failed attempt since the connection was last up
  being retry n.  Once ``connectionStateTtl`` has passed since the loss, the connection is
  SUSPENDED (RTN14e), retries every ``suspended_retry_timeout`` (a fixed period: RTB1 covers
  DISCONNECTED connections only), and its next transport starts a new connection (RTN15g).  The
  ttl is checked before every attempt, ``connect()`` included: one made after it has passed
  goes through SUSPENDED first, so pending work fails (RTN7e) and rooms suspend (RTL3c) before
  the fresh connection.  The server's DISCONNECTED frame is a loss like any other (RTN15h),
  and a connection-wide ERROR is fatal (RTN14g, RTN15i), the answer to a refused AUTH
  included (RTC8a2), except for token errors: those follow the credential rules of
  :mod:`presence_core._credentials` (renew and resume, or fail with 40171).
* **Giving up.**  In SUSPENDED, CLOSED and FAILED the outbox fails its work (RTN7e) and the
  rooms follow the connection (RTL3).  Room operations are refused with a UsageError from
  SUSPENDED (80002), CLOSING or CLOSED (80017) and FAILED (80000).
* **Frames out of place.**  A frame the current state cannot use is ignored with a
  :class:`~presence_core.FrameIgnored` event, and so is one for an unknown channel or with an
  action this library does not know (a newer server may send those).

Time never goes backwards here: a ``now`` older than one already seen is treated as that one.
A malformed frame raises :class:`~presence_core.ProtocolError` and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Final, TypeGuard

from presence_core._backoff import Jitter, no_jitter, retry_delay
from presence_core._connection_values import ConnectionSettings, ConnectionSnapshot
from presence_core._credentials import Credentials, token_error, transport_params
from presence_core._errors import ProtocolError, UsageError
from presence_core._output import (
    EMPTY_OUTPUT,
    CloseTransport,
    ConnectionState,
    ConnectionStateChanged,
    FrameIgnored,
    OpenTransport,
    Output,
    RenewToken,
    Send,
)
from presence_core._pings import Pings
from presence_core._presence_set import ChannelSettings, PresenceSet, RoomOptions
from presence_core._room_operations import RoomCall, RoomOperations
from presence_core._routing import Batch, Out, Router, check_serial
from presence_core._wire import (
    AuthDetails,
    ConnectionDetails,
    ErrorInfo,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = ["ConnectionSettings", "ConnectionSnapshot", "Connection"]

_CS = ConnectionState

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
# States with a transport (opened or being opened).
_TRANSPORT_UP: Final = frozenset({_CS.CONNECTING, _CS.CONNECTED, _CS.CLOSING})
# States in which the server's channel frames and ACKs are applied.  A tuple, as the hot path
# tests it: an Enum hashes in Python, a tuple compares by identity first.
_FRAMES_FLOW: Final = (_CS.CONNECTED, _CS.CLOSING)
_A_PRESENCE: Final = int(ProtocolAction.PRESENCE)
_CONNECTED: Final = _CS.CONNECTED
# States in which the outbox holds frames for the next transport instead of failing them
# (RTP16a).
_QUEUEING: Final = frozenset({_CS.INITIALIZED, _CS.CONNECTING, _CS.DISCONNECTED})
# States in which a token is no longer renewed ahead of its expiry.
_NO_RENEWAL: Final = (_CS.CLOSING, _CS.CLOSED, _CS.FAILED)
# Room operations are refused in these states, with these codes.
_REFUSED: Final = {
    _CS.SUSPENDED: ("connection suspended", 80002),
    _CS.CLOSING: ("connection closing", 80017),
    _CS.CLOSED: ("connection closed", 80017),
    _CS.FAILED: ("connection failed", 80000),
}

_DISCONNECTED_ERROR: Final = ErrorInfo(code=80003, status_code=503, message="transport closed")
_CONNECT_TIMEOUT: Final = ErrorInfo(
    code=80014, status_code=503, message="no CONNECTED within realtime_request_timeout"
)
# As ably-js reports an auth callback that does not answer in time.
_TOKEN_TIMEOUT: Final = ErrorInfo(
    code=40170, status_code=401, message="no new token within realtime_request_timeout"
)
_SUSPENDED_ERROR: Final = ErrorInfo(
    code=80002, status_code=503, message="connection suspended: connectionStateTtl elapsed"
)
_CLOSED_ERROR: Final = ErrorInfo(code=80017, status_code=400, message="connection closed")
_FAILED_ERROR: Final = ErrorInfo(code=80000, status_code=400, message="connection failed")
_STALE: Final = "from a transport that is not the current one"


def _idle_error(silent_for: int) -> ErrorInfo:
    message = f"no activity seen from the server in {silent_for} ms"
    return ErrorInfo(code=80003, status_code=503, message=message)


def _client_id_mismatch(asked: str, granted: str) -> ErrorInfo:
    message = f"clientId mismatch: asked for {asked!r}, server granted {granted!r}"
    return ErrorInfo(code=40102, status_code=401, message=message)


def _connected(m: ProtocolMessage) -> tuple[str, ConnectionDetails]:
    """The connectionId and connectionDetails of a well-formed CONNECTED frame."""
    connection_id = m.connection_id
    if not connection_id:
        raise ProtocolError("CONNECTED without a connectionId", path="connectionId")
    details = m.connection_details
    if details is None:
        raise ProtocolError("CONNECTED without connectionDetails", path="connectionDetails")
    for name in ("max_idle_interval", "connection_state_ttl", "max_message_size"):
        value = getattr(details, name)
        if value is not None and value < 0:
            raise ProtocolError("must not be negative", path=f"connectionDetails.{name}")
    return connection_id, details


def _acked_range(m: ProtocolMessage) -> tuple[int, int]:
    """``(msgSerial, count)`` of a well-formed ACK or NACK frame."""
    serial = m.msg_serial
    if serial is None:
        raise ProtocolError("ACK/NACK without msgSerial", path="msgSerial")
    if serial < 0:
        raise ProtocolError("msgSerial must not be negative", path="msgSerial")
    count = 1 if m.count is None else m.count
    if count < 1:
        raise ProtocolError("count must be at least 1", path="count")
    return serial, count


class _Queries:
    """What a :class:`Connection` tells about itself: its state, identity and rooms."""

    _state: ConnectionState
    _transport: int | None
    _connection_id: str | None
    _connection_key: str | None
    _fresh: bool
    _client_id: str | None
    _details: ConnectionDetails | None
    _error: ErrorInfo | None
    _settings: ConnectionSettings
    _router: Router
    _now: int | None
    _pings: Pings
    _credentials: Credentials
    _deadline: int | None
    _suspend_at: int | None
    _last_activity: int
    _max_idle: int

    @property
    def state(self) -> ConnectionState:
        """The connection state (RTN4)."""
        return self._state

    @property
    def transport_id(self) -> int | None:
        """The current transport's id, or ``None`` while there is none (see the module docs)."""
        return self._transport

    @property
    def connection_id(self) -> str | None:
        """The id from the latest CONNECTED, or ``None`` before the first one."""
        return self._connection_id

    @property
    def connection_key(self) -> str | None:
        """The key a resume would send; ``None`` when the next transport starts afresh."""
        return None if self._fresh else self._connection_key

    @property
    def recovery_key(self) -> str | None:
        """A key that lets a new Connection's ``recover=`` carry this connection on (RTN16g).

        ``None`` without a connectionKey, and while SUSPENDED, CLOSING, CLOSED or FAILED (the
        states that refuse room operations: RTN16g2).
        """
        key = self.connection_key
        if key is None or self._state in _REFUSED:
            return None
        return self._router.recovery_key(key)

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
        return self._router.outbox.serial

    @property
    def settings(self) -> ConnectionSettings:
        """The settings given to the constructor."""
        return self._settings

    @property
    def rooms(self) -> Mapping[str, PresenceSet]:
        """The rooms this connection owns, by channel name (a read-only view)."""
        return MappingProxyType({name: room.presence for name, room in self._router.rooms.items()})

    def room(self, channel: str, *, options: RoomOptions | None = None) -> PresenceSet:
        """Return the room (PresenceSet) for ``channel``, creating it on first use.

        Args:
            channel: The channel name, such as ``"room1::$chat"``.
            options: Room options for a new room.  For an existing room they must equal the
                options it was created with, or be omitted.

        Raises:
            UsageError: An empty channel name (40010), or options differing from the room's.
        """
        return self._router.room(channel, options, self, self._now or 0).presence

    def next_deadline(self) -> int | None:
        """The earliest ``now`` at which :meth:`tick` has something to do, or ``None``."""
        due = self._state_deadline()
        renew_at = self._credentials.renew_at
        if renew_at is None or self._state in _NO_RENEWAL:
            return due
        return renew_at if due is None else min(due, renew_at)

    def _state_deadline(self) -> int | None:
        state = self._state
        if state is _CS.CONNECTED:
            router = self._router
            due = (
                self._pings.next_deadline(),
                self._idle_deadline(),
                router.outbox.next_send_at(),
                router.next_timer(),
            )
            return min((d for d in due if d is not None), default=None)
        if state in (_CS.CONNECTING, _CS.DISCONNECTED) and self._suspend_at is not None:
            if self._deadline is None:
                return self._suspend_at
            return min(self._deadline, self._suspend_at)
        return self._deadline

    def snapshot(self) -> ConnectionSnapshot:
        """A comparable picture of the whole state, rooms included."""
        router = self._router
        return ConnectionSnapshot(
            state=self._state,
            transport_id=self._transport,
            connection_id=self._connection_id,
            connection_key=self.connection_key,
            client_id=self._client_id,
            error=self._error,
            msg_serial=router.outbox.serial,
            pending=router.outbox.pending_ids(),
            queued=router.outbox.held_ids(),
            waiting=router.outbox.waiting_ids(),
            rooms=tuple((name, room.presence.snapshot()) for name, room in router.rooms.items()),
            pings=self._pings.items(),
            now=self._now,
            next_deadline=self.next_deadline(),
        )

    def _idle_deadline(self) -> int | None:
        # RTN23a: with no maxIdleInterval there is no idle timer.
        if not self._max_idle:
            return None
        return self._last_activity + self._max_idle + self._settings.realtime_request_timeout


class Connection(RoomOperations, _Queries):
    """Deterministic reducer for one realtime connection and its rooms.  See the module docs.

    Args:
        key: An API key ``name:secret``, sent as ``key``.
        token: A token string, sent as ``access_token``.  Exactly one of ``key`` and ``token``
            must be given, except that a renewable connection may start with no token: it
            asks for its first one when it connects.
        renewable: Whether the embedder can get a new token when the connection asks for one
            with a :class:`~presence_core.RenewToken` command (it has an auth callback); see
            :mod:`presence_core._credentials` for what a token error does either way.
        token_expires_at: When ``token`` expires (epoch ms), if known: a renewable
            connection asks for a new one ahead of it.
        client_id: The clientId to connect as.  When ``None``, the clientId the server puts in
            CONNECTED is adopted.  When set, a CONNECTED naming another clientId fails the
            connection with 40102.
        settings: Timeouts and switches; :class:`ConnectionSettings` defaults otherwise.
        jitter: The jitter source of the retry delays (RTB1b): a callable returning floats in
            ``[0, 1)``, such as ``random.random``.  The default always returns 0, which keeps
            the reducer deterministic and every delay at its backoff exactly; an embedder that
            wants its clients' retries spread out passes a random one.
        recover: The :attr:`recovery_key` of an earlier Connection, to carry its connection on
            (RTN16): the first transport sends ``recover``, msgSerials continue from the
            key's, and a room named in it sends the key's channelSerial in its ATTACH.  A key
            that cannot be read is ignored (RTN16f1).

    Raises:
        UsageError: Neither or both of ``key`` and ``token`` (neither is allowed when
            ``renewable``), ``renewable`` with a key, or an invalid ``client_id``.
    """

    def __init__(
        self,
        *,
        key: str | None = None,
        token: str | None = None,
        client_id: str | None = None,
        settings: ConnectionSettings | None = None,
        jitter: Jitter = no_jitter,
        recover: str | None = None,
        renewable: bool = False,
        token_expires_at: int | None = None,
    ) -> None:
        if key is not None and (token is not None or renewable):
            raise UsageError("a key needs no token and no means to renew one", code=40106)
        if key is None and token is None and not renewable:
            raise UsageError("give exactly one of key= and token=", code=40106)
        if client_id is not None and (not client_id or client_id == "*"):
            # RSA7c: the wildcard is a capability, never a connection's own identity.
            raise UsageError(f"invalid clientId {client_id!r}", code=40012)
        self._settings = settings = settings if settings is not None else ConnectionSettings()
        # What every transport authenticates with; authorize() replaces the token.
        self._credentials = Credentials(
            key, token, renewable=renewable, margin=settings.token_renewal_margin
        )
        if token is not None:
            self._credentials.replace(token, token_expires_at, None)
        self._jitter = jitter
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
        # The rooms and the outbox of their frames; the outbox's gate follows self._state.
        self._router = Router(
            ChannelSettings(
                request_timeout=settings.realtime_request_timeout,
                channel_retry_timeout=settings.channel_retry_timeout,
            ),
            jitter,
            settings.max_queued_frames,
        )
        # The id the latest OpenTransport named, and the current transport's (None without one).
        self._transports = 0
        self._transport: int | None = None
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
        # Failed attempts since the connection was last up: RTB1a's retry count.
        self._failures = 0
        self._pings = Pings(settings.max_pending_pings, settings.realtime_request_timeout)
        # RTN16k: the connectionKey to recover, sent as ``recover`` until the first CONNECTED.
        self._recover = None if recover is None else self._router.recover(recover)

    # -- connection lifecycle ---------------------------------------------------------------
    def connect(self, *, now: int) -> Output:
        """Open a transport (RTN11): an OpenTransport command, state CONNECTING.

        From DISCONNECTED this retries at once, resuming.  From CLOSED or FAILED it starts a
        new connection.  While CONNECTING or CONNECTED it does nothing.  While CLOSING the close
        is completed first.
        """
        t = self._advance(now)
        b = Out()
        state = self._state
        if state in (_CS.CONNECTING, _CS.CONNECTED):
            return EMPTY_OUTPUT
        if state is _CS.CLOSING:
            b.commands.append(CloseTransport())
            self._to_closed(t, b)
        if self._state in (_CS.INITIALIZED, _CS.CLOSED, _CS.FAILED):
            self._reset_cycle()
        self._open(t, b)
        return b.build()

    def close(self, *, now: int) -> Output:
        """Close the connection (RTN12).

        When CONNECTED this sends CLOSE and waits up to ``realtime_request_timeout`` for CLOSED.
        Without an established transport it becomes CLOSED at once.  Pending and queued frames
        fail with 80017 (RTN7e); rooms become DETACHED (RTL3b).
        """
        t = self._advance(now)
        b = Out()
        state = self._state
        if state in (_CS.CLOSING, _CS.CLOSED, _CS.FAILED):
            return EMPTY_OUTPUT
        if state is _CS.CONNECTED:
            self._set_state(_CS.CLOSING, None, t, b)
            self._deadline = t + self._settings.realtime_request_timeout
            b.commands.append(Send(message=ProtocolMessage(action=ProtocolAction.CLOSE)))
            return b.build()
        if state is _CS.CONNECTING:
            b.commands.append(CloseTransport())
        self._to_closed(t, b)
        return b.build()

    def transport_closed(
        self, *, transport_id: int, now: int, error: ErrorInfo | None = None
    ) -> Output:
        """The transport ``transport_id`` was lost, or could not be opened.

        For any transport but the current one this is an empty Output: the reducer had
        already given that transport up, or closed it itself.  From CONNECTED this is an
        unexpected loss: DISCONNECTED, then an immediate attempt to resume (RTN15a).  From
        CONNECTING the attempt failed: DISCONNECTED with a retry after RTN14d's delay, or
        SUSPENDED once ``connectionStateTtl`` has passed (RTN14e).  From CLOSING it completes
        the close.
        """
        if transport_id != self._transport:
            return EMPTY_OUTPUT
        t = self._advance(now)
        b = Out()
        if self._state is _CS.CLOSING:
            self._to_closed(t, b)
        else:  # CONNECTED or CONNECTING: the only other states with a transport
            self._lost(error if error is not None else _DISCONNECTED_ERROR, t, b)
        return b.build()

    def authorize(self, token: str, *, now: int, expires_at: int | None = None) -> Output:
        """Use ``token`` from now on (RTC8); every later transport authenticates with it.

        CONNECTED: send AUTH carrying the token (RTC8a).  The server answers with a CONNECTED,
        a connection update (RTN24), or with an ERROR that fails the connection (RTC8a2).
        CONNECTING: the attempt is given up and another made with the token (RTC8b).  In any
        other state the connection connects with the token, as :meth:`connect` does (RTC8c):
        a connection waiting for a renewed token resumes with it (RTN15h2).  ``expires_at``
        (epoch ms), when known, schedules the next renewal (see
        :mod:`presence_core._credentials`).

        Raises:
            UsageError: ``token`` is not a non-empty string (40000).
        """
        if type(token) is not str or not token:
            raise UsageError("token must be a non-empty string")
        self._credentials.replace(token, expires_at, self._clock(now))
        if self._state is _CS.CONNECTED:
            self._advance(now)
            auth = ProtocolMessage(action=ProtocolAction.AUTH, auth=AuthDetails(access_token=token))
            return Output(commands=(Send(message=auth),))
        if self._state is not _CS.CONNECTING:
            return self.connect(now=now)
        t = self._advance(now)
        b = Out()
        if self._transport is not None:
            b.commands.append(CloseTransport())
        self._open(t, b)
        return b.build()

    def tick(self, *, now: int) -> Output:
        """Fire every deadline that ``now`` has reached (see :meth:`next_deadline`)."""
        t = self._advance(now)
        b = Out()
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
        self._pings.check(ping_id)
        return Output(commands=(self._pings.send(ping_id, self._advance(now)),))

    # -- frames -----------------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, transport_id: int, now: int) -> Output:
        """Apply one frame read from the transport ``transport_id``.

        A frame from any transport but the current one gives only a FrameIgnored event.

        Raises:
            ProtocolError: The frame is malformed (for example a CONNECTED without
                connectionDetails, an ACK without msgSerial, or a room frame its room rejects).
                Nothing was changed.
        """
        if transport_id != self._transport:
            return Output(events=(FrameIgnored(message=message, reason=_STALE),))
        t = self._clock(now)
        action = message.action
        if action == _A_PRESENCE and self._state is _CONNECTED:
            # The most common frame, folded without the general path's bookkeeping.
            out = self._router.receive_presence(message)  # raises before any change
            if out is not None:
                self._now = self._last_activity = t
                return out
        b = Out()
        if action in _CHANNEL_ACTIONS or (
            action == ProtocolAction.ERROR and message.channel is not None
        ):
            self._route_frame(message, t, b)
        elif action == ProtocolAction.CONNECTED:
            self._on_connected(message, t, b)
        elif action in (ProtocolAction.ACK, ProtocolAction.NACK):
            self._on_ack(message, t, b)
        elif action not in _KNOWN_ACTIONS:
            check_serial(message)
            self._commit_activity(t)
            b.events.append(FrameIgnored(message=message, reason="unknown action"))
        elif self._state not in _TRANSPORT_UP:
            self._ignore(message, "no transport", t, b)
        elif action == ProtocolAction.HEARTBEAT:
            self._commit_activity(t)
            answer = self._pings.answer(message.id, t)
            if answer is not None:
                b.events.append(answer)
        elif action == ProtocolAction.ERROR:
            # RTN14g, RTN15i; RTN14b for a refused token.
            self._now = t
            failure = message.error or _FAILED_ERROR
            if self._state is _CS.CONNECTING and self._refused_token(failure):
                self._token_refused(failure, t, b)
            else:
                self._fail(failure, t, b)
        elif action == ProtocolAction.DISCONNECTED:
            # RTN15h.
            self._now = t
            error = message.error
            if self._state is not _CS.CLOSING and self._refused_token(error):
                self._token_refused(error, t, b)
                return b.build()
            b.commands.append(CloseTransport(reason=error))
            if self._state is _CS.CLOSING:
                self._to_closed(t, b)
            else:
                self._lost(error or _DISCONNECTED_ERROR, t, b)
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

    def receive_many(
        self, frames: Iterable[ProtocolMessage], *, transport_id: int, now: int
    ) -> tuple[Output, tuple[tuple[int, ProtocolError], ...]]:
        """Apply several frames read from ``transport_id``, in order, in one call.

        The same as :meth:`receive` for each frame in turn with the same ``now``: the Output
        holds every frame's events and then every frame's commands, in order, one room's
        consecutive events in one :class:`~presence_core.ChannelEvents` (see
        :mod:`presence_core._routing`).  A frame that :meth:`receive` would refuse changes
        nothing and is skipped; the second value lists each such frame's index and error.
        """
        batch = Batch()
        refused = []
        router = self._router
        t = self._clock(now)
        for index, message in enumerate(frames):
            try:
                if (
                    message.action == _A_PRESENCE
                    and transport_id == self._transport
                    and self._state is _CONNECTED
                    and router.presence_into(message, batch)
                ):
                    self._now = self._last_activity = t
                else:
                    batch.add(self.receive(message, transport_id=transport_id, now=t))
            except ProtocolError as exc:
                refused.append((index, exc))
        return batch.build(), tuple(refused)

    def route(self, channel: str, output: Output, *, now: int) -> Output:
        """Post-process an Output got by calling the room's PresenceSet directly.

        Numbers its PRESENCE frames, queues or drops its other frames as the connection state
        requires, and batches its events, exactly as the room operations do.

        Raises:
            UsageError: ``channel`` is not a room of this connection.
        """
        room = self._router.rooms.get(channel)
        if room is None:
            raise UsageError(f"{channel!r} is not a room of this connection")
        return self._router.fold(room, output, self._advance(now))

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

    def _fire(self, t: int, b: Out) -> bool:
        """Handle one due deadline; return whether anything was due."""
        state = self._state
        credentials = self._credentials
        if credentials.renew_at is not None and t >= credentials.renew_at:
            if state not in _NO_RENEWAL:
                b.commands.append(RenewToken())
            credentials.renew_at = None
            return True
        if state is _CS.CONNECTED:
            idle = self._idle_deadline()
            if idle is not None and t >= idle:
                error = _idle_error(t - self._last_activity)
                # ably-js says goodbye with DISCONNECT so the server can start its grace period.
                b.commands.append(Send(message=ProtocolMessage(action=ProtocolAction.DISCONNECT)))
                b.commands.append(CloseTransport(reason=error))
                self._lost(error, t, b)
                return True
            late = self._pings.expire(t)
            b.events.extend(late)
            rooms = self._router.fire_timers(t, b)
            return self._router.outbox.pump_due(t, b.commands) or bool(late) or rooms
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
            if self._transport is None:  # no token came (see _ask_for_token)
                self._lost(_TOKEN_TIMEOUT, t, b)
            else:
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
    def _set_state(self, state: ConnectionState, reason: ErrorInfo | None, t: int, b: Out) -> None:
        """Enter ``state``, and what that means for the pings, the outbox and the rooms.

        CONNECTED never comes through here: see :meth:`_on_connected`.
        """
        if state is not _CS.CLOSING:
            # Only CLOSING keeps the transport the pings were sent on.
            b.events.extend(self._pings.fail_all(reason or _CLOSED_ERROR))
        b.events.append(ConnectionStateChanged(previous=self._state, current=state, reason=reason))
        self._state = state
        self._error = reason
        if state not in _TRANSPORT_UP:
            # Every way out of the transport states has closed the transport or lost it.
            self._transport = None
        outbox = self._router.outbox
        if state in _QUEUEING:
            outbox.hold()
            return
        failure = _SUSPENDED_ERROR if state is _CS.SUSPENDED else reason or _CLOSED_ERROR
        outbox.refuse(failure)
        if state is not _CS.CLOSING:  # SUSPENDED, CLOSED or FAILED: the connection gives up
            self._router.end(state, reason, failure, t, b)

    def _open(self, t: int, b: Out) -> None:
        if self._suspend_at is not None and t >= self._suspend_at:
            # RTN15g: past the ttl the server has let the connection go; give up on it first,
            # so that its pending work fails (RTN7e) instead of resending on a new one.
            self._suspend(_SUSPENDED_ERROR, t, b)
        credentials = self._credentials
        credentials.start(t)
        if credentials.refused:
            self._ask_for_token(t, b)
            return
        if self._state is not _CS.CONNECTING:  # a new attempt while connecting: RTC8b
            self._set_state(_CS.CONNECTING, self._error, t, b)
        self._deadline = t + self._settings.realtime_request_timeout
        params = transport_params(
            credentials,
            self.connection_key,
            self._recover,
            self._client_id,
            self._settings.heartbeats,
        )
        self._transports = self._transport = self._transports + 1
        b.commands.append(OpenTransport(transport_id=self._transports, params=params))

    def _lost(self, error: ErrorInfo, t: int, b: Out) -> None:
        """The transport of a CONNECTING or CONNECTED connection is gone."""
        if self._state is _CS.CONNECTED:
            # RTN15a: the ttl clock starts at the loss (RTN14e, RTN15g).
            self._suspend_at = t + self._ttl
            self._set_state(_CS.DISCONNECTED, error, t, b)
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
        self._set_state(_CS.DISCONNECTED, error, t, b)
        self._failures += 1
        initial = self._settings.disconnected_retry_timeout
        self._deadline = t + retry_delay(initial, self._failures, self._jitter())

    def _refused_token(self, error: ErrorInfo | None) -> TypeGuard[ErrorInfo]:
        """Whether ``error`` refuses the token this connection authenticates with."""
        return token_error(error) and not self._credentials.uses_key

    def _token_refused(self, error: ErrorInfo, t: int, b: Out) -> None:
        """The server refused the token (see :mod:`presence_core._credentials`)."""
        verdict = self._credentials.refuse(error)
        if isinstance(verdict, ErrorInfo):  # RSA4a2, RTN15h1
            self._fail(verdict, t, b)
            return
        b.commands.append(CloseTransport(reason=error))
        if not verdict:  # a renewed token refused too: the retry delay first
            self._lost(error, t, b)
            return
        if self._state is _CS.CONNECTED:  # RTN15h2: a loss, the ttl clock starts (RTN15a)
            self._suspend_at = t + self._ttl
            self._set_state(_CS.DISCONNECTED, error, t, b)
        else:  # RTN14b: the attempt goes on with a new token
            self._error = error
        self._open(t, b)

    def _ask_for_token(self, t: int, b: Out) -> None:
        """CONNECTING without a transport until ``authorize`` gives a token to connect with.

        The wait is bounded by the connect timeout, as an attempt is.
        """
        if self._state is not _CS.CONNECTING:
            self._set_state(_CS.CONNECTING, self._error, t, b)
        self._transport = None
        self._deadline = t + self._settings.realtime_request_timeout
        b.commands.append(RenewToken(reason=self._error))

    def _suspend(self, error: ErrorInfo, t: int, b: Out) -> None:
        """RTN14e: give up resuming."""
        self._set_state(_CS.SUSPENDED, error, t, b)
        self._deadline = t + self._settings.suspended_retry_timeout
        self._suspend_at = None
        self._suspended_cycle = True
        self._fresh = True
        self._failures = 0

    def _to_closed(self, t: int, b: Out) -> None:
        """RTN12: CLOSED."""
        self._set_state(_CS.CLOSED, None, t, b)
        self._reset_cycle()

    def _fail(self, error: ErrorInfo, t: int, b: Out) -> None:
        """FAILED, closing the transport if there is one."""
        if self._state in _TRANSPORT_UP:
            b.commands.append(CloseTransport(reason=error))
        self._set_state(_CS.FAILED, error, t, b)
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._deadline = None
        self._suspend_at = None
        self._suspended_cycle = False
        self._fresh = True
        self._failures = 0

    # -- internals: frames and rooms --------------------------------------------------------
    def _ignore(self, m: ProtocolMessage, what: str, t: int, b: Out) -> None:
        self._now = t
        b.events.append(FrameIgnored(message=m, reason=f"{what} while {self._state.value}"))

    def _on_connected(self, m: ProtocolMessage, t: int, b: Out) -> None:
        connection_id, details = _connected(m)
        self._now = t
        if self._state not in (_CS.CONNECTING, _CS.CONNECTED):
            self._ignore(m, "CONNECTED", t, b)
            return
        granted = details.client_id
        if granted is not None and self._client_id is not None and granted != self._client_id:
            # Continuing would act under an identity other than the one asked for.
            self._fail(_client_id_mismatch(self._client_id, granted), t, b)
            return
        previous = self._state
        previous_id = self._connection_id
        resumed = not self._fresh and connection_id == previous_id
        if self._recover is not None:
            # RTN16l: the key does not hold the old connection's id, so only an error says the
            # recovery failed (RTN15c7).
            resumed = m.error is None
            self._recover = None
        self._connection_id = connection_id
        self._connection_key = details.connection_key or m.connection_key
        self._details = details
        if granted is not None:
            self._client_id = granted
        if details.connection_state_ttl:
            self._ttl = details.connection_state_ttl
        self._max_idle = details.max_idle_interval or 0
        self._last_activity = t
        self._reset_cycle()
        self._credentials.connected()
        self._fresh = False
        b.events.append(
            ConnectionStateChanged(previous=previous, current=_CS.CONNECTED, reason=m.error)
        )
        self._state = _CS.CONNECTED
        self._error = m.error
        router = self._router
        if previous is _CS.CONNECTED:  # an update (RTN24) re-attaches and resends nothing
            router.outbox.configure(details, t, fresh=False)
        else:
            router.reconnect(
                connection_id, self._client_id, previous_id, details, resumed=resumed, t=t, b=b
            )

    def _on_ack(self, m: ProtocolMessage, t: int, b: Out) -> None:
        serial, count = _acked_range(m)
        if self._state in _FRAMES_FLOW:
            self._commit_activity(t)
            self._router.acked(m, serial, count, t, b)
        else:
            self._ignore(m, "ACK/NACK", t, b)

    def _route_frame(self, m: ProtocolMessage, t: int, b: Out) -> None:
        channel = m.channel
        if channel is None:
            raise ProtocolError("a channel frame must name its channel", path="channel")
        check_serial(m)
        if self._state in _FRAMES_FLOW:
            self._router.receive(channel, m, t, b)  # a ProtocolError here has changed nothing
            self._commit_activity(t)
        else:
            self._ignore(m, "channel frame", t, b)

    def _room_call(self, channel: str, now: int, call: RoomCall) -> Output:
        state = self._state
        if state is not _CS.CONNECTED and state in _REFUSED:
            message, code = _REFUSED[state]
            raise UsageError(message, code=code)
        t = self._clock(now)
        out = self._router.call(channel, call, t, self)
        self._now = t  # after the call, so that a UsageError from it changes nothing
        return out
