"""Every bound on what a peer can make the server (or a client's outbox) keep, one test each.

Each test goes to the limit, then one past it, and checks three things: the Ably error the
protocol prescribes, that the connection is still usable afterwards (where the protocol lets
it be), and that the refused input changed nothing.  The socket's send queue, an adapter
bound, is tested in ``tests/serve/test_serve_bounds.py``, with the REST route's page size.
"""

from __future__ import annotations

import attrs

from presence_core import (
    Command,
    ErrorInfo,
    Flag,
    Message,
    Operation,
    OperationFailed,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core._codec import CodecLimits
from presence_core._outbox import MAX_QUEUED_FRAMES, OUTBOX_FULL, Frame, Outbox
from presence_core.server import ServerConnectionState
from tests.connection_support import receive
from tests.server_support import (
    T0,
    Client,
    actions,
    attach,
    connect,
    make_server,
    member_view,
    presence,
    presence_items,
)
from tests.test_connection import ROOM, ack, attached, of_type, sent, up
from tests.test_server import CH, two_clients
from tests.test_server_protocol import OTHER, error_of, presence_text, publish, texts

A = PresenceAction
P = ProtocolAction
ACK = P.ACK


def acked(out_frames: tuple[ProtocolMessage, ...], serial: int) -> bool:
    """Whether the frames end with a plain ACK of ``serial``."""
    last = out_frames[-1]
    return (last.action, last.msg_serial, last.error) == (ACK, serial, None)


def refused_with(out_frames: tuple[ProtocolMessage, ...], action: int, code: int) -> bool:
    """Whether the frames end with ``action`` (NACK or ERROR) carrying error ``code``."""
    last = out_frames[-1]
    return last.action == action and error_of(last).code == code


# --- frame size ------------------------------------------------------------------------------


def test_bound_frame_size_over_max_frame_bytes_is_nacked_40009() -> None:
    at_limit = presence_text(0, data="x" * 100)
    server = make_server(codec_limits=CodecLimits(max_frame_bytes=len(at_limit)))
    alice, bob = two_clients(server)
    assert acked(server.receive_frame("ta", at_limit, now=T0).messages_for("ta"), 0)
    before = member_view(server, CH)
    over = presence_text(1, data="y" * 101)
    out = server.receive_frame("ta", over, now=T0)
    (nack,) = out.messages_for("ta")
    assert (nack.action, nack.msg_serial) == (P.NACK, 1)
    assert (error_of(nack).code, error_of(nack).status_code) == (40009, 413)
    assert out.messages_for("tb") == ()
    assert member_view(server, CH) == before
    # Usable: the same serial, within the limit, is applied.
    again = server.receive_frame("ta", presence_text(1, data="z"), now=T0)
    assert acked(again.messages_for("ta"), 1)
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "z"}
    assert bob.connection_id


# --- data size -------------------------------------------------------------------------------


def test_bound_message_size_over_max_message_size_is_nacked_40009() -> None:
    limit = 64
    server = make_server(max_message_size=limit)
    alice, _bob = two_clients(server)
    fits = "x" * (limit - len("alice"))  # data and clientId together
    assert acked(presence(server, alice, CH, A.ENTER, fits).messages_for("ta"), 0)
    out = presence(server, alice, CH, A.UPDATE, fits + "y")
    assert refused_with(out.messages_for("ta"), P.NACK, 40009)
    assert out.messages_for("tb") == ()
    assert member_view(server, CH) == {(alice.connection_id, "alice"): fits}
    assert acked(presence(server, alice, CH, A.UPDATE, "small").messages_for("ta"), 2)
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "small"}


# --- members per channel ---------------------------------------------------------------------


def test_bound_members_per_channel_over_the_limit_is_nacked_91003() -> None:
    server = make_server(max_members_per_channel=2)
    alice, bob = two_clients(server)
    carol, _ = connect(server, "tc", "carol")
    attach(server, carol, CH)
    presence(server, alice, CH, A.ENTER, 1)
    presence(server, bob, CH, A.ENTER, 2)
    before = member_view(server, CH)
    out = presence(server, carol, CH, A.ENTER, 3)
    assert refused_with(out.messages_for("tc"), P.NACK, 91003)
    assert out.messages_for("ta") == out.messages_for("tb") == ()
    assert member_view(server, CH) == before
    # An update of a present member adds none, so it is within the limit.
    assert acked(presence(server, bob, CH, A.UPDATE, 20).messages_for("tb"), 1)
    presence(server, alice, CH, A.LEAVE)
    assert acked(presence(server, carol, CH, A.ENTER, 3).messages_for("tc"), 1)
    assert len(server.members(CH)) == 2


# --- channels per connection -----------------------------------------------------------------


