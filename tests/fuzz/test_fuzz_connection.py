"""Fuzzing the Connection reducer with frame sequences from a hostile or broken server.

Each run connects, attaches a room and enters, then applies a sequence that mixes plausible
server frames (CONNECTED, ACK/NACK, HEARTBEAT, DISCONNECTED, CLOSED, ERROR and every channel
frame), the same frames mangled on the wire, frames on a stale transport, user calls, pings,
transport losses, reconnects, re-auth, close and timer ticks.  Properties:

* ``receive`` raises only ProtocolError, the user calls only UsageError, the lifecycle calls
  nothing, and a raising call leaves ``snapshot()`` (state, identity, pending, queued and
  waiting frames, rooms, pings, clock and deadline) as it was;
* replaying only the accepted calls on a fresh Connection gives the same outputs and state.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, strategies as st

from presence_core import (
    Connection,
    ConnectionDetails,
    Flag,
    Output,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
)
from presence_core.testing import strategies
from tests.connection_support import NO_TRANSPORT, current, lost, receive
from tests.fuzz.frames import CHANNEL, CHANNELS, CLIENT_IDS, server_frames, wire_frames
from tests.fuzz.harness import Replay, decoded

T0 = 1_000_000
KEY = "app.key:secret"


def start() -> Connection:
    c = Connection(key=KEY, client_id="alice")
    c.connect(now=T0)
    details = ConnectionDetails(
        client_id="alice", connection_key="k1", max_idle_interval=15_000, max_message_size=65536
    )
    connected = ProtocolMessage(
        action=ProtocolAction.CONNECTED, connection_id="C1", connection_details=details
    )
    receive(c, connected, now=T0)
    c.attach(CHANNEL, now=T0)
    flags = int(Flag.HAS_PRESENCE) | 0xF0000
    receive(
        c, ProtocolMessage(action=ProtocolAction.ATTACHED, channel=CHANNEL, flags=flags), now=T0
    )
    c.enter(CHANNEL, {"status": 1}, now=T0)
    return c


def snapshot(c: Connection) -> object:
    return c.snapshot()


_OPERATIONS = ("enter", "update", "leave", "enter_client", "publish", "attach", "detach", "ping")
_LIFECYCLE = ("lost", "connect", "close", "authorize", "tick")

# Mostly frames: they are what this test is about.
_frames = st.tuples(
    st.sampled_from(["frame", "frame", "frame", "stale"]), wire_frames(server_frames())
)
steps = st.one_of(
    _frames,
    _frames,
    st.tuples(
        st.sampled_from(_OPERATIONS),
        st.sampled_from(CHANNELS),
        st.sampled_from([*CLIENT_IDS, "*"]),
        strategies.presence_data(),
    ),
    st.tuples(st.sampled_from(_LIFECYCLE), st.integers(0, 40_000)),
)


def _operate(step: tuple[Any, ...], now: int) -> Any:
    kind, channel, client_id, data = step

    def call(c: Connection) -> Output:
        if kind in ("attach", "detach"):
            return getattr(c, kind)(channel, now=now)  # type: ignore[no-any-return]
        if kind == "ping":
            return c.ping(client_id, now=now)
        if kind == "publish":
            return c.publish(channel, "chat", data, now=now)
        if kind == "enter_client":
            return c.enter_client(channel, client_id, data, now=now)
        return getattr(c, kind)(channel, data, now=now)  # type: ignore[no-any-return]

    return call


def _frame(message: ProtocolMessage, stale: bool, now: int) -> Any:
    def call(c: Connection) -> Output:
        return c.receive(message, transport_id=NO_TRANSPORT if stale else current(c), now=now)

    return call


def _lifecycle(kind: str, now: int) -> Any:
    calls = {
        "lost": lambda c: lost(c, now=now),
        "connect": lambda c: c.connect(now=now),
        "close": lambda c: c.close(now=now),
        "authorize": lambda c: c.authorize("token-2", now=now),
        "tick": lambda c: c.tick(now=now),
    }
    return calls[kind]


@given(st.lists(steps, min_size=5, max_size=40))
def test_connection_refuses_bad_input_with_typed_errors_and_no_change(
    sequence: list[tuple[Any, ...]],
) -> None:
    replay = Replay(start)
    now = T0
    for step in sequence:
        kind = step[0]
        now += step[1] if kind in _LIFECYCLE else 10
        if kind in ("frame", "stale"):
            message = decoded(step[1])
            if message is None:
                continue
            replay.run(snapshot, _frame(message, kind == "stale", now), (ProtocolError,))
        elif kind in _LIFECYCLE:
            replay.run(snapshot, _lifecycle(kind, now), ())
        else:
            replay.run(snapshot, _operate(step, now), (UsageError,))
    replay.check(snapshot)
