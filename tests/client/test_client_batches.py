"""Frames read together: one reducer call, and each event to each listener, in order.

A link hands the frames it read together to the client's receiver in one ``many`` call (the
WebSocket link per read of the socket); the client folds them with
``Connection.receive_many``.  Here a :class:`Gate` holds PRESENCE frames back and hands them
over in one call, on both event loops, in-process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import attrs
import pytest

from presence_core import PresenceMessage, ProtocolAction, ProtocolMessage
from presence_core.client import Client, Room, ServerHost, connect
from presence_core.client._transport import _hand_over
from presence_core.server import Server
from tests.client.support import HANG, KEY, Gate, Recorder, clients, make_server

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def held_burst(server: Server, count: int) -> AsyncIterator[tuple[Gate, Room, Client]]:
    """bob, subscribed through a Gate, while alice makes ``count`` presence changes that the
    gate holds back; yields once all are held."""
    gate = Gate(ServerHost.of(server).connector())
    async with clients(server, "alice") as (alice,), connect(gate, key=KEY, client_id="bob") as bob:
        room = await bob.rooms.get("r")
        await room.attach()
        gate.hold_presence = True
        mine = (await alice.rooms.get("r")).presence
        await mine.enter(0)
        for n in range(1, count - 1):
            await mine.update(n)
        await mine.leave(count - 1)
        while len(gate.held) < count:
            await anyio.sleep(0)
        yield gate, room, bob


async def test_a_burst_reaches_each_listener_in_order_from_one_reducer_call() -> None:
    server = make_server()
    with anyio.fail_after(HANG):
        async with held_burst(server, 5) as (gate, room, _):
            every, updates = Recorder(), Recorder()
            room.presence.subscribe(every)
            room.presence.subscribe("update", updates)
            calls: list[int] = []
            receiver: Any = gate.held[0][0]
            receive_many = receiver._receive_many

            def counted(frames: list[ProtocolMessage], **kw: Any) -> Any:
                calls.append(len(frames))
                return receive_many(frames, **kw)

            receiver._receive_many = counted
            gate.release_together()
            assert calls == [5]
            assert every.seen == [
                ("enter", "alice"),
                *[("update", "alice")] * 3,
                ("leave", "alice"),
            ]
            assert [e.data for e in every.events] == [0, 1, 2, 3, 4]
            assert [e.data for e in updates.events] == [1, 2, 3]


async def test_a_refused_frame_in_a_burst_is_logged_and_the_others_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    with anyio.fail_after(HANG):
        async with held_burst(server, 3) as (gate, room, _):
            every = Recorder()
            room.presence.subscribe(every)
            first = gate.held[0][1]
            bad = attrs.evolve(first, msg_serial=-1)
            gate.held.insert(1, (gate.held[0][0], bad))
            with caplog.at_level(logging.WARNING, logger="presence_core.client"):
                gate.release_together()
            assert every.seen == [("enter", "alice"), ("update", "alice"), ("leave", "alice")]
            refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
            assert len(refusals) == 1
            assert "msgSerial must not be negative" in refusals[0]


async def test_a_listener_removed_during_a_burst_gets_no_later_event() -> None:
    """RTP7 within one batch: an unsubscribe made by a listener counts from the next event."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with held_burst(server, 3) as (gate, room, _):
            removed = Recorder()
            subscription: list[Any] = []

            def remover(event: PresenceMessage) -> None:
                subscription[0].unsubscribe()

            room.presence.subscribe(remover)
            subscription.append(room.presence.subscribe(removed))
            gate.release_together()
            assert removed.seen == [("enter", "alice")]


async def test_a_listener_that_raises_mid_burst_misses_nothing_and_breaks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    with anyio.fail_after(HANG):
        async with held_burst(server, 3) as (gate, room, _):
            seen: list[object] = []

            def failing(event: PresenceMessage) -> None:
                seen.append(event.data)
                raise RuntimeError("listener bug")

            after = Recorder()
            room.presence.subscribe(failing)
            room.presence.subscribe(after)
            with caplog.at_level(logging.ERROR, logger="presence_core.client"):
                gate.release_together()
            assert seen == [0, 1, 2]
            assert [e.data for e in after.events] == [0, 1, 2]
            assert sum("listener bug" in (r.exc_text or "") for r in caplog.records) == 3


class _Receiver:
    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, message: ProtocolMessage) -> None:
        self.calls.append(message)

    def many(self, messages: list[ProtocolMessage]) -> None:
        self.calls.append(list(messages))


async def test_a_link_hands_frames_read_together_to_many_and_a_lone_frame_to_the_receiver() -> None:
    """What the WebSocket link does with the frames of one read of the socket; a receiver
    without ``many`` gets them one by one."""
    a, b = (ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=str(n)) for n in range(2))
    receiver = _Receiver()
    frames = [a, b]
    _hand_over(frames, receiver)
    _hand_over([a], receiver)
    _hand_over([], receiver)
    assert receiver.calls == [[a, b], a]
    assert frames == []
    plain: list[ProtocolMessage] = []
    _hand_over([a, b], plain.append)
    assert plain == [a, b]