def test_bound_channels_per_connection_over_the_limit_fails_that_attach_90010() -> None:
    server = make_server(max_channels_per_connection=2)
    alice, _ = connect(server, "ta", "alice")
    attach(server, alice, CH)
    attach(server, alice, OTHER)
    out = attach(server, alice, "third")
    (refused,) = out.messages_for("ta")
    assert (refused.action, refused.channel) == (P.ERROR, "third")
    assert (error_of(refused).code, error_of(refused).status_code) == (90010, 400)
    (info,) = server.connections()
    assert info.channels == (CH, OTHER)
    # Usable: an attached channel attaches again, and after a detach the third one fits.
    assert actions(attach(server, alice, CH), "ta") == [P.ATTACHED]
    server.receive("ta", ProtocolMessage(action=P.DETACH, channel=OTHER), now=T0)
    assert actions(attach(server, alice, "third"), "ta") == [P.ATTACHED]
    assert server.connections()[0].channels == (CH, "third")


# --- message rate per connection -------------------------------------------------------------


def test_bound_message_rate_over_max_messages_per_second_is_nacked_42910() -> None:
    server = make_server(max_messages_per_second=2)
    alice, _bob = two_clients(server)
    assert acked(presence(server, alice, CH, A.ENTER, 1).messages_for("ta"), 0)
    assert acked(presence(server, alice, CH, A.UPDATE, 2).messages_for("ta"), 1)
    out = presence(server, alice, CH, A.UPDATE, 3)
    (nack,) = out.messages_for("ta")
    assert (nack.action, error_of(nack).code, error_of(nack).status_code) == (P.NACK, 42910, 429)
    assert out.messages_for("tb") == ()
    assert member_view(server, CH) == {(alice.connection_id, "alice"): 2}
    later = presence(server, alice, CH, A.UPDATE, 3, now=T0 + 1_000)
    assert acked(later.messages_for("ta"), 3)
    assert member_view(server, CH) == {(alice.connection_id, "alice"): 3}


# --- pending resends per connection: the remembered results ----------------------------------


def test_bound_remembered_results_forget_the_oldest_nack_past_the_limit() -> None:
    """A resend is answered as the first time while its result is remembered; past the
    limit its original NACK is forgotten, and it is ACKed without being applied."""
    server = make_server(max_remembered_results=2, max_message_size=64)
    alice, _bob = two_clients(server)
    too_big = "x" * 64
    assert refused_with(
        presence(server, alice, CH, A.ENTER, too_big).messages_for("ta"), P.NACK, 40009
    )
    presence(server, alice, CH, A.ENTER, "one")  # serial 1: two results remembered
    resend = presence(server, alice, CH, A.ENTER, too_big, serial=0)
    assert refused_with(resend.messages_for("ta"), P.NACK, 40009)
    presence(server, alice, CH, A.UPDATE, "two")  # serial 2: the third result
    before = member_view(server, CH)
    late = presence(server, alice, CH, A.ENTER, "late", serial=0)
    assert late.messages_for("ta") == (ProtocolMessage(action=ACK, msg_serial=0, count=1),)
    assert late.messages_for("tb") == ()
    assert member_view(server, CH) == before == {(alice.connection_id, "alice"): "two"}
    assert acked(presence(server, alice, CH, A.UPDATE, "three").messages_for("ta"), 3)


# --- the message buffer kept for resume ------------------------------------------------------


def test_bound_resume_backlog_messages_past_the_limit_reattach_with_90004() -> None:
    server = make_server(resume_backlog_messages=2)
    alice, bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "m1")
    publish(server, bob, CH, "m2")
    kept, _ = connect(server, "ta2", resume=alice.connection_key)
    out = attach(server, kept, CH)
    assert out.messages_for("ta2")[0].has_flag(Flag.RESUMED)
    assert texts(out, "ta2") == ["m1", "m2"]
    server.transport_closed("ta2", now=T0)
    for text in ("m3", "m4", "m5"):
        publish(server, bob, CH, text)
    lost, connected = connect(server, "ta3", resume=alice.connection_key)
    assert lost.connection_id == alice.connection_id  # the connection itself is kept
    assert [m.error for m in connected.messages_for("ta3")] == [None]
    (attached,) = attach(server, lost, CH).messages_for("ta3")
    assert not attached.has_flag(Flag.RESUMED)
    assert (error_of(attached).code, error_of(attached).status_code) == (90004, 400)
    # Usable: live messages flow to it again.
    live = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=bob.serial, messages=(Message(data="live"),)
    )
    assert texts(server.receive("tb", live, now=T0), "ta3") == ["live"]


