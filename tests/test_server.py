"""The server reducer: one test per server behaviour, named after it.

Expected frame shapes follow transcripts of a protocol v6 client (ably-js) talking to Ably:
connect, attach, presence and resume.
"""

from __future__ import annotations

import attrs
import pytest

from presence_core import (
    DEFAULT_MODES,
    ChannelMode,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from presence_core.server import (
    AccessToken,
    ApiKey,
    Deliver,
    Server,
    ServerConfig,
    ServerConnectionState,
)
from tests.server_support import (
    KEY,
    T0,
    Client,
    actions,
    attach,
    connect,
    make_server,
    member_view,
    only_deliver,
    presence,
    presence_items,
)

A = PresenceAction
P = ProtocolAction
CH = "room1::$chat"
SUBSCRIBE_ONLY = int(ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE)


def two_clients(server: Server) -> tuple[Client, Client]:
    alice, _ = connect(server, "ta", "alice")
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH)
    attach(server, bob, CH)
    return alice, bob


def nack_code(out_frames: tuple[ProtocolMessage, ...]) -> int | None:
    (nack,) = [m for m in out_frames if m.action == P.NACK]
    assert nack.error is not None
    return nack.error.code


# --- connections ----------------------------------------------------------------------


def test_connected_carries_connection_id_and_connection_details() -> None:
    server = make_server()
    out = server.connect(
        "t1", {"key": KEY.key, "clientId": "alice", "format": "json", "v": "6"}, now=T0
    )
    (connected,) = out.messages_for("t1")
    assert connected.action == P.CONNECTED
    assert connected.connection_id
    assert connected.error is None
    details = connected.connection_details
    assert details is not None
    assert details.connection_key
    assert connected.connection_key == details.connection_key
    assert details.client_id == "alice"
    assert details.max_message_size == 65_536
    assert details.max_idle_interval == 15_000
    assert details.connection_state_ttl == 120_000
    assert details.server_id == "presence-core"


def test_connection_ids_and_keys_derive_from_injected_entropy() -> None:
    """Same entropy, same ids; the key (a resume credential) carries 128 random bits."""
    first, _ = connect(make_server(seed=7), "t")
    again, _ = connect(make_server(seed=7), "t")
    other, _ = connect(make_server(seed=8), "t")
    assert (first.connection_id, first.connection_key) == (
        again.connection_id,
        again.connection_key,
    )
    assert first.connection_key != other.connection_key
    assert len(first.connection_key) == 32


def test_entropy_returning_wrong_length_is_usage_error() -> None:
    server = Server(ServerConfig(keys=(KEY,)), lambda n: b"x")
    with pytest.raises(UsageError):
        server.connect("t", {"key": KEY.key}, now=T0)


def test_heartbeat_sent_within_max_idle_interval() -> None:
    """One HEARTBEAT frame for every live transport, in one Deliver, before maxIdleInterval."""
    server = make_server()
    connect(server, "t1", now=T0)
    connect(server, "t2", "bob", now=T0 + 3_000)
    deadline = server.next_deadline()
    assert deadline is not None
    assert T0 < deadline < T0 + server.config.max_idle_interval
    assert not server.tick(now=deadline - 1)
    out = server.tick(now=deadline)
    (deliver,) = only_deliver(out)
    assert deliver.message == ProtocolMessage(action=P.HEARTBEAT)
    assert set(deliver.transport_ids) == {"t1", "t2"}
    following = server.next_deadline()
    assert following is not None
    assert following - deadline < server.config.max_idle_interval


def test_heartbeat_stops_without_live_transports() -> None:
    server = make_server(grace_period=0, connection_state_ttl=0)
    connect(server, "t1")
    server.transport_closed("t1", now=T0)
    deadline = server.next_deadline()
    assert deadline is not None
    assert not server.tick(now=deadline)
    assert server.next_deadline() is None


def test_heartbeat_echoes_client_heartbeat_id() -> None:
    server = make_server()
    _alice, _ = connect(server, "t1")
    out = server.receive("t1", ProtocolMessage(action=P.HEARTBEAT, id="24186537885442183"), now=T0)
    assert out.messages_for("t1") == (ProtocolMessage(action=P.HEARTBEAT, id="24186537885442183"),)
    plain = server.receive("t1", ProtocolMessage(action=P.HEARTBEAT), now=T0)
    assert plain.messages_for("t1") == (ProtocolMessage(action=P.HEARTBEAT),)


# --- auth ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"key": "app.key:wrong"},
        {"key": "other.key:s3cret"},
        {"key": "no-colon"},
        {"access_token": "unknown"},
        {},
    ],
    ids=["wrong-secret", "unknown-key", "malformed-key", "unknown-token", "no-credentials"],
)
def test_auth_unknown_key_or_wrong_secret_refused_40101(params: dict[str, str]) -> None:
    server = make_server()
    out = server.connect("t1", {"clientId": "alice", **params}, now=T0)
    (error,) = out.messages_for("t1")
    assert error.action == P.ERROR
    assert error.channel is None
    assert error.error is not None
    assert (error.error.code, error.error.status_code) == (40101, 401)
    assert out.disconnected() == ("t1",)
    assert server.connections() == ()
    assert not server.transport_closed("t1", now=T0)


def test_auth_unsupported_format_refused() -> None:
    server = make_server()
    out = server.connect("t1", {"key": KEY.key, "format": "xml"}, now=T0)
    assert actions(out, "t1") == [P.ERROR]
    assert out.disconnected() == ("t1",)


def test_auth_token_binds_client_id_and_mismatch_is_refused_not_sent() -> None:
    """A clientId different from the requested one is never sent (the client would fail 40102)."""
    server = make_server(tokens=(AccessToken(token="tok", client_id="alice"),))
    adopted, _ = connect(server, "t1", None, key="", access_token="tok")
    assert server.connections()[0].client_id == "alice"
    assert adopted.connection_id
    out = server.connect("t2", {"access_token": "tok", "clientId": "bob"}, now=T0)
    (error,) = out.messages_for("t2")
    assert error.action == P.ERROR
    assert error.error is not None
    assert error.error.code == 40102


