"""The simulated network: transports between clients and the server, their faults, and time.

A *link* is one transport (WebSocket) between a client and the server, named by an int
transport id.  A client's ``OpenTransport`` makes a link; the upgrade reaches the server after
one latency and becomes ``Server.connect``.  Frames go each way in FIFO order, each after its
own latency drawn from a generator seeded by the simulation's seed, and never overtake an
earlier frame on the same link.  Every frame crosses as JSON text made by
:func:`~presence_core.encode_text` and parsed by :func:`~presence_core.decode` (a broadcast is
encoded once), so the wire format is exercised end to end.

A link ends in one of these ways:

* the client closes it (``CloseTransport``): frames it already sent still arrive, then the
  server learns the transport is gone;
* the server drops it (``Disconnect``): the server's end closes at once, and the client learns
  after the frames already on their way to it;
* the network cuts it (a :class:`~presence_core.testing.DropTransport` or
  :class:`~presence_core.testing.Partition` fault): frames in flight are lost, the server's end
  closes at once, and the client learns at once unless the partition is silent.  While a client
  is partitioned, every new link it opens fails after one latency.  A drop with
  ``sent_arrive`` loses only the frames to the client: those it sent still arrive first;
* it goes half-open (:class:`~presence_core.testing.HalfOpen`): nothing arrives any more,
  neither end is told, and the server's end breaks some time later;
* the client's process dies (:class:`~presence_core.testing.Restart`) or the server's does
  (:class:`~presence_core.testing.ServerRestart`): frames in flight are lost and the other end
  is told at once.

While a :class:`~presence_core.testing.Lag` holds for a client, each of its frames takes an
extra heavy-tailed latency, drawn from the same seeded generator.

:meth:`Network.close_at_server` answers true exactly once per link that reached
``Server.connect``, so every ``Server.connect`` is paired with exactly one
``Server.transport_closed``; :meth:`Network.client_lost` answers true only while the client
still treats the link as its transport, so a client is never told about a transport it closed
itself.  The network decides what each end learns and when; the simulation makes the reducer
calls.

Time is virtual.  Every event of a run waits in one :class:`EventQueue` ordered by
``(time, sequence number)``, so events due at the same time keep the order they were queued in.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any, Final, TypeAlias

from presence_core._codec import decode, encode_text
from presence_core._wire import ProtocolMessage

__all__: list[str] = []

# Event kinds in the queue.
TICK: Final = 0
UP: Final = 1  # a frame arrives at the server
DOWN: Final = 2  # a frame arrives at the client
ACCEPT: Final = 3  # an upgrade request arrives at the server
CLIENT_LOST: Final = 4  # the client learns its transport is gone
SERVER_LOST: Final = 5  # the server learns a transport is gone
SCHEDULED: Final = 6  # a schedule event (operation or fault)
START: Final = 7  # a client connects and attaches its rooms

_QueueItem: TypeAlias = tuple[int, int, int, Any]
# The longest extra delay a Lag gives one frame.
_MAX_LAG: Final = 60_000


class EventQueue:
    """The events of a run in virtual time, ordered by ``(time, order queued)``.

    Ticks do not count as activity: the network is quiet when only ticks are queued.
    """

    __slots__ = ("_heap", "_seq", "activity")

    def __init__(self) -> None:
        self._heap: list[_QueueItem] = []
        self._seq = itertools.count()
        #: Queued events other than ticks.
        self.activity = 0

    def push(self, at: int, kind: int, payload: Any) -> None:
        """Queue an event of ``kind`` for time ``at``."""
        if kind != TICK:
            self.activity += 1
        heapq.heappush(self._heap, (at, next(self._seq), kind, payload))

    def pop(self) -> tuple[int, int, Any]:
        """Take the next event: ``(time, kind, payload)``."""
        at, _, kind, payload = heapq.heappop(self._heap)
        if kind != TICK:
            self.activity -= 1
        return at, kind, payload

    def next_time(self) -> int | None:
        """The time of the next event, or ``None`` when nothing is queued."""
        return self._heap[0][0] if self._heap else None


# How far the server's end of a link got.
PENDING: Final = 0  # the upgrade is on its way to the server
OPEN: Final = 1  # Server.connect was called
CLOSED: Final = 2  # Server.transport_closed was called, or connect never will be


class Link:
    """One transport between a client and the server."""

    __slots__ = (
        "client",
        "client_current",
        "client_tid",
        "cut",
        "last_down",
        "last_up",
        "server_state",
        "tid",
    )

    def __init__(self, tid: int, client: str, client_tid: int, now: int) -> None:
        self.tid = tid
        #: The name of the client at the other end.
        self.client = client
        #: The transport id the client's OpenTransport named, which its frames and loss carry.
        self.client_tid = client_tid
        #: The network broke it: everything in flight and everything later is lost.
        self.cut = False
        self.server_state = PENDING
        #: The client still treats this as its transport (it was neither told of its loss nor
        #: closed it).
        self.client_current = True
        #: Arrival time of the latest frame each way, so frames never overtake each other.
        self.last_up = now
        self.last_down = now


class Network:
    """The links of a run, the latencies of their frames, and the faults that break them.

    Args:
        seed: Seeds the latency generator.
        latency: ``(min_ms, max_ms)`` of each frame's one-way latency, drawn uniformly.
        queue: The run's event queue, which arrivals and losses go into.
        stats: The run's counters; the network counts frames, lost frames and failed connects.
    """

    def __init__(
        self, seed: int, latency: tuple[int, int], queue: EventQueue, stats: Counter[str]
    ) -> None:
        self._rng = random.Random(seed)
        self._latency = latency
        self._queue = queue
        self._stats = stats
        self._links: dict[Hashable, Link] = {}
        self._tids = itertools.count(1)
        #: client name -> the link it treats as its transport.
        self._current: dict[str, Link] = {}
        #: client name -> the virtual time its partition ends.
        self._partitioned_until: dict[str, int] = {}
        #: client name -> (the virtual time its lag ends, the lag's scale in ms).
        self._lag: dict[str, tuple[int, int]] = {}

    def _latency_draw(self, client: str | None = None, now: int = 0) -> int:
        low, high = self._latency
        delay = self._rng.randint(low, high)
        lag = self._lag.get(client) if client is not None else None
        if lag is not None and now < lag[0]:
            # Shape 1.5: a finite mean and a long tail, as latency on a congested path has.
            extra = int(lag[1] * (self._rng.paretovariate(1.5) - 1.0))
            delay += min(extra, _MAX_LAG)
        return delay

    # --- what clients do --------------------------------------------------------------------

    def current(self, client: str) -> Link | None:
        """The link ``client`` treats as its transport, if any."""
        return self._current.get(client)

    def working(self, client: str) -> bool:
        """Whether ``client``'s transport is connected at the server and not cut by the network."""
        link = self._current.get(client)
        return link is not None and not link.cut and link.server_state == OPEN

    def open(self, client: str, client_tid: int, params: dict[str, str], now: int) -> None:
        """``client`` opens the transport it calls ``client_tid``, closing its current one first."""
        if client in self._current:
            self.close_by_client(client, now)
        link = Link(next(self._tids), client, client_tid, now)
        self._links[link.tid] = link
        self._current[client] = link
        delay = self._latency_draw(client, now)
        if now < self._partitioned_until.get(client, 0):
            link.cut = True
            link.server_state = CLOSED
            self._stats["connects_failed"] += 1
            self._queue.push(now + delay, CLIENT_LOST, link)
            return
        link.last_up = now + delay
        self._queue.push(link.last_up, ACCEPT, (link, dict(params)))

    def send(self, client: str, message: ProtocolMessage, now: int) -> None:
        """``client`` sends a frame on its transport; without one the frame goes nowhere."""
        link = self._current.get(client)
        if link is None:
            self._stats["frames_without_transport"] += 1
            return
        text = encode_text(message)
        at = max(now + self._latency_draw(client, now), link.last_up)
        link.last_up = at
        self._stats["frames_up"] += 1
        self._queue.push(at, UP, (link, text))

    def close_by_client(self, client: str, now: int) -> None:
        """``client`` closes its transport: the server learns after the frames already sent."""
        link = self._current.pop(client, None)
        if link is None:
            return
        link.client_current = False
        self._queue.push(max(now, link.last_up), SERVER_LOST, link)

    # --- what the server does ---------------------------------------------------------------

    def deliver(
        self, transport_ids: Iterable[Hashable], message: ProtocolMessage, now: int
    ) -> None:
        """The server sends one frame to each of ``transport_ids``, in this order."""
        text = encode_text(message)
        for tid in transport_ids:
            link = self._links[tid]
            at = max(now + self._latency_draw(link.client, now), link.last_down)
            link.last_down = at
            self._stats["frames_down"] += 1
            self._queue.push(at, DOWN, (link, text))

    def link(self, transport_id: Hashable) -> Link:
        """The link of a transport id the server named."""
        return self._links[transport_id]

    def notify_client_after_frames(self, link: Link, now: int) -> None:
        """The server dropped ``link``: its client learns after the frames already on their way."""
        if link.client_current:
            self._queue.push(max(now, link.last_down), CLIENT_LOST, link)

    # --- faults ---------------------------------------------------------------------------

    def cut(self, client: str) -> Link | None:
        """The network breaks ``client``'s transport; it is returned (``None`` if it had none).

        The caller closes the server's end and tells the client, as the fault requires.
        """
        link = self._current.get(client)
        if link is not None:
            link.cut = True
        return link

    def partition(self, client: str, until: int) -> None:
        """``client`` has no network until virtual time ``until``: its new links fail."""
        self._partitioned_until[client] = max(self._partitioned_until.get(client, 0), until)

    def lag(self, client: str, until: int, scale: int) -> None:
        """``client``'s frames take an extra heavy-tailed latency until ``until``."""
        self._lag[client] = (until, scale)

    def drop_after_sent(self, client: str, now: int) -> Link | None:
        """Break ``client``'s transport, letting the frames it already sent arrive first.

        The server's end closes once they have arrived; the caller tells the client.
        """
        link = self._current.get(client)
        if link is not None:
            self._queue.push(max(now, link.last_up), SERVER_LOST, link)
        return link

    def half_open(self, client: str, breaks_at: int) -> None:
        """``client``'s transport stops delivering; its server end breaks at ``breaks_at``."""
        link = self._current.get(client)
        if link is not None:
            link.cut = True
            self._queue.push(breaks_at, SERVER_LOST, link)

    def abandon(self, client: str) -> Link | None:
        """``client``'s process died: its transport is cut, and the client end forgotten.

        The caller closes the server's end.
        """
        link = self._current.pop(client, None)
        if link is not None:
            link.cut = True
            link.client_current = False
        return link

    def server_restart(self) -> list[Link]:
        """The server's process died: every link is cut and its server end gone, untold.

        Returns the links their clients still treat as current, for the caller to tell them.
        """
        for link in self._links.values():
            if link.server_state != CLOSED:
                link.cut = True
                link.server_state = CLOSED
        return list(self._current.values())

    # --- arrivals: whether the other end hears of it ------------------------------------------

    def accept(self, link: Link) -> bool:
        """The upgrade of ``link`` arrives: true if the server is to be connected on it."""
        if link.cut or link.server_state != PENDING:
            return False
        link.server_state = OPEN
        return True

    def arrive_up(self, link: Link, text: str) -> ProtocolMessage | None:
        """A frame reaches the server's end; the decoded frame, or ``None`` if it was lost."""
        if link.cut or link.server_state != OPEN:
            self._stats["frames_lost"] += 1
            return None
        return decode(text)

    def arrive_down(self, link: Link, text: str) -> ProtocolMessage | None:
        """A frame reaches the client's end; the decoded frame, or ``None`` if it was lost."""
        if link.cut or not link.client_current:
            self._stats["frames_lost"] += 1
            return None
        return decode(text)

    def close_at_server(self, link: Link) -> bool:
        """The server's end of ``link`` closes: true if the server must be told (it was open).

        An upgrade still on its way is abandoned.
        """
        was_open = link.server_state == OPEN
        link.server_state = CLOSED
        return was_open

    def client_lost(self, link: Link) -> bool:
        """The client's end of ``link`` learns it is gone: true if the client must be told."""
        if not link.client_current:
            return False
        link.client_current = False
        del self._current[link.client]
        return True
