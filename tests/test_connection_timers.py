"""The connection's rooms' timers (RTL4f, RTL5f, RTL13b, RTL13c) and its retry backoff (RTB1).

The rules are in the module docs of :mod:`presence_core._connection` and
:mod:`presence_core._backoff`; each test is named after the rule it pins.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, strategies as st

from presence_core import (
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    Connection,
    ConnectionSettings,
    ConnectionState,
    OperationFailed,
    Output,
    ProtocolAction,
    UsageError,
)
from presence_core.testing import ClientSpec, Partition, Simulation
from tests.connection_support import lost, receive
from tests.test_connection import (
    KEY,
    ROOM,
    RTO,
    attached,
    channel_states,
    connected,
    sent,
    states,
    up,
)

RETRY = 5_000  # a channel_retry_timeout that no other timer of these tests shares


def room_changes(out: Output) -> list[ChannelStateChanged]:
    return [
        e
        for batch in out.events
        if isinstance(batch, ChannelEvents) and batch.channel == ROOM
        for e in batch.events
        if isinstance(e, ChannelStateChanged)
    ]


def attaches(out: Output) -> list[str | None]:
    return [m.channel for m in sent(out) if m.action == ProtocolAction.ATTACH]


def suspended_room() -> Connection:
    """CONNECTED at 1_000; the room's attach timed out at 11_000 (RTL4f)."""
    c = up(now=1_000, channel_retry_timeout=RETRY)
    c.attach(ROOM, now=1_000)
    c.tick(now=1_000 + RTO)
    assert c.room(ROOM).state is ChannelState.SUSPENDED
    return c


# -- the rooms' timers -------------------------------------------------------------------------


def test_settings_give_rooms_the_request_and_channel_retry_timeouts() -> None:
    assert ConnectionSettings().channel_retry_timeout == 15_000
    with pytest.raises(UsageError):
        ConnectionSettings(channel_retry_timeout=0)
    c = up(now=0, realtime_request_timeout=2_000)
    c.attach(ROOM, now=0)
    assert c.next_deadline() == 2_000  # the room's attach timeout, before the idle deadline


def test_RTL4f_an_attach_without_ATTACHED_times_out_through_the_connection() -> None:
    c = up(now=1_000, channel_retry_timeout=RETRY)
    c.attach(ROOM, now=1_000)
    assert c.next_deadline() == 1_000 + RTO
    assert c.tick(now=1_000 + RTO - 1) == Output()
    out = c.tick(now=1_000 + RTO)
    (change,) = room_changes(out)
    assert change.current is ChannelState.SUSPENDED
    assert change.reason is not None
    assert change.reason.code == 90007


def test_RTL4f_a_timed_out_attach_fails_the_operations_queued_for_it() -> None:
    c = up(now=1_000)
    op = c.enter(ROOM, now=1_000).operation  # implicit attach
    out = c.tick(now=1_000 + RTO)
    failed = [e.operation for e in out.events if isinstance(e, OperationFailed)]
    assert failed == [op]


def test_RTL5f_a_detach_without_DETACHED_times_out_back_to_ATTACHED() -> None:
    c = up(now=1_000)
    c.attach(ROOM, now=1_000)
    receive(c, attached(), now=1_000)
    c.detach(ROOM, now=2_000)
    assert c.next_deadline() == 2_000 + RTO
    (change,) = room_changes(c.tick(now=2_000 + RTO))
    assert (change.previous, change.current) == (ChannelState.DETACHING, ChannelState.ATTACHED)
    assert change.reason is not None
    assert change.reason.code == 90007


def test_RTL13b_a_suspended_room_attaches_again_after_channel_retry_timeout() -> None:
    c = suspended_room()
    assert c.next_deadline() == 1_000 + RTO + RETRY
    out = c.tick(now=1_000 + RTO + RETRY)
    assert channel_states(out) == [ChannelState.ATTACHING]
    assert attaches(out) == [ROOM]  # the ATTACH goes out: the connection is CONNECTED
    assert states(receive(c, attached(), now=20_000)) == []
    assert c.room(ROOM).state is ChannelState.ATTACHED


def test_RTL13c_a_suspended_rooms_retry_waits_for_the_connection() -> None:
    c = suspended_room()  # its retry would be at 16_000
    lost(c, now=12_000)  # CONNECTING again, with a connect timeout at 22_000
    assert c.state is ConnectionState.CONNECTING
    assert c.next_deadline() == 12_000 + RTO
    assert c.tick(now=16_000) == Output()
    assert c.room(ROOM).state is ChannelState.SUSPENDED
    out = receive(c, connected("C1"), now=17_000)  # RTL3d re-attaches it
    assert channel_states(out) == [ChannelState.ATTACHING]
    assert attaches(out) == [ROOM]