def test_bound_resume_backlog_bytes_past_the_limit_reattach_with_90004() -> None:
    size = len("x" * 20) + len("chat") + len("bob")  # as max_message_size counts a message
    server = make_server(resume_backlog_bytes=2 * size)
    alice, bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "x" * 20)
    publish(server, bob, CH, "y" * 20)
    kept, _ = connect(server, "ta2", resume=alice.connection_key)
    assert texts(attach(server, kept, CH), "ta2") == ["x" * 20, "y" * 20]
    server.transport_closed("ta2", now=T0)
    for text in ("z" * 20, "w" * 20, "v" * 21):
        publish(server, bob, CH, text)
    lost, _ = connect(server, "ta3", resume=alice.connection_key)
    out = attach(server, lost, CH)
    (attached,) = out.messages_for("ta3")
    assert error_of(attached).code == 90004
    assert texts(out, "ta3") == []


# --- connections held for resume -------------------------------------------------------------


def test_bound_held_connections_past_the_limit_forget_the_oldest_its_members_leaving() -> None:
    server = make_server(max_held_connections=2)
    observer, _ = connect(server, "to", "observer")
    attach(server, observer, CH)
    clients: dict[str, Client] = {}
    for name in ("a", "b", "c"):
        client, _ = connect(server, f"t{name}", name)
        attach(server, client, CH)
        presence(server, client, CH, A.ENTER, name)
        clients[name] = client
    assert server.transport_closed("ta", now=T0 + 1).messages_for("to") == ()
    assert server.transport_closed("tb", now=T0 + 2).messages_for("to") == ()
    out = server.transport_closed("tc", now=T0 + 3)  # one past the limit: a goes
    (leave,) = presence_items(out, "to")
    assert (leave.action, leave.client_id, leave.connection_id) == (
        A.LEAVE,
        "a",
        clients["a"].connection_id,
    )
    assert (leave.id or "").startswith("synth-")
    assert {m.client_id for m in server.members(CH)} == {"b", "c"}
    held = {info.connection_id for info in server.connections()}
    assert clients["a"].connection_id not in held
    # a's resume fails as after the ttl: a new connection, 80008.
    renewed, connected = connect(server, "ta2", "a", now=T0 + 4, resume=clients["a"].connection_key)
    (frame,) = connected.messages_for("ta2")
    assert renewed.connection_id != clients["a"].connection_id
    assert error_of(frame).code == 80008
    # b and c keep everything: b resumes its id, and peers saw nothing of it.
    resumed, connected = connect(server, "tb2", "b", now=T0 + 5, resume=clients["b"].connection_key)
    assert resumed.connection_id == clients["b"].connection_id
    assert [m.error for m in connected.messages_for("tb2")] == [None]
    assert connected.messages_for("to") == ()
    assert {m.client_id for m in server.members(CH)} == {"b", "c"}
    # a's new connection is usable: it attaches and enters again.
    attach(server, renewed, CH, now=T0 + 6)
    assert acked(presence(server, renewed, CH, A.ENTER, "a", now=T0 + 6).messages_for("ta2"), 0)
    assert {m.client_id for m in server.members(CH)} == {"a", "b", "c"}


def test_bound_held_connections_a_suspended_one_is_forgotten_without_a_second_leave() -> None:
    server = make_server(max_held_connections=1)
    observer, _ = connect(server, "to", "observer")
    attach(server, observer, CH)
    alice, _ = connect(server, "ta", "alice")
    attach(server, alice, CH)
    presence(server, alice, CH, A.ENTER, 1)
    bob, _ = connect(server, "tb", "bob")
    server.transport_closed("ta", now=T0)
    ended = server.tick(now=T0 + 15_000)  # alice's grace period ends: her leave
    assert [i.client_id for i in presence_items(ended, "to")] == ["alice"]
    states = {info.connection_id: info.state for info in server.connections()}
    assert states[alice.connection_id] is ServerConnectionState.SUSPENDED
    out = server.transport_closed("tb", now=T0 + 15_001)
    assert presence_items(out, "to") == []
    assert alice.connection_id not in {info.connection_id for info in server.connections()}
    _, connected = connect(server, "ta2", now=T0 + 15_002, resume=alice.connection_key)
    assert error_of(connected.messages_for("ta2")[0]).code == 80008
    bob_again, connected = connect(server, "tb2", "bob", now=T0 + 15_003, resume=bob.connection_key)
    assert bob_again.connection_id == bob.connection_id


# --- the client's outbox ---------------------------------------------------------------------


def outbox_frame(op_id: int) -> Frame:
    op = Operation(id=op_id, channel=CH, action=A.ENTER)
    message = ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        presence=(PresenceMessage(action=A.ENTER, client_id="alice", data=op_id),),
    )
    return Frame(CH, message, (op,))


