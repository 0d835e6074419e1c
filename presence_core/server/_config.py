"""The server's settings: limits, timings and the credentials it accepts.

Every setting is checked when a :class:`ServerConfig` is built, so a server never runs with a
timing that cannot work (a heartbeat slower than the idle timeout, a grace period outliving
the resume window) or with two credentials of one name.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from presence_core._codec import CodecLimits
from presence_core._errors import UsageError
from presence_core._msgpack import (
    FORMAT as MSGPACK,
    MISSING as MSGPACK_MISSING,
    available as msgpack_available,
)
from presence_core.server._auth import AccessToken, ApiKey

__all__ = ["ServerConfig"]


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


def _default_formats() -> frozenset[str]:
    return frozenset({"json", MSGPACK}) if msgpack_available() else frozenset({"json"})


def _formats_available(
    instance: object, attribute: attrs.Attribute[frozenset[str]], value: frozenset[str]
) -> None:
    if MSGPACK in value and not msgpack_available():
        raise UsageError(MSGPACK_MISSING)


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
    #: Values of the ``format`` query parameter the server accepts; a connect naming another is
    #: refused (40000).  ``json`` and ``msgpack`` decode in ``receive_frame``; for any other
    #: value the adapter decodes frames itself.  ably-js sends ``msgpack`` on Node unless
    #: configured with ``useBinaryProtocol: false``, and ``json`` in browsers.  The default
    #: is both, or ``json`` alone when msgpack is not installed; naming ``msgpack`` without it
    #: installed is a UsageError.
    formats: frozenset[str] = attrs.field(
        factory=_default_formats, converter=_frozenset_of_str, validator=_formats_available
    )
    #: Ably's default (15 s).  The client adds its request timeout (10 s) and gives up on a
    #: transport that stays silent longer than the sum.
    max_idle_interval: int = attrs.field(default=15_000, validator=_positive)
    #: Every live transport gets a frame at least this often.  Two thirds of the idle
    #: interval leaves slack for latency; ably-js stays connected even at 0.6x.
    heartbeat_interval: int = attrs.field(default=10_000, validator=_positive)
    #: Ably keeps a dropped connection's members present for about 15 s before synthesizing
    #: their leaves; a reconnect inside that window is invisible to peers.
    grace_period: int = attrs.field(default=15_000, validator=_non_negative)
    #: Ably's default (2 min): how long a dropped connection stays resumable.
    connection_state_ttl: int = attrs.field(default=120_000, validator=_non_negative)
    #: Members per SYNC frame.  100 keeps a frame near 10 KiB with small data, well under
    #: ``max_message_size`` times a page, while a 10,000-member room needs only 100 frames.
    sync_page_size: int = attrs.field(default=100, validator=_positive)
    #: Milliseconds between two pages of one SYNC.  0 (the default) sends a whole sync at
    #: once; a server under load sends it over time, and live PRESENCE interleaves with its
    #: pages, which simulations use to exercise a client's sync rules end to end.
    sync_page_interval: int = attrs.field(default=0, validator=_non_negative)
    #: Presence members per channel.  It bounds one channel's memory; 20,000 leaves headroom
    #: over the 10,000-member room the simulator exercises.  Beyond it an enter is NACKed 91003.
    max_members_per_channel: int = attrs.field(default=20_000, validator=_positive)
    #: Largest payload of one message (data, extras and clientId), NACKed 40009 above it.
    #: Ably's default 64 KiB; advertised as ``maxMessageSize`` so clients refuse earlier.
    max_message_size: int = attrs.field(default=65_536, validator=_positive)
    #: Channels one connection may have attached.  A Chat client uses one per room; 200 is
    #: generous for that and bounds per-connection state.  Beyond it ATTACH fails with 90010.
    max_channels_per_connection: int = attrs.field(default=200, validator=_positive)
    #: Longest channel name an ATTACH may name, in characters; a longer one fails that attach
    #: with 40010.  A name is kept for as long as the channel is attached, and a frame may
    #: carry up to a MiB of one; 1,024 is far beyond a room name with its ``::$chat`` suffix
    #: and keeps a connection's names within 1 MiB at the channel limit above.
    max_channel_name_length: int = attrs.field(default=1_024, validator=_positive)
    #: Inbound messages (presence items and channel messages) per second per connection,
    #: with a burst of one second's allowance; beyond it a frame is NACKed 42910.  Ably's
    #: per-connection inbound limit is of this order (its connectionDetails call it
    #: ``maxInboundRate``).  Raise it for simulations that enter many members per connection.
    max_messages_per_second: int = attrs.field(default=50, validator=_positive)
    #: Bounds on a raw frame given to ``receive_frame``: its size, nesting and item counts.  The
    #: codec's defaults (1 MiB frames, 1,000 items) are far above what ``max_message_size``
    #: lets a conforming client send, and cap the parse of a hostile frame.
    codec_limits: CodecLimits = attrs.field(
        factory=CodecLimits, validator=attrs.validators.instance_of(CodecLimits)
    )
    #: MESSAGE frames held per connection while it is gone but resumable, for delivery when it
    #: resumes (RTN15c6).  1,000 covers a grace period of 15 s at over 60 messages a second on
    #: the connection's channels, far more than a chat room sees; beyond it the channel's
    #: continuity is lost (90004).  A held frame is shared with every connection holding it.
    resume_backlog_messages: int = attrs.field(default=1_000, validator=_positive)
    #: Bytes of held MESSAGEs per connection, counted as ``max_message_size`` counts them.
    #: 1 MiB is 16 messages of the largest size, or the 1,000 frames above at 1 KiB each; it
    #: also bounds the burst one resume sends.
    resume_backlog_bytes: int = attrs.field(default=1 << 20, validator=_positive)
    #: ACK and NACK frames remembered per connection, so a frame resent after a resume is
    #: answered as it was the first time (RTN19a).  A client resends only the frames it has not
    #: seen acknowledged; 1,024 is more than a whole grace period of frames at the default rate
    #: (15 s at 50 a second).  An older resend is still recognized by its msgSerial and ACKed,
    #: only its original NACK or echo is forgotten.
    max_remembered_results: int = attrs.field(default=1_024, validator=_positive)
    #: Connections without a transport the server keeps for a resume: those in their grace
    #: period or suspended until ``connection_state_ttl``.  A reconnect storm holds every
    #: connection of the process at once; 10,000 is ten times the 1,000 clients of the load
    #: run, more than one process on a small machine serves.  Beyond it the connection held
    #: longest is forgotten first: its members leave at once, as at the end of a grace period,
    #: and its resume gets a new connection with error 80008, as after the ttl.
    max_held_connections: int = attrs.field(default=10_000, validator=_positive)

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