def test_auth_capability_per_channel_pattern() -> None:
    key = ApiKey(
        name="limited.key",
        secret="x",
        capability={"chat:*": ["presence", "subscribe", "publish"], "news": ["subscribe"]},
    )
    server = make_server(keys=(key,))
    client, _ = connect(server, "t1", key=key.key)
    (chat,) = attach(server, client, "chat:lobby").messages_for("t1")
    assert chat.modes == DEFAULT_MODES
    (news,) = attach(server, client, "news").messages_for("t1")
    assert news.modes == ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE
    (denied,) = attach(server, client, "secret").messages_for("t1")
    assert denied.action == P.ERROR
    assert denied.channel == "secret"
    assert denied.error is not None
    assert denied.error.code == 40160
    assert server.connections()[0].channels == ("chat:lobby", "news")


def test_auth_capability_rejects_unknown_operation() -> None:
    with pytest.raises(UsageError):
        ApiKey(name="k", secret="s", capability={"*": ["history-ish"]})


def test_auth_client_id_acting_as_another_nacked_40012() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    out = presence(server, alice, CH, A.ENTER, client_id="bob")
    assert nack_code(out.messages_for("ta")) == 40012
    assert out.messages_for("tb") == ()
    assert server.members(CH) == ()


def test_auth_unidentified_connection_whose_key_allows_it_may_enter_client() -> None:
    trusted = ApiKey(name="bot.key", secret="x", any_client_id=True)
    server = make_server(keys=(KEY, trusted))
    bot, _ = connect(server, "tbot", None, key=trusted.key)
    attach(server, bot, CH)
    out = presence(server, bot, CH, A.ENTER, {"v": 1}, client_id="carol")
    assert actions(out, "tbot") == [P.PRESENCE, P.ACK]
    assert member_view(server, CH) == {(bot.connection_id, "carol"): {"v": 1}}
    anonymous, _ = connect(server, "tanon", None)
    attach(server, anonymous, CH)
    refused = presence(server, anonymous, CH, A.ENTER, client_id="dave")
    assert nack_code(refused.messages_for("tanon")) == 40012
    own = presence(server, anonymous, CH, A.ENTER)
    assert nack_code(own.messages_for("tanon")) == 40012


# --- channels -----------------------------------------------------------------------------


def test_attach_grants_requested_modes_intersected_with_capability() -> None:
    key = ApiKey(name="sub.key", secret="x", capability={"*": ["subscribe"]})
    server = make_server(keys=(KEY, key))
    chat_flags = 3080192  # what @ably/chat requests: the four defaults plus ANNOTATION_PUBLISH
    full, _ = connect(server, "t1")
    (attached,) = attach(server, full, CH, chat_flags).messages_for("t1")
    assert attached.flags == chat_flags
    limited, _ = connect(server, "t2", key=key.key)
    (narrowed,) = attach(server, limited, CH, chat_flags).messages_for("t2")
    assert narrowed.flags == SUBSCRIBE_ONLY


def test_attach_without_mode_bits_gets_the_four_defaults() -> None:
    server = make_server()
    client, _ = connect(server, "t1")
    (attached,) = attach(server, client, "presence-demo").messages_for("t1")
    assert attached.action == P.ATTACHED
    assert attached.flags == 983040


def test_attach_replies_attached_with_channel_serial_and_params() -> None:
    server = make_server()
    client, _ = connect(server, "t1")
    frame = ProtocolMessage(
        action=P.ATTACH, channel=CH, params={"agent": "chat-js/1.4.0", "occupancy": "metrics"}
    )
    (attached,) = server.receive("t1", frame, now=T0).messages_for("t1")
    assert attached.channel == CH
    assert attached.channel_serial == f"{CH}@0"
    assert attached.params == {"occupancy": "metrics"}
    presence(server, client, CH, A.ENTER)
    (again,) = [m for m in attach(server, client, CH).messages_for("t1") if m.action == P.ATTACHED]
    assert again.channel_serial == f"{CH}@1"


def test_has_presence_only_together_with_sync() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    # No members: no HAS_PRESENCE, no SYNC.
    (empty,) = attach(server, alice, CH).messages_for("ta")
    assert not empty.has_flag(Flag.HAS_PRESENCE)
    presence(server, alice, CH, A.ENTER, "hi")
    bob, _ = connect(server, "tb", "bob")
    frames = attach(server, bob, CH).messages_for("tb")
    assert [m.action for m in frames] == [P.ATTACHED, P.SYNC]
    assert frames[0].flags == 983041
    (member,) = frames[1].presence or ()
    assert member.action == A.PRESENT
    assert (member.client_id, member.connection_id, member.data) == (
        "alice",
        alice.connection_id,
        "hi",
    )
    assert member.id == f"{alice.connection_id}:0:0"
    assert member.timestamp == T0
    # An attacher without PRESENCE_SUBSCRIBE gets neither.
    carol, _ = connect(server, "tc", "carol")
    (plain,) = attach(server, carol, CH, int(ChannelMode.PUBLISH)).messages_for("tc")
    assert plain.flags == int(ChannelMode.PUBLISH)


def test_sync_is_paged_with_cursor_and_last_page_has_empty_cursor() -> None:
    server = make_server(sync_page_size=2)
    writers = []
    for index in range(5):
        client, _ = connect(server, f"w{index}", f"user{index}")
        attach(server, client, CH)
        presence(server, client, CH, A.ENTER, index)
        writers.append(client)
    reader, _ = connect(server, "tr", "reader")
    frames = attach(server, reader, CH).messages_for("tr")
    pages = frames[1:]
    assert [len(p.presence or ()) for p in pages] == [2, 2, 1]
    serials = [p.channel_serial or "" for p in pages]
    sync_ids = {s.split(":")[0] for s in serials}
    assert len(sync_ids) == 1
    (sync_id,) = sync_ids
    assert sync_id.isalnum()
    assert serials == [f"{sync_id}:1", f"{sync_id}:2", f"{sync_id}:"]
    listed = {item.client_id for p in pages for item in p.presence or ()}
    assert listed == {f"user{i}" for i in range(5)}


