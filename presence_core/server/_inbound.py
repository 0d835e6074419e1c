"""Checks on numbered inbound frames: msgSerial dedup, remembered results, size and rate.

RULES OF THIS MODULE

* Frames the client resends after a resume (RTN19a) are deduplicated by (connection,
  msgSerial): the stored ACK or NACK is sent again and nothing is applied twice.  Only the
  latest results are remembered (``max_remembered_results``); an older duplicate is still
  recognized by its serial and ACKed, only its original NACK (or echo) is forgotten.
* A duplicate PRESENCE frame first has its echo re-sent to the sender alone
  (:meth:`Inbound._echo_again` says which part and why).
* Once the grace period has ended, the connection's applied PRESENCE frames are undone (their
  members left), so a resend of one is applied again, stamped afresh.  MESSAGE frames stay
  deduplicated for the connection's whole life: a chat message was delivered and must never be
  broadcast twice.
* The inbound rate limit is a token bucket per connection, full at one second's allowance.
  Each message or presence item costs one, except a presence item that re-enters a member
  with nothing newer (:func:`~presence_core.server._channels.is_reentry_of`), which costs
  nothing.
"""

from __future__ import annotations

from typing import Any

import attrs

from presence_core._codec import json_size
from presence_core._wire import (
    ErrorInfo,
    PresenceAction,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server._channels import Channels
from presence_core.server._output import (
    Deliver,
    Reject,
    ServerCommand,
    TransportId,
    error,
    error_frame,
)
from presence_core.server._registry import Connection

__all__: list[str] = []


@attrs.define(eq=False)
class InboundState:
    """One connection's dedup record, by msgSerial, and its rate-limit bucket."""

    #: Thousandths of a message the connection may still send, as of ``allowance_at``.
    allowance: int
    allowance_at: int
    #: How many results to remember (:attr:`ServerConfig.max_remembered_results`).
    max_results: int
    max_serial: int = -1
    #: The ACK or NACK sent for each remembered serial, or None for an applied PRESENCE frame
    #: whose effect the grace-period leaves undid.
    results: dict[int, ProtocolMessage | None] = attrs.Factory(dict)
    #: For each ACKed PRESENCE frame still in ``results``, the stamped frame echoed to the
    #: sender (None when it changed nothing); its keys are a subset of results'.
    echoes: dict[int, ProtocolMessage | None] = attrs.Factory(dict)


def ack(serial: int) -> ProtocolMessage:
    """The ACK of the frame numbered ``serial``."""
    return ProtocolMessage(action=ProtocolAction.ACK, msg_serial=serial, count=1)


def nack(serial: int, reason: ErrorInfo) -> ProtocolMessage:
    """The NACK of the frame numbered ``serial``, for ``reason``."""
    return ProtocolMessage(action=ProtocolAction.NACK, msg_serial=serial, count=1, error=reason)


def payload_size(data: Any) -> int:
    """Estimate the wire size of a payload: UTF-8 length of its JSON form."""
    if data is None:
        return 0
    if isinstance(data, str):
        return len(data.encode("utf-8", "surrogatepass"))
    if isinstance(data, bytes | bytearray | memoryview):
        return len(data)
    try:
        return json_size(data)
    except (TypeError, ValueError, RecursionError):
        # Not JSON-shaped (a caller-built message); its repr is a fair upper estimate.
        return len(repr(data).encode())


def message_size(data: Any, extras: Any, client_id: str | None) -> int:
    """The size a message counts against ``max_message_size``: data, extras and clientId."""
    return payload_size(data) + payload_size(extras) + payload_size(client_id)


def remember(
    state: InboundState,
    tid: TransportId,
    serial: int,
    result: ProtocolMessage,
    out: list[ServerCommand],
) -> None:
    """Send ``result`` (the ACK or NACK of ``serial``) and keep it for a resend."""
    # A frame re-applied after the grace period has an older serial than the newest.
    state.max_serial = max(state.max_serial, serial)
    results = state.results
    results[serial] = result
    if len(results) > state.max_results:
        oldest = next(iter(results))
        del results[oldest]
        state.echoes.pop(oldest, None)
    out.append(Deliver(transport_ids=(tid,), message=result))


def remember_echo(
    state: InboundState,
    tid: TransportId,
    serial: int,
    echo: ProtocolMessage | None,
    out: list[ServerCommand],
) -> None:
    """ACK the PRESENCE frame ``serial``, keeping its ``echo`` for a resend (see the rules)."""
    state.echoes[serial] = echo
    remember(state, tid, serial, ack(serial), out)


def undo_presence(state: InboundState) -> None:
    """Mark every applied PRESENCE frame to be applied again: the grace period is over.

    A client whose ACK was lost resends such a frame after it resumes; deduplicating it would
    re-ACK an operation of which nothing remains (the member it entered is absent, and a client
    that never saw the echo has nothing to re-enter).  Applied again it gets the same ids
    (connId:msgSerial:index) but the current time, so clients rank it after the synthesized
    leave (RTP2b1 compares by timestamp, as that leave's id is not the connection's).  NACKed
    frames had no effect to undo.
    """
    results = state.results
    for serial in state.echoes:
        results[serial] = None
    state.echoes.clear()


class Inbound:
    """The msgSerial and rate checks every PRESENCE and MESSAGE frame passes first.

    Args:
        rate: Inbound messages per second per connection.
        remembered: Results remembered per connection for resends.
        channels: Where a duplicate PRESENCE frame's members are looked up for its re-echo.
    """

    __slots__ = ("_channels", "_rate", "_remembered")

    def __init__(self, rate: int, remembered: int, channels: Channels) -> None:
        self._rate = rate
        self._remembered = remembered
        self._channels = channels

    def new_state(self, clock: int) -> InboundState:
        """The record of a new connection: no serial seen, a full rate bucket."""
        return InboundState(
            allowance=self._rate * 1000, allowance_at=clock, max_results=self._remembered
        )

    def check_serial(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> int | None:
        """Return the frame's msgSerial if it is new; otherwise answer it and return None."""
        serial = msg.msg_serial
        if serial is None or serial < 0:
            # Nothing to NACK against; an ERROR naming the channel fails only that channel.
            reason = error(40000, 400, "Missing or invalid msgSerial")
            out.append(Deliver(transport_ids=(tid,), message=error_frame(reason, msg.channel)))
            return None
        state = conn.inbound
        if serial <= state.max_serial:
            presence = msg.action == ProtocolAction.PRESENCE
            if presence and serial in state.results and state.results[serial] is None:
                return serial  # Its effect was undone at the end of the grace period.
            # A resend after reconnect: answer again, never apply twice.
            if presence:
                self._echo_again(conn, tid, state.echoes.get(serial), out)
            result = state.results.get(serial) or ack(serial)
            out.append(Deliver(transport_ids=(tid,), message=result))
            return None
        return serial

    def _echo_again(
        self,
        conn: Connection,
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
        own = self._channels.by_name[echo.channel].members.get(conn.id, {})
        items = tuple(
            item
            for item in echo.presence or ()
            if item.action == PresenceAction.LEAVE
            or ((current := own.get(item.client_id or "")) is not None and current.id == item.id)
        )
        if items:
            again = attrs.evolve(echo, presence=items, channel_serial=None)
            out.append(Deliver(transport_ids=(tid,), message=again))

    def take_allowance(self, state: InboundState, count: int, clock: int) -> None:
        """Charge ``count`` messages to the connection's rate budget, or raise Reject (42910)."""
        rate = self._rate
        elapsed = clock - state.allowance_at
        allowance = min(rate * 1000, state.allowance + elapsed * rate)
        if allowance < count * 1000:
            raise Reject(error(42910, 429, "Rate limit exceeded; request rejected"))
        state.allowance = allowance - count * 1000
        state.allowance_at = clock
