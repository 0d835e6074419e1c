"""Retained memory per member, measured with tracemalloc, for PresenceSet and the dict floor.

While tracing, a seeded room is built, its ENTER frames are applied, and then the room and the
frames are dropped: what is still allocated is what the structure keeps alive, every id string
and data payload included (benchmarks/compare.py, ``retained_bytes``).  The time pytest-benchmark
reports is that of the traced run, which means little; the figures are in ``extra_info`` and
printed.

Run with ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.compare import DictFloor, PresenceSetPeer, retained_bytes
from benchmarks.conftest import Inputs

BenchmarkFixture = Any


@pytest.mark.benchmark(group="memory")
def test_retained_memory_per_member(
    benchmark: BenchmarkFixture, inputs: Inputs, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes per member a PresenceSet of the room retains, next to the dict floor's figure."""
    ours = benchmark.pedantic(retained_bytes, args=(PresenceSetPeer(), inputs.size), rounds=1)
    floor = retained_bytes(DictFloor(), inputs.size)
    benchmark.extra_info.update(
        members=inputs.size,
        bytes_per_member=round(ours, 1),
        floor_bytes_per_member=round(floor, 1),
        ratio_to_floor=round(ours / floor, 3),
    )
    with capsys.disabled():
        print(
            f"\n[memory] {inputs.size:,} members: PresenceSet {ours:,.0f} B/member, "
            f"dict floor {floor:,.0f} B/member ({ours / floor:.2f}x)"
        )
    assert ours > 0