def test_client_sync_request_answered_with_member_set() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    out = server.receive("tb", ProtocolMessage(action=P.SYNC, channel=CH), now=T0)
    (page,) = out.messages_for("tb")
    assert page.channel_serial is not None
    assert page.channel_serial.endswith(":")
    assert [m.client_id for m in page.presence or ()] == ["alice"]


def test_resync_sends_sync_to_every_presence_subscriber() -> None:
    """RTP18: the server may start a SYNC at any time; an empty set still ends one."""
    server = make_server()
    alice, _bob = two_clients(server)
    (empty,) = only_deliver(server.resync(CH, now=T0))
    assert empty.message.presence == ()
    assert set(empty.transport_ids) == {"ta", "tb"}
    presence(server, alice, CH, A.ENTER)
    (page,) = only_deliver(server.resync(CH, now=T0))
    assert [m.client_id for m in page.message.presence or ()] == ["alice"]
    assert not server.resync("nowhere", now=T0)


def test_detach_replies_detached_and_leaves_that_connections_members() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"x": 1})
    presence(server, bob, CH, A.ENTER)
    out = server.receive("ta", ProtocolMessage(action=P.DETACH, channel=CH), now=T0 + 5)
    assert out.messages_for("ta") == (ProtocolMessage(action=P.DETACHED, channel=CH),)
    (leave,) = presence_items(out, "tb")
    assert (leave.action, leave.client_id, leave.data) == (A.LEAVE, "alice", {"x": 1})
    assert leave.timestamp == T0 + 5
    assert member_view(server, CH) == {(bob.connection_id, "bob"): None}
    assert server.connections()[0].channels == ()
    # Presence after detach is refused: the channel is no longer attached.
    assert nack_code(presence(server, alice, CH, A.ENTER).messages_for("ta")) == 90001


# --- presence -----------------------------------------------------------------------------


def test_presence_stamped_with_id_timestamp_connection_id_and_client_id() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    alice.serial = 3
    out = presence(server, alice, CH, A.ENTER, {"status": "hello"}, now=T0 + 12)
    (deliver, ack) = only_deliver(out)
    frame = deliver.message
    assert frame.action == P.PRESENCE
    assert frame.id == f"{alice.connection_id}:3"
    assert frame.connection_id == alice.connection_id
    assert frame.timestamp == T0 + 12
    assert frame.channel_serial == f"{CH}@1"
    (item,) = frame.presence or ()
    assert item == PresenceMessage(
        action=A.ENTER,
        client_id="alice",
        connection_id=alice.connection_id,
        id=f"{alice.connection_id}:3:0",
        data={"status": "hello"},
        timestamp=T0 + 12,
    )
    assert ack.message == ProtocolMessage(action=P.ACK, msg_serial=3, count=1)


def test_presence_echo_to_sender_before_ack() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    attach(server, alice, CH)
    out = presence(server, alice, CH, A.ENTER)
    assert actions(out, "ta") == [P.PRESENCE, P.ACK]


def test_RTP17a_own_presence_echoed_without_presence_subscribe() -> None:
    """RTP17a: a connection sees its own presence even without PRESENCE_SUBSCRIBE."""
    server = make_server()
    alice, _ = connect(server, "ta")
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH, int(ChannelMode.PRESENCE | ChannelMode.PUBLISH))
    attach(server, bob, CH)
    out = presence(server, alice, CH, A.ENTER)
    assert actions(out, "ta") == [P.PRESENCE, P.ACK]
    assert actions(out, "tb") == [P.PRESENCE]
    # Bob's presence is not sent to alice, who did not subscribe.
    assert presence(server, bob, CH, A.ENTER).messages_for("ta") == ()


def test_presence_broadcast_to_presence_subscribe_attachers_only() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    carol, _ = connect(server, "tc", "carol")
    attach(server, carol, CH, int(ChannelMode.SUBSCRIBE))
    out = presence(server, alice, CH, A.ENTER)
    (broadcast, _ack) = only_deliver(out)
    assert broadcast.transport_ids == ("ta", "tb")


def test_enter_while_present_goes_out_as_update() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, 1)
    (item,) = presence_items(presence(server, alice, CH, A.ENTER, 2), "tb")
    assert (item.action, item.data) == (A.UPDATE, 2)
    assert item.id == f"{alice.connection_id}:1:0"


def test_update_while_absent_goes_out_as_enter() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    (item,) = presence_items(presence(server, alice, CH, A.UPDATE, "x"), "tb")
    assert item.action == A.ENTER
    assert member_view(server, CH) == {(alice.connection_id, "alice"): "x"}


def test_leave_while_absent_acked_with_no_broadcast() -> None:
    """RTP10d: a leave for a member that is not present is ACKed and changes nothing."""
    server = make_server()
    alice, _bob = two_clients(server)
    out = presence(server, alice, CH, A.LEAVE)
    assert out.messages_for("ta") == (ProtocolMessage(action=P.ACK, msg_serial=0, count=1),)
    assert out.messages_for("tb") == ()


def test_leave_without_data_carries_the_last_data() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"status": "busy"})
    (leave,) = presence_items(presence(server, alice, CH, A.LEAVE), "tb")
    assert (leave.action, leave.data) == (A.LEAVE, {"status": "busy"})
    presence(server, alice, CH, A.ENTER, "again")
    (explicit,) = presence_items(presence(server, alice, CH, A.LEAVE, {"bye": True}), "tb")
    assert explicit.data == {"bye": True}
    assert server.members(CH) == ()


