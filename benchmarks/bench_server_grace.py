"""Server reducer benchmark: the cost of one call while 10,000 connections are in grace.

A reconnect storm leaves many connections without a transport, each waiting for its grace
period (and then its ttl) to end.  Those deadlines must not make every other call slower: one
``receive`` on a live connection and one ``next_deadline()`` should cost about the same with
10,000 connections in grace as with none.  The target is at most twice as much.

Two servers are built once (untimed), alike except that one has :data:`IN_GRACE` connections
whose transports closed; each has one live connection attached to a channel.  The timed calls:

* ``receive`` of a HEARTBEAT (with a ping id, so it is answered) on the live connection;
* ``receive`` of a PRESENCE UPDATE on the live connection, alone on its channel;
* ``next_deadline()``.

Run with ``pytest benchmarks/bench_server_grace.py --benchmark-only`` (the file is not named
``test_*``, so ``pytest benchmarks/`` leaves it out; name it to run it).
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Final

import pytest

from benchmarks._inputs import CHANNEL, SEED, T0
from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server import ApiKey, Server, ServerConfig

BenchmarkFixture = Any

#: Connections in their grace period in the loaded server: a storm of this size.
IN_GRACE: Final = 10_000
LIVE: Final = "live"
_KEY: Final = ApiKey(name="bench.app", secret="secret")
_PING: Final = ProtocolMessage(action=ProtocolAction.HEARTBEAT, id="ping")


class Storm:
    """A server with ``in_grace`` connections waiting out their grace period, and one live one."""

    def __init__(self, in_grace: int) -> None:
        # Every call happens at T0, so the grace periods never end while timed; lift the rate
        # limit for the same reason (one connection sends every round).
        config = ServerConfig(keys=(_KEY,), max_messages_per_second=1_000_000_000)
        self.server = Server(config, entropy=random.Random(SEED).randbytes)
        self.serials = itertools.count()
        attach = ProtocolMessage(action=ProtocolAction.ATTACH, channel=CHANNEL)
        for index in range(in_grace):
            params = {"key": _KEY.key, "clientId": f"gone-{index}", "format": "json"}
            self.server.connect(index, params, now=T0)
            # Each on its own channel, so the live connection's channel has no other subscriber.
            self.server.receive(
                index, ProtocolMessage(action=ProtocolAction.ATTACH, channel=f"c{index}"), now=T0
            )
            self.server.transport_closed(index, now=T0)
        params = {"key": _KEY.key, "clientId": LIVE, "format": "json"}
        self.server.connect(LIVE, params, now=T0)
        self.server.receive(LIVE, attach, now=T0)

    def next_update(self) -> ProtocolMessage:
        """The live connection's next PRESENCE frame (a new msgSerial, new data)."""
        serial = next(self.serials)
        item = PresenceMessage(action=PresenceAction.UPDATE, data={"n": serial})
        return ProtocolMessage(
            action=ProtocolAction.PRESENCE, channel=CHANNEL, msg_serial=serial, presence=(item,)
        )


@pytest.fixture(scope="module", params=[0, IN_GRACE], ids=["none-in-grace", "10k-in-grace"])
def storm(request: pytest.FixtureRequest) -> Storm:
    """A server with none, or :data:`IN_GRACE`, connections in grace; built once per module."""
    count: int = request.param
    return Storm(count)


@pytest.mark.benchmark(group="server-grace-heartbeat")
def test_heartbeat(benchmark: BenchmarkFixture, storm: Storm) -> None:
    """Server.receive: one HEARTBEAT with a ping id on the live connection, answered."""
    server = storm.server
    output = benchmark.pedantic(
        lambda: server.receive(LIVE, _PING, now=T0), rounds=20_000, warmup_rounds=100
    )
    assert output.messages_for(LIVE) == (_PING,)


@pytest.mark.benchmark(group="server-grace-presence")
def test_presence(benchmark: BenchmarkFixture, storm: Storm) -> None:
    """Server.receive: one PRESENCE UPDATE on the live connection: echo and ACK."""
    server = storm.server
    output = benchmark.pedantic(
        lambda frame: server.receive(LIVE, frame, now=T0),
        setup=lambda: ((storm.next_update(),), {}),
        rounds=5_000,
    )
    assert [m.action for m in output.messages_for(LIVE)] == [
        ProtocolAction.PRESENCE,
        ProtocolAction.ACK,
    ]


@pytest.mark.benchmark(group="server-grace-next-deadline")
def test_next_deadline(benchmark: BenchmarkFixture, storm: Storm) -> None:
    """Server.next_deadline(): the earliest heartbeat, grace end or ttl."""
    server = storm.server
    deadline = benchmark.pedantic(server.next_deadline, rounds=20_000, warmup_rounds=100)
    assert deadline is not None
