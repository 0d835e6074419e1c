"""Room presence through the client: RTP6 and RTP7 (listeners), RTP11 (get), feeds, listeners.

In-process, on both event loops.  Waits are for events, never for time.
"""

from __future__ import annotations

import logging

import anyio
import pytest

from presence_core import (
    ChannelState,
    ConnectionSettings,
    PresenceError,
    PresenceMessage,
    RoomOptions,
    UsageError,
)
from presence_core.client import FeedOverflow, ServerHost
from tests.client.support import HANG, Gate, Recorder, clients, make_server

pytestmark = pytest.mark.anyio


async def test_rtp6_subscribe_filters_by_action() -> None:
    """RTP6a/b: a listener without actions gets every event; with one action or a list, only
    those; actions are names or PresenceActions, and an unknown one is refused."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice", "bob") as (alice, bob):
            room = await bob.rooms.get("r")
            every, enter, update_leave = Recorder(), Recorder(), Recorder()
            room.presence.subscribe(every)
            room.presence.subscribe("enter", enter)
            room.presence.subscribe(["update", "leave"], update_leave)
            with pytest.raises(UsageError, match="unknown presence action"):
                room.presence.subscribe("absent", Recorder())
            await room.attach()
            mine = (await alice.rooms.get("r")).presence
            await mine.enter(1)
            await mine.update(2)
            await mine.leave(3)
            await every.wait_seen("leave", "alice")
            assert every.seen == [("enter", "alice"), ("update", "alice"), ("leave", "alice")]
            assert enter.seen == [("enter", "alice")]
            assert update_leave.seen == [("update", "alice"), ("leave", "alice")]
            assert [e.data for e in every.events] == [1, 2, 3]


async def test_rtp6_members_present_at_attach_arrive_as_present_events() -> None:
    """RTP6: the SYNC on attach gives "present" events to a "present" listener."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice", "bob") as (alice, bob):
            await (await alice.rooms.get("r")).presence.enter("here")
            room = await bob.rooms.get("r")
            present = Recorder()
            room.presence.subscribe("present", present)
            await room.attach()
            await present.wait_seen("present", "alice")
            event = present.events[0]
            assert (event.data, event.connection_id) == ("here", alice.connection.id)
            assert event.id is not None
            assert event.timestamp is not None


async def test_rtp7_unsubscribe_one_listener_and_all() -> None:
    """RTP7: sub.unsubscribe() removes that listener only; unsubscribe_all() removes every
    listener and feed; neither leaves presence or detaches."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice", "bob") as (alice, bob):
            room = await bob.rooms.get("r")
            kept, dropped = Recorder(), Recorder()
            room.presence.subscribe(kept)
            sub = room.presence.subscribe(dropped)
            await room.attach()
            await room.presence.enter("bob")
            mine = (await alice.rooms.get("r")).presence
            await mine.enter(1)
            await kept.wait_seen("enter", "alice")
            sub.unsubscribe()
            sub.unsubscribe()
            assert not sub.active
            await mine.update(2)
            await kept.wait_seen("update", "alice")
            assert ("update", "alice") not in dropped.seen
            feed = room.presence.events()
            room.presence.unsubscribe_all()
            await mine.leave()
            async with clients(server, "carol") as (carol,):
                # carol's view shows the leave has happened, so bob's listeners had their chance
                carol_room = await carol.rooms.get("r")
                assert {m.client_id for m in await carol_room.presence.get()} == {"bob"}
            assert ("leave", "alice") not in kept.seen
            assert [e async for e in feed] == []
            assert room.state is ChannelState.ATTACHED
            assert await room.presence.is_user_present("bob")


async def test_listeners_may_be_coroutines_and_may_raise(caplog: pytest.LogCaptureFixture) -> None:
    """A coroutine listener gets the events in order; a raising listener is logged and the
    others still get every event."""
    server = make_server()
    got: list[str] = []
    done = anyio.Event()

    async def slow(event: PresenceMessage) -> None:
        await anyio.sleep(0)
        got.append(event.action.event_name)
        if event.action.event_name == "leave":
            done.set()

    def broken(event: PresenceMessage) -> None:
        raise RuntimeError("listener bug")

    with anyio.fail_after(HANG), caplog.at_level(logging.ERROR, "presence_core.client"):
        async with clients(server, "alice", "bob") as (alice, bob):
            room = await bob.rooms.get("r")
            room.presence.subscribe(broken)
            room.presence.subscribe(slow)
            after = Recorder()
            room.presence.subscribe(after)
            await room.attach()
            mine = (await alice.rooms.get("r")).presence
            await mine.enter()
            await mine.update()
            await mine.leave()
            await done.wait()
            assert got == ["enter", "update", "leave"]
            assert after.seen == [("enter", "alice"), ("update", "alice"), ("leave", "alice")]
    assert (
        sum("listener bug" in r.getMessage() or "raised" in r.getMessage() for r in caplog.records)
        == 3
    )


async def test_events_feed_in_order_and_overflow_policy() -> None:
    """events() yields the room's events in order; a consumer more than ``buffer`` events
    behind gets what was buffered, then FeedOverflow (the stated policy)."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice", "bob") as (alice, bob):
            room = await bob.rooms.get("r")
            feed = room.presence.events(["enter", "leave"])
            small = room.presence.events(buffer=2)
            last = Recorder()
            room.presence.subscribe("leave", last)
            await room.attach()
            mine = (await alice.rooms.get("r")).presence
            await mine.enter("a")
            await mine.update("b")
            await mine.leave("c")
            await last.wait_seen("leave", "alice")
            first = await feed.__anext__()
            second = await feed.__anext__()
            assert [first.action.event_name, second.action.event_name] == ["enter", "leave"]
            got = [(await small.__anext__()).data, (await small.__anext__()).data]
            assert got == ["a", "b"]
            with pytest.raises(FeedOverflow):
                await small.__anext__()
            with pytest.raises(ValueError, match="at least one"):
                room.presence.events(buffer=0)
            feed.close()