def test_reentry_with_current_id_is_idempotent() -> None:
    """Same id, same connection, same data: the id is kept and nothing is broadcast."""
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1})
    original = f"{alice.connection_id}:0:0"
    quiet = presence(server, alice, CH, A.ENTER, {"v": 1}, client_id="alice", id=original)
    assert quiet.messages_for("ta") == (ProtocolMessage(action=P.ACK, msg_serial=1, count=1),)
    assert quiet.messages_for("tb") == ()
    (member,) = server.members(CH)
    assert member.id == original
    # Different data: stamped as usual, broadcast as an update with a fresh id.
    changed = presence(server, alice, CH, A.ENTER, {"v": 2}, client_id="alice", id=original)
    (item,) = presence_items(changed, "tb")
    assert (item.action, item.id, item.data) == (A.UPDATE, f"{alice.connection_id}:2:0", {"v": 2})
    # A stale id (older than the member's current one, same connection) re-enters from a
    # state the member's latest update replaced: ACKed, nothing broadcast, nothing changed.
    stale = presence(server, alice, CH, A.ENTER, {"v": 1}, client_id="alice", id=original)
    assert stale.messages_for("ta") == (ProtocolMessage(action=P.ACK, msg_serial=3, count=1),)
    assert stale.messages_for("tb") == ()
    (latest,) = server.members(CH)
    assert (latest.id, latest.data) == (f"{alice.connection_id}:2:0", {"v": 2})


def test_presence_frame_with_several_items_applied_in_order() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    frame = ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        msg_serial=0,
        presence=(
            PresenceMessage(action=A.ENTER, data=1),
            PresenceMessage(action=A.UPDATE, data=2),
            PresenceMessage(action=A.LEAVE),
        ),
    )
    out = server.receive("ta", frame, now=T0)
    items = presence_items(out, "tb")
    assert [(i.action, i.data, i.id) for i in items] == [
        (A.ENTER, 1, f"{alice.connection_id}:0:0"),
        (A.UPDATE, 2, f"{alice.connection_id}:0:1"),
        (A.LEAVE, 2, f"{alice.connection_id}:0:2"),
    ]
    assert server.members(CH) == ()


# --- NACK codes -----------------------------------------------------------------------------


def test_nack_40160_without_presence_mode_or_capability() -> None:
    server = make_server(
        keys=(KEY, ApiKey(name="ro.key", secret="x", capability={"*": ["subscribe"]}))
    )
    alice, _ = connect(server, "ta")
    attach(server, alice, CH, SUBSCRIBE_ONLY)
    out = presence(server, alice, CH, A.ENTER)
    (nack,) = out.messages_for("ta")
    assert nack.action == P.NACK
    assert nack.msg_serial == 0
    assert nack.count == 1
    assert nack.error is not None
    assert (nack.error.code, nack.error.status_code) == (40160, 401)
    reader, _ = connect(server, "tr", "reader", key="ro.key:x")
    attach(server, reader, CH)  # no mode bits: defaults narrowed by the capability
    assert nack_code(presence(server, reader, CH, A.ENTER).messages_for("tr")) == 40160
    assert server.members(CH) == ()


def test_nack_40012_without_any_client_id() -> None:
    server = make_server()
    anonymous, _ = connect(server, "t1", None)
    attach(server, anonymous, CH)
    assert nack_code(presence(server, anonymous, CH, A.ENTER).messages_for("t1")) == 40012


def test_nack_91003_too_many_members() -> None:
    server = make_server(max_members_per_channel=2)
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    presence(server, bob, CH, A.ENTER)
    carol, _ = connect(server, "tc", "carol")
    attach(server, carol, CH)
    out = presence(server, carol, CH, A.ENTER)
    assert nack_code(out.messages_for("tc")) == 91003
    assert out.messages_for("ta") == ()
    # Updates of present members still work at the limit.
    assert actions(presence(server, alice, CH, A.UPDATE, "u"), "ta") == [P.PRESENCE, P.ACK]


def test_nack_40009_data_too_large() -> None:
    server = make_server(max_message_size=100)
    alice, _bob = two_clients(server)
    out = presence(server, alice, CH, A.ENTER, "x" * 200)
    assert nack_code(out.messages_for("ta")) == 40009
    assert out.messages_for("tb") == ()
    assert actions(presence(server, alice, CH, A.ENTER, {"k": "small"}), "ta") == [
        P.PRESENCE,
        P.ACK,
    ]


def test_nack_90001_channel_not_attached() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    assert nack_code(presence(server, alice, "elsewhere", A.ENTER).messages_for("ta")) == 90001


def test_nack_of_whole_frame_applies_no_item() -> None:
    """A frame is validated fully before anything changes: one bad item refuses them all."""
    server = make_server()
    _alice, _bob = two_clients(server)
    frame = ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        msg_serial=0,
        presence=(PresenceMessage(action=A.ENTER), PresenceMessage(action=A.ENTER, client_id="x")),
    )
    out = server.receive("ta", frame, now=T0)
    assert nack_code(out.messages_for("ta")) == 40012
    assert server.members(CH) == ()


# --- lifecycle ------------------------------------------------------------------------------


def test_close_replies_closed_and_leaves_at_once() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"status": "back"})
    out = server.receive("ta", ProtocolMessage(action=P.CLOSE), now=T0 + 34)
    assert out.messages_for("ta") == (ProtocolMessage(action=P.CLOSED),)
    assert out.disconnected() == ("ta",)
    (leave,) = presence_items(out, "tb")
    assert (leave.action, leave.client_id, leave.connection_id) == (
        A.LEAVE,
        "alice",
        alice.connection_id,
    )
    assert leave.timestamp == T0 + 34
    assert leave.data == {"status": "back"}
    assert server.members(CH) == ()
    assert [c.connection_id for c in server.connections()] == [bob.connection_id]
    assert not server.transport_closed("ta", now=T0 + 35)
    # The key is forgotten: a resume fails.
    _, failed = connect(server, "ta2", resume=alice.connection_key)
    (connected,) = failed.messages_for("ta2")
    assert connected.error is not None
    assert connected.error.code == 80008


