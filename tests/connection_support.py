"""Helpers for tests that drive a Connection on its current transport.

Most connection tests are about what one transport carries; these helpers name that
transport so that the tests need not.  Tests of transport identity pass ids themselves.
"""

from __future__ import annotations

from presence_core import Connection, ErrorInfo, Output, ProtocolMessage

#: A transport id no connection ever issues (they count from 1): input on it is always stale.
NO_TRANSPORT = 0


def current(c: Connection) -> int:
    """The id of ``c``'s current transport, or :data:`NO_TRANSPORT` without one."""
    tid = c.transport_id
    return NO_TRANSPORT if tid is None else tid


def receive(c: Connection, message: ProtocolMessage, *, now: int) -> Output:
    """``message`` arrives on ``c``'s current transport."""
    return c.receive(message, transport_id=current(c), now=now)


def lost(c: Connection, *, now: int, error: ErrorInfo | None = None) -> Output:
    """``c``'s current transport is lost."""
    return c.transport_closed(transport_id=current(c), now=now, error=error)
