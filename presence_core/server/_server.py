"""The server reducer: a sans-IO presence server speaking Ably protocol v6.

RULES OF THIS FILE

* Frames come in already decoded (:class:`~presence_core.ProtocolMessage`) and go out as
  :class:`Deliver` commands carrying ProtocolMessages; the adapter owns the codec and sockets.
* Time comes in as ``now`` (int epoch ms).  The server keeps its own clock, the largest ``now``
  seen, so a clock stepping back means time does not advance; every stamp and deadline uses it.
* Entropy is injected: connection ids, connection keys (resume credentials), sync ids and
  synthesized-leave ids are all derived from it.
* Bad client input never raises.  It is answered with the ERROR or NACK frame the protocol
  prescribes, and changes nothing else.  Misuse of this API (an unknown transport id, a
  transport id connected twice) raises :class:`~presence_core.UsageError`.

THEORY OF OPERATION

A *transport* is one WebSocket; the adapter names it with any hashable id.  ``connect`` turns a
transport into a *connection* (or resumes one), ``receive`` feeds it frames, and
``transport_closed`` reports that it is gone.  Every ``connect`` is paired with exactly one
``transport_closed``, including transports that the server itself told the adapter to drop with
a :class:`Disconnect` command.

A connection outlives its transport.  When the transport is lost abruptly (or the client sends
DISCONNECT) the connection enters the grace period: its members stay present, and a resume
within the grace period loses nothing.  When the grace period ends the server broadcasts
synthesized leaves (ids that do not start with the connectionId, so clients compare them by
timestamp) and drops the connection's attachments, but the connection stays resumable until
``connection_state_ttl`` ends: the client then re-attaches without RESUMED and re-enters.  After
the ttl the key is forgotten, and a resume gets a new connection with error 80008.

Frames the client resends after a resume (RTN19a) are deduplicated by (connection,
msgSerial): the stored ACK or NACK is sent again and nothing is applied twice.  A duplicate
PRESENCE frame first has its echo re-sent to the sender alone, since the lost ACK suggests a
lost echo too.  Once the grace period has ended, the connection's applied PRESENCE frames are
undone (their members left), so a resend of one is applied again, stamped afresh; MESSAGE
frames stay deduplicated for the connection's whole life.

A broadcast is one ProtocolMessage in one :class:`Deliver` command naming every recipient, so
the adapter encodes it once.  Recipient tuples are cached per channel and rebuilt only when an
attachment or a transport changes.
"""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Final, TypeAlias

import attrs