def test_abrupt_loss_starts_grace_then_synthesized_leaves() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1}, now=T0 + 10)
    assert not server.transport_closed("ta", now=T0 + 100)
    (info, _) = server.connections()
    assert info.state is ServerConnectionState.DISCONNECTED
    assert info.transport_id is None
    grace_end = T0 + 100 + 15_000
    assert server.next_deadline() is not None
    assert not [c for c in only_deliver(server.tick(now=grace_end - 1)) if c.message.presence]
    out = server.tick(now=grace_end)
    (leave,) = presence_items(out, "tb")
    assert leave.action == A.LEAVE
    assert leave.connection_id == alice.connection_id
    assert leave.id is not None
    assert not leave.id.startswith(alice.connection_id)
    assert leave.timestamp == grace_end
    assert leave.data == {"v": 1}
    assert server.members(CH) == ()
    assert server.connections()[0].state is ServerConnectionState.SUSPENDED


def test_disconnect_from_client_starts_grace() -> None:
    server = make_server(grace_period=1_000)
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    out = server.receive("ta", ProtocolMessage(action=P.DISCONNECT), now=T0)
    assert out.disconnected() == ("ta",)
    assert out.messages_for("tb") == ()
    assert len(server.members(CH)) == 1
    assert not server.transport_closed("ta", now=T0 + 1)
    assert [i.action for i in presence_items(server.tick(now=T0 + 1_000), "tb")] == [A.LEAVE]


def test_resume_within_grace_keeps_connection_id_and_peers_see_nothing() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1})
    server.transport_closed("ta", now=T0 + 1)
    resumed, out = connect(server, "ta2", now=T0 + 5_000, resume=alice.connection_key)
    (connected,) = out.messages_for("ta2")
    assert connected.error is None
    assert resumed.connection_id == alice.connection_id
    assert out.messages_for("tb") == ()
    reattach = server.receive(
        "ta2",
        ProtocolMessage(action=P.ATTACH, channel=CH, channel_serial=f"{CH}@1"),
        now=T0 + 5_001,
    )
    frames = reattach.messages_for("ta2")
    assert [m.action for m in frames] == [P.ATTACHED, P.SYNC]
    assert frames[0].flags == 983045  # the defaults, RESUMED and HAS_PRESENCE
    # The automatic re-entry repeats the current id: nothing reaches bob.
    resumed.serial = 1
    quiet = presence(
        server, resumed, CH, A.ENTER, {"v": 1}, client_id="alice", id=f"{alice.connection_id}:0:0"
    )
    assert quiet.messages_for("tb") == ()
    assert presence_items(server.tick(now=T0 + 60_000), "tb") == []
    assert member_view(server, CH) == {(alice.connection_id, "alice"): {"v": 1}}


def test_resume_after_grace_within_ttl_keeps_id_without_resumed() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1})
    server.transport_closed("ta", now=T0)
    server.tick(now=T0 + 15_000)
    assert server.members(CH) == ()
    resumed, out = connect(server, "ta2", now=T0 + 60_000, resume=alice.connection_key)
    (connected,) = out.messages_for("ta2")
    assert connected.error is None
    assert resumed.connection_id == alice.connection_id
    (attached,) = attach(server, resumed, CH, now=T0 + 60_001).messages_for("ta2")
    assert not attached.has_flag(Flag.RESUMED)
    assert attached.flags == 983040
    # The client re-enters with the old id; the member is gone, so it is a fresh enter.
    resumed.serial = 1
    reentry = presence(
        server,
        resumed,
        CH,
        A.ENTER,
        {"v": 1},
        client_id="alice",
        id=f"{alice.connection_id}:0:0",
        now=T0 + 60_002,
    )
    (item,) = presence_items(reentry, "tb")
    assert (item.action, item.id) == (A.ENTER, f"{alice.connection_id}:1:0")


@pytest.mark.parametrize("tick_at_grace_end", [True, False])
def test_resume_after_ttl_fails_with_80008_and_new_connection_id(tick_at_grace_end: bool) -> None:
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    server.transport_closed("ta", now=T0)
    if tick_at_grace_end:
        server.tick(now=T0 + 15_000)
    server.tick(now=T0 + 119_999)
    assert len(server.connections()) == 2
    server.tick(now=T0 + 120_000)
    assert [c.connection_id for c in server.connections()] == [bob.connection_id]
    fresh, out = connect(server, "ta2", now=T0 + 120_001, resume=alice.connection_key)
    (connected,) = out.messages_for("ta2")
    assert connected.error is not None
    assert (connected.error.code, connected.error.status_code) == (80008, 400)
    assert fresh.connection_id != alice.connection_id
    assert fresh.connection_key != alice.connection_key
    attach(server, fresh, CH)
    (item,) = presence_items(presence(server, fresh, CH, A.ENTER), "tb")
    assert item.id == f"{fresh.connection_id}:0:0"


def test_resume_failed_when_client_id_differs() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    server.transport_closed("ta", now=T0)
    other, out = connect(server, "tx", "mallory", resume=alice.connection_key)
    (connected,) = out.messages_for("tx")
    assert connected.error is not None
    assert connected.error.code == 80008
    assert other.connection_id != alice.connection_id


def test_resume_before_server_noticed_old_transport_died() -> None:
    """A resume can arrive before the server has noticed that the old socket died."""
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER)
    resumed, out = connect(server, "ta2", resume=alice.connection_key)
    assert resumed.connection_id == alice.connection_id
    assert out.disconnected() == ("ta",)
    assert out.messages_for("tb") == ()
    # Late frames and the close of the old socket change nothing.
    assert not server.receive("ta", ProtocolMessage(action=P.DISCONNECT), now=T0 + 1)
    assert not server.transport_closed("ta", now=T0 + 2)
    assert server.connection_for("ta2") is not None
    assert server.tick(now=T0 + 200_000).messages_for("tb") == (
        ProtocolMessage(action=P.HEARTBEAT),
    )
    assert len(server.members(CH)) == 1
    (attached, _sync) = attach(server, resumed, CH, now=T0 + 200_001).messages_for("ta2")
    assert attached.has_flag(Flag.RESUMED)


