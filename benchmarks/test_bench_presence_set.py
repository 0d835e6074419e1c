"""PresenceSet benchmarks: receive (enter, update, leave, SYNC, re-SYNC) and the queries.

Inputs are already-decoded ProtocolMessages, prebuilt at a fixed seed (benchmarks/_inputs.py),
the same input shape the dict floor of ``compare.py`` consumes.  Each round of a stateful
workload gets a fresh PresenceSet from an untimed setup: ATTACHED (with HAS_PRESENCE for the
SYNC workloads) after ``set_connection``, and already holding the room where the workload needs
it.  ``extra_info`` records the size and the median in ns per member.

Run with ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks._inputs import T0, attached_set, entered_set, synced_set
from benchmarks.conftest import Inputs
from presence_core import (
    PresenceAction,
    PresenceSet,
    ProtocolMessage,
)

BenchmarkFixture = Any


def _receive_all(presence: PresenceSet, frames: list[ProtocolMessage]) -> None:
    receive = presence.receive
    for frame in frames:
        receive(frame, now=T0)


def _record(benchmark: BenchmarkFixture, inputs: Inputs, per_member: bool = True) -> None:
    benchmark.extra_info["members"] = inputs.size
    stats = getattr(benchmark, "stats", None)
    if per_member and stats is not None:
        benchmark.extra_info["median_ns_per_member"] = round(
            stats.stats.median * 1e9 / inputs.size, 1
        )


@pytest.mark.parametrize("per_message", [1, 100])
@pytest.mark.benchmark(group="receive-enter")
def test_receive_enter(benchmark: BenchmarkFixture, inputs: Inputs, per_message: int) -> None:
    """PresenceSet.receive: every member ENTERs an empty attached set (1 or 100 per frame)."""
    frames = inputs.presence(PresenceAction.ENTER, per_message)
    benchmark.pedantic(
        _receive_all,
        setup=lambda: ((attached_set(), frames), {}),
        rounds=inputs.rounds,
    )
    _record(benchmark, inputs)


@pytest.mark.parametrize("per_message", [1, 100])
@pytest.mark.benchmark(group="receive-update")
def test_receive_update(benchmark: BenchmarkFixture, inputs: Inputs, per_message: int) -> None:
    """PresenceSet.receive: every present member sends an UPDATE with new data."""
    enters = inputs.presence(PresenceAction.ENTER, 100)
    frames = inputs.presence(PresenceAction.UPDATE, per_message)
    benchmark.pedantic(
        _receive_all,
        setup=lambda: ((entered_set(enters), frames), {}),
        rounds=inputs.rounds,
    )
    _record(benchmark, inputs)


@pytest.mark.parametrize("per_message", [1, 100])
@pytest.mark.benchmark(group="receive-leave")
def test_receive_leave(benchmark: BenchmarkFixture, inputs: Inputs, per_message: int) -> None:
    """PresenceSet.receive: every present member LEAVEs, until the set is empty."""
    enters = inputs.presence(PresenceAction.ENTER, 100)
    frames = inputs.presence(PresenceAction.LEAVE, per_message)
    benchmark.pedantic(
        _receive_all,
        setup=lambda: ((entered_set(enters), frames), {}),
        rounds=inputs.rounds,
    )
    _record(benchmark, inputs)


@pytest.mark.benchmark(group="sync")
def test_sync_into_empty(benchmark: BenchmarkFixture, inputs: Inputs) -> None:
    """PresenceSet.receive: a whole SYNC (pages of 100, last cursor empty) into an empty set."""
    pages = inputs.sync
    benchmark.pedantic(
        _receive_all,
        setup=lambda: ((attached_set(has_presence=True), pages), {}),
        rounds=inputs.rounds,
    )
    _record(benchmark, inputs)


@pytest.mark.benchmark(group="resync")
def test_resync_residual_leaves(benchmark: BenchmarkFixture, inputs: Inputs) -> None:
    """PresenceSet.receive: a new SYNC listing 90% of a synced room; 10% leave at its end."""
    pages = inputs.sync
    again = inputs.resync
    benchmark.pedantic(
        _receive_all,
        setup=lambda: ((synced_set(pages), again), {}),
        rounds=inputs.rounds,
    )
    _record(benchmark, inputs)


@pytest.fixture(scope="module")
def full_set(inputs: Inputs) -> PresenceSet:
    """An attached PresenceSet holding the whole room (built once per size)."""
    return entered_set(inputs.presence(PresenceAction.ENTER, 100))


@pytest.mark.benchmark(group="get-all")
def test_get_all(benchmark: BenchmarkFixture, inputs: Inputs, full_set: PresenceSet) -> None:
    """PresenceSet.get(): the list of every member (one PresenceMember each)."""
    members = benchmark(full_set.get)
    assert len(members) == inputs.size
    _record(benchmark, inputs)


@pytest.mark.benchmark(group="get-client")
def test_get_by_client_id(
    benchmark: BenchmarkFixture, inputs: Inputs, full_set: PresenceSet
) -> None:
    """PresenceSet.get(client_id=...): one member's whole lookup (should not grow with size)."""
    client_id = inputs.room.members[inputs.size // 2].client_id
    members = benchmark(full_set.get, client_id=client_id)
    assert [member.client_id for member in members] == [client_id]
    _record(benchmark, inputs, per_member=False)


@pytest.mark.benchmark(group="is-user-present")
def test_is_user_present(
    benchmark: BenchmarkFixture, inputs: Inputs, full_set: PresenceSet
) -> None:
    """PresenceSet.is_user_present(client_id) for a present member (should not grow with size)."""
    client_id = inputs.room.members[inputs.size // 3].client_id
    assert benchmark(full_set.is_user_present, client_id)
    _record(benchmark, inputs, per_member=False)


@pytest.mark.benchmark(group="is-user-present")
def test_is_user_present_absent(
    benchmark: BenchmarkFixture, inputs: Inputs, full_set: PresenceSet
) -> None:
    """PresenceSet.is_user_present(client_id) for a clientId nobody has."""
    assert not benchmark(full_set.is_user_present, "nobody-has-this-client-id")
    _record(benchmark, inputs, per_member=False)
