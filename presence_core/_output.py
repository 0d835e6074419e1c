"""What the client-side reducers return: one frozen :class:`Output` per call.

*Events* are past-tense facts for the application: presence events, channel and connection
state changes, operation results, re-entry failures, pings, and ignored frames.  *Commands* are
only I/O for the embedder to perform: send a frame, open or close a transport, get a new
token.  There are no callbacks and no hidden buffers: everything a call caused is in the Output
it returned, events in the order they happened, commands in the order to run them.

The presence events themselves are :class:`~presence_core.PresenceMessage` values (the message
that was applied, or a synthesized leave), so the hot path builds no extra object per member;
a received channel message is likewise its :class:`~presence_core.Message`.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from presence_core._wire import ErrorInfo, Message, PresenceAction, PresenceMessage, ProtocolMessage

__all__ = [
    "ChannelState",
    "ConnectionState",
    "Operation",
    "ChannelStateChanged",
    "ConnectionStateChanged",
    "ChannelEvents",
    "FrameIgnored",
    "PingAnswered",
    "PingFailed",
    "Event",
    "Send",
    "SendPresence",
    "SendMessage",
    "OperationSucceeded",
    "OperationFailed",
    "ReentryFailed",
    "CloseTransport",
    "OpenTransport",
    "RenewToken",
    "Command",
    "Output",
]


class ChannelState(enum.Enum):
    """Channel (room) states (RTL2)."""

    INITIALIZED = "initialized"
    ATTACHING = "attaching"
    ATTACHED = "attached"
    DETACHING = "detaching"
    DETACHED = "detached"
    SUSPENDED = "suspended"
    FAILED = "failed"


class ConnectionState(enum.Enum):
    """Connection states (RTN4)."""

    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    SUSPENDED = "suspended"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


@attrs.frozen(kw_only=True)
class Operation:
    """Handle of one operation on a channel: enter, update, leave, re-entry, or a publish.

    It is settled exactly once, later, by an :class:`OperationSucceeded` or
    :class:`OperationFailed` event carrying it (RTP16, RTL6).
    """

    #: Sequence number, unique within its channel's PresenceSet.
    id: int
    #: The channel the operation belongs to.
    channel: str
    #: ENTER, UPDATE or LEAVE; ``None`` for a published MESSAGE.
    action: PresenceAction | None
    #: The clientId acted for (``None`` for the connection's own identity).
    client_id: str | None = None
    #: True for an automatic re-entry (RTP17), which the application did not ask for.
    reentry: bool = False
    #: The name of a published MESSAGE (``None`` for presence operations, or no name).
    name: str | None = None


# --- events -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ChannelStateChanged:
    """The channel moved from ``previous`` to ``current`` (or was re-ATTACHED: an UPDATE)."""

    channel: str
    previous: ChannelState
    current: ChannelState
    #: Why, if the change was caused by an error.
    reason: ErrorInfo | None = None
    #: On ATTACHED: whether the server kept continuity (RESUMED flag).
    resumed: bool = False


@attrs.frozen(kw_only=True)
class ConnectionStateChanged:
    """The connection moved from ``previous`` to ``current``."""

    previous: ConnectionState
    current: ConnectionState
    reason: ErrorInfo | None = None


@attrs.frozen(kw_only=True)
class ChannelEvents:
    """A batch of one channel's events, as routed by the connection reducer."""

    channel: str
    #: Presence events, received channel messages and channel state changes, in order.
    events: tuple[PresenceMessage | Message | ChannelStateChanged, ...]


@attrs.frozen(kw_only=True)
class FrameIgnored:
    """A frame was ignored (unknown channel, unknown action, wrong state); kept for logging."""

    message: ProtocolMessage
    reason: str


@attrs.frozen(kw_only=True)
class PingAnswered:
    """The server answered the ping ``id`` with a HEARTBEAT carrying the same id (RTN13)."""

    id: str
    #: Milliseconds between sending the ping and receiving the answer.
    round_trip: int


@attrs.frozen(kw_only=True)
class PingFailed:
    """The ping ``id`` got no answer: it timed out or its transport was lost (RTN13)."""

    id: str
    error: ErrorInfo


@attrs.frozen(kw_only=True)
class OperationSucceeded:
    """The operation was acknowledged by the server."""

    operation: Operation


@attrs.frozen(kw_only=True)
class OperationFailed:
    """The operation failed: a NACK, or a channel/connection state that fails queued work."""

    operation: Operation
    error: ErrorInfo


@attrs.frozen(kw_only=True)
class ReentryFailed:
    """Automatic re-entry of ``client_id`` failed (RTP17e).

    ``error`` has code 91004 and carries the original error as its ``cause``.  The channel stays
    attached.
    """

    channel: str
    client_id: str
    error: ErrorInfo


