"""What the client and the server host share: the clock, one re-armable timer, a mailbox.

Both drive a sans-IO reducer the same way: every input is a synchronous call with ``now``
from :func:`now_ms`, and one :class:`Timer` calls the reducer's ``tick`` when ``now`` reaches
its ``next_deadline()``.  A :class:`Mailbox` carries items from synchronous code (a reducer's
commands) to the one task that consumes them, so performing a command never blocks.

The client also reads one thing from a token here, a JWT's expiry, to renew it in time; and
:func:`redacted` keeps credentials out of the frames it logs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import anyio
import attrs
import jwt

from presence_core._wire import AuthDetails, ProtocolMessage

__all__: list[str] = []

T = TypeVar("T")

#: What a credential is replaced with in a logged frame.
_HIDDEN = "<redacted>"


def now_ms() -> int:
    """The reducers' ``now``: wall-clock milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def token_expires_at(token: str) -> int | None:
    """When ``token`` expires (epoch ms): a JWT's ``exp``; ``None`` for an opaque token.

    The signature is not checked: only the server can, and the client only needs to know
    when to renew.
    """
    if token.count(".") != 2:
        return None  # opaque: only three dot-separated parts make a JWT
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    return int(exp * 1000) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def redacted(message: ProtocolMessage) -> ProtocolMessage:
    """``message`` as a log line may show it: connection keys and tokens hidden.

    A connection key is a resume credential and a token a bearer one: whoever reads a log must
    not be able to take over the connection with them.
    """
    changes: dict[str, Any] = {}
    if message.connection_key is not None:
        changes["connection_key"] = _HIDDEN
    details = message.connection_details
    if details is not None and details.connection_key is not None:
        changes["connection_details"] = attrs.evolve(details, connection_key=_HIDDEN)
    if message.auth is not None:
        changes["auth"] = AuthDetails(access_token=_HIDDEN)
    return attrs.evolve(message, **changes) if changes else message


class Timer:
    """One timer, armed at a reducer's ``next_deadline()``; :meth:`run` fires it.

    :meth:`rearm` is called after reducer calls that may have moved the deadline earlier.  A
    deadline that moved later needs no wake-up: the timer then fires early, ``fire`` finds
    nothing due (a reducer's ``tick`` before its deadline does nothing) and the timer re-arms.
    """

    __slots__ = ("_armed", "_deadline", "_fire", "_wake")

    def __init__(self, deadline: Callable[[], int | None], fire: Callable[[], None]) -> None:
        self._deadline = deadline
        self._fire = fire
        self._armed: int | None = None
        self._wake = anyio.Event()

    def rearm(self) -> None:
        """Wake the timer if the reducer's deadline is now earlier than the armed one."""
        deadline = self._deadline()
        if deadline is not None and (self._armed is None or deadline < self._armed):
            self._wake.set()

    async def run(self) -> None:
        """Fire at each deadline, forever (until cancelled)."""
        while True:
            wake = self._wake = anyio.Event()
            deadline = self._armed = self._deadline()
            if deadline is None:
                await wake.wait()
                continue
            delay = (deadline - now_ms()) / 1000
            if delay > 0:
                with anyio.move_on_after(delay):
                    await wake.wait()
                if wake.is_set():
                    continue
            self._fire()


class Mailbox(Generic[T]):
    """An unbounded FIFO from synchronous producers to one consuming task.

    The consumer awaits :meth:`ready`, then pops from :attr:`items` until it is empty, so a
    burst costs one wake-up.  :meth:`close` ends it once the items already put are consumed;
    :meth:`abort` ends it at once, dropping them.
    """

    __slots__ = ("_wake", "closed", "items")

    def __init__(self) -> None:
        self.items: deque[T] = deque()
        self.closed = False
        self._wake: anyio.Event | None = None

    def put(self, item: T) -> None:
        """Append ``item`` (ignored once closed)."""
        if self.closed:
            return
        self.items.append(item)
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def close(self) -> None:
        """No more items; the consumer still gets those already put."""
        self.closed = True
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set()

    def abort(self) -> None:
        """No more items, and drop those not consumed yet."""
        self.items.clear()
        self.close()

    async def ready(self) -> bool:
        """Wait for an item; return False once the mailbox is closed and empty."""
        while not self.items:
            if self.closed:
                return False
            self._wake = wake = anyio.Event()
            await wake.wait()
        return True
