"""The wire model: Ably protocol v6 values as frozen attrs classes.

Field names are the Python spelling of the wire names (``clientId`` -> ``client_id``); the codec
in :mod:`presence_core._codec` maps between the two.  Every class is frozen and slotted.  A field
that was absent on the wire is ``None``, so encoding gives back exactly what was decoded.

Numbers are as on the wire (TR2, TR3, TP2).  Actions are kept as plain ``int`` on
:class:`ProtocolMessage` because an unknown action must survive decoding (it is ignored by the
reducers, not rejected): a known action compares equal to its :class:`ProtocolAction` member.
"""

from __future__ import annotations

import enum
from typing import Any, Final

import attrs

__all__ = [
    "ProtocolAction",
    "PresenceAction",
    "Flag",
    "ChannelMode",
    "DEFAULT_MODES",
    "ErrorInfo",
    "ConnectionDetails",
    "AuthDetails",
    "PresenceMessage",
    "Message",
    "ProtocolMessage",
]


class ProtocolAction(enum.IntEnum):
    """ProtocolMessage actions (TR2), numbered as on the wire."""

    HEARTBEAT = 0
    ACK = 1
    NACK = 2
    CONNECT = 3
    CONNECTED = 4
    DISCONNECT = 5
    DISCONNECTED = 6
    CLOSE = 7
    CLOSED = 8
    ERROR = 9
    ATTACH = 10
    ATTACHED = 11
    DETACH = 12
    DETACHED = 13
    PRESENCE = 14
    MESSAGE = 15
    SYNC = 16
    AUTH = 17
    ACTIVATE = 18
    OBJECT = 19
    OBJECT_SYNC = 20
    ANNOTATION = 21


class PresenceAction(enum.IntEnum):
    """PresenceMessage actions (TP2).  ABSENT is a local tombstone marker, never sent."""

    ABSENT = 0
    PRESENT = 1
    ENTER = 2
    LEAVE = 3
    UPDATE = 4

    @property
    def event_name(self) -> str:
        """The lower-case name used for subscriptions: ``"enter"``, ``"leave"`` and so on."""
        return self.name.lower()


class Flag(enum.IntFlag):
    """ProtocolMessage flags that are not channel modes (TR3)."""

    #: On ATTACHED: a SYNC follows (it may be empty).
    HAS_PRESENCE = 1 << 0
    HAS_BACKLOG = 1 << 1
    #: On ATTACHED: channel continuity was kept.
    RESUMED = 1 << 2
    TRANSIENT = 1 << 4
    #: Deprecated since spec 6.1.0; never sent by presence_core.
    ATTACH_RESUME = 1 << 5
    HAS_OBJECTS = 1 << 7


class ChannelMode(enum.IntFlag):
    """Channel mode bits, requested in ATTACH and granted in ATTACHED (RTL4l, RTL4m)."""

    #: May enter presence.
    PRESENCE = 1 << 16
    PUBLISH = 1 << 17
    SUBSCRIBE = 1 << 18
    #: Receives other members' presence.
    PRESENCE_SUBSCRIBE = 1 << 19
    ANNOTATION_PUBLISH = 1 << 21
    ANNOTATION_SUBSCRIBE = 1 << 22
    OBJECT_SUBSCRIBE = 1 << 24
    OBJECT_PUBLISH = 1 << 25


#: The four modes a server grants to an ATTACH that requests none (0xF0000).
DEFAULT_MODES: Final = (
    ChannelMode.PRESENCE
    | ChannelMode.PUBLISH
    | ChannelMode.SUBSCRIBE
    | ChannelMode.PRESENCE_SUBSCRIBE
)

#: Every bit that is a channel mode rather than a flag.
MODE_MASK: Final = int(
    ChannelMode.PRESENCE
    | ChannelMode.PUBLISH
    | ChannelMode.SUBSCRIBE
    | ChannelMode.PRESENCE_SUBSCRIBE
    | ChannelMode.ANNOTATION_PUBLISH
    | ChannelMode.ANNOTATION_SUBSCRIBE
    | ChannelMode.OBJECT_SUBSCRIBE
    | ChannelMode.OBJECT_PUBLISH
)


