"""The server reducer's protocol paths: raw frames (RTN7), recover (RTN16), AUTH (RTC8a),
MESSAGE continuity across a resume (RTN15c6), deadlines in a storm, and the rate bucket (D10).

One test per behaviour, named after its rule.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from presence_core import (
    AuthDetails,
    ChannelMode,
    CodecLimits,
    ErrorInfo,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
    encode_text,
)
from presence_core.server import AccessToken, Server, ServerOutput
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
from tests.test_server import CH, two_clients

A = PresenceAction
P = ProtocolAction
OTHER = "other::$chat"


def error_of(frame: ProtocolMessage) -> ErrorInfo:
    assert frame.error is not None
    return frame.error


def publish(server: Server, client: Client, channel: str, text: str, *, now: int = T0) -> None:
    frame = ProtocolMessage(
        action=P.MESSAGE,
        channel=channel,
        msg_serial=client.serial,
        messages=(Message(name="chat", data=text),),
    )
    client.serial += 1
    assert actions(server.receive(client.tid, frame, now=now), client.tid)[-1] == P.ACK


def texts(out: ServerOutput, tid: str) -> list[Any]:
    return [
        item.data
        for m in out.messages_for(tid)
        if m.action == P.MESSAGE
        for item in m.messages or ()
    ]


def presence_text(serial: int, data: str = "x", **item: Any) -> str:
    """A PRESENCE frame as ably-js writes it: msgSerial last."""
    entry = {"action": 2, "data": data, **item}
    frame = {"action": 14, "channel": CH, "presence": [entry], "msgSerial": serial}
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


# --- raw frames: refused frames are answered (RTN7) ----------------------------------------


def test_RTN7_refused_frame_is_nacked() -> None:
    """A frame the codec refuses is NACKed by its msgSerial, so no later ACK settles it."""
    server = make_server()
    alice, bob = two_clients(server)
    bad = presence_text(0, timestamp="soon")  # a timestamp must be an int
    out = server.receive_frame("ta", bad, now=T0)
    (nack,) = out.messages_for("ta")
    assert (nack.action, nack.msg_serial, nack.count) == (P.NACK, 0, 1)
    assert error_of(nack).code == 40000
    assert "timestamp" in error_of(nack).message
    assert out.messages_for("tb") == ()
    assert server.members(CH) == ()
    # Nothing was recorded: the same serial, well formed, is applied and ACKed.
    good = server.receive_frame("ta", presence_text(0).encode(), now=T0)
    assert actions(good, "ta") == [P.PRESENCE, P.ACK]
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "x"}
    assert bob.connection_id


def test_RTN7_refused_frame_over_the_frame_limit_is_nacked_40009() -> None:
    """An oversized frame is not parsed; ably-js writes msgSerial last, so it is still read."""
    server = make_server(codec_limits=CodecLimits(max_frame_bytes=300))
    two_clients(server)
    big = presence_text(7, data="é" * 150)
    assert len(big) < 300 < len(big.encode())  # too large in UTF-8 bytes, not in characters
    for frame in (big, big.encode(), bytearray(big.encode()), memoryview(big.encode())):
        (nack,) = server.receive_frame("ta", frame, now=T0).messages_for("ta")
        assert (nack.action, nack.msg_serial) == (P.NACK, 7)
        assert (error_of(nack).code, error_of(nack).status_code) == (40009, 413)
    assert server.members(CH) == ()


def test_RTN7_refused_frame_without_msg_serial_gets_an_error_naming_its_channel() -> None:
    server = make_server()
    two_clients(server)
    out = server.receive_frame("ta", '{"action":10,"channel":"c","flags":"all"}', now=T0)
    (refused,) = out.messages_for("ta")
    assert (refused.action, refused.channel, error_of(refused).code) == (P.ERROR, "c", 40000)
    info = server.connection_for("ta")
    assert info is not None
    assert "c" not in info.channels


@pytest.mark.parametrize(
    "frame",
    [b"\xff\xfe{}", "not json", b"[1, 2]", "", '{"action": 14, "msgSerial": 3', b'{"x": 1}'],
)
def test_RTN7_frame_that_is_not_a_frame_gets_a_connection_error(frame: str | bytes) -> None:
    """Neither a msgSerial nor a channel can be read: an ERROR for the connection; it stays."""
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    (refused,) = server.receive_frame("ta", frame, now=T0).messages_for("ta")
    assert (refused.action, refused.channel, error_of(refused).code) == (P.ERROR, None, 40000)
    assert server.connection_for("ta") is not None
    assert len(server.members(CH)) == 1


def test_RTN7_tail_of_an_unparsable_frame_names_its_msg_serial() -> None:
    server = make_server()
    two_clients(server)
    # Cut short inside, but ending as ably-js ends a frame.
    frame = '{"action":15,"channel":"room1::$chat","messages":[{"data":"x"}, ],"msgSerial":4}'
    (nack,) = server.receive_frame("ta", frame, now=T0).messages_for("ta")
    assert (nack.action, nack.msg_serial) == (P.NACK, 4)


def test_receive_frame_decodes_and_handles_as_receive() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    ping = ProtocolMessage(action=P.HEARTBEAT, id="p1")
    assert server.receive_frame("ta", encode_text(ping), now=T0).messages_for("ta") == (ping,)
    assert server.receive_frame("ta", encode_text(ping).encode(), now=T0).messages_for("ta") == (
        ping,
    )
    enter = ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        msg_serial=0,
        presence=(PresenceMessage(action=A.ENTER, data="hi"),),
    )
    assert actions(server.receive_frame("ta", encode_text(enter), now=T0), "tb") == [P.PRESENCE]
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "hi"}


def test_receive_frame_misuse_raises_and_released_transports_are_ignored() -> None:
    server = make_server(formats={"json", "msgpack"})
    alice, _ = connect(server, "ta")
    with pytest.raises(UsageError):
        server.receive_frame("nobody", "{}", now=T0)
    connect(server, "ta2", resume=alice.connection_key)
    assert not server.receive_frame("ta", "garbage", now=T0)  # released by the resume


raw_frames = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80),
    st.builds(
        lambda serial, item: presence_text(serial, **item),
        st.integers(-3, 3),
        st.dictionaries(
            st.sampled_from(["action", "data", "timestamp", "id", "clientId", "extras"]),
            st.one_of(st.none(), st.integers(-1, 9), st.text(max_size=3), st.floats()),
            max_size=3,
        ),
    ),
)


@given(st.lists(raw_frames, min_size=1, max_size=5))
def test_RTN7_raw_input_never_raises_and_a_refusal_changes_nothing(frames: list[Any]) -> None:
    server = make_server(max_message_size=100)
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "present")
    for frame in frames:
        before = (member_view(server, CH), server.connections())
        replies = server.receive_frame("ta", frame, now=T0).messages_for("ta")
        refused = [m for m in replies if m.action in (P.NACK, P.ERROR)]
        if refused:
            assert (member_view(server, CH), server.connections()) == before
            assert all(isinstance(m.error, ErrorInfo) for m in refused)


# --- RTN16 recover ---------------------------------------------------------------------------


def test_RTN16_recover_restores_connection() -> None:
    """Same id and members, peers see nothing, and msgSerials continue (dedup included)."""
    server = make_server()
    alice, _bob = two_clients(server)
    first = presence(server, alice, CH, A.ENTER, {"v": 1})
    server.transport_closed("ta", now=T0 + 1)
    recovered, out = connect(server, "ta2", now=T0 + 2_000, recover=alice.connection_key)
    (connected,) = out.messages_for("ta2")
    assert connected.error is None
    assert (recovered.connection_id, recovered.connection_key) == (
        alice.connection_id,
        alice.connection_key,
    )
    assert out.messages_for("tb") == ()
    (attached, _sync) = attach(server, recovered, CH, now=T0 + 2_001).messages_for("ta2")
    assert attached.has_flag(Flag.RESUMED)
    # The frame the recovery key's msgSerial says was sent is a duplicate: ACKed again.
    resent = presence(server, recovered, CH, A.ENTER, {"v": 1}, serial=0, now=T0 + 2_002)
    assert resent.messages_for("tb") == ()
    assert resent.messages_for("ta2")[-1] == first.messages_for("ta")[-1]
    recovered.serial = 1
    update = presence(server, recovered, CH, A.UPDATE, {"v": 2}, now=T0 + 2_003)
    (item,) = presence_items(update, "tb")
    assert item.id == f"{alice.connection_id}:1:0"
    assert presence_items(server.tick(now=T0 + 60_000), "tb") == []


def test_RTN16_recover_unknown_key_fails_with_80008() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    server.transport_closed("ta", now=T0)
    fresh, out = connect(server, "tx", now=T0 + 1, recover="not-a-key")
    (connected,) = out.messages_for("tx")
    assert (error_of(connected).code, error_of(connected).status_code) == (80008, 400)
    assert fresh.connection_id != alice.connection_id
    # As after a failed resume, the old connection is untouched: its grace period runs on.
    assert len(server.members(CH)) == 1
    other, out = connect(server, "ty", "mallory", now=T0 + 2, recover=alice.connection_key)
    assert error_of(out.messages_for("ty")[0]).code == 80008
    assert other.connection_id != alice.connection_id
    (leave,) = presence_items(server.tick(now=T0 + 15_000), "tb")
    assert (leave.action, leave.connection_id) == (A.LEAVE, alice.connection_id)


def test_RTN16_recover_of_a_connection_whose_socket_is_still_open_moves_it() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    recovered, out = connect(server, "ta2", recover=alice.connection_key)
    assert recovered.connection_id == alice.connection_id
    assert out.disconnected() == ("ta",)


def test_RTN16_recovered_channels_not_attached_again_are_detached_after_the_grace_period() -> None:
    """The recovering process attaches only what its key names; the rest is not left a ghost."""
    server = make_server()
    alice, bob = two_clients(server)
    attach(server, alice, OTHER)
    attach(server, bob, OTHER)
    presence(server, alice, CH, A.ENTER)
    presence(server, alice, OTHER, A.ENTER)
    server.transport_closed("ta", now=T0)
    recovered, _ = connect(server, "ta2", now=T0 + 1_000, recover=alice.connection_key)
    info = server.connection_for("ta2")
    assert info is not None
    assert info.holding_until == T0 + 16_000
    attach(server, recovered, CH, now=T0 + 1_001)
    assert presence_items(server.tick(now=T0 + 15_999), "tb") == []
    (leave,) = presence_items(server.tick(now=T0 + 16_000), "tb")
    assert (leave.action, leave.client_id) == (A.LEAVE, "alice")
    assert [m.client_id for m in server.members(CH)] == ["alice"]
    assert server.members(OTHER) == ()
    info = server.connection_for("ta2")
    assert info is not None
    assert (info.channels, info.holding_until) == ((CH,), None)


def test_RTN16_hold_ends_once_every_channel_is_attached_again_and_resume_has_none() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    recovered, _ = connect(server, "ta2", recover=alice.connection_key)
    attach(server, recovered, CH)
    info = server.connection_for("ta2")
    assert info is not None
    assert info.holding_until is None
    server.transport_closed("ta2", now=T0)
    connect(server, "ta3", resume=alice.connection_key)
    info = server.connection_for("ta3")
    assert info is not None
    assert info.holding_until is None


# --- RTC8a AUTH --------------------------------------------------------------------------------

OLD = AccessToken(token="old", client_id="alice")
NEW = AccessToken(token="new", client_id="alice", capability={"*": ["subscribe"]})
BOBS = AccessToken(token="bobs", client_id="bob")
ANY = AccessToken(token="any", client_id="*")


def token_server() -> tuple[Server, Client, Client]:
    server = make_server(tokens=(OLD, NEW, BOBS, ANY))
    alice, _ = connect(server, "ta", None, key="", access_token="old")
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH)
    attach(server, bob, CH)
    return server, alice, bob


def auth(server: Server, tid: str, token: str | None) -> ServerOutput:
    details = None if token is None else AuthDetails(access_token=token)
    return server.receive(tid, ProtocolMessage(action=P.AUTH, auth=details), now=T0 + 10)


def test_RTC8a_auth_accepted_answers_connected_with_the_same_connection() -> None:
    server, alice, _bob = token_server()
    presence(server, alice, CH, A.ENTER)
    out = auth(server, "ta", "new")
    (connected,) = out.messages_for("ta")
    assert connected.action == P.CONNECTED
    assert connected.error is None
    assert connected.connection_id == alice.connection_id
    details = connected.connection_details
    assert details is not None
    assert (details.connection_key, details.client_id) == (alice.connection_key, "alice")
    assert out.messages_for("tb") == ()
    assert len(server.members(CH)) == 1


def test_RTC8a_auth_new_capability_applies_to_existing_attachments() -> None:
    server, alice, _bob = token_server()
    auth(server, "ta", "new")  # subscribe only
    (nack,) = presence(server, alice, CH, A.ENTER).messages_for("ta")
    assert (nack.action, error_of(nack).code) == (P.NACK, 40160)
    (attached,) = attach(server, alice, OTHER).messages_for("ta")
    assert attached.flags == int(ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE)


def test_RTC8a_auth_with_a_wildcard_token_keeps_the_client_id() -> None:
    server, _alice, _bob = token_server()
    (connected,) = auth(server, "ta", "any").messages_for("ta")
    assert connected.connection_details is not None
    assert connected.connection_details.client_id == "alice"


@pytest.mark.parametrize(
    ("token", "code"), [("bobs", 40102), ("unknown", 40101), (None, 40101), ("", 40101)]
)
def test_RTC8a_auth_refused_is_an_error_and_ends_the_connection(
    token: str | None, code: int
) -> None:
    """RTC8a2: the client's connection fails; the server drops it at once, members leaving."""
    server, alice, _bob = token_server()
    presence(server, alice, CH, A.ENTER)
    out = auth(server, "ta", token)
    (refused,) = out.messages_for("ta")
    assert (refused.action, refused.channel) == (P.ERROR, None)
    assert (error_of(refused).code, error_of(refused).status_code) == (code, 401)
    assert out.disconnected() == ("ta",)
    (leave,) = presence_items(out, "tb")
    assert (leave.action, leave.client_id) == (A.LEAVE, "alice")
    assert server.connection_for("ta") is None
    assert [c.client_id for c in server.connections()] == ["bob"]
    _fresh, again = connect(
        server, "ta2", None, key="", access_token="old", resume=alice.connection_key
    )
    assert error_of(again.messages_for("ta2")[0]).code == 80008