async def test_rtp11_get_waits_for_the_sync() -> None:
    """RTP11a: get() returns once the SYNC is complete; RTP11c1: wait_for_sync=False returns
    what is known at once; RTP11c2/c3: filters by clientId and connectionId."""
    server = make_server(sync_page_size=1)
    with anyio.fail_after(HANG):
        async with clients(server, "alice", "carol") as (alice, carol):
            for client in (alice, carol):
                await (await client.rooms.get("r")).presence.enter(client.client_id)
            gate = Gate(ServerHost.of(server).connector())
            gate.hold_sync = True
            from presence_core.client import connect  # noqa: PLC0415

            async with connect(gate, key="app.key:s3cret", client_id="bob") as bob:
                room = await bob.rooms.get("r")
                await room.attach()
                assert await room.presence.get(wait_for_sync=False) == []
                result: list[object] = []

                async def waiting_get() -> None:
                    result.extend(await room.presence.get())

                async with anyio.create_task_group() as group:
                    group.start_soon(waiting_get)
                    await anyio.wait_all_tasks_blocked()
                    assert result == []  # still syncing: get() has not returned
                    gate.release()
                assert {m.client_id for m in result} == {"alice", "carol"}  # type: ignore[attr-defined]
                only = await room.presence.get(client_id="carol")
                assert [(m.client_id, m.data) for m in only] == [("carol", "carol")]
                by_conn = await room.presence.get(connection_id=alice.connection.id)
                assert [m.client_id for m in by_conn] == ["alice"]
                member = only[0]
                assert member.action.event_name == "present"
                assert member.updated_at is not None


async def test_rtp11d_get_on_a_suspended_room() -> None:
    """RTP11d: on a SUSPENDED room get() raises 91005, and get(wait_for_sync=False) returns the
    members known when it was suspended."""
    server = make_server(connection_state_ttl=1, grace_period=1)
    host = ServerHost.of(server)
    gate = Gate(host.connector())
    settings = ConnectionSettings(disconnected_retry_timeout=1, suspended_retry_timeout=600_000)
    from presence_core.client import connect  # noqa: PLC0415

    with anyio.fail_after(HANG):
        async with clients(server, "alice") as (alice,):
            await (await alice.rooms.get("r")).presence.enter("a")
            async with connect(
                gate, key="app.key:s3cret", client_id="bob", settings=settings
            ) as bob:
                room = await bob.rooms.get("r")
                await room.attach()
                assert await room.presence.is_user_present("alice")
                gate.refuse = True
                tid = host.transport_of(bob.connection.id or "")
                assert tid is not None
                suspended = bob.connection.changes()
                host.drop(tid)
                async for change in suspended:
                    if change.current.value == "suspended":
                        break
                assert room.state is ChannelState.SUSPENDED
                with pytest.raises(PresenceError) as out_of_sync:
                    await room.presence.get()
                assert out_of_sync.value.code == 91005
                with pytest.raises(PresenceError) as again:
                    await room.presence.is_user_present("alice")
                assert again.value.code == 91005
                stale = await room.presence.get(wait_for_sync=False)
                assert [m.client_id for m in stale] == ["alice"]


async def test_rtp11f_get_without_presence_subscribe() -> None:
    """RTP11f: a room attached without the presence-subscribe mode cannot know its members;
    get() raises 91008 (with or without waiting for the sync)."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice") as (alice,):
            room = await alice.rooms.get("r", options=RoomOptions(subscribe=False))
            await room.presence.enter("me")
            with pytest.raises(PresenceError) as refused:
                await room.presence.get()
            assert refused.value.code == 91008
            with pytest.raises(PresenceError) as at_once:
                await room.presence.get(wait_for_sync=False)
            assert at_once.value.code == 91008


async def test_operation_failure_raises_with_the_ably_code() -> None:
    """A NACK makes enter() raise PresenceError with the server's code (here: 40009, too big)."""
    server = make_server(max_message_size=200)
    with anyio.fail_after(HANG):
        async with clients(server, "alice") as (alice,):
            room = await alice.rooms.get("r")
            with pytest.raises(PresenceError) as nacked:
                await room.presence.enter("x" * 500)
            assert nacked.value.code == 40009
            assert not isinstance(nacked.value, UsageError)
            await room.presence.enter("small")
            assert [m.data for m in await room.presence.get()] == ["small"]


async def test_rooms_get_returns_one_room_per_name() -> None:
    """rooms.get() gives the same Room for a name; other options for it are refused."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice") as (alice,):
            room = await alice.rooms.get("r", options=RoomOptions(enter=True, subscribe=True))
            assert await alice.rooms.get("r") is room
            assert room.channel == "r::$chat"
            assert room.name == "r"
            with pytest.raises(UsageError):
                await alice.rooms.get("r", options=RoomOptions(subscribe=False))
            await room.attach()
            await room.detach()
            assert room.state is ChannelState.DETACHED
            await room.detach()
