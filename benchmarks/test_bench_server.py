"""Server reducer benchmark: one presence update fanned out to 1,000 subscribers.

A :class:`~presence_core.server.Server` is set up once (untimed) with 1,000 subscriber
connections attached to one channel with the default modes (PRESENCE_SUBSCRIBE included) and
one publisher that has entered.  Each round the publisher sends the next UPDATE (a new
msgSerial, new data).  The server must answer with one :class:`~presence_core.server.Deliver`
naming every recipient, so the adapter encodes the broadcast once, not once per subscriber;
the benchmarks assert that shape.

Run with ``pytest benchmarks/ --benchmark-only``.
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
    encode_text,
)
from presence_core.server import (
    ApiKey,
    Deliver,
    Server,
    ServerConfig,
    ServerOutput,
)

BenchmarkFixture = Any

SUBSCRIBERS: Final = 1_000
PUBLISHER: Final = "publisher"
_KEY: Final = ApiKey(name="bench.app", secret="secret")


class FanOut:
    """A server with :data:`SUBSCRIBERS` subscribers and an entered publisher on one channel."""

    def __init__(self) -> None:
        config = ServerConfig(
            keys=(_KEY,),
            # One publisher sends every round at the same ``now``; lift the rate limit.
            max_messages_per_second=1_000_000_000,
        )
        self.server = Server(config, entropy=random.Random(SEED).randbytes)
        self.serials = itertools.count()
        attach = ProtocolMessage(action=ProtocolAction.ATTACH, channel=CHANNEL)
        for index in range(SUBSCRIBERS):
            params = {"key": _KEY.key, "clientId": f"subscriber-{index}", "format": "json"}
            self.server.connect(index, params, now=T0)
            self.server.receive(index, attach, now=T0)
        params = {"key": _KEY.key, "clientId": PUBLISHER, "format": "json"}
        self.server.connect(PUBLISHER, params, now=T0)
        self.server.receive(PUBLISHER, attach, now=T0)
        self.server.receive(PUBLISHER, self.next_frame(PresenceAction.ENTER), now=T0)

    def next_frame(self, action: PresenceAction = PresenceAction.UPDATE) -> ProtocolMessage:
        """The publisher's next PRESENCE frame, as a client sends it (no ids, new msgSerial)."""
        serial = next(self.serials)
        return ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=CHANNEL,
            msg_serial=serial,
            presence=(PresenceMessage(action=action, data={"status": "busy", "n": serial}),),
        )

    def receive(self, frame: ProtocolMessage) -> ServerOutput:
        """Feed the publisher's frame to the server."""
        return self.server.receive(PUBLISHER, frame, now=T0)


@pytest.fixture(scope="module")
def fan_out() -> FanOut:
    """The 1,000-subscriber server, built once for this module."""
    return FanOut()


def _broadcasts(output: ServerOutput) -> list[Deliver]:
    return [
        command
        for command in output.commands
        if isinstance(command, Deliver) and command.message.action == ProtocolAction.PRESENCE
    ]


@pytest.mark.benchmark(group="server-fan-out")
def test_fan_out_update(benchmark: BenchmarkFixture, fan_out: FanOut) -> None:
    """Server.receive: one UPDATE from the publisher, broadcast to 1,000 subscribers, plus ACK."""
    output = benchmark.pedantic(
        fan_out.receive, setup=lambda: ((fan_out.next_frame(),), {}), rounds=2_000
    )
    broadcasts = _broadcasts(output)
    assert len(broadcasts) == 1
    assert len(broadcasts[0].transport_ids) == SUBSCRIBERS + 1


def _receive_and_encode(fan_out: FanOut, frame: ProtocolMessage) -> list[str]:
    # What an adapter does: encode each Deliver once, whatever its number of recipients.
    return [
        encode_text(command.message)
        for command in fan_out.receive(frame).commands
        if isinstance(command, Deliver)
    ]


@pytest.mark.benchmark(group="server-fan-out")
def test_fan_out_update_encoded(benchmark: BenchmarkFixture, fan_out: FanOut) -> None:
    """Server.receive plus encode_text of each Deliver once: the broadcast and the ACK texts."""
    texts = benchmark.pedantic(
        _receive_and_encode,
        setup=lambda: ((fan_out, fan_out.next_frame()), {}),
        rounds=2_000,
    )
    assert len(texts) == 2  # the broadcast (sender included) and the sender's ACK