def test_dedupe_by_connection_and_msg_serial() -> None:
    """A resend after reconnect is re-ACKed (or re-NACKed) and never applied twice."""
    server = make_server()
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, 1, serial=0)
    presence(server, alice, CH, A.LEAVE, serial=1)
    resent = presence(server, alice, CH, A.ENTER, 1, serial=0)
    assert resent.messages_for("ta") == (ProtocolMessage(action=P.ACK, msg_serial=0, count=1),)
    assert resent.messages_for("tb") == ()
    assert server.members(CH) == ()
    refused = presence(server, alice, "nowhere", A.ENTER, serial=2)
    again = presence(server, alice, "nowhere", A.ENTER, serial=2)
    assert again.messages_for("ta") == refused.messages_for("ta")
    assert again.messages_for("ta")[0].action == P.NACK
    # A different connection with the same serial is not a duplicate.
    assert actions(presence(server, bob, CH, A.ENTER, serial=0), "tb") == [P.PRESENCE, P.ACK]


def test_dedupe_survives_resume() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, "once", serial=0)
    server.transport_closed("ta", now=T0)
    resumed, _ = connect(server, "ta2", resume=alice.connection_key)
    out = presence(server, resumed, CH, A.ENTER, "once", serial=0, now=T0 + 10)
    assert actions(out, "ta2") == [P.PRESENCE, P.ACK]
    assert out.messages_for("ta2")[-1] == ProtocolMessage(action=P.ACK, msg_serial=0, count=1)
    assert out.messages_for("tb") == ()
    (member,) = server.members(CH)
    assert (member.id, member.timestamp) == (f"{alice.connection_id}:0:0", T0)


def test_duplicate_presence_resend_re_echoes_to_the_sender_only() -> None:
    """RTP17a + RTN19a: a deduplicated PRESENCE resend gets its echo again before the ACK.

    The client resends only what it saw no ACK for, so it may have lost the echo too; peers
    already saw the broadcast.  The re-echo has no channelSerial (RTL15b must not move back).
    """
    server = make_server()
    alice, _bob = two_clients(server)
    carol, _ = connect(server, "tc", "carol")
    attach(server, carol, CH, int(ChannelMode.PRESENCE))  # no presence subscribe
    first = presence(server, alice, CH, A.ENTER, {"v": 1}, serial=0)
    (echo,) = [m for m in first.messages_for("ta") if m.action == P.PRESENCE]
    presence(server, carol, CH, A.ENTER, "c", serial=0)
    server.transport_closed("ta", now=T0 + 1)
    resumed, _ = connect(server, "ta2", now=T0 + 5_000, resume=alice.connection_key)
    out = presence(server, resumed, CH, A.ENTER, {"v": 1}, serial=0, now=T0 + 5_001)
    assert out.messages_for("ta2") == (
        attrs.evolve(echo, channel_serial=None),
        ProtocolMessage(action=P.ACK, msg_serial=0, count=1),
    )
    assert out.messages_for("tb") == ()
    assert out.messages_for("tc") == ()
    assert [c.transport_ids for c in only_deliver(out)] == [("ta2",), ("ta2",)]
    # RTP17a holds without presence subscribe too.
    carol_again = presence(server, carol, CH, A.ENTER, "c", serial=0)
    assert actions(carol_again, "tc") == [P.PRESENCE, P.ACK]
    assert [c.transport_ids for c in only_deliver(carol_again)] == [("tc",), ("tc",)]
    assert len(server.members(CH)) == 2


def test_duplicate_presence_resend_re_echoes_only_what_the_frame_still_determines() -> None:
    """RTP17a + RTP2b2: only items whose member still has this frame's id, and leaves, return."""
    server = make_server(keys=(ApiKey(name="bot", secret="s", any_client_id=True),))
    bot, _ = connect(server, "ta", None, key="bot:s")
    attach(server, bot, CH)
    items = (
        PresenceMessage(action=A.ENTER, client_id="x", data=1),
        PresenceMessage(action=A.ENTER, client_id="y", data=1),
        PresenceMessage(action=A.UPDATE, client_id="y", data=2),
        PresenceMessage(action=A.ENTER, client_id="z", data=1),
    )
    frame = ProtocolMessage(action=P.PRESENCE, channel=CH, msg_serial=0, presence=items)
    server.receive("ta", frame, now=T0)
    later = ProtocolMessage(
        action=P.PRESENCE,
        channel=CH,
        msg_serial=1,
        presence=(
            PresenceMessage(action=A.UPDATE, client_id="x", data=3),
            PresenceMessage(action=A.LEAVE, client_id="z"),
        ),
    )
    server.receive("ta", later, now=T0 + 1)
    again = server.receive("ta", frame, now=T0 + 2).messages_for("ta")
    assert [(i.client_id, i.action, i.id) for i in again[0].presence or ()] == [
        ("y", A.UPDATE, f"{bot.connection_id}:0:2")
    ]
    again = server.receive("ta", later, now=T0 + 3).messages_for("ta")
    assert [(i.client_id, i.action, i.id) for i in again[0].presence or ()] == [
        ("x", A.UPDATE, f"{bot.connection_id}:1:0"),
        ("z", A.LEAVE, f"{bot.connection_id}:1:1"),
    ]