def test_bound_outbox_frames_past_max_frames_fail_with_42910() -> None:
    outbox = Outbox(max_frames=3)
    outbox.hold()
    commands: list[Command] = []
    for op_id in (1, 2):
        assert outbox.submit(outbox_frame(op_id), commands) is None
    outbox.open()
    assert outbox.submit(outbox_frame(3), commands) is None
    assert outbox.queued == 3  # two held, one pending
    refused = outbox.submit(outbox_frame(4), commands)
    assert refused is OUTBOX_FULL
    assert isinstance(refused, ErrorInfo)
    assert (refused.code, refused.status_code) == (42910, 429)
    assert outbox.queued == 3
    assert outbox.held_ids() == ((CH, (1,)), (CH, (2,)))
    assert outbox.pending_ids() == ((0, CH, (3,)),)
    assert len(commands) == 1
    # Usable: an ACK makes room, and the next frame is sent.
    outbox.settle(0, 1)
    assert outbox.submit(outbox_frame(5), commands) is None
    assert outbox.pending_ids() == ((1, CH, (5,)),)
    assert outbox.queued == 3


def test_bound_outbox_frames_default_is_max_queued_frames() -> None:
    outbox = Outbox()
    commands: list[Command] = []
    for op_id in range(MAX_QUEUED_FRAMES):
        assert outbox.submit(outbox_frame(op_id), commands) is None
    assert outbox.submit(outbox_frame(-1), commands) is OUTBOX_FULL
    assert outbox.holding == MAX_QUEUED_FRAMES


# --- pending syncs ---------------------------------------------------------------------------


def test_bound_pending_syncs_a_sync_request_loop_keeps_one_sync_per_transport() -> None:
    """Paced syncs: each SYNC request replaces the running one; the replaced ones' entries do
    not pile up behind another transport's sync, and the last one is still sent whole."""
    server = make_server(sync_page_interval=100, sync_page_size=1)
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "a")
    presence(server, bob, CH, A.ENTER, "b")
    request = ProtocolMessage(action=P.SYNC, channel=CH)
    server.receive("ta", request, now=T0)  # its second page is due first, at T0 + 100
    for _ in range(1_000):
        (first_page,) = server.receive("tb", request, now=T0 + 1).messages_for("tb")
        assert first_page.action == P.SYNC
    pager = server._pager
    assert len(pager._running) == 2
    assert len(pager._heap) <= 64
    sync_id = (first_page.channel_serial or "").partition(":")[0]
    (last_page,) = server.tick(now=T0 + 101).messages_for("tb")
    assert last_page.channel_serial == f"{sync_id}:"
    pages = (first_page.presence or ()) + (last_page.presence or ())
    assert [m.client_id for m in pages] == ["alice", "bob"]
    later = server.tick(now=T0 + 1_000)
    assert P.SYNC not in actions(later, "ta") + actions(later, "tb")


# --- channel names ---------------------------------------------------------------------------


def test_bound_channel_name_length_over_the_limit_fails_that_attach_40010() -> None:
    server = make_server(max_channel_name_length=8)
    alice, _ = connect(server, "ta", "alice")
    assert actions(attach(server, alice, "c" * 8), "ta") == [P.ATTACHED]
    out = attach(server, alice, "d" * 9)
    (refused,) = out.messages_for("ta")
    assert (refused.action, refused.channel) == (P.ERROR, "d" * 9)
    assert (error_of(refused).code, error_of(refused).status_code) == (40010, 400)
    assert server.connections()[0].channels == ("c" * 8,)
    assert actions(attach(server, alice, "short"), "ta") == [P.ATTACHED]
    assert server.connections()[0].channels == ("c" * 8, "short")


def test_bound_queued_frames_is_the_connections_setting() -> None:
    """``ConnectionSettings.max_queued_frames`` bounds a connection's outbox: one operation
    past it fails at once with 42910 and changes nothing; an ACK makes room again."""
    c = up(max_queued_frames=2)
    c.attach(ROOM, now=1_000)
    receive(c, attached(), now=1_000)
    for n in (1, 2):
        assert c.update(ROOM, n, now=2_000).operation is not None
    before = c.snapshot()
    out = c.update(ROOM, 3, now=2_000)
    (failed,) = of_type(out, OperationFailed)
    assert failed.error is OUTBOX_FULL
    assert not out.commands
    after = c.snapshot()
    # Only the refused operation's id and stamp are used up; members, pending frames and the
    # own-member bookkeeping are as they were.
    assert attrs.evolve(after, rooms=()) == attrs.evolve(before, rooms=())
    (room_before,), (room_after,) = before.rooms, after.rooms
    used_up = {"next_op", "stamps"}
    assert {k: v for k, v in room_after[1].extra if k not in used_up} == {
        k: v for k, v in room_before[1].extra if k not in used_up
    }
    assert attrs.evolve(room_after[1], extra=()) == attrs.evolve(room_before[1], extra=())
    receive(c, ack(0), now=2_002)
    assert [m.msg_serial for m in sent(c.update(ROOM, 4, now=2_003))] == [2]
