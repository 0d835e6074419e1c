"""End to end against a ``presence-core serve`` subprocess on 127.0.0.1, over real WebSockets.

The clients are presence_core.client on asyncio and on trio.  Nothing waits for time: every
wait is for an event a listener records, with a generous hang guard.
"""

from __future__ import annotations

import sys

import anyio
import pytest

from presence_core import ConnectionState, RoomOptions
from presence_core.client import connect
from presence_core.server import SHUTDOWN
from tests.client.support import Recorder, clients
from tests.serve.support import HANG, KEY, Breakable, http_get, served

pytestmark = pytest.mark.anyio

NAMES = ("alice", "bob", "carol")


async def test_three_clients_enter_update_leave_and_agree() -> None:
    with anyio.fail_after(HANG):
        async with served() as server, clients(server.url, *NAMES) as group:
            rooms = [await c.rooms.get("room1") for c in group]
            recorders = [Recorder() for _ in rooms]
            for room, recorder in zip(rooms, recorders, strict=True):
                room.presence.subscribe(recorder)
                await room.attach()
            for room, name in zip(rooms, NAMES, strict=True):
                await room.presence.enter({"who": name})
            for recorder in recorders:
                for name in NAMES:
                    await recorder.wait_seen("enter", name)
            await rooms[1].presence.update({"who": "bob", "status": "away"})
            await rooms[0].presence.leave()
            for recorder in recorders:
                await recorder.wait_seen("leave", "alice")
            expected = {"bob": {"who": "bob", "status": "away"}, "carol": {"who": "carol"}}
            for room, recorder in zip(rooms, recorders, strict=True):
                assert {m.client_id: m.data for m in await room.presence.get()} == expected
                assert ("update", "bob") in recorder.seen


async def test_a_killed_client_leaves_after_the_grace_period() -> None:
    """The victim is a ``presence-core enter`` process, killed: its socket dies unannounced."""
    with anyio.fail_after(HANG):
        async with (
            served("--grace-period", "0.5") as server,
            clients(server.url, "alice") as (alice,),
        ):
            room = await alice.rooms.get("room1")
            recorder = Recorder()
            room.presence.subscribe(recorder)
            await room.attach()
            command = [
                sys.executable,
                "-m",
                "presence_core",
                "enter",
                "room1",
                "--url",
                server.url,
                "--key",
                KEY,
                "--client-id",
                "zoe",
                "--data",
                '{"x": 1}',
            ]
            victim = await anyio.open_process(command)
            try:
                await recorder.wait_seen("enter", "zoe")
                assert [m.data for m in await room.presence.get(client_id="zoe")] == [{"x": 1}]
                victim.kill()
                await recorder.wait_seen("leave", "zoe")
            finally:
                if victim.returncode is None:
                    victim.kill()
                with anyio.CancelScope(shield=True):
                    await victim.wait()
                    await victim.aclose()
            assert recorder.seen == [("enter", "zoe"), ("leave", "zoe")]
            assert await room.presence.get() == []


async def test_a_drop_resumed_within_the_grace_period_gives_peers_no_events() -> None:
    with anyio.fail_after(HANG):
        async with (
            served("--grace-period", "30") as server,
            clients(server.url, "alice") as (alice,),
        ):
            breakable = Breakable(server.url)
            async with connect(breakable, key=KEY, client_id="bob") as bob:
                rooms = [await alice.rooms.get("room1"), await bob.rooms.get("room1")]
                recorder = Recorder()
                rooms[0].presence.subscribe(recorder)
                for room in rooms:
                    await room.attach()
                await rooms[1].presence.enter({"status": "online"})
                await recorder.wait_seen("enter", "bob")
                connection_id = bob.connection.id
                changes = bob.connection.changes()
                breakable.break_links()
                async for change in changes:
                    if change.current is ConnectionState.CONNECTED:
                        break
                assert bob.connection.id == connection_id  # resumed, not a new connection
                # Bob's next update follows his re-attach and any re-entry on the same
                # connection, so whatever the resume caused would reach alice before it.
                await rooms[1].presence.update({"status": "back"})
                await recorder.wait_seen("update", "bob")
                assert recorder.seen == [("enter", "bob"), ("update", "bob")]


async def test_a_wrong_key_is_refused() -> None:
    with anyio.fail_after(HANG):
        async with (
            served() as server,
            connect(server.url, key="app.key:wrong", client_id="mallory") as client,
        ):
            await client.connection.wait_for(ConnectionState.FAILED)
            reason = client.connection.error_reason
            assert reason is not None
            assert reason.code == 40101


async def test_rest_presence_lists_the_same_members_as_get() -> None:
    with anyio.fail_after(HANG):
        async with served() as server, clients(server.url, *NAMES) as group:
            rooms = [await c.rooms.get("room1") for c in group]
            recorder = Recorder()
            rooms[0].presence.subscribe(recorder)
            for room, name in zip(rooms, NAMES, strict=True):
                await room.attach()
                await room.presence.enter({"who": name})
            await rooms[2].presence.leave()
            await recorder.wait_seen("leave", "carol")
            members = await rooms[0].presence.get()
            status, listed = await http_get(server.port, "/channels/room1::$chat/presence")
            assert status == 200
            assert sorted(
                (m["clientId"], m["connectionId"], m["action"]) for m in listed
            ) == sorted((m.client_id, m.connection_id, 1) for m in members)
            assert {m["clientId"] for m in listed} == {"alice", "bob"}
            status, page = await http_get(
                server.port, "/channels/room1::$chat/presence?clientId=bob&envelope=json"
            )
            assert status == 200
            assert page["statusCode"] == 200
            assert [m["clientId"] for m in page["response"]] == ["bob"]
            status, refused = await http_get(
                server.port, "/channels/room1::$chat/presence", key="app.key:wrong"
            )
            assert status == 401
            assert refused["error"]["code"] == 40101
            status, health = await http_get(server.port, "/health", key=None)
            assert status == 200
            assert health["status"] == "ok"
            assert health["members"] == 2
            assert health["channels"] == 1
            assert health["connections"] == 3
            assert health["in_grace"] == 0


async def test_sigint_sends_disconnected_then_exits_0() -> None:
    with anyio.fail_after(HANG):
        async with served() as server, clients(server.url, "alice") as (alice,):
            room = await alice.rooms.get("room1", options=RoomOptions(subscribe=True))
            await room.attach()
            changes = alice.connection.changes()
            server.interrupt()
            async for change in changes:
                if change.current is ConnectionState.DISCONNECTED:
                    assert change.reason == SHUTDOWN
                    break
            assert await server.process.wait() == 0