def test_presence_resent_after_grace_is_applied_again() -> None:
    """RTN19a + grace period: a resent PRESENCE frame whose effect the grace-period leaves
    undid is applied again as new (stamped afresh), not merely re-ACKed."""
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, {"v": 1}, serial=0)  # echo and ACK lost
    server.transport_closed("ta", now=T0 + 1)
    server.tick(now=T0 + 1 + 15_000)
    assert server.members(CH) == ()
    resumed, _ = connect(server, "ta2", now=T0 + 20_000, resume=alice.connection_key)
    assert resumed.connection_id == alice.connection_id
    attach(server, resumed, CH, now=T0 + 20_001)
    out = presence(server, resumed, CH, A.ENTER, {"v": 1}, serial=0, now=T0 + 20_002)
    assert actions(out, "ta2") == [P.PRESENCE, P.ACK]
    (item,) = presence_items(out, "tb")
    assert (item.action, item.id, item.timestamp) == (
        A.ENTER,
        f"{alice.connection_id}:0:0",
        T0 + 20_002,
    )
    assert member_view(server, CH) == {(alice.connection_id, "alice"): {"v": 1}}
    # Applied again once: a further resend is a plain duplicate.
    out = presence(server, resumed, CH, A.ENTER, {"v": 1}, serial=0, now=T0 + 20_003)
    assert out.messages_for("tb") == ()
    assert actions(out, "ta2") == [P.PRESENCE, P.ACK]
    # A new frame continues after the newest serial, not after the re-applied one.
    resumed.serial = 1
    assert actions(presence(server, resumed, CH, A.UPDATE, 2, now=T0 + 20_004), "tb") == [
        P.PRESENCE
    ]


def test_presence_resent_after_grace_before_reattach_is_nacked_90001() -> None:
    """A re-applied frame is checked like a new one: the channel must be attached again."""
    server = make_server()
    alice, _bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, serial=0)
    server.transport_closed("ta", now=T0)
    server.tick(now=T0 + 15_000)
    resumed, _ = connect(server, "ta2", now=T0 + 15_001, resume=alice.connection_key)
    out = presence(server, resumed, CH, A.ENTER, serial=0, now=T0 + 15_002)
    assert nack_code(out.messages_for("ta2")) == 90001


def test_message_resent_after_grace_is_still_deduplicated() -> None:
    """A chat message was delivered whatever happened to presence: never broadcast twice."""
    server = make_server()
    alice, _bob = two_clients(server)
    frame = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=0, messages=(Message(name="m", data="d"),)
    )
    (ack,) = [
        m for m in server.receive("ta", frame, now=T0).messages_for("ta") if m.action == P.ACK
    ]
    server.transport_closed("ta", now=T0 + 1)
    server.tick(now=T0 + 1 + 15_000)
    resumed, _ = connect(server, "ta2", now=T0 + 20_000, resume=alice.connection_key)
    attach(server, resumed, CH, now=T0 + 20_001)
    out = server.receive("ta2", frame, now=T0 + 20_002)
    assert out.messages_for("ta2") == (ack,)
    assert out.messages_for("tb") == ()


# --- MESSAGE ----------------------------------------------------------------------------------


def test_message_acked_with_serials_and_broadcast_to_subscribe_attachers() -> None:
    server = make_server()
    alice, _bob = two_clients(server)
    carol, _ = connect(server, "tc", "carol")
    attach(server, carol, CH, int(ChannelMode.PRESENCE_SUBSCRIBE))
    frame = ProtocolMessage(
        action=P.MESSAGE,
        channel=CH,
        msg_serial=5,
        messages=(Message(name="typing.started", extras={"ephemeral": True}, action=0),),
    )
    out = server.receive("ta", frame, now=T0 + 237)
    (broadcast, ack) = only_deliver(out)
    assert broadcast.transport_ids == ("ta", "tb")
    (message,) = broadcast.message.messages or ()
    assert message == Message(
        name="typing.started",
        extras={"ephemeral": True},
        action=0,
        id=f"{alice.connection_id}:5:0",
        client_id="alice",
        connection_id=alice.connection_id,
        timestamp=T0 + 237,
        serial=f"{CH}@1",
    )
    assert broadcast.message.channel_serial == f"{CH}@1"
    assert ack.message == ProtocolMessage(
        action=P.ACK, msg_serial=5, count=1, res=({"serials": [f"{CH}@1"]},)
    )
    duplicate = server.receive("ta", frame, now=T0 + 300)
    assert duplicate.messages_for("ta") == (ack.message,)
    assert duplicate.messages_for("tb") == ()


def test_message_echo_false_is_honoured() -> None:
    server = make_server()
    alice, _ = connect(server, "ta", echo="false")
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH)
    attach(server, bob, CH)
    frame = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=0, messages=(Message(name="m", data="d"),)
    )
    out = server.receive("ta", frame, now=T0)
    assert actions(out, "ta") == [P.ACK]
    assert actions(out, "tb") == [P.MESSAGE]
    # Presence is unaffected by echo=false.
    assert actions(presence(server, alice, CH, A.ENTER, serial=1), "ta") == [P.PRESENCE, P.ACK]


def test_message_requires_publish_mode_and_attachment() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    frame = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=0, messages=(Message(name="m"),)
    )
    assert nack_code(server.receive("ta", frame, now=T0).messages_for("ta")) == 90001
    attach(server, alice, CH, SUBSCRIBE_ONLY)
    second = ProtocolMessage(
        action=P.MESSAGE, channel=CH, msg_serial=1, messages=(Message(name="m"),)
    )
    assert nack_code(server.receive("ta", second, now=T0).messages_for("ta")) == 40160


# --- limits -----------------------------------------------------------------------------------


def test_limit_channels_per_connection() -> None:
    server = make_server(max_channels_per_connection=2)
    alice, _ = connect(server, "ta")
    attach(server, alice, "a")
    attach(server, alice, "b")
    (refused,) = attach(server, alice, "c").messages_for("ta")
    assert refused.action == P.ERROR
    assert refused.channel == "c"
    assert refused.error is not None
    assert refused.error.code == 90010
    # Re-attaching an attached channel is not a new channel.
    assert actions(attach(server, alice, "a"), "ta") == [P.ATTACHED]


def test_limit_messages_per_second_per_connection() -> None:
    server = make_server(max_messages_per_second=3)
    alice, _ = connect(server, "ta")
    attach(server, alice, CH)
    codes = [actions(presence(server, alice, CH, A.UPDATE, i, now=T0), "ta")[-1] for i in range(4)]
    assert codes == [P.ACK, P.ACK, P.ACK, P.NACK]
    refused = presence(server, alice, CH, A.UPDATE, "x", now=T0)
    assert nack_code(refused.messages_for("ta")) == 42910
    # A third of a second later, one message's allowance has come back.
    assert actions(presence(server, alice, CH, A.UPDATE, "y", now=T0 + 334), "ta")[-1] == P.ACK


