"""Fixtures of the benchmark suite: one room per size, inputs built lazily and kept per size.

The ``size`` fixture is module-scoped and parametrised, so pytest runs every benchmark of a
module at 1k, then at 10k, then at 100k members, and drops a size's inputs before building the
next one's.  Nothing here is timed.
"""

from __future__ import annotations

from functools import cached_property
from typing import Final

import pytest

from benchmarks._inputs import (
    RESYNC_ID,
    SIZES,
    Room,
    make_room,
    presence_frames,
    sync_pages,
)
from presence_core import (
    PresenceAction,
    ProtocolMessage,
)

#: pytest-benchmark rounds per size for stateful workloads, whose setup rebuilds a room.
#: Enough for a stable median at small sizes; three at 100k keep the suite within minutes.
ROUNDS: Final = {1_000: 30, 10_000: 10, 100_000: 3}


class Inputs:
    """The prebuilt inputs of one room size; each list is built on first use."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.size = room.size
        self.rounds = ROUNDS.get(room.size, 3)
        self._presence: dict[tuple[PresenceAction, int], list[ProtocolMessage]] = {}

    def presence(self, action: PresenceAction, per_message: int) -> list[ProtocolMessage]:
        """PRESENCE frames applying ``action`` to every member, ``per_message`` items each."""
        key = (action, per_message)
        cached = self._presence.get(key)
        if cached is None:
            cached = self._presence[key] = presence_frames(
                self.room, action, per_message=per_message
            )
        return cached

    @cached_property
    def sync(self) -> list[ProtocolMessage]:
        """A whole SYNC of the room, in pages of 100."""
        return sync_pages(self.room)

    @cached_property
    def resync(self) -> list[ProtocolMessage]:
        """A second SYNC (new sync id) listing only the first 90% of the members."""
        return sync_pages(self.room, sync_id=RESYNC_ID, keep=0.9)


def _size_id(size: int) -> str:
    return f"{size // 1000}k"


@pytest.fixture(scope="module", params=SIZES, ids=_size_id)
def inputs(request: pytest.FixtureRequest) -> Inputs:
    """The current size's inputs (1k, 10k, 100k members), dropped when the size changes."""
    size: int = request.param
    return Inputs(make_room(size))
