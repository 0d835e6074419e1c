"""Fuzzing the PresenceSet reducer with frame sequences from a hostile or broken server.

Each run attaches a room (a sync starts), enters, then applies a sequence that mixes plausible
channel frames, the same frames mangled on the wire (what the codec still accepts reaches the
room), user operations and their settlement, and timer ticks.  Properties:

* ``receive`` raises only ProtocolError, the user calls only UsageError, and a raising call
  leaves ``snapshot()`` (members, tombstones, own members, pending operations, timers) as it
  was;
* replaying only the accepted calls on a fresh PresenceSet gives the same outputs and state.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
from hypothesis import given, strategies as st

from presence_core import (
    ErrorInfo,
    Flag,
    Output,
    PresenceSet,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
)
from presence_core.testing import strategies
from tests.fuzz.frames import CHANNEL, CLIENT_IDS, channel_frames, hostile_values, wire_frames
from tests.fuzz.harness import Replay, checked, decoded

T0 = 1_000_000
NACKED = ErrorInfo(code=90001, status_code=400, message="fuzz")


def start() -> PresenceSet:
    room = PresenceSet(CHANNEL, client_id="alice")
    room.set_connection("C1", client_id="alice", now=T0)
    room.attach(now=T0)
    attached = ProtocolMessage(
        action=ProtocolAction.ATTACHED,
        channel=CHANNEL,
        flags=int(Flag.HAS_PRESENCE) | 0xF0000,
    )
    room.receive(attached, now=T0)
    room.enter({"status": 1}, now=T0)
    return room


def snapshot(room: PresenceSet) -> object:
    return room.snapshot()


_OPERATIONS = ("enter", "update", "leave", "enter_client", "leave_client", "publish", "detach")

# Mostly frames: they are what this test is about.
_frames = st.tuples(st.just("frame"), wire_frames(channel_frames()))
steps = st.one_of(
    _frames,
    _frames,
    st.tuples(
        st.sampled_from(_OPERATIONS),
        st.sampled_from([*CLIENT_IDS, "*", ""]),
        strategies.presence_data(),
    ),
    st.tuples(st.sampled_from(["ack", "reject"]), st.integers(1, 3)),
    st.tuples(st.just("tick"), st.integers(0, 30_000)),
)


def _call(step: tuple[Any, ...], now: int) -> tuple[Any, tuple[type[Exception], ...]]:
    """The reducer call a step makes, and the errors it may raise."""
    kind = step[0]
    if kind == "frame":
        message = decoded(step[1])
        if message is None:
            return None, ()
        return (lambda room: room.receive(message, now=now)), (ProtocolError,)
    if kind in ("ack", "reject"):
        count = step[1]

        def settle(room: PresenceSet) -> Output:
            operations = room.pending[:count]
            if kind == "ack":
                return room.acknowledge(operations, now=now)
            return room.reject(operations, NACKED, now=now)

        return settle, ()
    if kind == "tick":
        return (lambda room: room.tick(now=now)), ()
    _, client_id, data = step

    def operate(room: PresenceSet) -> Output:
        if kind == "detach":
            return room.detach(now=now)
        if kind == "publish":
            return room.publish("chat", data, now=now)
        if kind.endswith("_client"):
            return getattr(room, kind)(client_id, data, now=now)  # type: ignore[no-any-return]
        return getattr(room, kind)(data, now=now)  # type: ignore[no-any-return]

    return operate, (UsageError,)


@given(st.lists(steps, min_size=5, max_size=40))
def test_presence_set_refuses_bad_input_with_typed_errors_and_no_change(
    sequence: list[tuple[Any, ...]],
) -> None:
    replay = Replay(start)
    now = T0
    for step in sequence:
        now += step[1] if step[0] == "tick" else 10
        call, allowed = _call(step, now)
        if call is not None:
            replay.run(snapshot, call, allowed)
    replay.check(snapshot)


# What a caller that builds frames itself (bypassing the codec) may put in an item's fields.
wrong_types = hostile_values | st.sampled_from([b"x", bytearray(b"x"), 1.5, ("t",), object()])
_ITEM_FIELDS = st.sampled_from(
    ["action", "client_id", "connection_id", "id", "timestamp", "data", "extras"]
)
_TARGETS = st.sampled_from(["item", "item", "array", "element"])
# Built once: a strategy costs far more to build than to draw from.
_PRESENCE_FRAMES = channel_frames().filter(lambda m: m.presence is not None)


@st.composite
def type_confused_frames(draw: st.DrawFn) -> ProtocolMessage:
    """A PRESENCE or SYNC frame with one item field, or the items array, of a wrong type."""
    message = attrs.evolve(draw(_PRESENCE_FRAMES), channel=CHANNEL)
    items: list[Any] = list(message.presence or ())
    target = draw(_TARGETS)
    if target == "array":
        presence: Any = items if draw(st.booleans()) else draw(wrong_types)
        return attrs.evolve(message, presence=presence)
    if not items:
        return message
    index = draw(st.integers(0, len(items) - 1))
    if target == "element":
        items[index] = draw(wrong_types)
    else:
        field = draw(_ITEM_FIELDS)
        items[index] = attrs.evolve(items[index], **{field: draw(wrong_types)})
    return attrs.evolve(message, presence=tuple(items))


@given(st.lists(type_confused_frames(), min_size=1, max_size=5))
def test_presence_set_refuses_type_confused_frames_with_protocol_error_only(
    frames: list[ProtocolMessage],
) -> None:
    """The item checks the PresenceSet makes itself, for callers that bypass the codec."""
    room = start()
    for now, frame in enumerate(frames, start=T0 + 10):
        checked(room.snapshot, functools.partial(room.receive, frame, now=now), (ProtocolError,))