@attrs.frozen(kw_only=True)
class ErrorInfo:
    """An Ably ErrorInfo (TI1): ``{code, statusCode, message, href?, cause?}``."""

    #: Ably error code, such as 40160 or 91004.
    code: int
    #: HTTP-like status paired with the code.
    status_code: int
    #: Human-readable text.
    message: str = ""
    #: Optional link to Ably's error documentation.
    href: str | None = None
    #: The error that caused this one, if any (for example a NACK under 91004).
    cause: ErrorInfo | None = None


@attrs.frozen(kw_only=True)
class ConnectionDetails:
    """The ``connectionDetails`` object of a CONNECTED frame (CD2).  Durations are in ms."""

    client_id: str | None = None
    connection_key: str | None = None
    max_message_size: int | None = None
    max_idle_interval: int | None = None
    connection_state_ttl: int | None = None
    server_id: str | None = None
    max_inbound_rate: int | None = None
    max_outbound_rate: int | None = None
    max_frame_size: int | None = None


@attrs.frozen(kw_only=True)
class AuthDetails:
    """The ``auth`` object of an AUTH frame (AD1): the token a live connection switches to."""

    access_token: str


@attrs.frozen(kw_only=True)
class PresenceMessage:
    """One presence item (TP1-TP3), and also the event delivered to subscribers.

    On receipt the codec has already applied TP3a/d/g inheritance: a missing ``id``,
    ``connection_id`` and ``timestamp`` were filled from the enclosing :class:`ProtocolMessage`.

    ``data`` is decoded per its encoding (``json`` gives a dict or list, ``base64`` gives bytes);
    ``encoding`` keeps only the steps that could not be decoded (an unknown or cipher step,
    RSL6b), and is ``None`` once everything is decoded.
    """

    #: ABSENT, PRESENT, ENTER, LEAVE or UPDATE.
    action: PresenceAction
    #: The member's clientId.  Omitted by a client on its own enter/update/leave (RTP8c).
    client_id: str | None = None
    #: The member's connectionId.
    connection_id: str | None = None
    #: ``connectionId:msgSerial:index`` for client-published messages; ``None`` on a
    #: locally synthesized leave (RTP19).
    id: str | None = None
    #: Decoded payload.
    data: Any = None
    #: Remaining undecoded encoding steps, or ``None``.
    encoding: str | None = None
    #: Opaque extras object.
    extras: dict[str, Any] | None = None
    #: Epoch milliseconds.
    timestamp: int | None = None


@attrs.frozen(kw_only=True)
class Message:
    """A channel MESSAGE item (TM1); presence_core uses it for Chat typing indicators."""

    name: str | None = None
    data: Any = None
    encoding: str | None = None
    extras: dict[str, Any] | None = None
    id: str | None = None
    client_id: str | None = None
    connection_id: str | None = None
    timestamp: int | None = None
    serial: str | None = None
    #: The message action of protocol v6 messages (0 for a plain create); kept as an int.
    action: int | None = None


@attrs.frozen(kw_only=True)
class ProtocolMessage:
    """One frame of the realtime protocol (TR1-TR4).

    Only the fields presence needs are modelled; unknown wire fields are dropped by the codec.
    ``action`` is an ``int`` so that an unknown action survives decoding.
    """

    #: A :class:`ProtocolAction` value (or an unknown int, which reducers ignore).
    action: int
    id: str | None = None
    channel: str | None = None
    #: On SYNC this is the sync cursor ``<syncId>:<cursor>`` (RTP18a).
    channel_serial: str | None = None
    connection_id: str | None = None
    connection_key: str | None = None
    connection_details: ConnectionDetails | None = None
    msg_serial: int | None = None
    count: int | None = None
    error: ErrorInfo | None = None
    #: Raw flags bitfield: :class:`Flag` bits plus :class:`ChannelMode` bits.
    flags: int | None = None
    presence: tuple[PresenceMessage, ...] | None = None
    messages: tuple[Message, ...] | None = None
    timestamp: int | None = None
    params: dict[str, str] | None = None
    #: On ACK: one ``{"serials": [...]}`` object per acknowledged message, kept as decoded.
    res: tuple[dict[str, Any], ...] | None = None
    #: On a client's AUTH: the new token (RTC8a).
    auth: AuthDetails | None = None

    def has_flag(self, flag: int) -> bool:
        """Return whether every bit of ``flag`` is set in :attr:`flags`."""
        return self.flags is not None and (self.flags & flag) == flag

    @property
    def modes(self) -> ChannelMode:
        """The channel mode bits of :attr:`flags` (RTL4m)."""
        return ChannelMode((self.flags or 0) & MODE_MASK)