def test_RTL13c_room_timers_do_not_run_while_disconnected() -> None:
    c = up(now=1_000)
    c.attach(ROOM, now=1_000)  # attach timeout at 11_000
    lost(c, now=2_000)
    lost(c, now=2_001)  # DISCONNECTED until the retry at 17_001
    assert c.next_deadline() == 2_001 + 15_000
    assert c.tick(now=11_000) == Output()
    assert c.room(ROOM).state is ChannelState.ATTACHING


# -- RTB1: the retry backoff ---------------------------------------------------------------------


def failing_retries(attempts: int, jitter: Callable[[], float] = lambda: 0.0) -> list[int]:
    """The waits before each retry while every attempt after a loss fails."""
    c = Connection(key=KEY, client_id="alice", jitter=jitter)
    c.connect(now=0)
    receive(c, connected(ttl=10**9), now=0)  # a ttl that never suspends these tests
    lost(c, now=1)  # RTN15a: the immediate resume attempt
    delays = []
    now = 1
    for _ in range(attempts):
        lost(c, now=now)  # the attempt fails
        deadline = c.next_deadline()
        assert deadline is not None
        assert c.state is ConnectionState.DISCONNECTED
        delays.append(deadline - now)
        now = deadline
        c.tick(now=now)
        assert c.snapshot().state is ConnectionState.CONNECTING
    return delays


def test_RTB1a_disconnected_retries_back_off_by_1_4_3_5_3_then_2() -> None:
    assert failing_retries(6) == [15_000, 20_000, 25_000, 30_000, 30_000, 30_000]


def test_RTB1b_a_fixed_jitter_scales_every_delay() -> None:
    assert failing_retries(4, lambda: 0.5) == [13_500, 18_000, 22_500, 27_000]


@given(draws=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=6, max_size=6))
def test_RTB1b_any_jitter_source_keeps_each_delay_between_0_8_and_1_of_its_backoff(
    draws: list[float],
) -> None:
    source = itertools.cycle(draws)
    delays = failing_retries(6, lambda: next(source))
    for n, delay in enumerate(delays, start=1):
        nominal = 15_000 * min(n + 2, 6) / 3
        assert 0.8 * nominal - 1 <= delay <= nominal


def test_RTB1_the_backoff_starts_again_after_CONNECTED() -> None:
    c = Connection(key=KEY, client_id="alice")
    c.connect(now=0)
    receive(c, connected(ttl=10**9), now=0)
    lost(c, now=1)
    lost(c, now=1)  # retry 1: 15 s
    c.tick(now=15_001)
    lost(c, now=15_001)  # retry 2: 20 s
    assert c.next_deadline() == 35_001
    c.tick(now=35_001)
    receive(c, connected(ttl=10**9), now=35_002)
    lost(c, now=40_000)
    lost(c, now=40_000)
    assert c.next_deadline() == 55_000  # retry 1 again


def test_RTN14e_suspended_retries_keep_their_period_whatever_the_jitter() -> None:
    c = Connection(key=KEY, client_id="alice", jitter=lambda: 0.99)
    c.connect(now=0)
    lost(c, now=0)
    now = 0
    while c.state is not ConnectionState.SUSPENDED:
        now = c.next_deadline() or now
        c.tick(now=now)
        if c.state is ConnectionState.CONNECTING:
            lost(c, now=now)
    for _ in range(3):
        deadline = c.next_deadline()
        assert deadline == now + 30_000
        now = deadline
        c.tick(now=now)
        lost(c, now=now)
        assert c.state is ConnectionState.SUSPENDED


def _retry_times(seed: int) -> list[int]:
    """When the partitioned client opened each transport, in a simulation with ``seed``."""
    sim = Simulation(seed=seed, clients=[ClientSpec(client_id="alice", rooms=["r"])])
    sim.run_until_quiet([Partition(at=1_000, duration=100_000, client="alice")])
    return [
        entry.now
        for entry in sim.transcript.entries
        if entry.target == "alice"
        and isinstance(entry.result, Output)
        and any(type(c).__name__ == "OpenTransport" for c in entry.result.commands)
    ]


def test_RTB1_the_same_jitter_seed_gives_the_same_retry_times() -> None:
    first = _retry_times(7)
    assert len(first) > 3
    assert _retry_times(7) == first
    # Other seeds draw other jitter (and latencies), so their retries fall elsewhere.
    assert len({tuple(_retry_times(seed)) for seed in range(4)}) > 1