def test_limits_are_named_settings_with_defaults() -> None:
    config = ServerConfig()
    assert config.max_members_per_channel == 20_000
    assert config.max_message_size == 65_536
    assert config.max_channels_per_connection == 200
    assert config.max_messages_per_second == 50
    assert config.grace_period == 15_000
    assert config.connection_state_ttl == 120_000


@pytest.mark.parametrize(
    "settings",
    [
        {"grace_period": -1},
        {"sync_page_size": 0},
        {"max_idle_interval": 1_000, "heartbeat_interval": 1_000},
        {"grace_period": 10, "connection_state_ttl": 5},
        {"keys": (KEY, KEY)},
        {"max_members_per_channel": True},
    ],
)
def test_config_out_of_range_is_usage_error(settings: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        ServerConfig(**settings)  # type: ignore[arg-type]


# --- time, misuse, robustness -------------------------------------------------------------------


def test_now_going_backwards_does_not_advance_time() -> None:
    server = make_server(grace_period=1_000)
    alice, bob = two_clients(server)
    presence(server, alice, CH, A.ENTER, now=T0 + 500)
    server.transport_closed("ta", now=T0 + 500)
    # The clock steps back: nothing fires and stamps keep the latest time.
    assert server.tick(now=T0).messages_for("tb") == ()
    out = presence(server, bob, CH, A.ENTER, now=T0 + 10)
    (item,) = presence_items(out, "tb")
    assert item.timestamp == T0 + 500
    (leave,) = presence_items(server.tick(now=T0 + 1_500), "tb")
    assert leave.timestamp == T0 + 1_500


def test_unknown_transport_is_usage_error() -> None:
    server = make_server()
    with pytest.raises(UsageError):
        server.receive("nope", ProtocolMessage(action=P.HEARTBEAT), now=T0)
    with pytest.raises(UsageError):
        server.transport_closed("nope", now=T0)
    with pytest.raises(UsageError):
        server.connection_for("nope")
    connect(server, "t1")
    with pytest.raises(UsageError):
        server.connect("t1", {"key": KEY.key}, now=T0)
    server.transport_closed("t1", now=T0)
    with pytest.raises(UsageError):
        server.transport_closed("t1", now=T0)


def test_bad_client_frames_answered_not_raised() -> None:
    server = make_server()
    alice, _ = connect(server, "ta")
    assert not server.receive("ta", ProtocolMessage(action=99), now=T0)
    for frame in (
        ProtocolMessage(action=P.ATTACH),
        ProtocolMessage(action=P.DETACH),
        ProtocolMessage(action=P.PRESENCE, channel=CH),
    ):
        assert actions(server.receive("ta", frame, now=T0), "ta") == [P.ERROR]
    attach(server, alice, CH)
    for presence_item in (PresenceMessage(action=A.PRESENT), PresenceMessage(action=A.ABSENT)):
        frame = ProtocolMessage(
            action=P.PRESENCE, channel=CH, msg_serial=alice.serial, presence=(presence_item,)
        )
        alice.serial += 1
        assert nack_code(server.receive("ta", frame, now=T0).messages_for("ta")) == 40000
    empty = ProtocolMessage(action=P.PRESENCE, channel=CH, msg_serial=alice.serial, presence=())
    assert nack_code(server.receive("ta", empty, now=T0).messages_for("ta")) == 40000
    assert server.members(CH) == ()


def test_room_channel_name_is_room_chat() -> None:
    assert Server.channel_for_room("room1") == "room1::$chat"


def test_fanout_to_many_subscribers_is_one_deliver() -> None:
    """A broadcast is built once and goes out as one command naming every recipient."""
    server = make_server()
    subscribers = []
    for index in range(1_000):
        client, _ = connect(server, f"s{index}", f"sub{index}")
        attach(server, client, CH, SUBSCRIBE_ONLY)
        subscribers.append(client)
    writer, _ = connect(server, "tw", "writer")
    attach(server, writer, CH, int(ChannelMode.PRESENCE))
    out = presence(server, writer, CH, A.ENTER, {"hello": 1})
    broadcast, ack = out.commands
    assert isinstance(broadcast, Deliver)
    assert len(broadcast.transport_ids) == 1_001
    assert set(broadcast.transport_ids) == {f"s{i}" for i in range(1_000)} | {"tw"}
    assert isinstance(ack, Deliver)
    assert ack.transport_ids == ("tw",)


def test_connection_listing_and_queries() -> None:
    server = make_server()
    alice, bob = two_clients(server)
    server.transport_closed("tb", now=T0)
    listed = {c.connection_id: c for c in server.connections()}
    assert listed[alice.connection_id].state is ServerConnectionState.CONNECTED
    assert listed[alice.connection_id].transport_id == "ta"
    assert listed[alice.connection_id].channels == (CH,)
    assert listed[bob.connection_id].state is ServerConnectionState.DISCONNECTED
    info = server.connection_for("ta")
    assert info is not None
    assert info.client_id == "alice"
    assert server.members("unknown") == ()


def test_deterministic_replay_gives_identical_outputs() -> None:
    """Same seed and inputs, same outputs: the server is a pure function of its inputs."""

    def run(seed: int) -> list[object]:
        server = make_server(seed=seed, grace_period=100)
        alice, _bob = two_clients(server)
        record: list[object] = []
        record.append(presence(server, alice, CH, A.ENTER, 1))
        record.append(server.transport_closed("ta", now=T0 + 1))
        record.append(server.tick(now=T0 + 200))
        record.append(connect(server, "ta2", resume=alice.connection_key, now=T0 + 300)[1])
        return record

    assert run(3) == run(3)
    assert run(3) != run(4)
