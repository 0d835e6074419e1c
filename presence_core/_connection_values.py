"""The connection reducer's value types: its settings, and the snapshot of its whole state.

Re-exported by :mod:`presence_core._connection`, whose rules they serve.
"""

from __future__ import annotations

from typing import Any

import attrs

from presence_core._errors import UsageError
from presence_core._outbox import MAX_QUEUED_FRAMES
from presence_core._output import ConnectionState
from presence_core._presence_set import PresenceSnapshot
from presence_core._wire import ErrorInfo

__all__ = ["ConnectionSettings", "ConnectionSnapshot"]


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
    #: disconnectedRetryTimeout: the initial wait after a failed connection attempt (RTN14d),
    #: which later attempts of the same cycle stretch by RTB1's backoff.  15 s.
    disconnected_retry_timeout: int = attrs.field(default=15_000, validator=_positive)
    #: suspendedRetryTimeout: wait between attempts while SUSPENDED (RTN14e).  30 s.
    suspended_retry_timeout: int = attrs.field(default=30_000, validator=_positive)
    #: connectionStateTtl until a CONNECTED says otherwise: how long a lost connection stays
    #: resumable before the client gives up resuming and becomes SUSPENDED (RTN14e).  120 s.
    connection_state_ttl: int = attrs.field(default=120_000, validator=_positive)
    #: channelRetryTimeout: how long a room that became SUSPENDED while the connection stayed
    #: up waits before it attaches again (RTL13b).  15 s.
    channel_retry_timeout: int = attrs.field(default=15_000, validator=_positive)
    #: Ask the server for HEARTBEAT frames (``heartbeats=true``), so that an idle but healthy
    #: transport still shows activity.  Browsers do this; a WebSocket client that cannot see
    #: WS ping frames must.
    heartbeats: bool = True
    #: Bound on outstanding pings, so a caller pinging in a loop cannot grow memory.
    max_pending_pings: int = attrs.field(default=64, validator=_positive)
    #: How long before a token's known expiry a renewable connection asks for a new one (see
    #: :mod:`presence_core._credentials`).  30 s.
    token_renewal_margin: int = attrs.field(default=30_000, validator=_positive)
    #: Frames the connection keeps queued, sent but unacknowledged, or held for a room that is
    #: attaching; past it an operation fails at once with 42910 (see
    #: :data:`presence_core._outbox.MAX_QUEUED_FRAMES` for why 10,000).
    max_queued_frames: int = attrs.field(default=MAX_QUEUED_FRAMES, validator=_positive)


@attrs.frozen(kw_only=True)
class ConnectionSnapshot:
    """A comparable picture of a Connection's whole state, for tests and debugging."""

    state: ConnectionState
    #: The id of the current transport (see :attr:`Connection.transport_id`).
    transport_id: int | None
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
    #: ``(channel, operation ids)`` of every frame waiting for ``maxInboundRate`` (D10).
    waiting: tuple[tuple[str, tuple[int, ...]], ...]
    rooms: tuple[tuple[str, PresenceSnapshot], ...]
    pings: tuple[tuple[str, int], ...]
    now: int | None
    next_deadline: int | None