Event: TypeAlias = (
    PresenceMessage
    | Message
    | ChannelStateChanged
    | ConnectionStateChanged
    | ChannelEvents
    | FrameIgnored
    | PingAnswered
    | PingFailed
    | OperationSucceeded
    | OperationFailed
    | ReentryFailed
)


# --- commands ---------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Send:
    """Send this frame to the server (ATTACH, DETACH, HEARTBEAT, or a numbered frame)."""

    message: ProtocolMessage


@attrs.frozen(kw_only=True)
class SendPresence:
    """Send this PRESENCE frame; an ACK or NACK for it settles ``operations``.

    From a PresenceSet the frame has no ``msg_serial``: the connection reducer (or a harness)
    numbers it, and later calls :meth:`PresenceSet.acknowledge` with ``operations``.
    """

    message: ProtocolMessage
    operations: tuple[Operation, ...]


@attrs.frozen(kw_only=True)
class SendMessage:
    """Send this MESSAGE frame; an ACK or NACK for it settles ``operations`` (RTL6).

    Numbered like :class:`SendPresence`, in the same ``msgSerial`` sequence.
    """

    message: ProtocolMessage
    operations: tuple[Operation, ...]


@attrs.frozen(kw_only=True)
class CloseTransport:
    """Close the current transport (after a fatal error, an idle timeout or CLOSED)."""

    reason: ErrorInfo | None = None


@attrs.frozen(kw_only=True)
class OpenTransport:
    """Open a new transport with these query parameters (``resume``, ``clientId``, ``v`` ...).

    The connection names each transport it opens with the next ``transport_id`` (1, 2, 3 ...);
    the embedder passes that id back with every frame read from it and with its loss.
    """

    transport_id: int
    params: dict[str, str]


@attrs.frozen(kw_only=True)
class RenewToken:
    """Get a new token and give it to ``Connection.authorize`` (RTN15h2, RTN14b, RSA4b).

    Only a connection made with ``renewable=True`` asks: when the server refused its token
    (``reason`` is the server's token error), when it has no token yet, or ahead of the known
    expiry of the one it has (``reason`` is ``None`` then).  It may ask again before getting
    an answer, on its next retry; one request in flight is enough.
    """

    reason: ErrorInfo | None = None


Command: TypeAlias = Send | SendPresence | SendMessage | CloseTransport | OpenTransport | RenewToken


@attrs.frozen
class Output:
    """Everything one call caused: events in emission order, then commands to run in order."""

    events: tuple[Event, ...] = ()
    commands: tuple[Command, ...] = ()
    #: The handle of the operation a user call (enter, update, leave ...) started, if any.
    operation: Operation | None = None

    def __bool__(self) -> bool:
        return bool(self.events or self.commands or self.operation)


#: The shared empty Output, returned when a call caused nothing.
EMPTY_OUTPUT: Output = Output()


# Fast constructors for the per-frame hot path: attrs' frozen ``__init__`` goes through
# ``object.__setattr__`` per field (about 0.45 µs for an Output); setting the slots through
# their descriptors gives an equal instance for a fraction of that.  They are only valid while
# the class has exactly the fields named, no validators, converters or post-init hook, and
# slots; the import-time check below fails loudly otherwise.
def _check_fast(cls: type, names: tuple[str, ...]) -> None:
    fields = attrs.fields(cls)
    if (
        tuple(f.name for f in fields) != names
        or any(f.validator is not None or f.converter is not None for f in fields)
        or hasattr(cls, "__attrs_post_init__")
        or "__slots__" not in cls.__dict__
    ):
        msg = f"_output's fast constructor is out of date with {cls.__name__}"
        raise RuntimeError(msg)


_check_fast(Output, ("events", "commands", "operation"))
_check_fast(ChannelEvents, ("channel", "events"))

_new_object = object.__new__
_set_events = Output.__dict__["events"].__set__
_set_commands = Output.__dict__["commands"].__set__
_set_operation = Output.__dict__["operation"].__set__
_set_batch_channel = ChannelEvents.__dict__["channel"].__set__
_set_batch_events = ChannelEvents.__dict__["events"].__set__


def events_output(events: tuple[Event, ...]) -> Output:
    """Return ``Output(events)`` (no commands, no operation), built without attrs' ``__init__``."""
    output: Output = _new_object(Output)
    _set_events(output, events)
    _set_commands(output, ())
    _set_operation(output, None)
    return output


def channel_events_output(
    channel: str, events: tuple[PresenceMessage | Message | ChannelStateChanged, ...]
) -> Output:
    """Return ``Output((ChannelEvents(channel, events),))``, built without attrs' ``__init__``."""
    batch: ChannelEvents = _new_object(ChannelEvents)
    _set_batch_channel(batch, channel)
    _set_batch_events(batch, events)
    return events_output((batch,))
