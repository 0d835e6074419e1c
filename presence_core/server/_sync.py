"""SYNC pages sent over time, as a server under load sends them.

RULES OF THIS MODULE

* A sync is a list of pages made at its start, from the members present then: a page sent
  later still carries them as they were, so a client meets entries older than the live
  PRESENCE it received meanwhile (its newness rules drop them, RTP2c).
* With an interval of 0 every page goes at once.  Otherwise the first page goes at once and
  each later one ``interval`` ms after the one before, to each recipient on its own.
* A new sync of a channel for a transport replaces the one still running there: the rest of
  the old one is never sent (RTP18a: the client restarts on the new sync id).
* A page is sent only while its transport is still attached to the channel; a sync whose
  transport detached or went away ends there.
* A replaced sync leaves its heap entry behind, deleted when it comes up.  A client asking for
  syncs in a loop would pile them up behind another sync's earlier page, so the heap is
  rebuilt from the running syncs' entries when stale ones outnumber those: it stays within
  twice the running syncs, of which there is one per (channel, transport) at most.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Final

from presence_core._wire import ProtocolMessage
from presence_core.server._output import Deliver, ServerCommand, TransportId

__all__: list[str] = []

_Key = tuple[str, TransportId]

# A heap with fewer entries than this is never rebuilt: rebuilding costs more than its stale ones.
_MIN_REBUILD: Final = 64


class SyncPager:
    """The pages still to send of every running sync, by (channel, transport).

    Args:
        interval: Milliseconds between two pages of one sync; 0 sends them all at once.
    """

    __slots__ = ("_heap", "_interval", "_running", "_tokens")

    def __init__(self, interval: int) -> None:
        self._interval = interval
        # (due, token, key): the next page of the sync ``token``; stale once it is replaced.
        self._heap: list[tuple[int, int, _Key]] = []
        #: (channel, transport) -> (token, the pages not yet sent, oldest first).
        self._running: dict[_Key, tuple[int, list[ProtocolMessage]]] = {}
        self._tokens = itertools.count()

    @property
    def paced(self) -> bool:
        """Whether pages go out over time (a non-zero interval)."""
        return self._interval > 0

    def start(
        self,
        channel: str,
        recipients: Sequence[TransportId],
        pages: Sequence[ProtocolMessage],
        now: int,
        out: list[ServerCommand],
    ) -> None:
        """Send a sync of ``channel`` to each of ``recipients``: the first page now."""
        if not pages:
            return
        if not self.paced:
            out.extend(Deliver(transport_ids=tuple(recipients), message=page) for page in pages)
            return
        out.append(Deliver(transport_ids=tuple(recipients), message=pages[0]))
        rest = list(pages[1:])
        for transport in recipients:
            key = (channel, transport)
            if not rest:
                self._running.pop(key, None)  # a one-page sync still replaces a running one
                continue
            token = next(self._tokens)
            self._running[key] = (token, list(rest))
            heapq.heappush(self._heap, (now + self._interval, token, key))
        heap, running = self._heap, self._running
        if len(heap) > max(_MIN_REBUILD, 2 * len(running)):
            heap[:] = [entry for entry in heap if running.get(entry[2], (None,))[0] == entry[1]]
            heapq.heapify(heap)

    def next_deadline(self) -> int | None:
        """When the next page is due, or ``None``."""
        heap, running = self._heap, self._running
        while heap and running.get(heap[0][2], (None,))[0] != heap[0][1]:
            heapq.heappop(heap)  # a sync replaced or ended: its entry is stale
        return heap[0][0] if heap else None

    def due(
        self, now: int, attached: Callable[[str, TransportId], bool], out: list[ServerCommand]
    ) -> None:
        """Send every page due at ``now`` whose transport is still ``attached`` to its channel."""
        heap, running = self._heap, self._running
        while (due := self.next_deadline()) is not None and due <= now:
            _, token, key = heapq.heappop(heap)
            pages = running[key][1]
            channel, transport = key
            if not attached(channel, transport):
                del running[key]
                continue
            out.append(Deliver(transport_ids=(transport,), message=pages.pop(0)))
            if pages:
                heapq.heappush(heap, (due + self._interval, token, key))
            else:
                del running[key]