# --- RTN15c6 MESSAGE continuity across a resume ---------------------------------------------


def test_RTN15c6_messages_published_while_gone_follow_the_reattached() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    publish(server, bob, CH, "before")
    server.transport_closed("ta", now=T0 + 1)
    publish(server, bob, CH, "m1", now=T0 + 2)
    publish(server, bob, CH, "m2", now=T0 + 3)
    resumed, out = connect(server, "ta2", now=T0 + 4, resume=alice.connection_key)
    assert actions(out, "ta2") == [P.CONNECTED]
    # Until the channel is attached again the client would drop a MESSAGE (RTL17): held too.
    publish(server, bob, CH, "m3", now=T0 + 5)
    reattach = attach(server, resumed, CH, now=T0 + 6)
    frames = reattach.messages_for("ta2")
    assert [m.action for m in frames] == [P.ATTACHED, P.MESSAGE, P.MESSAGE, P.MESSAGE]
    assert frames[0].has_flag(Flag.RESUMED)
    assert frames[0].error is None
    assert texts(reattach, "ta2") == ["m1", "m2", "m3"]
    assert [m.channel_serial for m in frames[1:]] == [f"{CH}@2", f"{CH}@3", f"{CH}@4"]
    publish(server, bob, CH, "live")
    assert server.connection_for("ta2") is not None


