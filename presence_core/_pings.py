"""A connection's outstanding pings (RTN13).

The rules, applied here and nowhere else:

* **A ping** is a HEARTBEAT carrying its id; the server's HEARTBEAT with the same id answers
  it, with the round trip measured on the caller's clock (:class:`~presence_core.PingAnswered`).
* **An unanswered ping** fails after the request timeout, and every outstanding one fails
  when the transport it went out on is gone (:class:`~presence_core.PingFailed`).
* **A bound** on outstanding pings keeps a caller pinging in a loop from growing memory.
"""

from __future__ import annotations

from typing import Final

from presence_core._errors import UsageError
from presence_core._output import PingAnswered, PingFailed, Send
from presence_core._wire import ErrorInfo, ProtocolAction, ProtocolMessage

__all__: list[str] = []

_PING_TIMEOUT: Final = ErrorInfo(code=50003, status_code=504, message="ping timed out")


class Pings:
    """The pings in flight on the current transport, by id, with when each was sent."""

    __slots__ = ("_limit", "_sent", "_timeout")

    def __init__(self, limit: int, timeout: int) -> None:
        self._limit = limit
        self._timeout = timeout
        self._sent: dict[str, int] = {}

    def check(self, ping_id: str) -> None:
        """Raise UsageError if ``ping_id`` cannot be sent now (empty, in flight, too many)."""
        if not ping_id or ping_id in self._sent:
            raise UsageError(f"ping id {ping_id!r} is empty or already in flight")
        if len(self._sent) >= self._limit:
            raise UsageError("too many pings in flight")

    def send(self, ping_id: str, t: int) -> Send:
        """Record ``ping_id`` as sent at ``t`` (checked by :meth:`check`); its HEARTBEAT."""
        self._sent[ping_id] = t
        return Send(message=ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=ping_id))

    def answer(self, ping_id: str | None, t: int) -> PingAnswered | None:
        """The answer a HEARTBEAT carrying ``ping_id`` gives at ``t``, if it answers a ping."""
        sent = self._sent.pop(ping_id, None) if ping_id is not None else None
        if sent is None or ping_id is None:
            return None
        return PingAnswered(id=ping_id, round_trip=t - sent)

    def next_deadline(self) -> int | None:
        """When the oldest ping times out, or ``None`` without pings."""
        if not self._sent:
            return None
        return min(self._sent.values()) + self._timeout

    def expire(self, t: int) -> list[PingFailed]:
        """Fail every ping unanswered for the timeout at ``t``."""
        late = [pid for pid, sent in self._sent.items() if t >= sent + self._timeout]
        for pid in late:
            del self._sent[pid]
        return [PingFailed(id=pid, error=_PING_TIMEOUT) for pid in late]

    def fail_all(self, reason: ErrorInfo) -> list[PingFailed]:
        """Fail every ping: the transport they went out on is gone."""
        sent, self._sent = self._sent, {}
        return [PingFailed(id=pid, error=reason) for pid in sent]

    def items(self) -> tuple[tuple[str, int], ...]:
        """``(id, sent at)`` of every ping in flight, oldest first."""
        return tuple(self._sent.items())
