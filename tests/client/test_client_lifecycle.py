"""The connection's life through the client: states, failures, the reconnect and resume, close.

Both transports where the network matters, both event loops always.
"""

from __future__ import annotations

import logging

import anyio
import pytest

import presence_core
from presence_core import (
    AuthDetails,
    ConnectionDetails,
    ConnectionState,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from presence_core.client import Client, ServerHost, connect
from presence_core.client._support import redacted
from tests.client.support import HANG, KEY, TRANSPORTS, Recorder, clients, make_server, target

pytestmark = pytest.mark.anyio

CS = ConnectionState


def _state(client: Client) -> ConnectionState:
    """Read afresh: the state changes under the type checker's feet."""
    return client.connection.state


async def test_connection_states_can_be_awaited_and_iterated() -> None:
    """client.connection.state, wait_for(...) and changes() follow the reducer's states."""
    server = make_server()
    with anyio.fail_after(HANG):
        client = presence_core.connect(server, key=KEY, client_id="alice")
        assert isinstance(client, Client)
        async with client:
            changes = client.connection.changes()
            await client.connection.wait_for(CS.CONNECTED)
            await client.connection.wait_for(CS.CONNECTED)  # already there: at once
            assert _state(client) is CS.CONNECTED
            assert client.connection.id is not None
            assert client.client_id == "alice"
            assert client.recovery_key is not None
            await client.close()
            assert _state(client) is CS.CLOSED
            seen = [(c.previous, c.current) async for c in changes]
        assert seen[-2:] == [(CS.CONNECTED, CS.CLOSING), (CS.CLOSING, CS.CLOSED)]
        assert (CS.CONNECTING, CS.CONNECTED) in seen or seen[0][0] is CS.CONNECTED


async def test_refused_credentials_fail_the_connection() -> None:
    """A key the server refuses fails the connection with the server's error (RTN14g)."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with connect(server, key="app.key:wrong", client_id="alice") as client:
            await client.connection.wait_for(CS.FAILED)
            reason = client.connection.error_reason
            assert reason is not None
            assert reason.code // 100 == 401
            room = await client.rooms.get("r")
            with pytest.raises(UsageError):
                await room.presence.enter("x")


async def test_connect_refuses_what_it_cannot_reach() -> None:
    with pytest.raises(UsageError):
        connect("http://example.invalid/", key=KEY)
    with pytest.raises(UsageError):
        connect(42, key=KEY)  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        connect(make_server(), key=KEY, token="t")
    client = connect(make_server(), key=KEY, client_id="alice")
    with pytest.raises(UsageError, match="not open"):
        await client.rooms.get("r")


async def test_websocket_upgrade_carries_ably_query_parameters() -> None:
    """The WebSocket URL carries key, clientId, format=json and v=6; a reconnect adds resume."""
    server = make_server()
    with anyio.fail_after(HANG):
        async with target("websocket", server) as (url, ws_host), clients(url, "alice") as (a,):
            assert ws_host is not None
            await a.connection.wait_for(CS.CONNECTED)
            first = ws_host.upgrades[0]
            assert first["key"] == KEY
            assert first["clientId"] == "alice"
            assert (first["format"], first["v"]) == ("json", "6")
            assert "resume" not in first
            key = a._conn.connection_key
            changes = a.connection.changes()
            tid = ws_host.host.transport_of(a.connection.id or "")
            assert tid is not None
            ws_host.host.drop(tid)
            async for change in changes:
                if change.previous is CS.CONNECTING and change.current is CS.CONNECTED:
                    break
            assert ws_host.upgrades[1]["resume"] == key


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reconnect_resumes_with_an_operation_in_flight(transport: str) -> None:
    """The transport drops while alice's update is in flight (its echo seen, its ACK not).
    The client reconnects by itself and resumes within the grace period (RTN15a, RTN15c6): the
    update succeeds, and bob sees it exactly once and nothing else (no leave, no re-enter)."""
    server = make_server()
    host = ServerHost.of(server)
    with anyio.fail_after(HANG):
        async with (
            target(transport, server) as (where, _),
            clients(where, "alice", "bob") as (
                alice,
                bob,
            ),
        ):
            bob_room = await bob.rooms.get("room1")
            seen = Recorder()
            bob_room.presence.subscribe(seen)
            await bob_room.attach()
            room = await alice.rooms.get("room1")
            await room.presence.enter({"v": 1})
            await seen.wait_seen("enter", "alice")
            connection_id = alice.connection.id
            dropped: list[int] = []

            def drop_on_echo(event: PresenceMessage) -> None:
                if (
                    event.client_id == "alice"
                    and event.action is PresenceAction.UPDATE
                    and not dropped
                ):
                    tid = host.transport_of(connection_id or "")
                    assert tid is not None
                    dropped.append(tid)
                    host.drop(tid)  # the ACK behind this echo is lost with the transport

            room.presence.subscribe("update", drop_on_echo)
            changes = alice.connection.changes()
            await room.presence.update({"v": 2})
            assert dropped
            states = []
            async for change in changes:
                states.append(change.current)
                if change.current is CS.CONNECTED:
                    break
            changes.close()
            if transport == "inprocess":
                # in-process the loss is certain to precede the ACK; over a socket the ACK may
                # already have been read when the drop is noticed
                assert states[:2] == [CS.DISCONNECTED, CS.CONNECTING]
            assert alice.connection.id == connection_id  # resumed, not a new connection
            await room.presence.update({"v": 3})
            await seen.wait_for(lambda events: any(e.data == {"v": 3} for e in events))
            assert seen.seen == [("enter", "alice"), ("update", "alice"), ("update", "alice")]
            assert [e.data for e in seen.events] == [{"v": 1}, {"v": 2}, {"v": 3}]
            assert [m.data for m in await bob_room.presence.get()] == [{"v": 3}]


async def test_close_is_idempotent_and_ends_feeds() -> None:
    server = make_server()
    with anyio.fail_after(HANG):
        async with clients(server, "alice") as (alice,):
            room = await alice.rooms.get("r")
            feed = room.presence.events()
            await alice.close()
            await alice.close()
            assert [e async for e in feed] == []
            assert alice.connection.state is CS.CLOSED


async def test_logged_frames_hide_connection_keys_and_tokens(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every frame is logged at DEBUG, but a connection key (a resume credential) and a token
    never appear: a log reader must not be able to take the connection over."""
    server = make_server()
    caplog.set_level(logging.DEBUG, logger="presence_core")
    with anyio.fail_after(HANG):
        async with target("websocket", server) as (url, _), clients(url, "alice") as (alice,):
            room = await alice.rooms.get("r")
            await room.presence.enter("here")
            key = alice._conn.connection_key
            # An AUTH frame carries a token; the server refuses this one, ending the connection.
            alice._call(lambda t: alice._conn.authorize("secret-token", now=t))
            await alice.connection.wait_for(ConnectionState.FAILED)
    assert key
    frames = [r.getMessage() for r in caplog.records if r.name == "presence_core.client.websocket"]
    assert any("CONNECTED" in line for line in frames)
    assert any("AUTH" in line for line in frames)
    assert not [line for line in frames if key in line or "secret-token" in line]


def test_redacted_hides_only_the_credentials() -> None:
    details = ConnectionDetails(connection_key="k1", max_idle_interval=5)
    message = ProtocolMessage(
        action=ProtocolAction.CONNECTED, connection_key="k1", connection_details=details
    )
    hidden = redacted(message)
    assert hidden.connection_key != "k1"
    assert hidden.connection_details is not None
    assert hidden.connection_details.connection_key != "k1"
    assert hidden.connection_details.max_idle_interval == 5
    auth = ProtocolMessage(
        action=ProtocolAction.AUTH, auth=AuthDetails(access_token="s3cr3t-value")
    )
    assert "s3cr3t-value" not in repr(redacted(auth))
    plain = ProtocolMessage(action=ProtocolAction.HEARTBEAT)
    assert redacted(plain) is plain