def test_RTN15c6_a_held_connection_is_left_out_of_the_live_broadcast() -> None:
    server = make_server()
    _alice, bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    frame = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=0, messages=(Message(data="x"),)
    )
    (broadcast, _ack) = server.receive("tb", frame, now=T0).commands
    assert getattr(broadcast, "transport_ids", None) == ("tb",)
    assert bob.serial == 0


def test_RTN15c6_backlog_overflow_keeps_the_id_and_reattached_reports_90004() -> None:
    server = make_server(resume_backlog_messages=2)
    alice, bob = two_clients(server)
    attach(server, alice, OTHER)
    attach(server, bob, OTHER)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "a1")
    publish(server, bob, OTHER, "b1")
    publish(server, bob, CH, "a2")  # the third frame: CH's continuity is lost
    publish(server, bob, CH, "a3")
    resumed, out = connect(server, "ta2", resume=alice.connection_key)
    assert resumed.connection_id == alice.connection_id
    assert error_of_connected_is_none(out)
    lost = attach(server, resumed, CH)
    (attached,) = lost.messages_for("ta2")
    assert not attached.has_flag(Flag.RESUMED)
    assert (error_of(attached).code, error_of(attached).status_code) == (90004, 400)
    kept = attach(server, resumed, OTHER)
    assert [m.action for m in kept.messages_for("ta2")] == [P.ATTACHED, P.MESSAGE]
    assert kept.messages_for("ta2")[0].has_flag(Flag.RESUMED)
    assert texts(kept, "ta2") == ["b1"]


