"""End to end: three clients against the server reducer, in-process and over real WebSockets.

Each test runs on both transports and both event loops.  Nothing waits for time: every wait is
for an event a listener records, with a generous hang guard.
"""

from __future__ import annotations

import anyio
import pytest

from presence_core import PresenceAction, RoomOptions, UsageError
from presence_core.client import ServerHost
from tests.client.support import HANG, TRANSPORTS, Recorder, clients, make_server, target

pytestmark = pytest.mark.anyio

NAMES = ("alice", "bob", "carol")


async def _views_agree(rooms: list, members: dict[str, object]) -> None:  # type: ignore[type-arg]
    """Every client's get() and is_user_present() show exactly ``members`` (clientId -> data)."""
    for room in rooms:
        got = {m.client_id: m.data for m in await room.presence.get()}
        assert got == members
        for name in NAMES:
            assert await room.presence.is_user_present(name) is (name in members)
            assert [m.client_id for m in await room.presence.get(client_id=name)] == (
                [name] if name in members else []
            )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_three_clients_enter_update_leave(transport: str) -> None:
    """get and is_user_present agree everywhere; filters deliver exactly the matching events
    (RTP6); unsubscribe stops delivery (RTP7)."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with target(transport, server) as (where, _), clients(where, *NAMES) as group:
            rooms = [await c.rooms.get("room1") for c in group]
            everything = [Recorder() for _ in rooms]
            enters = [Recorder() for _ in rooms]
            changes = [Recorder() for _ in rooms]
            subscriptions = []
            for room, a, e, c in zip(rooms, everything, enters, changes, strict=True):
                subscriptions.append(room.presence.subscribe(a))
                room.presence.subscribe("enter", e)
                room.presence.subscribe(["update", PresenceAction.LEAVE], c)
                await room.attach()
            for room, name in zip(rooms, NAMES, strict=True):
                await room.presence.enter({"who": name})
            for recorder in everything:
                for name in NAMES:
                    await recorder.wait_seen("enter", name)
            await _views_agree(rooms, {n: {"who": n} for n in NAMES})

            await rooms[2].presence.update({"who": "carol", "status": "away"})
            for recorder in changes:
                await recorder.wait_seen("update", "carol")
            # bob stops listening to everything; his leave/update listener still hears
            subscriptions[1].unsubscribe()
            await rooms[0].presence.leave()
            for recorder in changes:
                await recorder.wait_seen("leave", "alice")
            await _views_agree(
                rooms, {"bob": {"who": "bob"}, "carol": {"who": "carol", "status": "away"}}
            )

            for recorder in enters:
                assert {a for a, _ in recorder.seen} == {"enter"}
            for recorder in changes:
                assert recorder.seen == [("update", "carol"), ("leave", "alice")]
            assert ("leave", "alice") not in everything[1].seen
            assert ("leave", "alice") in everything[0].seen
            assert ("leave", "alice") in everything[2].seen
            assert ("update", "carol") in everything[1].seen


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_subscribe_and_enter_refused_by_room_options(transport: str) -> None:
    """subscribe() in a room opened with subscribe=False raises 102108; enter() in one opened
    with enter=False raises a UsageError before anything is sent."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with target(transport, server) as (where, _), clients(where, "alice") as (alice,):
            quiet = await alice.rooms.get("quiet", options=RoomOptions(subscribe=False))
            with pytest.raises(UsageError) as refused:
                quiet.presence.subscribe(Recorder())
            assert refused.value.code == 102108
            with pytest.raises(UsageError) as feed_refused:
                quiet.presence.events()
            assert feed_refused.value.code == 102108

            watcher = await alice.rooms.get("watch", options=RoomOptions(enter=False))
            await watcher.attach()
            serial = alice._conn.msg_serial
            with pytest.raises(UsageError, match="'enter' is false"):
                await watcher.presence.enter({"x": 1})
            with pytest.raises(UsageError, match="'enter' is false"):
                await watcher.presence.update({"x": 1})
            assert alice._conn.msg_serial == serial
            assert server.members(watcher.channel) == ()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_close_leaves_at_once(transport: str) -> None:
    """client.close() says goodbye: the others see the leave without a grace period."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with target(transport, server) as (where, _), clients(where, "bob") as (bob,):
            room = await bob.rooms.get("room1")
            seen = Recorder()
            room.presence.subscribe(seen)
            await room.attach()
            async with clients(where, "alice") as (alice,):
                alice_room = await alice.rooms.get("room1")
                await alice_room.presence.enter("hi")
                await seen.wait_seen("enter", "alice")
            await seen.wait_seen("leave", "alice")
            assert await room.presence.get() == []
            assert ServerHost.of(server).server is server
