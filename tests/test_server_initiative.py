"""The server's own inputs (detach or fail a channel, end a connection, shut down) and SYNC
pages sent over time.  One test per behaviour, named after its rule.
"""

from __future__ import annotations

import pytest

from presence_core import ErrorInfo, PresenceAction, ProtocolAction, ProtocolMessage, UsageError
from presence_core.server import SHUTDOWN, Disconnect, Server, ServerOutput
from tests.server_support import (
    T0,
    actions,
    attach,
    connect,
    make_server,
    member_view,
    presence,
    presence_items,
)
from tests.test_server import CH, two_clients

A = PresenceAction
P = ProtocolAction
FAILURE = ErrorInfo(code=50000, status_code=500, message="internal")


def frames(out: ServerOutput, tid: str, action: int) -> list[ProtocolMessage]:
    return [m for m in out.messages_for(tid) if m.action == action]


def disconnects(out: ServerOutput) -> list[str]:
    return [str(c.transport_id) for c in out.commands if isinstance(c, Disconnect)]


def test_RTL13a_detach_channel_sends_DETACHED_and_its_members_leave() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "hi")
    out = server.detach_channel(alice.connection_id, CH, now=T0 + 1)
    (detached,) = frames(out, alice.tid, P.DETACHED)
    assert detached.channel == CH
    assert [(i.action, i.client_id) for i in presence_items(out, bob.tid)] == [(A.LEAVE, "alice")]
    assert member_view(server, CH) == {}
    # Attached again, the connection can enter again.
    attach(server, alice, CH, now=T0 + 2)
    presence(server, alice, CH, A.ENTER, "back", now=T0 + 3)
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "back"}


def test_RTL14_fail_channel_sends_a_channel_ERROR_and_its_members_leave() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "hi")
    out = server.fail_channel(alice.connection_id, CH, FAILURE, now=T0 + 1)
    (failed,) = frames(out, alice.tid, P.ERROR)
    assert (failed.channel, failed.error) == (CH, FAILURE)
    assert [(i.action, i.client_id) for i in presence_items(out, bob.tid)] == [(A.LEAVE, "alice")]
    assert disconnects(out) == []


def test_detach_or_fail_of_a_channel_not_attached_does_nothing() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    assert server.detach_channel(alice.connection_id, CH, now=T0) == ServerOutput()
    assert server.fail_channel(alice.connection_id, CH, FAILURE, now=T0) == ServerOutput()


def test_RTN15i_fail_connection_sends_ERROR_closes_the_transport_and_cannot_be_resumed() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "hi")
    out = server.fail_connection(alice.connection_id, FAILURE, now=T0 + 1)
    (failed,) = frames(out, alice.tid, P.ERROR)
    assert (failed.channel, failed.error) == (None, FAILURE)
    assert disconnects(out) == [alice.tid]
    assert [(i.action, i.client_id) for i in presence_items(out, bob.tid)] == [(A.LEAVE, "alice")]
    server.transport_closed(alice.tid, now=T0 + 2)
    _, again = connect(server, "ta2", resume=alice.connection_key, now=T0 + 3)
    (connected,) = frames(again, "ta2", P.CONNECTED)
    assert connected.connection_id != alice.connection_id
    assert connected.error is not None
    assert connected.error.code == 80008


def test_server_initiative_for_an_unknown_connection_is_misuse() -> None:
    server = make_server()
    with pytest.raises(UsageError):
        server.detach_channel("nobody", CH, now=T0)
    with pytest.raises(UsageError):
        server.fail_connection("nobody", FAILURE, now=T0)


def test_RTN15h_shutdown_sends_every_client_DISCONNECTED_and_closes_every_transport() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "hi")
    out = server.shutdown(now=T0 + 1)
    for client in (alice, bob):
        (disconnected,) = frames(out, client.tid, P.DISCONNECTED)
        assert disconnected.error == SHUTDOWN
    assert sorted(disconnects(out)) == sorted([alice.tid, bob.tid])
    for client in (alice, bob):
        server.transport_closed(client.tid, now=T0 + 2)
    # The members stay for the grace period, so a resume after a quick restart keeps them.
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "hi"}


def paced(page_size: int = 2, interval: int = 100) -> Server:
    return make_server(sync_page_size=page_size, sync_page_interval=interval)


def populate(server: Server, members: int) -> None:
    """``members`` connections, each attached to CH with one member."""
    for k in range(members):
        client, _ = connect(server, f"w{k}", f"u{k}")
        attach(server, client, CH)
        presence(server, client, CH, A.ENTER, k)


def sync_pages(out: ServerOutput, tid: str) -> list[tuple[str | None, list[str | None]]]:
    return [
        (m.channel_serial, [i.client_id for i in m.presence or ()])
        for m in frames(out, tid, P.SYNC)
    ]


def test_RTP18_paced_sync_sends_one_page_now_and_the_rest_one_interval_apart() -> None:
    server = paced()
    populate(server, 5)
    reader, _ = connect(server, "r", "reader")
    out = attach(server, reader, CH, now=T0)
    assert [len(ids) for _, ids in sync_pages(out, "r")] == [2]
    assert server.next_deadline() == T0 + 100
    assert sync_pages(server.tick(now=T0 + 99), "r") == []
    second = sync_pages(server.tick(now=T0 + 100), "r")
    last = sync_pages(server.tick(now=T0 + 200), "r")
    assert [len(ids) for _, ids in second + last] == [2, 1]
    (serial, _) = last[0]
    assert serial is not None
    assert serial.endswith(":")  # the last page has an empty cursor
    assert sync_pages(server.tick(now=T0 + 1_000), "r") == []


def test_RTP2c_later_pages_carry_the_members_as_they_were_when_the_sync_started() -> None:
    """A member leaving between pages still appears in a later page: the client's newness
    rules, not the server, drop it (D1, D2)."""
    server = paced(page_size=1)
    alice, _ = connect(server, "ta", "alice")
    bob, _ = connect(server, "tb", "bob")
    for client in (alice, bob):
        attach(server, client, CH)
        presence(server, client, CH, A.ENTER)
    reader, _ = connect(server, "r", "reader")
    attach(server, reader, CH, now=T0)
    leave = presence(server, bob, CH, A.LEAVE, now=T0 + 10)
    assert [(i.action, i.client_id) for i in presence_items(leave, "r")] == [(A.LEAVE, "bob")]
    later = sync_pages(server.tick(now=T0 + 100), "r")
    assert [ids for _, ids in later] == [["bob"]]


def test_RTP18a_a_new_sync_replaces_the_one_still_paging() -> None:
    server = paced(page_size=1)
    populate(server, 3)
    reader, _ = connect(server, "r", "reader")
    first = sync_pages(attach(server, reader, CH, now=T0), "r")
    second = sync_pages(server.resync(CH, now=T0 + 50), "r")
    first_id = (first[0][0] or "").partition(":")[0]
    second_id = (second[0][0] or "").partition(":")[0]
    assert first_id != second_id
    rest = sync_pages(server.tick(now=T0 + 1_000), "r")
    assert {(serial or "").partition(":")[0] for serial, _ in rest} == {second_id}


def test_paced_sync_stops_when_its_transport_detaches() -> None:
    server = paced(page_size=1)
    populate(server, 3)
    reader, _ = connect(server, "r", "reader")
    attach(server, reader, CH, now=T0)
    server.receive("r", ProtocolMessage(action=P.DETACH, channel=CH), now=T0 + 1)
    assert actions(server.tick(now=T0 + 1_000), "r") == []