def error_of_connected_is_none(out: ServerOutput) -> bool:
    (connected,) = [m for m in out.messages_for("ta2") if m.action == P.CONNECTED]
    return connected.error is None


def test_RTN15c6_backlog_is_bounded_by_bytes_too() -> None:
    server = make_server(resume_backlog_bytes=60)
    alice, bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "x" * 20)  # 20 + "chat" + "bob" = 27 bytes
    publish(server, bob, CH, "y" * 20)  # 54
    resumed, _ = connect(server, "ta2", resume=alice.connection_key)
    frames = attach(server, resumed, CH).messages_for("ta2")
    assert [m.action for m in frames] == [P.ATTACHED, P.MESSAGE, P.MESSAGE]
    server.transport_closed("ta2", now=T0)
    publish(server, bob, CH, "z" * 20)
    publish(server, bob, CH, "w" * 20)
    publish(server, bob, CH, "v" * 20)  # 81 > 60
    again, _ = connect(server, "ta3", resume=alice.connection_key)
    (attached,) = attach(server, again, CH).messages_for("ta3")
    assert error_of(attached).code == 90004


def test_RTN15c6_nothing_held_after_the_grace_period() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "during grace", now=T0 + 1)
    server.tick(now=T0 + 15_000)
    publish(server, bob, CH, "after grace", now=T0 + 15_001)
    resumed, _ = connect(server, "ta2", now=T0 + 20_000, resume=alice.connection_key)
    (attached,) = attach(server, resumed, CH, now=T0 + 20_001).messages_for("ta2")
    assert not attached.has_flag(Flag.RESUMED)
    assert attached.error is None  # the grace period's end is not a backlog overflow


