"""Bounded event iterators, and waiting for a state.

A :class:`Feed` is what ``room.presence.events()`` and ``client.connection.changes()``
return: an async iterator over events as they happen, with a bounded buffer.

**Overflow policy.**  When a consumer falls ``capacity`` events behind, the feed stops taking
events: it yields the ones it holds, then raises :class:`FeedOverflow`.  Presence is a state
rebuilt from every event, so a silent gap would leave the consumer with a wrong picture; the
error tells it to read the state again (``await room.presence.get()``) and open a new feed.
The client itself never waits for a consumer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from types import TracebackType
from typing import Generic, TypeVar

from presence_core._errors import PresenceError
from presence_core.client._support import Mailbox

__all__ = ["FeedOverflow", "Feed"]

T = TypeVar("T")
S = TypeVar("S")


class FeedOverflow(PresenceError):
    """The consumer of a :class:`Feed` fell too far behind; events after the buffer were lost."""

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"more than {capacity} events were waiting for this consumer; read the state "
            "again and open a new feed",
            code=50000,
            status_code=500,
        )


class Feed(Generic[T]):
    """An async iterator of events with a bounded buffer (see the module's overflow policy).

    Use it with ``async for``; ``close()`` (or leaving ``async with feed:``) stops it, and it
    ends by itself when the client closes.
    """

    __slots__ = ("_capacity", "_mailbox", "_on_close", "_overflowed")

    def __init__(self, capacity: int, on_close: Callable[[], None] | None = None) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ValueError(f"a feed's buffer must hold at least one event, not {capacity!r}")
        self._capacity = capacity
        self._mailbox: Mailbox[T] = Mailbox()
        self._on_close = on_close
        self._overflowed = False

    def push(self, item: T) -> None:
        """Add an event (called by the client, synchronously)."""
        mailbox = self._mailbox
        if len(mailbox.items) < self._capacity:
            mailbox.put(item)
        elif not mailbox.closed:
            self._overflowed = True
            self.close()

    def close(self) -> None:
        """Stop taking events; iteration ends after those already buffered."""
        self._mailbox.close()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        mailbox = self._mailbox
        if await mailbox.ready():
            return mailbox.items.popleft()
        if self._overflowed:
            self._overflowed = False
            raise FeedOverflow(self._capacity)
        raise StopAsyncIteration

    async def __aenter__(self) -> Feed[T]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class StateWatch(Generic[S, T]):
    """Who waits for a state of one object (a connection, a room), and its feeds of changes."""

    __slots__ = ("_feeds", "_waiters")

    def __init__(self) -> None:
        self._waiters: list[tuple[Collection[S], Mailbox[T]]] = []
        self._feeds: list[Feed[T]] = []

    def changed(self, state: S, change: T) -> None:
        """``state`` was entered by ``change``: tell who waits for it, feed the feeds."""
        for states, box in self._waiters:
            if state in states:
                box.put(change)
        for feed in tuple(self._feeds):
            feed.push(change)

    async def after(
        self, start: Callable[[], object], states: Collection[S], done: Callable[[T], bool]
    ) -> T:
        """Call ``start``, then wait for a change into ``states`` that ``done`` accepts.

        The waiter is in place before ``start`` runs, so a change that ``start`` itself
        causes is seen, and every later one is kept until read.  ``done`` may raise to end
        the wait with an error.
        """
        waiter = (states, Mailbox[T]())
        box = waiter[1]
        self._waiters.append(waiter)
        try:
            start()
            while True:
                await box.ready()
                change = box.items.popleft()
                if done(change):
                    return change
        finally:
            self._waiters.remove(waiter)

    def feed(self, capacity: int) -> Feed[T]:
        """A new feed of every change from now on."""
        feed: Feed[T] = Feed(capacity, lambda: self._feeds.remove(feed))
        self._feeds.append(feed)
        return feed

    def close(self) -> None:
        """End every feed (the client is closing)."""
        for feed in tuple(self._feeds):
            feed.close()
