"""Connection reducer benchmarks: ACK matching, a burst of ACKs, frames received, enters.

Every round starts from a fresh :class:`~presence_core.Connection` built in an untimed setup:
CONNECTED (as ``C1``), its room ATTACHED, and for the ACK workloads :data:`PENDING` frames sent
and awaiting their ACK.  An ACK is matched by its serial range in the outbox, never by a scan
of the pending frames, so settling one frame costs the same among 2,000 pending as among 2;
the burst would be quadratic otherwise.  ``extra_info`` records the median in ns per call.

* ``ack-one``: one ACK settling the middle frame of :data:`PENDING` (and of 2, to compare);
* ``ack-burst``: :data:`PENDING` ACKs, one per frame, in order;
* ``receive-presence``: :data:`FRAMES` PRESENCE frames from peers, one ENTER each;
* ``enter``: :data:`FRAMES` ``enter_client`` calls, each sent at once in its own frame, with no
  limits announced and with the server's default limits (50 messages a second, 64 KiB), where
  most of them wait for the rate (D10).

Run with ``pytest benchmarks/test_bench_connection.py --benchmark-only``.
"""

from __future__ import annotations

from typing import Any, Final

import pytest

from benchmarks._inputs import CHANNEL, T0
from presence_core import (
    DEFAULT_MODES,
    Connection,
    ConnectionDetails,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

BenchmarkFixture = Any

PENDING: Final = 2_000
FRAMES: Final = 1_000
ROUNDS: Final = 30
#: The id of a connection's first transport, which every frame here arrives on.
TRANSPORT: Final = 1
#: The limits a server announces: none, or our server's defaults.
LIMITS: Final[dict[str, dict[str, int]]] = {
    "none": {},
    "server-defaults": {"max_message_size": 65_536, "max_inbound_rate": 50},
}


def connected(limits: str = "none") -> Connection:
    """A CONNECTED connection acting for any clientId, its room ATTACHED."""
    conn = Connection(key="bench.app:secret")
    conn.connect(now=T0)
    details = ConnectionDetails(
        connection_key="key-C1",
        max_idle_interval=15_000,
        connection_state_ttl=120_000,
        max_message_size=LIMITS[limits].get("max_message_size"),
        max_inbound_rate=LIMITS[limits].get("max_inbound_rate"),
    )
    conn.receive(
        ProtocolMessage(
            action=ProtocolAction.CONNECTED, connection_id="C1", connection_details=details
        ),
        transport_id=TRANSPORT,
        now=T0,
    )
    conn.attach(CHANNEL, now=T0)
    conn.receive(
        ProtocolMessage(action=ProtocolAction.ATTACHED, channel=CHANNEL, flags=int(DEFAULT_MODES)),
        transport_id=TRANSPORT,
        now=T0,
    )
    return conn


def with_pending(pending: int = PENDING) -> Connection:
    """``pending`` enters sent, msgSerials 0 to ``pending - 1``, none ACKed."""
    conn = connected()
    for k in range(pending):
        conn.enter_client(CHANNEL, f"user{k}", {"k": k}, now=T0)
    assert len(conn.snapshot().pending) == pending
    return conn


def ack(serial: int) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ACK, msg_serial=serial, count=1)


ACKS: Final = [ack(serial) for serial in range(PENDING)]
PEER_FRAMES: Final = [
    ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=CHANNEL,
        id=f"peer{k}:0",
        connection_id=f"peer{k}",
        timestamp=T0,
        presence=(
            PresenceMessage(
                action=PresenceAction.ENTER,
                client_id=f"peer{k}",
                connection_id=f"peer{k}",
                id=f"peer{k}:0:0",
                timestamp=T0,
                data={"k": k},
            ),
        ),
    )
    for k in range(FRAMES)
]


def _record(benchmark: BenchmarkFixture, calls: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["median_ns_per_call"] = round(stats.stats.median * 1e9 / calls, 1)


@pytest.mark.parametrize("pending", [2, PENDING])
@pytest.mark.benchmark(group="connection-ack")
def test_ack_settles_one_frame_among_2000_pending(
    benchmark: BenchmarkFixture, pending: int
) -> None:
    """Connection.receive: one ACK settling the middle one of 2,000 (or 2) pending frames."""
    middle = ACKS[pending // 2]

    def run(conn: Connection) -> None:
        conn.receive(middle, transport_id=TRANSPORT, now=T0)

    def setup() -> tuple[tuple[Connection], dict[str, Any]]:
        conn = with_pending(pending)
        # One ACK first, untimed, so the figure is an ACK's cost and not the cache misses of
        # the first call after building 2,000 frames.
        conn.receive(ACKS[0], transport_id=TRANSPORT, now=T0)
        return (conn,), {}

    benchmark.pedantic(run, setup=setup, rounds=ROUNDS)
    _record(benchmark, 1)


@pytest.mark.benchmark(group="connection-ack")
def test_burst_of_2000_acks(benchmark: BenchmarkFixture) -> None:
    """Connection.receive: 2,000 ACKs in order, each settling one of 2,000 pending frames."""

    def run(conn: Connection) -> None:
        receive = conn.receive
        for message in ACKS:
            receive(message, transport_id=TRANSPORT, now=T0)

    benchmark.pedantic(run, setup=lambda: ((with_pending(),), {}), rounds=ROUNDS)
    _record(benchmark, PENDING)


@pytest.mark.benchmark(group="connection-receive")
def test_presence_frame_received_on_connected(benchmark: BenchmarkFixture) -> None:
    """Connection.receive: 1,000 PRESENCE frames from peers, one ENTER each, while CONNECTED."""

    def run(conn: Connection) -> None:
        receive = conn.receive
        for message in PEER_FRAMES:
            receive(message, transport_id=TRANSPORT, now=T0)

    benchmark.pedantic(run, setup=lambda: ((connected(),), {}), rounds=ROUNDS)
    _record(benchmark, FRAMES)


@pytest.mark.parametrize("limits", list(LIMITS), ids=list(LIMITS))
@pytest.mark.benchmark(group="connection-enter")
def test_enter(benchmark: BenchmarkFixture, limits: str) -> None:
    """Connection.enter_client: 1,000 enters of distinct clientIds, each its own frame."""
    client_ids = [f"user{k}" for k in range(FRAMES)]

    def run(conn: Connection) -> None:
        enter = conn.enter_client
        for client_id in client_ids:
            enter(CHANNEL, client_id, None, now=T0)

    benchmark.pedantic(run, setup=lambda: ((connected(limits),), {}), rounds=ROUNDS)
    _record(benchmark, FRAMES)