def test_RTN15c6_detach_drops_the_held_messages_and_echo_false_holds_no_own() -> None:
    server = make_server()
    alice, _ = connect(server, "ta", "alice", echo="false")
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH)
    attach(server, bob, CH)
    server.transport_closed("ta", now=T0)
    publish(server, bob, CH, "m1")
    resumed, _ = connect(server, "ta2", echo="false", resume=alice.connection_key)
    server.receive("ta2", ProtocolMessage(action=P.DETACH, channel=CH), now=T0)
    publish(server, bob, CH, "m2")
    frames = attach(server, resumed, CH).messages_for("ta2")
    assert [m.action for m in frames] == [P.ATTACHED]
    # A held connection's own publish is not held for it when it asked for no echo.
    server.transport_closed("ta2", now=T0)
    again, _ = connect(server, "ta3", echo="false", resume=alice.connection_key)
    publish(server, again, CH, "mine")
    assert [m.action for m in attach(server, again, CH).messages_for("ta3")] == [P.ATTACHED]


# --- deadlines in a reconnect storm ------------------------------------------------------------


def test_deadline_of_a_connection_that_resumed_and_dropped_again_is_the_latest() -> None:
    """A deadline replaced by a later one never fires; the heap stays bounded in a storm."""
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    server.transport_closed("ta", now=T0)
    tid = "ta"
    for step in range(1, 200):
        tid = f"ta{step}"
        connect(server, tid, now=T0 + step, resume=alice.connection_key)
        server.transport_closed(tid, now=T0 + step)
    assert len(server._registry._deadlines) <= 2 * 64  # stale entries are compacted
    assert presence_items(server.tick(now=T0 + 15_198), "tb") == []
    assert server.next_deadline() == T0 + 15_199
    (leave,) = presence_items(server.tick(now=T0 + 15_199), "tb")
    assert leave.connection_id == alice.connection_id
    assert bob.connection_id