from presence_core._errors import UsageError
from presence_core._wire import (
    DEFAULT_MODES,
    MODE_MASK,
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

__all__ = [
    "ApiKey",
    "AccessToken",
    "ServerConfig",
    "Deliver",
    "Disconnect",
    "ServerCommand",
    "ServerOutput",
    "ServerConnectionState",
    "ServerConnectionInfo",
    "Server",
]

#: Any hashable value the adapter uses to name a transport (an int, a string, a socket id).
TransportId: TypeAlias = Hashable

# --- capabilities -----------------------------------------------------------------------

#: Which channel modes each capability operation allows.  ``subscribe`` covers both message
#: and presence subscription, as in Ably.
_OPERATION_MODES: Final[Mapping[str, int]] = types.MappingProxyType(
    {
        "presence": int(ChannelMode.PRESENCE),
        "publish": int(ChannelMode.PUBLISH),
        "subscribe": int(ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE),
        "annotation-publish": int(ChannelMode.ANNOTATION_PUBLISH),
        "annotation-subscribe": int(ChannelMode.ANNOTATION_SUBSCRIBE),
        "object-subscribe": int(ChannelMode.OBJECT_SUBSCRIBE),
        "object-publish": int(ChannelMode.OBJECT_PUBLISH),
        "*": MODE_MASK,
    }
)

Capability: TypeAlias = Mapping[str, frozenset[str]]


def _freeze_capability(value: Mapping[str, Iterable[str]]) -> Capability:
    """Validate a capability and return a read-only copy with frozenset values."""
    if not isinstance(value, Mapping):
        raise UsageError("capability must be a mapping of channel pattern to operations")
    frozen: dict[str, frozenset[str]] = {}
    for pattern, operations in value.items():
        if not isinstance(pattern, str) or not pattern:
            raise UsageError(f"capability pattern {pattern!r} must be a non-empty string")
        if isinstance(operations, str):
            raise UsageError(f"capability operations for {pattern!r} must be a collection")
        ops = frozenset(operations)
        unknown = ops - _OPERATION_MODES.keys()
        if unknown:
            raise UsageError(f"unknown capability operations {sorted(unknown)} for {pattern!r}")
        frozen[pattern] = ops
    return types.MappingProxyType(frozen)


def _capability_modes(capability: Capability, channel: str) -> int:
    """Return the union of the modes every matching pattern grants on ``channel``.

    A pattern is an exact channel name, ``*`` (every channel), or a prefix ending in ``*``
    (``chat:*`` matches ``chat:lobby``).
    """
    modes = 0
    for pattern, operations in capability.items():
        if pattern == channel or (pattern.endswith("*") and channel.startswith(pattern[:-1])):
            for operation in operations:
                modes |= _OPERATION_MODES[operation]
    return modes


_FULL_CAPABILITY: Final[Capability] = types.MappingProxyType({"*": frozenset({"*"})})


@attrs.frozen(kw_only=True)
class ApiKey:
    """An API key the server accepts in the ``key`` query parameter, as ``name:secret``.

    ``capability`` maps channel patterns to operations (``presence``, ``subscribe``,
    ``publish``, the annotation and object operations, or ``*`` for all).  A connection made
    with this key is identified by the ``clientId`` query parameter, if any.
    ``any_client_id`` lets an *unidentified* connection act for any clientId
    (``enter_client``), as a trusted backend does.
    """

    #: The key name, such as ``appid.keyid``.
    name: str
    #: The secret after the colon.
    secret: str
    capability: Capability = attrs.field(default=_FULL_CAPABILITY, converter=_freeze_capability)
    any_client_id: bool = False

    @property
    def key(self) -> str:
        """The full key string a client passes: ``name:secret``."""
        return f"{self.name}:{self.secret}"


@attrs.frozen(kw_only=True)
class AccessToken:
    """An opaque token the server accepts in the ``access_token`` query parameter.

    ``client_id`` binds the connection's identity (a client asking for another clientId is
    refused with 40102); ``"*"`` means the connection is unidentified but may act for any
    clientId; ``None`` leaves the identity to the ``clientId`` query parameter.
    """

    token: str
    capability: Capability = attrs.field(default=_FULL_CAPABILITY, converter=_freeze_capability)
    client_id: str | None = None


def _no_channel(tid: TransportId, verb: str) -> Deliver:
    """The ERROR answering a channel operation that names no channel."""
    return Deliver(
        transport_ids=(tid,), message=_error_frame(_error(40000, 400, f"{verb} without a channel"))
    )


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise UsageError(f"{attribute.name} must be a positive int, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"{attribute.name} must be a non-negative int, got {value!r}")


def _tuple_of_keys(value: Iterable[ApiKey]) -> tuple[ApiKey, ...]:
    return tuple(value)


def _tuple_of_tokens(value: Iterable[AccessToken]) -> tuple[AccessToken, ...]:
    return tuple(value)


def _frozenset_of_str(value: Iterable[str]) -> frozenset[str]:
    return frozenset(value)


@attrs.frozen(kw_only=True)
class ServerConfig:
    """Settings of a :class:`Server`.  Durations are milliseconds.

    Raises:
        UsageError: A setting is out of range, or two credentials share a name.
    """

    #: API keys accepted in ``key=name:secret``.
    keys: tuple[ApiKey, ...] = attrs.field(default=(), converter=_tuple_of_keys)
    #: Tokens accepted in ``access_token=``.
    tokens: tuple[AccessToken, ...] = attrs.field(default=(), converter=_tuple_of_tokens)
    #: Sent as ``connectionDetails.serverId``; clients only log it.
    server_id: str = "presence-core"
    #: Values of the ``format`` query parameter the adapter can encode.  ably-js sends
    #: ``json`` when configured with ``useBinaryProtocol: false``.
    formats: frozenset[str] = attrs.field(default=frozenset({"json"}), converter=_frozenset_of_str)
    #: Ably's default (15 s).  The client adds its request timeout (10 s) and gives up on a
    #: transport that stays silent longer than the sum.
    max_idle_interval: int = attrs.field(default=15_000, validator=_positive)
    #: Every live transport gets a frame at least this often.  Two thirds of the idle
    #: interval leaves slack for latency; the interop probe stayed up at 0.6x.
    heartbeat_interval: int = attrs.field(default=10_000, validator=_positive)
    #: Ably keeps a dropped connection's members present for about 15 s before synthesizing
    #: their leaves; a reconnect inside that window is invisible to peers.
    grace_period: int = attrs.field(default=15_000, validator=_non_negative)
    #: Ably's default (2 min): how long a dropped connection stays resumable.
    connection_state_ttl: int = attrs.field(default=120_000, validator=_non_negative)
    #: Members per SYNC frame.  100 keeps a frame near 10 KiB with small data, well under
    #: ``max_message_size`` times a page, while a 10,000-member room needs only 100 frames.
    sync_page_size: int = attrs.field(default=100, validator=_positive)
    #: Presence members per channel.  It bounds one channel's memory; 20,000 leaves headroom
    #: over the 10,000-member room the simulator exercises.  Beyond it an enter is NACKed 91003.
    max_members_per_channel: int = attrs.field(default=20_000, validator=_positive)
    #: Largest payload of one message (data, extras and clientId), NACKed 40009 above it.
    #: Ably's default 64 KiB; advertised as ``maxMessageSize`` so clients refuse earlier.
    max_message_size: int = attrs.field(default=65_536, validator=_positive)
    #: Channels one connection may have attached.  A Chat client uses one per room; 200 is
    #: generous for that and bounds per-connection state.  Beyond it ATTACH fails with 90010.
    max_channels_per_connection: int = attrs.field(default=200, validator=_positive)
    #: Inbound messages (presence items and channel messages) per second per connection,
    #: with a burst of one second's allowance; beyond it a frame is NACKed 42910.  Ably's
    #: per-connection inbound limit is of this order (its connectionDetails call it
    #: ``maxInboundRate``).  Raise it for simulations that enter many members per connection.
    max_messages_per_second: int = attrs.field(default=50, validator=_positive)

    def __attrs_post_init__(self) -> None:
        if self.heartbeat_interval >= self.max_idle_interval:
            raise UsageError("heartbeat_interval must be shorter than max_idle_interval")
        if self.grace_period > self.connection_state_ttl:
            raise UsageError("grace_period must not exceed connection_state_ttl")
        names = [key.name for key in self.keys]
        if len(names) != len(set(names)):
            raise UsageError("two API keys share a name")
        tokens = [token.token for token in self.tokens]
        if len(tokens) != len(set(tokens)):
            raise UsageError("two access tokens are equal")


# --- output -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Deliver:
    """Send ``message`` to every transport in ``transport_ids``, in this order.

    A broadcast is one Deliver, so the adapter encodes the frame once.
    """

    transport_ids: tuple[TransportId, ...]
    message: ProtocolMessage


@attrs.frozen(kw_only=True)
class Disconnect:
    """Close this transport (after the frames delivered before this command).

    The adapter still reports its end with :meth:`Server.transport_closed`.
    """

    transport_id: TransportId
    reason: ErrorInfo | None = None


ServerCommand: TypeAlias = Deliver | Disconnect


@attrs.frozen
class ServerOutput:
    """Everything one server call caused: commands to run in order."""

    commands: tuple[ServerCommand, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.commands)

    def messages_for(self, transport_id: TransportId) -> tuple[ProtocolMessage, ...]:
        """Return the frames delivered to ``transport_id``, in order (a test helper)."""
        return tuple(
            command.message
            for command in self.commands
            if isinstance(command, Deliver) and transport_id in command.transport_ids
        )

    def disconnected(self) -> tuple[TransportId, ...]:
        """Return the transports this output tells the adapter to close, in order."""
        return tuple(
            command.transport_id for command in self.commands if isinstance(command, Disconnect)
        )


_EMPTY: Final = ServerOutput()


class ServerConnectionState(enum.Enum):
    """Where a connection is in its server-side life."""

    #: It has a live transport.
    CONNECTED = "connected"
    #: Its transport is gone and the grace period runs; its members are still present.
    DISCONNECTED = "disconnected"
    #: The grace period is over (members left, attachments dropped); still resumable.
    SUSPENDED = "suspended"


@attrs.frozen(kw_only=True)
class ServerConnectionInfo:
    """A snapshot of one connection, as listed by :meth:`Server.connections`."""

    connection_id: str
    client_id: str | None
    state: ServerConnectionState
    transport_id: TransportId | None
    #: Attached channels, in attach order.
    channels: tuple[str, ...]


# --- internal state ---------------------------------------------------------------------

# Results (ACK/NACK frames) remembered per connection for resent duplicates.  A client only
# resends what it has not seen acknowledged, which is a handful of frames; older duplicates
# are still recognized by serial and ACKed, only their original NACK (or echo) is forgotten.
_REMEMBERED_RESULTS: Final = 1024

_HEARTBEAT: Final = ProtocolMessage(action=ProtocolAction.HEARTBEAT)
_CLIENT_ACTIONS: Final = frozenset(
    {PresenceAction.ENTER, PresenceAction.UPDATE, PresenceAction.LEAVE}
)


@attrs.define(eq=False)
class _Grant:
    """What a credential allows: capability, fixed identity, and acting for others."""

    capability: Capability
    client_id: str | None
    any_client_id: bool


@attrs.define(eq=False)
class _Connection:
    id: str
    key: str
    seq: int
    client_id: str | None
    grant: _Grant
    echo: bool
    transport: TransportId | None
    state: ServerConnectionState = ServerConnectionState.CONNECTED
    #: Grace deadline while DISCONNECTED, ttl deadline while SUSPENDED.
    deadline: int | None = None
    ttl_deadline: int | None = None
    #: channel name -> granted modes.
    channels: dict[str, int] = attrs.Factory(dict)
    # The dedup record, by msgSerial (see _check_serial).  ``results`` holds the ACK or NACK
    # sent, or None for an applied PRESENCE frame whose effect the grace-period leaves undid.
    # ``echoes`` holds, for each ACKed PRESENCE frame still in ``results``, the stamped frame
    # echoed to the sender (None when it changed nothing); its keys are a subset of results'.
    max_serial: int = -1
    results: dict[int, ProtocolMessage | None] = attrs.Factory(dict)
    echoes: dict[int, ProtocolMessage | None] = attrs.Factory(dict)
    #: Token bucket for the inbound rate limit, in thousandths of a message.
    allowance: int = 0
    allowance_at: int = 0


@attrs.define(eq=False)
class _Channel:
    name: str
    serial: int = 0
    #: connectionId -> clientId -> stored member (action PRESENT, as sent in a SYNC).
    members: dict[str, dict[str, PresenceMessage]] = attrs.Factory(dict)
    member_count: int = 0
    #: connectionId -> connection, for attached connections, in attach order.
    attached: dict[str, _Connection] = attrs.Factory(dict)
    presence_recipients: tuple[TransportId, ...] | None = None
    message_recipients: tuple[TransportId, ...] | None = None

    def invalidate(self) -> None:
        self.presence_recipients = None
        self.message_recipients = None

    def recipients(self, mode: int) -> tuple[TransportId, ...]:
        return tuple(
            conn.transport
            for conn in self.attached.values()
            if conn.transport is not None and conn.channels[self.name] & mode
        )

    def presence_to(self) -> tuple[TransportId, ...]:
        if self.presence_recipients is None:
            self.presence_recipients = self.recipients(ChannelMode.PRESENCE_SUBSCRIBE)
        return self.presence_recipients

    def messages_to(self) -> tuple[TransportId, ...]:
        if self.message_recipients is None:
            self.message_recipients = self.recipients(ChannelMode.SUBSCRIBE)
        return self.message_recipients

    def next_serial(self) -> str:
        self.serial += 1
        return f"{self.name}@{self.serial}"


def _error(code: int, status_code: int, message: str) -> ErrorInfo:
    return ErrorInfo(code=code, status_code=status_code, message=message)


def _payload_size(data: Any) -> int:
    """Estimate the wire size of a payload: UTF-8 length of its JSON form."""
    if data is None:
        return 0
    if isinstance(data, str):
        return len(data.encode("utf-8", "surrogatepass"))
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    try:
        return len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError):
        # Not JSON-shaped (a caller-built message); its repr is a fair upper estimate.
        return len(repr(data).encode())


def _message_size(data: Any, extras: Any, client_id: str | None) -> int:
    return _payload_size(data) + _payload_size(extras) + _payload_size(client_id)


class _Reject(Exception):
    """Internal: a frame is refused with this error (NACK or channel ERROR)."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


class Server:
    """A sans-IO presence server for Ably protocol v6 clients (ably-js, @ably/chat, ours).

    Drive it from one thread (or task): ``connect`` when a WebSocket upgrade arrives,
    ``receive`` for each decoded frame, ``transport_closed`` when a socket ends, and ``tick``
    at :meth:`next_deadline`.  Run the commands of every returned :class:`ServerOutput` in
    order.

    Args:
        config: Settings and credentials.
        entropy: Returns ``n`` random bytes; ``secrets.token_bytes`` in production (connection
            keys are resume credentials), a seeded source in simulations.
    """

    def __init__(self, config: ServerConfig, entropy: Callable[[int], bytes]) -> None:
        self._config = config
        self._entropy = entropy
        self._keys = {key.name: key for key in config.keys}
        self._tokens = {token.token: token for token in config.tokens}
        self._clock = 0
        self._seq = 0
        #: transport id -> its connection, or None once released (awaiting transport_closed).
        self._transports: dict[TransportId, _Connection | None] = {}
        self._connections: dict[str, _Connection] = {}
        self._by_key: dict[str, _Connection] = {}
        self._channels: dict[str, _Channel] = {}
        #: Connections without a transport, by id: the ones with a deadline.
        self._waiting: dict[str, _Connection] = {}
        self._live: dict[TransportId, _Connection] = {}
        self._next_heartbeat: int | None = None

    # --- public API ---------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The settings this server was built with."""
        return self._config

    @staticmethod
    def channel_for_room(room: str) -> str:
        """Return the channel of the @ably/chat room ``room``: ``<room>::$chat``."""
        return f"{room}::$chat"

    def connect(
        self, transport_id: TransportId, params: Mapping[str, str], *, now: int
    ) -> ServerOutput:
        """Accept a WebSocket upgrade whose query parameters are ``params``.

        Reads ``key`` or ``access_token``, ``clientId``, ``resume``, ``echo`` and ``format``
        (``v``, ``heartbeats`` and ``agent`` are accepted and ignored: the server always
        sends HEARTBEAT frames, which every platform understands).  Replies CONNECTED, or
        ERROR plus :class:`Disconnect` when the credentials are refused.

        Raises:
            UsageError: ``transport_id`` is already in use (not yet reported closed).
        """
        if transport_id in self._transports:
            raise UsageError(f"transport {transport_id!r} is already connected")
        out: list[ServerCommand] = []
        self._advance(now, out)
        auth = self._authenticate(params)
        if isinstance(auth, ErrorInfo):
            self._transports[transport_id] = None
            out.append(Deliver(transport_ids=(transport_id,), message=_error_frame(auth)))
            out.append(Disconnect(transport_id=transport_id, reason=auth))
            return ServerOutput(tuple(out))
        grant, client_id = auth
        echo = params.get("echo", "true") != "false"
        resume_error: ErrorInfo | None = None
        conn: _Connection | None = None
        resume = params.get("resume")
        if resume is not None:
            conn = self._by_key.get(resume)
            if conn is None:
                resume_error = _error(80008, 400, "Unable to recover connection: not found")
            elif conn.client_id != client_id:
                resume_error = _error(80008, 400, "Unable to recover connection: clientId")
                conn = None
        if conn is not None:
            self._resume(conn, transport_id, grant, echo, out)
        else:
            conn = self._new_connection(transport_id, grant, client_id, echo)
        self._transports[transport_id] = conn
        self._live[transport_id] = conn
        if self._next_heartbeat is None:
            self._next_heartbeat = self._clock + self._config.heartbeat_interval
        config = self._config
        details = ConnectionDetails(
            client_id=conn.client_id,
            connection_key=conn.key,
            max_message_size=config.max_message_size,
            max_idle_interval=config.max_idle_interval,
            connection_state_ttl=config.connection_state_ttl,
            server_id=config.server_id,
            max_inbound_rate=config.max_messages_per_second,
        )
        connected = ProtocolMessage(
            action=ProtocolAction.CONNECTED,
            connection_id=conn.id,
            connection_key=conn.key,
            connection_details=details,
            error=resume_error,
        )
        out.append(Deliver(transport_ids=(transport_id,), message=connected))
        self._advance(now, out)
        return ServerOutput(tuple(out))

    def receive(
        self, transport_id: TransportId, message: ProtocolMessage, *, now: int
    ) -> ServerOutput:
        """Handle one decoded frame from ``transport_id``.

        Frames from a transport the server already released (after a :class:`Disconnect`
        or a resume on a newer transport) are ignored, as are unknown actions.

        Raises:
            UsageError: ``transport_id`` was never connected, or was reported closed.
        """
        if transport_id not in self._transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = self._transports[transport_id]
        out: list[ServerCommand] = []
        self._advance(now, out)
        if conn is not None:
            handler = _HANDLERS.get(message.action)
            if handler is not None:
                handler(self, conn, transport_id, message, out)
            self._advance(now, out)
        return ServerOutput(tuple(out)) if out else _EMPTY

    def transport_closed(self, transport_id: TransportId, *, now: int) -> ServerOutput:
        """Report that ``transport_id`` ended (abruptly, or after a :class:`Disconnect`).

        A live connection enters its grace period; its members stay present until it ends.

        Raises:
            UsageError: ``transport_id`` is unknown or was already reported closed.
        """
        if transport_id not in self._transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = self._transports.pop(transport_id)
        out: list[ServerCommand] = []
        self._advance(now, out)
        if conn is not None:
            self._lose_transport(conn)
            self._advance(now, out)
        return ServerOutput(tuple(out)) if out else _EMPTY

    def tick(self, *, now: int) -> ServerOutput:
        """Fire every deadline up to ``now``: heartbeats, grace periods and ttls."""
        out: list[ServerCommand] = []
        self._advance(now, out)
        return ServerOutput(tuple(out)) if out else _EMPTY

    def next_deadline(self) -> int | None:
        """Return the earliest time :meth:`tick` has work to do, or ``None``."""
        deadlines = [conn.deadline for conn in self._waiting.values() if conn.deadline is not None]
        if self._next_heartbeat is not None:
            deadlines.append(self._next_heartbeat)
        return min(deadlines) if deadlines else None

    def resync(self, channel: str, *, now: int) -> ServerOutput:
        """Send a fresh SYNC of ``channel`` to every attached presence subscriber (RTP18).

        An empty member set still gets one (empty, final) page, so clients drop stale members.
        """
        out: list[ServerCommand] = []
        self._advance(now, out)
        chan = self._channels.get(channel)
        if chan is not None:
            recipients = chan.presence_to()
            if recipients:
                self._sync(chan, recipients, out, empty_page=True)
        return ServerOutput(tuple(out)) if out else _EMPTY

    def members(self, channel: str) -> tuple[PresenceMessage, ...]:
        """Return the members present on ``channel`` (action PRESENT, as a SYNC lists them)."""
        chan = self._channels.get(channel)
        if chan is None:
            return ()
        return tuple(member for by_client in chan.members.values() for member in by_client.values())

    def connections(self) -> tuple[ServerConnectionInfo, ...]:
        """Return every connection the server remembers, in creation order."""
        return tuple(_info(conn) for conn in self._connections.values())

    def connection_for(self, transport_id: TransportId) -> ServerConnectionInfo | None:
        """Return the connection ``transport_id`` carries, or ``None`` if it was released.

        Raises:
            UsageError: ``transport_id`` is unknown.
        """
        if transport_id not in self._transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = self._transports[transport_id]
        return None if conn is None else _info(conn)

    # --- connections --------------------------------------------------------------------

    def _random_hex(self, size: int) -> str:
        raw = self._entropy(size)
        if not isinstance(raw, bytes) or len(raw) != size:
            raise UsageError(f"entropy({size}) must return {size} bytes")
        return raw.hex()

    def _authenticate(self, params: Mapping[str, str]) -> ErrorInfo | tuple[_Grant, str | None]:
        """Check the credentials and clientId; return a refusal, or (grant, clientId)."""
        fmt = params.get("format", "json")
        if fmt not in self._config.formats:
            return _error(40000, 400, f"Unsupported format {fmt!r}")
        requested = params.get("clientId")
        if requested in {"*", ""}:
            return _error(40012, 400, "Invalid clientId")
        key = params.get("key")
        token = params.get("access_token")
        grant: _Grant
        if key is not None:
            name, sep, secret = key.partition(":")
            api_key = self._keys.get(name)
            if not sep or api_key is None or api_key.secret != secret:
                return _error(40101, 401, "Invalid credentials")
            grant = _Grant(api_key.capability, None, api_key.any_client_id)
        elif token is not None:
            access = self._tokens.get(token)
            if access is None:
                return _error(40101, 401, "Invalid credentials")
            if access.client_id == "*":
                grant = _Grant(access.capability, None, True)
            else:
                grant = _Grant(access.capability, access.client_id, False)
        else:
            return _error(40101, 401, "No key or access_token")
        client_id = requested
        if grant.client_id is not None:
            if requested is not None and requested != grant.client_id:
                # Never answer with a different clientId: the client would fail with 40102
                # anyway, so refuse clearly instead.
                return _error(40102, 401, "Mismatched clientId")
            client_id = grant.client_id
        return grant, client_id

    def _new_connection(
        self, transport_id: TransportId, grant: _Grant, client_id: str | None, echo: bool
    ) -> _Connection:
        conn_id = self._random_hex(6)
        while conn_id in self._connections:
            conn_id = self._random_hex(6)
        key = self._random_hex(16)
        while key in self._by_key:
            key = self._random_hex(16)
        self._seq += 1
        conn = _Connection(
            id=conn_id,
            key=key,
            seq=self._seq,
            client_id=client_id,
            grant=grant,
            echo=echo,
            transport=transport_id,
            allowance=self._config.max_messages_per_second * 1000,
            allowance_at=self._clock,
        )
        self._connections[conn_id] = conn
        self._by_key[key] = conn
        return conn

    def _resume(
        self,
        conn: _Connection,
        transport_id: TransportId,
        grant: _Grant,
        echo: bool,
        out: list[ServerCommand],
    ) -> None:
        old = conn.transport
        if old is not None:
            # The resume beat the old socket's close: release it without any leave.
            self._transports[old] = None
            del self._live[old]
            out.append(Disconnect(transport_id=old))
        self._waiting.pop(conn.id, None)
        conn.transport = transport_id
        conn.state = ServerConnectionState.CONNECTED
        conn.deadline = conn.ttl_deadline = None
        conn.grant = grant
        conn.echo = echo
        for name in conn.channels:
            self._channels[name].invalidate()

    def _lose_transport(self, conn: _Connection) -> None:
        """Start the grace period of a connection whose transport went away."""
        if conn.transport is not None:
            self._live.pop(conn.transport, None)
        conn.transport = None
        conn.state = ServerConnectionState.DISCONNECTED
        conn.deadline = self._clock + self._config.grace_period
        conn.ttl_deadline = self._clock + self._config.connection_state_ttl
        self._waiting[conn.id] = conn
        for name in conn.channels:
            self._channels[name].invalidate()

    def _release(self, transport_id: TransportId) -> None:
        self._transports[transport_id] = None
        self._live.pop(transport_id, None)

    def _forget(self, conn: _Connection) -> None:
        self._connections.pop(conn.id, None)
        self._by_key.pop(conn.key, None)
        self._waiting.pop(conn.id, None)

    def _advance(self, now: int, out: list[ServerCommand]) -> None:
        """Move the clock forward to ``now`` (never back) and fire due deadlines."""
        self._clock = max(self._clock, now)
        clock = self._clock
        if self._waiting:
            due = sorted(
                (
                    c
                    for c in self._waiting.values()
                    if c.deadline is not None and c.deadline <= clock
                ),
                key=lambda c: (c.deadline, c.seq),
            )
            for conn in due:
                if conn.state is ServerConnectionState.DISCONNECTED:
                    self._end_grace(conn, out)
                    if conn.ttl_deadline is not None and conn.ttl_deadline <= clock:
                        self._forget(conn)
                else:
                    self._forget(conn)
        if self._next_heartbeat is not None and self._next_heartbeat <= clock:
            if self._live:
                out.append(Deliver(transport_ids=tuple(self._live), message=_HEARTBEAT))
                self._next_heartbeat = clock + self._config.heartbeat_interval
            else:
                self._next_heartbeat = None

    def _end_grace(self, conn: _Connection, out: list[ServerCommand]) -> None:
        """The grace period is over: synthesize leaves and drop the attachments."""
        for name in conn.channels:
            chan = self._channels[name]
            del chan.attached[conn.id]
            chan.invalidate()
            self._leave_all(chan, conn, out)
            self._maybe_drop_channel(chan)
        conn.channels.clear()
        # Every PRESENCE frame this connection had applied is now undone: its members left.
        # A client whose ACK was lost resends such a frame after it resumes; deduplicating it
        # would re-ACK an operation of which nothing remains (the member it entered is absent,
        # and a client that never saw the echo has nothing to re-enter).  So these serials are
        # marked to be applied again as new: stamped with the same ids (connId:msgSerial:index)
        # but the current time, so clients rank it after the synthesized leave (RTP2b1 compares
        # by timestamp, as that leave's id is not the connection's).  MESSAGE results stay: a
        # chat message was delivered and must never be broadcast twice.  NACKed frames had no
        # effect to undo.
        results = conn.results
        for serial in conn.echoes:
            results[serial] = None
        conn.echoes.clear()
        conn.state = ServerConnectionState.SUSPENDED
        conn.deadline = conn.ttl_deadline

    def _close(self, conn: _Connection, out: list[ServerCommand]) -> None:
        """Remove a connection for good, with immediate leaves."""
        for name in conn.channels:
            chan = self._channels[name]
            del chan.attached[conn.id]
            chan.invalidate()
            self._leave_all(chan, conn, out)
            self._maybe_drop_channel(chan)
        conn.channels.clear()
        self._forget(conn)

    # --- channels and presence ----------------------------------------------------------

    def _channel(self, name: str) -> _Channel:
        chan = self._channels.get(name)
        if chan is None:
            chan = self._channels[name] = _Channel(name)
        return chan

    def _maybe_drop_channel(self, chan: _Channel) -> None:
        if not chan.attached and not chan.member_count:
            del self._channels[chan.name]

    def _leave_all(self, chan: _Channel, conn: _Connection, out: list[ServerCommand]) -> None:
        """Remove ``conn``'s members from ``chan`` and broadcast synthesized leaves.

        The ids start with ``synth-``, never with a connectionId (connection ids are hex),
        so clients compare these leaves by timestamp (RTP2b1).
        """
        by_client = chan.members.pop(conn.id, None)
        if not by_client:
            return
        chan.member_count -= len(by_client)
        recipients = chan.presence_to()
        if not recipients:
            return
        synth = f"synth-{self._random_hex(4)}:0"
        clock = self._clock
        items = tuple(
            PresenceMessage(
                action=PresenceAction.LEAVE,
                client_id=member.client_id,
                connection_id=conn.id,
                id=f"{synth}:{index}",
                data=member.data,
                encoding=member.encoding,
                extras=member.extras,
                timestamp=clock,
            )
            for index, member in enumerate(by_client.values())
        )
        frame = ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=chan.name,
            id=synth,
            connection_id=conn.id,
            timestamp=clock,
            channel_serial=chan.next_serial(),
            presence=items,
        )
        out.append(Deliver(transport_ids=recipients, message=frame))

    def _sync(
        self,
        chan: _Channel,
        recipients: tuple[TransportId, ...],
        out: list[ServerCommand],
        *,
        empty_page: bool = False,
    ) -> None:
        """Send the member set as SYNC pages ``<syncId>:<cursor>``, the last with no cursor."""
        members = [m for by_client in chan.members.values() for m in by_client.values()]
        if not members and not empty_page:
            return
        sync_id = self._random_hex(4)
        size = self._config.sync_page_size
        starts = range(0, len(members), size) if members else range(1)
        last = starts[-1]
        for page, start in enumerate(starts, start=1):
            cursor = "" if start == last else str(page)
            frame = ProtocolMessage(
                action=ProtocolAction.SYNC,
                channel=chan.name,
                channel_serial=f"{sync_id}:{cursor}",
                presence=tuple(members[start : start + size]),
            )
            out.append(Deliver(transport_ids=recipients, message=frame))

    # --- frame handlers -------------------------------------------------------------------

    def _on_heartbeat(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        reply = (
            _HEARTBEAT
            if msg.id is None
            else ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=msg.id)
        )
        out.append(Deliver(transport_ids=(tid,), message=reply))

    def _on_close(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        self._release(tid)
        conn.transport = None
        closed = ProtocolMessage(action=ProtocolAction.CLOSED)
        out.append(Deliver(transport_ids=(tid,), message=closed))
        out.append(Disconnect(transport_id=tid))
        self._close(conn, out)

    def _on_disconnect(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        # The client gave up on this transport and will resume on a new one: same as a loss.
        self._release(tid)
        self._lose_transport(conn)
        out.append(Disconnect(transport_id=tid))

    def _on_attach(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        if not name:
            out.append(_no_channel(tid, "ATTACH"))
            return
        allowed = _capability_modes(conn.grant.capability, name)
        if not allowed:
            error = _error(40160, 401, f"Channel denied access based on capability: {name}")
            out.append(Deliver(transport_ids=(tid,), message=_error_frame(error, name)))
            return
        resumed = name in conn.channels
        if not resumed and len(conn.channels) >= self._config.max_channels_per_connection:
            error = _error(90010, 400, "Maximum number of channels per connection exceeded")
            out.append(Deliver(transport_ids=(tid,), message=_error_frame(error, name)))
            return
        requested = (msg.flags or 0) & MODE_MASK or int(DEFAULT_MODES)
        modes = requested & allowed
        chan = self._channel(name)
        conn.channels[name] = modes
        chan.attached[conn.id] = conn
        chan.invalidate()
        subscribed = bool(modes & ChannelMode.PRESENCE_SUBSCRIBE)
        flags = modes
        if resumed:
            flags |= Flag.RESUMED
        if subscribed and chan.member_count:
            flags |= Flag.HAS_PRESENCE
        params = None
        if msg.params:
            params = {k: v for k, v in msg.params.items() if k != "agent"} or None
        attached = ProtocolMessage(
            action=ProtocolAction.ATTACHED,
            channel=name,
            flags=int(flags),
            channel_serial=f"{name}@{chan.serial}",
            params=params,
        )
        out.append(Deliver(transport_ids=(tid,), message=attached))
        if flags & Flag.HAS_PRESENCE:
            self._sync(chan, (tid,), out)

    def _on_detach(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        if not name:
            out.append(_no_channel(tid, "DETACH"))
            return
        detached = ProtocolMessage(action=ProtocolAction.DETACHED, channel=name)
        out.append(Deliver(transport_ids=(tid,), message=detached))
        if name in conn.channels:
            del conn.channels[name]
            chan = self._channels[name]
            del chan.attached[conn.id]
            chan.invalidate()
            self._leave_all(chan, conn, out)
            self._maybe_drop_channel(chan)

    def _on_sync(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        modes = conn.channels.get(name) if name else None
        if name and modes is not None and modes & ChannelMode.PRESENCE_SUBSCRIBE:
            self._sync(self._channels[name], (tid,), out, empty_page=True)

    def _check_serial(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> int | None:
        """Return the frame's msgSerial if it is new; otherwise answer it and return None."""
        serial = msg.msg_serial
        if serial is None or serial < 0:
            # Nothing to NACK against; an ERROR naming the channel fails only that channel.
            error = _error(40000, 400, "Missing or invalid msgSerial")
            out.append(Deliver(transport_ids=(tid,), message=_error_frame(error, msg.channel)))
            return None
        if serial <= conn.max_serial:
            presence = msg.action == ProtocolAction.PRESENCE
            if presence and serial in conn.results and conn.results[serial] is None:
                return serial  # Its effect was undone at the end of the grace period.
            # A resend after reconnect: answer again, never apply twice.
            if presence:
                self._echo_again(conn, tid, conn.echoes.get(serial), out)
            result = conn.results.get(serial) or _ack(serial)
            out.append(Deliver(transport_ids=(tid,), message=result))
            return None
        return serial

    def _echo_again(
        self,
        conn: _Connection,
        tid: TransportId,
        echo: ProtocolMessage | None,
        out: list[ServerCommand],
    ) -> None:
        """Re-send a deduplicated PRESENCE frame's echo to its sender alone (RTP17a).

        The client resends a frame only when it missed the ACK, so it may have missed the
        echo too, and its own-member map (fed only by echoes) would never hold the member.
        Peers saw the broadcast, so they get nothing.  Only what the frame still determines
        is sent: an enter or update whose member still carries the id this frame gave it,
        and the frame's leaves (a later change has a larger id and wins over it anyway).
        The channelSerial is left out: the frame is old, and RTL15b must not move back.
        """
        if echo is None or echo.channel not in conn.channels:
            return
        own = self._channels[echo.channel].members.get(conn.id, {})
        items = tuple(
            item
            for item in echo.presence or ()
            if item.action == PresenceAction.LEAVE
            or ((current := own.get(item.client_id or "")) is not None and current.id == item.id)
        )
        if items:
            again = attrs.evolve(echo, presence=items, channel_serial=None)
            out.append(Deliver(transport_ids=(tid,), message=again))

    def _remember(
        self,
        conn: _Connection,
        tid: TransportId,
        serial: int,
        result: ProtocolMessage,
        out: list[ServerCommand],
    ) -> None:
        # A frame re-applied after the grace period has an older serial than the newest.
        conn.max_serial = max(conn.max_serial, serial)
        results = conn.results
        results[serial] = result
        if len(results) > _REMEMBERED_RESULTS:
            oldest = next(iter(results))
            del results[oldest]
            conn.echoes.pop(oldest, None)
        out.append(Deliver(transport_ids=(tid,), message=result))

    def _take_allowance(self, conn: _Connection, count: int) -> None:
        """Charge ``count`` messages to the connection's rate budget, or raise _Reject."""
        rate = self._config.max_messages_per_second
        elapsed = self._clock - conn.allowance_at
        allowance = min(rate * 1000, conn.allowance + elapsed * rate)
        if allowance < count * 1000:
            raise _Reject(_error(42910, 429, "Rate limit exceeded; request rejected"))
        conn.allowance = allowance - count * 1000
        conn.allowance_at = self._clock

    def _resolve_client_id(self, conn: _Connection, client_id: str | None) -> str | None:
        """Return the clientId a message acts for, or raise _Reject(40012)."""
        if client_id is None:
            return conn.client_id
        if client_id == conn.client_id:
            return client_id
        if conn.client_id is None and conn.grant.any_client_id and client_id not in ("", "*"):
            return client_id
        raise _Reject(_error(40012, 400, f"Mismatched clientId: {client_id!r}"))

    def _on_presence(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        serial = self._check_serial(conn, tid, msg, out)
        if serial is None:
            return
        try:
            frame = self._apply_presence(conn, serial, msg)
        except _Reject as reject:
            self._remember(conn, tid, serial, _nack(serial, reject.error), out)
            return
        if frame is not None:
            chan = self._channels[frame.channel or ""]
            recipients = chan.presence_to()
            if not conn.channels[chan.name] & ChannelMode.PRESENCE_SUBSCRIBE:
                # RTP17a: a connection always sees its own presence, subscribed or not.
                recipients = (*recipients, tid)
            out.append(Deliver(transport_ids=recipients, message=frame))
        # Kept for a resend: echoed again within the grace period, re-applied after it.
        conn.echoes[serial] = frame
        # The echo goes out before the ACK, so get() after enter() already shows the member.
        self._remember(conn, tid, serial, _ack(serial), out)

    def _apply_presence(
        self, conn: _Connection, serial: int, msg: ProtocolMessage
    ) -> ProtocolMessage | None:
        """Validate the whole frame, then apply it; return the broadcast frame, if any."""
        name = msg.channel
        if not name:
            raise _Reject(_error(40000, 400, "PRESENCE without a channel"))
        modes = conn.channels.get(name)
        if modes is None:
            raise _Reject(_error(90001, 400, f"Channel {name!r} is not attached"))
        if not modes & ChannelMode.PRESENCE:
            raise _Reject(_error(40160, 401, f"No presence permission on {name!r}"))
        items = msg.presence
        if not items:
            raise _Reject(_error(40000, 400, "PRESENCE without presence items"))
        chan = self._channels[name]
        own = chan.members.get(conn.id, {})
        limit = self._config.max_message_size
        # Validation pass: resolve clientIds and simulate presence within the frame, so the
        # member limit sees the net effect and nothing is mutated before all checks pass.
        resolved: list[str] = []
        present: dict[str, bool] = {}
        added = 0
        for item in items:
            if item.action not in _CLIENT_ACTIONS:
                raise _Reject(_error(40000, 400, f"Invalid presence action {item.action!r}"))
            client_id = self._resolve_client_id(conn, item.client_id)
            if client_id is None:
                raise _Reject(_error(40012, 400, "Presence requires a clientId"))
            if _message_size(item.data, item.extras, client_id) > limit:
                raise _Reject(_error(40009, 413, f"Message exceeds {limit} bytes"))
            was = present.get(client_id, client_id in own)
            now_present = item.action != PresenceAction.LEAVE
            added += now_present - was
            present[client_id] = now_present
            resolved.append(client_id)
        if added > 0 and chan.member_count + added > self._config.max_members_per_channel:
            raise _Reject(_error(91003, 400, "Maximum number of members exceeded"))
        self._take_allowance(conn, len(items))

        clock = self._clock
        prefix = f"{conn.id}:{serial}"
        broadcast: list[PresenceMessage] = []
        if conn.id not in chan.members:
            chan.members[conn.id] = own
        for index, (item, client_id) in enumerate(zip(items, resolved, strict=True)):
            current = own.get(client_id)
            if item.action == PresenceAction.LEAVE:
                if current is None:
                    continue  # RTP10d: a leave while absent is ACKed without a broadcast.
                del own[client_id]
                chan.member_count -= 1
                data, encoding, extras = item.data, item.encoding, item.extras
                if data is None:
                    data, encoding = current.data, current.encoding
                if extras is None:
                    extras = current.extras
                broadcast.append(
                    PresenceMessage(
                        action=PresenceAction.LEAVE,
                        client_id=client_id,
                        connection_id=conn.id,
                        id=f"{prefix}:{index}",
                        data=data,
                        encoding=encoding,
                        extras=extras,
                        timestamp=clock,
                    )
                )
                continue
            if (
                current is not None
                and item.id is not None
                and item.id == current.id
                and item.data == current.data
                and item.encoding == current.encoding
                and item.extras == current.extras
            ):
                continue  # An automatic re-entry of what is already there: idempotent.
            action = PresenceAction.ENTER if current is None else PresenceAction.UPDATE
            stamped_id = f"{prefix}:{index}"
            broadcast.append(
                PresenceMessage(
                    action=action,
                    client_id=client_id,
                    connection_id=conn.id,
                    id=stamped_id,
                    data=item.data,
                    encoding=item.encoding,
                    extras=item.extras,
                    timestamp=clock,
                )
            )
            own[client_id] = PresenceMessage(
                action=PresenceAction.PRESENT,
                client_id=client_id,
                connection_id=conn.id,
                id=stamped_id,
                data=item.data,
                encoding=item.encoding,
                extras=item.extras,
                timestamp=clock,
            )
            if current is None:
                chan.member_count += 1
        if not own:
            del chan.members[conn.id]
        if not broadcast:
            return None
        return ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=name,
            id=prefix,
            connection_id=conn.id,
            timestamp=clock,
            channel_serial=chan.next_serial(),
            presence=tuple(broadcast),
        )

    def _on_message(
        self, conn: _Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        serial = self._check_serial(conn, tid, msg, out)
        if serial is None:
            return
        try:
            frame = self._apply_messages(conn, serial, msg)
        except _Reject as reject:
            self._remember(conn, tid, serial, _nack(serial, reject.error), out)
            return
        chan = self._channels[frame.channel or ""]
        recipients = chan.messages_to()
        if not conn.echo and tid in recipients:
            recipients = tuple(t for t in recipients if t != tid)
        if recipients:
            out.append(Deliver(transport_ids=recipients, message=frame))
        serials = [m.serial for m in frame.messages or ()]
        result = ProtocolMessage(
            action=ProtocolAction.ACK, msg_serial=serial, count=1, res=({"serials": serials},)
        )
        self._remember(conn, tid, serial, result, out)

    def _apply_messages(
        self, conn: _Connection, serial: int, msg: ProtocolMessage
    ) -> ProtocolMessage:
        name = msg.channel
        if not name:
            raise _Reject(_error(40000, 400, "MESSAGE without a channel"))
        modes = conn.channels.get(name)
        if modes is None:
            raise _Reject(_error(90001, 400, f"Channel {name!r} is not attached"))
        if not modes & ChannelMode.PUBLISH:
            raise _Reject(_error(40160, 401, f"No publish permission on {name!r}"))
        items = msg.messages
        if not items:
            raise _Reject(_error(40000, 400, "MESSAGE without messages"))
        limit = self._config.max_message_size
        resolved: list[str | None] = []
        for item in items:
            client_id = self._resolve_client_id(conn, item.client_id)
            size = _message_size(item.data, item.extras, client_id) + _payload_size(item.name)
            if size > limit:
                raise _Reject(_error(40009, 413, f"Message exceeds {limit} bytes"))
            resolved.append(client_id)
        self._take_allowance(conn, len(items))
        chan = self._channels[name]
        clock = self._clock
        prefix = f"{conn.id}:{serial}"
        stamped = tuple(
            Message(
                name=item.name,
                data=item.data,
                encoding=item.encoding,
                extras=item.extras,
                id=f"{prefix}:{index}",
                client_id=client_id,
                connection_id=conn.id,
                timestamp=clock,
                serial=chan.next_serial(),
                action=item.action,
            )
            for index, (item, client_id) in enumerate(zip(items, resolved, strict=True))
        )
        return ProtocolMessage(
            action=ProtocolAction.MESSAGE,
            channel=name,
            id=prefix,
            connection_id=conn.id,
            timestamp=clock,
            channel_serial=stamped[-1].serial,
            messages=stamped,
        )


_Handler: TypeAlias = Callable[
    [Server, _Connection, TransportId, ProtocolMessage, list[ServerCommand]], None
]

#: Dispatch by protocol action; anything else (CONNECT, AUTH, unknown actions) is ignored.
_HANDLERS: Final[Mapping[int, _Handler]] = types.MappingProxyType(
    {
        ProtocolAction.HEARTBEAT: Server._on_heartbeat,
        ProtocolAction.CLOSE: Server._on_close,
        ProtocolAction.DISCONNECT: Server._on_disconnect,
        ProtocolAction.ATTACH: Server._on_attach,
        ProtocolAction.DETACH: Server._on_detach,
        ProtocolAction.SYNC: Server._on_sync,
        ProtocolAction.PRESENCE: Server._on_presence,
        ProtocolAction.MESSAGE: Server._on_message,
    }
)


def _ack(serial: int) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ACK, msg_serial=serial, count=1)


def _nack(serial: int, error: ErrorInfo) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.NACK, msg_serial=serial, count=1, error=error)


def _error_frame(error: ErrorInfo, channel: str | None = None) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ERROR, channel=channel, error=error)


def _info(conn: _Connection) -> ServerConnectionInfo:
    return ServerConnectionInfo(
        connection_id=conn.id,
        client_id=conn.client_id,
        state=conn.state,
        transport_id=conn.transport,
        channels=tuple(conn.channels),
    )
