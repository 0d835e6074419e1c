"""Newness benchmarks: parsing message ids into ``(msgSerial, index)`` positions (RTP2b2).

The parse keeps a bounded memo of the ``"<msgSerial>:<index>"`` tails it has seen (see
``presence_core/_newness.py``), and a long-lived client sees many distinct tails.  Both
workloads time the parse through ``position`` (the own-member map's entry point) and through
``superseding`` (the member map's hot path):

* ``cycle``: ids with 10,000 distinct msgSerials, parsed ten times over, the memo empty at the
  start of each round: a large working set that the memo can still hold;
* ``history``: the memo first sees 20,000 distinct tails once (untimed; more than it holds),
  then ids with 1,000 new msgSerials are parsed ten times over: the memo has to make room for
  the tails in use now.

``extra_info`` records the median in ns per id and the memo's size after the round.

Run with ``pytest benchmarks/test_bench_newness.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import pytest

from presence_core import PresenceAction, PresenceMessage
from presence_core._newness import _REST_MEMO, position, superseding

BenchmarkFixture = Any

CONNECTION: Final = "xK3v9QpZ2m"
PASSES: Final = 10
ROUNDS: Final = 20
#: Distinct msgSerials in the ``cycle`` workload.
CYCLE: Final = 10_000
#: Distinct tails seen before the ``history`` workload, more than the memo holds.
HISTORY: Final = 20_000
#: Distinct msgSerials of the ``history`` workload's working set (all new to the memo).
WORKING_SET: Final = 1_000


def _messages(serials: range, index: int) -> list[PresenceMessage]:
    return [
        PresenceMessage(
            action=PresenceAction.UPDATE,
            client_id="user",
            connection_id=CONNECTION,
            id=f"{CONNECTION}:{serial}:{index}",
            timestamp=serial,
        )
        for serial in serials
    ]


_CYCLE_MESSAGES: Final = _messages(range(CYCLE), 1)
_HISTORY_IDS: Final = [f"{CONNECTION}:{serial}:2" for serial in range(HISTORY)]
_WORKING_MESSAGES: Final = _messages(range(HISTORY, HISTORY + WORKING_SET), 1)
#: The stored entry every incoming message is compared with: parsed, older than all of them.
_STORED: Final = (_messages(range(1), 0)[0], 0, 0)


def _by_position(messages: list[PresenceMessage]) -> None:
    ids = [message.id for message in messages]
    for _ in range(PASSES):
        for message_id in ids:
            position(message_id, CONNECTION)


def _by_superseding(messages: list[PresenceMessage]) -> None:
    table = {"key": _STORED}
    for _ in range(PASSES):
        for message in messages:
            superseding(message, CONNECTION, _STORED, table, "key")


_VIA: Final[dict[str, Callable[[list[PresenceMessage]], None]]] = {
    "position": _by_position,
    "superseding": _by_superseding,
}


def _empty_memo() -> None:
    _REST_MEMO.clear()


def _long_history() -> None:
    _REST_MEMO.clear()
    for message_id in _HISTORY_IDS:
        position(message_id, CONNECTION)


def _record(benchmark: BenchmarkFixture, ids_per_round: int) -> None:
    benchmark.extra_info["ids_per_round"] = ids_per_round
    benchmark.extra_info["memo_entries_after"] = len(_REST_MEMO)
    last = _CYCLE_MESSAGES[-1]
    assert position(last.id, CONNECTION) == (CYCLE - 1, 1)
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["median_ns_per_id"] = round(
            stats.stats.median * 1e9 / ids_per_round, 1
        )


#: Workload name -> (its messages, the untimed setup of each round, ids parsed per round).
_WORKLOADS: Final[dict[str, tuple[list[PresenceMessage], Callable[[], None], int]]] = {
    "cycle": (_CYCLE_MESSAGES, _empty_memo, CYCLE * PASSES),
    "history": (_WORKING_MESSAGES, _long_history, WORKING_SET * PASSES),
}


@pytest.mark.parametrize("via", list(_VIA))
@pytest.mark.parametrize("workload", list(_WORKLOADS))
def test_parse_ids_beyond_the_memo(benchmark: BenchmarkFixture, workload: str, via: str) -> None:
    """Ids parsed ten times over, in one of the two workloads of the module docstring."""
    messages, setup, ids_per_round = _WORKLOADS[workload]
    parse = _VIA[via]
    benchmark.group = f"newness-{workload}"
    benchmark.pedantic(lambda: parse(messages), setup=setup, rounds=ROUNDS)
    _record(benchmark, ids_per_round)