def test_deadlines_fire_in_deadline_order_then_creation_order() -> None:
    server = make_server()
    observer, _ = connect(server, "to", "observer")
    attach(server, observer, CH)
    clients = [connect(server, f"t{i}", f"user{i}")[0] for i in range(4)]
    for client in clients:
        attach(server, client, CH)
        presence(server, client, CH, A.ENTER)
    for index in (2, 0, 3):
        server.transport_closed(f"t{index}", now=T0)
    server.transport_closed("t1", now=T0 - 5)  # time does not go back: ties with the rest
    leaves = presence_items(server.tick(now=T0 + 15_000), "to")
    assert [m.client_id for m in leaves] == ["user0", "user1", "user2", "user3"]


# --- D10: idempotent re-entries cost no rate allowance ---------------------------------------


def test_D10_idempotent_reentry_costs_no_rate_allowance() -> None:
    """A re-entry with the member's current id and data broadcasts nothing and is not charged."""
    server = make_server(max_messages_per_second=2)
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1})  # charged: one left
    current = f"{alice.connection_id}:0:0"
    for _ in range(5):
        quiet = presence(server, alice, CH, A.ENTER, {"v": 1}, client_id="alice", id=current)
        assert actions(quiet, "ta") == [P.ACK]
        assert quiet.messages_for("tb") == ()
    assert actions(presence(server, alice, CH, A.UPDATE, {"v": 2}), "ta")[-1] == P.ACK
    refused = presence(server, alice, CH, A.UPDATE, {"v": 3})
    (nack,) = refused.messages_for("ta")
    assert error_of(nack).code == 42910


def test_message_size_counts_the_utf8_bytes_of_compact_json() -> None:
    """The size measure: compact JSON, non-ASCII as its UTF-8 bytes, plus the clientId."""
    data = {"k": "é"}  # {"k":"é"} is 10 bytes
    server = make_server(max_message_size=10 + len("alice"))
    alice, _bob = two_clients(server)
    assert actions(presence(server, alice, CH, A.ENTER, data), "ta")[-1] == P.ACK
    out = presence(server, alice, CH, A.UPDATE, {"k": "éa"})
    assert error_of(out.messages_for("ta")[-1]).code == 40009
