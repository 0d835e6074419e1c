"""The JSON codec: one table of (wire, object) cases drives decode and encode alike.

Rule ids: TP3a/TP3d/TP3g (item inheritance), TM2a/TM2c/TM2f (the same for MESSAGE items),
RSL4 (encoding data), RSL6/RSL6b (decoding data, keeping what cannot be decoded).
"""

from __future__ import annotations

import base64
import enum
import json
import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given

from presence_core import (
    DEFAULT_MODES,
    AuthDetails,
    ChannelMode,
    CodecLimits,
    ConnectionDetails,
    ErrorInfo,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
    decode,
    decode_data,
    encode,
    encode_data,
    encode_text,
)
from presence_core._codec import (
    DEFAULT_LIMITS,
    _check_fast_path,
)
from presence_core.testing import strategies

T = 1_700_000_000_000
ENTER, PRESENT, LEAVE, UPDATE = (
    PresenceAction.ENTER,
    PresenceAction.PRESENT,
    PresenceAction.LEAVE,
    PresenceAction.UPDATE,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


# --- the table -----------------------------------------------------------------------------
#
# Each wire dict is exactly what encode() emits for the object, and decode() gives the object
# back from the dict, from its JSON text and from its UTF-8 bytes.  Items here carry their own
# id/connectionId/timestamp; inheritance (which makes decode and encode differ) is tested below.

CASES: list[Any] = [
    pytest.param(
        {
            "action": 4,
            "connectionId": "CONN_ALICE",
            "connectionKey": "KEY_ALICE",
            "connectionDetails": {
                "clientId": "alice",
                "connectionKey": "KEY_ALICE",
                "maxMessageSize": 65536,
                "maxIdleInterval": 15000,
                "connectionStateTtl": 120000,
                "serverId": "presence-core",
                "maxInboundRate": 50,
                "maxOutboundRate": 100,
                "maxFrameSize": 262144,
            },
        },
        ProtocolMessage(
            action=ProtocolAction.CONNECTED,
            connection_id="CONN_ALICE",
            connection_key="KEY_ALICE",
            connection_details=ConnectionDetails(
                client_id="alice",
                connection_key="KEY_ALICE",
                max_message_size=65536,
                max_idle_interval=15000,
                connection_state_ttl=120000,
                server_id="presence-core",
                max_inbound_rate=50,
                max_outbound_rate=100,
                max_frame_size=262144,
            ),
        ),
        id="CONNECTED-with-details",
    ),
    pytest.param(
        {
            "action": 4,
            "connectionId": "CONN_ALICE2",
            "connectionDetails": {"connectionKey": "KEY_ALICE2", "maxIdleInterval": 0},
            "error": {
                "code": 80008,
                "statusCode": 400,
                "message": "Unable to recover connection: not found",
            },
        },
        ProtocolMessage(
            action=ProtocolAction.CONNECTED,
            connection_id="CONN_ALICE2",
            connection_details=ConnectionDetails(connection_key="KEY_ALICE2", max_idle_interval=0),
            error=ErrorInfo(
                code=80008, status_code=400, message="Unable to recover connection: not found"
            ),
        ),
        id="CONNECTED-failed-resume",
    ),
    pytest.param(
        {"action": 17, "auth": {"accessToken": "eyJhbGciOi.new-token"}},
        ProtocolMessage(
            action=ProtocolAction.AUTH, auth=AuthDetails(access_token="eyJhbGciOi.new-token")
        ),
        id="AUTH-access-token",
    ),
    pytest.param(
        {
            "action": 10,
            "channel": "room1::$chat",
            "channelSerial": "room1::$chat@1",
            "flags": 3080192,
            "params": {"agent": "chat-js/1.4.0"},
        },
        ProtocolMessage(
            action=ProtocolAction.ATTACH,
            channel="room1::$chat",
            channel_serial="room1::$chat@1",
            flags=int(DEFAULT_MODES | ChannelMode.ANNOTATION_PUBLISH),
            params={"agent": "chat-js/1.4.0"},
        ),
        id="ATTACH-modes-params",
    ),
    pytest.param(
        {
            "action": 11,
            "channel": "room1::$chat",
            "channelSerial": "room1::$chat@6",
            "flags": 983045,
            "params": {"occupancy": "metrics"},
        },
        ProtocolMessage(
            action=ProtocolAction.ATTACHED,
            channel="room1::$chat",
            channel_serial="room1::$chat@6",
            flags=int(DEFAULT_MODES | Flag.HAS_PRESENCE | Flag.RESUMED),
            params={"occupancy": "metrics"},
        ),
        id="ATTACHED-has-presence-resumed",
    ),
    pytest.param(
        {
            "action": 14,
            "id": "CONN_BOB:0",
            "channel": "room1::$chat",
            "channelSerial": "room1::$chat@2",
            "connectionId": "CONN_BOB",
            "timestamp": T,
            "presence": [
                {
                    "action": 2,
                    "id": "CONN_BOB:0:0",
                    "clientId": "bob",
                    "connectionId": "CONN_BOB",
                    "timestamp": T,
                    "data": '{"name":"Bob"}',
                    "encoding": "json",
                },
                {
                    "action": 4,
                    "id": "CONN_BOB:0:1",
                    "clientId": "bot",
                    "connectionId": "CONN_BOB",
                    "timestamp": T,
                    "data": "plain text",
                    "extras": {"headers": {"k": "v"}},
                },
            ],
        },
        ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            id="CONN_BOB:0",
            channel="room1::$chat",
            channel_serial="room1::$chat@2",
            connection_id="CONN_BOB",
            timestamp=T,
            presence=(
                PresenceMessage(
                    action=ENTER,
                    id="CONN_BOB:0:0",
                    client_id="bob",
                    connection_id="CONN_BOB",
                    timestamp=T,
                    data={"name": "Bob"},
                ),
                PresenceMessage(
                    action=UPDATE,
                    id="CONN_BOB:0:1",
                    client_id="bot",
                    connection_id="CONN_BOB",
                    timestamp=T,
                    data="plain text",
                    extras={"headers": {"k": "v"}},
                ),
            ),
        ),
        id="PRESENCE-broadcast",
    ),
    pytest.param(
        {
            "action": 14,
            "channel": "room1::$chat",
            "msgSerial": 3,
            "presence": [
                {"action": 3, "data": '{"bye":true}', "encoding": "json"},
                {"action": 2, "clientId": "bot", "data": b64(b"\x00\x01"), "encoding": "base64"},
                {"action": 3},
            ],
        },
        ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel="room1::$chat",
            msg_serial=3,
            presence=(
                PresenceMessage(action=LEAVE, data={"bye": True}),
                PresenceMessage(action=ENTER, client_id="bot", data=b"\x00\x01"),
                PresenceMessage(action=LEAVE),
            ),
        ),
        id="PRESENCE-from-client",
    ),
    pytest.param(
        {
            "action": 16,
            "channel": "room1::$chat",
            "channelSerial": "LsHqb7sG:c1",
            "presence": [
                {
                    "action": 1,
                    "id": "CONN_ALICE:0:0",
                    "clientId": "alice",
                    "connectionId": "CONN_ALICE",
                    "timestamp": T,
                    "data": '["a",1]',
                    "encoding": "json",
                }
            ],
        },
        ProtocolMessage(
            action=ProtocolAction.SYNC,
            channel="room1::$chat",
            channel_serial="LsHqb7sG:c1",
            presence=(
                PresenceMessage(
                    action=PRESENT,
                    id="CONN_ALICE:0:0",
                    client_id="alice",
                    connection_id="CONN_ALICE",
                    timestamp=T,
                    data=["a", 1],
                ),
            ),
        ),
        id="SYNC-page-with-cursor",
    ),
    pytest.param(
        {"action": 16, "channel": "room1::$chat", "channelSerial": "LsHqb7sG:"},
        ProtocolMessage(
            action=ProtocolAction.SYNC, channel="room1::$chat", channel_serial="LsHqb7sG:"
        ),
        id="SYNC-last-page-no-presence",
    ),
    pytest.param(
        {"action": 16, "channel": "lobby", "presence": []},
        ProtocolMessage(action=ProtocolAction.SYNC, channel="lobby", presence=()),
        id="SYNC-one-page-empty",
    ),
    pytest.param(
        {"action": 1, "msgSerial": 0, "count": 1},
        ProtocolMessage(action=ProtocolAction.ACK, msg_serial=0, count=1),
        id="ACK",
    ),
    pytest.param(
        {"action": 1, "msgSerial": 5, "count": 2, "res": [{"serials": ["r@6"]}, {"serials": []}]},
        ProtocolMessage(
            action=ProtocolAction.ACK,
            msg_serial=5,
            count=2,
            res=({"serials": ["r@6"]}, {"serials": []}),
        ),
        id="ACK-with-res",
    ),
    pytest.param(
        {
            "action": 2,
            "msgSerial": 7,
            "count": 1,
            "error": {
                "code": 40160,
                "statusCode": 401,
                "message": "Channel denied access based on given capability",
                "href": "https://help.ably.io/error/40160",
            },
        },
        ProtocolMessage(
            action=ProtocolAction.NACK,
            msg_serial=7,
            count=1,
            error=ErrorInfo(
                code=40160,
                status_code=401,
                message="Channel denied access based on given capability",
                href="https://help.ably.io/error/40160",
            ),
        ),
        id="NACK-with-error",
    ),
    pytest.param({"action": 0}, ProtocolMessage(action=ProtocolAction.HEARTBEAT), id="HEARTBEAT"),
    pytest.param(
        {"action": 0, "id": "ping-1"},
        ProtocolMessage(action=ProtocolAction.HEARTBEAT, id="ping-1"),
        id="HEARTBEAT-with-id",
    ),
    pytest.param(
        {
            "action": 15,
            "id": "CONN_ALICE:5",
            "channel": "room1::$chat",
            "channelSerial": "room1::$chat@6",
            "connectionId": "CONN_ALICE",
            "timestamp": T,
            "messages": [
                {
                    "id": "CONN_ALICE:5:0",
                    "name": "typing.started",
                    "clientId": "alice",
                    "connectionId": "CONN_ALICE",
                    "timestamp": T,
                    "serial": "room1::$chat@6",
                    "action": 0,
                    "data": '{"x":1}',
                    "encoding": "json",
                    "extras": {"ephemeral": True},
                }
            ],
        },
        ProtocolMessage(
            action=ProtocolAction.MESSAGE,
            id="CONN_ALICE:5",
            channel="room1::$chat",
            channel_serial="room1::$chat@6",
            connection_id="CONN_ALICE",
            timestamp=T,
            messages=(
                Message(
                    id="CONN_ALICE:5:0",
                    name="typing.started",
                    client_id="alice",
                    connection_id="CONN_ALICE",
                    timestamp=T,
                    serial="room1::$chat@6",
                    action=0,
                    data={"x": 1},
                    extras={"ephemeral": True},
                ),
            ),
        ),
        id="MESSAGE-typing",
    ),
    pytest.param(
        {"action": 12, "channel": "room1::$chat"},
        ProtocolMessage(action=ProtocolAction.DETACH, channel="room1::$chat"),
        id="DETACH",
    ),
    pytest.param(
        {
            "action": 13,
            "channel": "room1::$chat",
            "error": {
                "code": 91007,
                "statusCode": 400,
                "message": "unexpected loss of membership",
                "cause": {"code": 50000, "statusCode": 500, "message": "internal"},
            },
        },
        ProtocolMessage(
            action=ProtocolAction.DETACHED,
            channel="room1::$chat",
            error=ErrorInfo(
                code=91007,
                status_code=400,
                message="unexpected loss of membership",
                cause=ErrorInfo(code=50000, status_code=500, message="internal"),
            ),
        ),
        id="DETACHED-with-error-cause",
    ),
    pytest.param(
        {"action": 9, "error": {"code": 40101, "statusCode": 401, "message": "no credentials"}},
        ProtocolMessage(
            action=ProtocolAction.ERROR,
            error=ErrorInfo(code=40101, status_code=401, message="no credentials"),
        ),
        id="ERROR-connection",
    ),
    pytest.param(
        {
            "action": 9,
            "channel": "x",
            "error": {"code": 40160, "statusCode": 401, "message": ""},
        },
        ProtocolMessage(
            action=ProtocolAction.ERROR,
            channel="x",
            error=ErrorInfo(code=40160, status_code=401),
        ),
        id="ERROR-channel",
    ),
    pytest.param({"action": 7}, ProtocolMessage(action=ProtocolAction.CLOSE), id="CLOSE"),
    pytest.param(
        {"action": 99, "channel": "future"},
        ProtocolMessage(action=99, channel="future"),
        id="unknown-action-kept",
    ),
    pytest.param(
        {
            "action": 14,
            "presence": [
                {
                    "action": 2,
                    "clientId": "c",
                    "data": b64(b"\x10\x20"),
                    "encoding": "cipher+aes-128-cbc/base64",
                },
                {"action": 2, "clientId": "d", "data": "opaque", "encoding": "vcdiff"},
            ],
        },
        ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            presence=(
                PresenceMessage(
                    action=ENTER, client_id="c", data=b"\x10\x20", encoding="cipher+aes-128-cbc"
                ),
                PresenceMessage(action=ENTER, client_id="d", data="opaque", encoding="vcdiff"),
            ),
        ),
        id="PRESENCE-raw-encodings-RSL6b",
    ),
]


@pytest.mark.parametrize(("wire", "message"), CASES)
def test_decode_table(wire: dict[str, Any], message: ProtocolMessage) -> None:
    text = json.dumps(wire)
    assert decode(wire) == message
    assert decode(text) == message
    assert decode(text.encode("utf-8")) == message
    assert decode(bytearray(text.encode("utf-8"))) == message


@pytest.mark.parametrize(("wire", "message"), CASES)
def test_encode_table(wire: dict[str, Any], message: ProtocolMessage) -> None:
    encoded = encode(message)
    assert encoded == wire
    assert type(encoded["action"]) is int
    assert json.loads(encode_text(message)) == wire


# --- round trip ----------------------------------------------------------------------------


@given(strategies.protocol_messages())
def test_round_trip_through_dict_text_and_bytes(message: ProtocolMessage) -> None:
    wire = encode(message)
    assert decode(wire) == message
    text = encode_text(message)
    assert decode(text) == message
    assert decode(text.encode("utf-8")) == message
    assert encode(decode(text)) == wire


WIRE_NAMES = {
    # frame
    "action", "id", "channel", "channelSerial", "connectionId", "connectionKey",
    "connectionDetails", "msgSerial", "count", "error", "flags", "presence", "messages",
    "timestamp", "params", "res", "auth",
    # connectionDetails
    "clientId", "maxMessageSize", "maxIdleInterval", "connectionStateTtl", "serverId",
    "maxInboundRate", "maxOutboundRate", "maxFrameSize",
    # ErrorInfo
    "code", "statusCode", "message", "href", "cause",
    # items
    "data", "encoding", "extras", "name", "serial",
}  # fmt: skip


@given(strategies.protocol_messages())
def test_encode_uses_wire_names_and_omits_none(message: ProtocolMessage) -> None:
    wire = encode(message)

    def check(obj: dict[str, Any]) -> None:
        assert set(obj) <= WIRE_NAMES
        assert None not in obj.values()

    check(wire)
    for key in ("connectionDetails", "error"):
        if key in wire:
            check(wire[key])
    for item in wire.get("presence", []) + wire.get("messages", []):
        check(item)


def test_absent_fields_stay_absent_both_ways() -> None:
    message = decode({"action": 14, "presence": [{"action": 2}]})
    assert message == ProtocolMessage(
        action=ProtocolAction.PRESENCE, presence=(PresenceMessage(action=ENTER),)
    )
    assert encode(message) == {"action": 14, "presence": [{"action": 2}]}
    assert encode(ProtocolMessage(action=0)) == {"action": 0}


def test_known_actions_decode_to_enum_members() -> None:
    message = decode('{"action":16,"presence":[{"action":1}]}')
    assert message.action is ProtocolAction.SYNC
    assert message.presence is not None
    assert message.presence[0].action is PresenceAction.PRESENT


def test_flags_built_from_enums_encode_as_plain_ints() -> None:
    flags = DEFAULT_MODES | Flag.HAS_PRESENCE
    wire = encode(ProtocolMessage(action=ProtocolAction.ATTACHED, flags=flags))
    assert wire == {"action": 11, "flags": 983041}
    assert type(wire["flags"]) is int
    assert encode_text(ProtocolMessage(action=11, flags=flags)) == '{"action":11,"flags":983041}'


def test_encode_text_is_compact_ascii_json() -> None:
    message = ProtocolMessage(
        action=14,
        presence=(PresenceMessage(action=ENTER, client_id="zoë", data={"a": [1, 2]}),),
    )
    text = encode_text(message)
    assert text == (
        '{"action":14,"presence":[{"action":2,"clientId":"zo\\u00eb",'
        '"data":"{\\"a\\":[1,2]}","encoding":"json"}]}'
    )
    assert text.isascii()
    assert decode(text) == message


def test_encode_text_rejects_values_json_cannot_carry() -> None:
    message = ProtocolMessage(
        action=14, presence=(PresenceMessage(action=ENTER, extras={"x": float("nan")}),)
    )
    with pytest.raises(UsageError):
        encode_text(message)


def test_decoded_items_are_ordinary_attrs_instances() -> None:
    """The fast constructor builds instances that behave like constructed ones."""
    item = PresenceMessage(action=ENTER, client_id="a", connection_id="c", id="c:0:0", timestamp=T)
    (decoded,) = decode(encode(ProtocolMessage(action=14, presence=(item,)))).presence or ()
    assert decoded == item
    assert hash(decoded) == hash(item)
    assert repr(decoded) == repr(item)
    assert attrs.evolve(decoded, action=LEAVE) == attrs.evolve(item, action=LEAVE)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        decoded.client_id = "b"  # type: ignore[misc]


def test_fast_constructor_guard_detects_a_changed_class() -> None:
    @attrs.frozen
    class Other:
        action: int
        extra: int = attrs.field(default=0, validator=attrs.validators.instance_of(int))

    with pytest.raises(RuntimeError):
        _check_fast_path(Other, ("action",))
    with pytest.raises(RuntimeError):
        _check_fast_path(Other, ("action", "extra"))  # has a validator


# --- inheritance (TP3) ---------------------------------------------------------------------


def _inheriting_frame(**items: Any) -> dict[str, Any]:
    return {
        "action": 14,
        "id": "c2:5",
        "connectionId": "c2",
        "timestamp": T,
        "presence": [
            {"action": 2, "clientId": "bob"},
            {"action": 4, "clientId": "ann", "id": "c9:1:0", "connectionId": "c9", "timestamp": 7},
        ],
        **items,
    }


def test_TP3a_item_without_id_gets_parent_id_and_index() -> None:
    presence = decode(_inheriting_frame()).presence
    assert presence is not None
    assert presence[0].id == "c2:5:0"
    assert presence[1].id == "c9:1:0"  # an item's own id wins


def test_TP3a_index_is_the_position_in_the_received_array() -> None:
    """A dropped item (unknown action) still counts for the index of the items after it."""
    frame = {"action": 14, "id": "c2:5", "presence": [{"action": 42}, {"action": 2}]}
    presence = decode(frame).presence
    assert presence is not None
    assert [p.id for p in presence] == ["c2:5:1"]


def test_TP3a_no_parent_id_leaves_item_id_absent() -> None:
    presence = decode({"action": 14, "presence": [{"action": 2}]}).presence
    assert presence is not None
    assert presence[0].id is None


def test_TP3d_item_without_connection_id_inherits_it() -> None:
    presence = decode(_inheriting_frame()).presence
    assert presence is not None
    assert [p.connection_id for p in presence] == ["c2", "c9"]


def test_TP3g_item_without_timestamp_inherits_it() -> None:
    presence = decode(_inheriting_frame(timestamp=1.7e12)).presence
    assert presence is not None
    assert [p.timestamp for p in presence] == [1_700_000_000_000, 7]
    assert type(presence[0].timestamp) is int


def test_TM2a_TM2c_TM2f_message_items_inherit_too() -> None:
    frame = {
        "action": 15,
        "id": "c3:1",
        "connectionId": "c3",
        "timestamp": T,
        "messages": [{"name": "typing.started"}, {"name": "x", "id": "own", "timestamp": 1}],
    }
    items = decode(frame).messages
    assert items is not None
    assert [(m.id, m.connection_id, m.timestamp) for m in items] == [
        ("c3:1:0", "c3", T),
        ("own", "c3", 1),
    ]


# --- forward compatibility -----------------------------------------------------------------


def test_unknown_protocol_action_is_kept_as_int() -> None:
    message = decode('{"action":250,"channel":"x"}')
    assert message.action == 250
    assert not isinstance(message.action, enum.Enum)
    assert encode(message) == {"action": 250, "channel": "x"}


def test_unknown_presence_action_drops_only_that_item() -> None:
    frame = {"action": 16, "presence": [{"action": 1, "clientId": "a"}, {"action": 9}]}
    assert decode(frame).presence == (PresenceMessage(action=PRESENT, client_id="a"),)


def test_unknown_fields_are_ignored_everywhere() -> None:
    frame = {
        "action": 4,
        "future": {"nested": [1, 2]},
        "connectionId": "c",
        "connectionDetails": {"clientId": "a", "newLimit": 5},
        "error": {"code": 1, "statusCode": 2, "message": "m", "detail": {}},
        "presence": [{"action": 2, "size": 32, "version": "x"}],
        "messages": [{"name": "n", "size": 32}],
    }
    assert decode(frame) == ProtocolMessage(
        action=ProtocolAction.CONNECTED,
        connection_id="c",
        connection_details=ConnectionDetails(client_id="a"),
        error=ErrorInfo(code=1, status_code=2, message="m"),
        presence=(PresenceMessage(action=ENTER, connection_id="c"),),
        messages=(Message(name="n", connection_id="c"),),
    )


def test_integral_floats_are_accepted_for_int_fields() -> None:
    frame = '{"action":14.0,"msgSerial":3.0,"count":1e0,"timestamp":1.7e12,"flags":65536.0}'
    message = decode(frame)
    assert message == ProtocolMessage(
        action=14, msg_serial=3, count=1, timestamp=1_700_000_000_000, flags=65536
    )
    assert all(type(v) is int for v in (message.msg_serial, message.count, message.flags))


def test_whitespace_around_a_frame_is_json() -> None:
    assert decode(' \n{"action":0}\r\n\t') == ProtocolMessage(action=0)


def test_dict_frame_may_hold_tuples_and_int_enums() -> None:
    """A dict frame built in Python (not parsed) may use tuples and enum members."""
    frame = {"action": ProtocolAction.PRESENCE, "presence": ({"action": PresenceAction.ENTER},)}
    message = decode(frame)
    assert message == ProtocolMessage(action=14, presence=(PresenceMessage(action=ENTER),))
    assert type(message.action) is ProtocolAction


# --- errors name the field path ------------------------------------------------------------

BAD_FIELDS: list[Any] = [
    pytest.param({}, "action", id="missing-action"),
    pytest.param({"action": True}, "action", id="bool-is-not-int"),
    pytest.param({"action": "14"}, "action", id="string-action"),
    pytest.param({"action": 1.5}, "action", id="non-integral-float"),
    pytest.param({"action": 0, "msgSerial": 2**63}, "msgSerial", id="int64-overflow"),
    pytest.param({"action": 0, "flags": -(2**63) - 1}, "flags", id="int64-underflow"),
    pytest.param({"action": 0, "count": "1"}, "count", id="count"),
    pytest.param({"action": 0, "channel": 5}, "channel", id="channel"),
    pytest.param({"action": 0, "id": ["x"]}, "id", id="id"),
    pytest.param({"action": 0, "timestamp": False}, "timestamp", id="timestamp"),
    pytest.param(
        {"action": 14, "presence": [{"action": 2}] * 3 + [{"action": 2, "timestamp": "1"}]},
        "presence[3].timestamp",
        id="item-timestamp",
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "timestamp": 1.5}]},
        "presence[0].timestamp",
        id="item-timestamp-float",
    ),
    pytest.param({"action": 14, "presence": {"action": 2}}, "presence", id="presence-not-array"),
    pytest.param({"action": 14, "presence": [{"action": 2}, 7]}, "presence[1]", id="item"),
    pytest.param({"action": 14, "presence": [{}]}, "presence[0].action", id="item-action"),
    pytest.param(
        {"action": 14, "presence": [{"action": True}]}, "presence[0].action", id="item-bool"
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "clientId": 5}]},
        "presence[0].clientId",
        id="item-clientId",
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "connectionId": {}}]},
        "presence[0].connectionId",
        id="item-connectionId",
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "id": 3}]}, "presence[0].id", id="item-id"
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "extras": []}]},
        "presence[0].extras",
        id="item-extras",
    ),
    pytest.param(
        {"action": 14, "presence": [{"action": 2, "data": "x", "encoding": 1}]},
        "presence[0].encoding",
        id="item-encoding",
    ),
    pytest.param(
        {"action": 4, "connectionDetails": {"maxIdleInterval": "15s"}},
        "connectionDetails.maxIdleInterval",
        id="details-field",
    ),
    pytest.param({"action": 4, "connectionDetails": []}, "connectionDetails", id="details"),
    pytest.param(
        {"action": 9, "error": {"code": "x", "statusCode": 400}}, "error.code", id="error-code"
    ),
    pytest.param({"action": 9, "error": {"statusCode": 400}}, "error.code", id="error-no-code"),
    pytest.param({"action": 9, "error": {"code": 1}}, "error.statusCode", id="error-no-status"),
    pytest.param(
        {"action": 9, "error": {"code": 1, "statusCode": 2, "message": 3}},
        "error.message",
        id="error-message",
    ),
    pytest.param(
        {
            "action": 9,
            "error": {"code": 1, "statusCode": 2, "cause": {"code": 1.5, "statusCode": 2}},
        },
        "error.cause.code",
        id="error-cause",
    ),
    pytest.param({"action": 9, "error": "boom"}, "error", id="error-not-object"),
    pytest.param({"action": 15, "messages": [{"name": 5}]}, "messages[0].name", id="message-name"),
    pytest.param(
        {"action": 15, "messages": [{"action": "x"}]}, "messages[0].action", id="message-action"
    ),
    pytest.param({"action": 10, "params": {"agent": 1}}, "params.agent", id="params-value"),
    pytest.param({"action": 10, "params": []}, "params", id="params"),
    pytest.param({"action": 1, "res": [1]}, "res[0]", id="res-entry"),
    pytest.param({"action": 17, "auth": "token"}, "auth", id="auth-not-object"),
    pytest.param({"action": 17, "auth": {}}, "auth.accessToken", id="auth-no-token"),
    pytest.param({"action": 17, "auth": {"accessToken": 7}}, "auth.accessToken", id="auth-token"),
]


@pytest.mark.parametrize(("frame", "path"), BAD_FIELDS)
def test_protocol_error_names_the_field_path(frame: dict[str, Any], path: str) -> None:
    for form in (frame, json.dumps(frame)):
        with pytest.raises(ProtocolError) as info:
            decode(form)
        assert info.value.path == path
        assert info.value.code == 40000
        assert info.value.status_code == 400
        assert str(info.value).startswith(f"{path}: ")


BAD_FRAMES: list[Any] = [
    pytest.param(b'{"action":0,"x":"\xff"}', id="invalid-utf8"),
    pytest.param(b'\xef\xbb\xbf{"action":0}', id="utf8-bom"),
    pytest.param('{"action":', id="truncated-json"),
    pytest.param('{"action":0} x', id="trailing-data"),
    pytest.param("", id="empty-text"),
    pytest.param(b"", id="empty-bytes"),
    pytest.param('{"action":0,"timestamp":NaN}', id="nan"),
    pytest.param('{"action":0,"unknown":[-Infinity]}', id="infinity-in-unknown-field"),
    pytest.param('[{"action":0}]', id="array-top-level"),
    pytest.param('"frame"', id="string-top-level"),
    pytest.param("null", id="null-top-level"),
    pytest.param("[" * 100_000 + "]" * 100_000, id="deep-nesting"),
    pytest.param('{"action":' + "9" * 5000 + "}", id="int-too-long-to-parse"),
    pytest.param(42, id="not-a-frame-type"),
    pytest.param(None, id="none"),
    pytest.param([{"action": 0}], id="list-object"),
]


@pytest.mark.parametrize("frame", BAD_FRAMES)
def test_malformed_frame_raises_protocol_error(frame: Any) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(frame)
    assert info.value.path == ""
    assert info.value.code == 40000


# --- limits --------------------------------------------------------------------------------


def test_frame_size_limit_counts_utf8_bytes() -> None:
    limits = CodecLimits(max_frame_bytes=21)
    fits = '{"action":0,"id":"x"}'
    assert len(fits.encode()) == 21
    assert decode(fits, limits=limits).id == "x"
    assert decode(fits.encode(), limits=limits).id == "x"
    too_large = '{"action":0,"id":"xy"}'
    for form in (too_large, too_large.encode(), memoryview(too_large.encode())):
        with pytest.raises(ProtocolError, match="too large"):
            decode(form, limits=limits)
    accented = '{"action":0,"id":"é"}'  # 21 characters but 22 bytes
    assert len(accented) == 21
    with pytest.raises(ProtocolError, match="too large"):
        decode(accented, limits=limits)


def test_item_count_limits() -> None:
    limits = CodecLimits(max_presence_items=2, max_message_items=1)
    two = [{"action": 2}] * 2
    assert decode({"action": 14, "presence": two}, limits=limits).presence is not None
    with pytest.raises(ProtocolError) as info:
        decode({"action": 14, "presence": [*two, {"action": 2}]}, limits=limits)
    assert info.value.path == "presence"
    with pytest.raises(ProtocolError) as info:
        decode({"action": 15, "messages": [{}, {}]}, limits=limits)
    assert info.value.path == "messages"
    with pytest.raises(ProtocolError) as info:
        decode({"action": 1, "res": [{}, {}]}, limits=limits)
    assert info.value.path == "res"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


def test_nesting_limit_on_opaque_values() -> None:
    limits = CodecLimits(max_nesting_depth=4)
    ok = {"action": 14, "presence": [{"action": 2, "extras": _nested(4)}]}
    assert decode(ok, limits=limits).presence is not None
    too_deep = {"action": 14, "presence": [{"action": 2, "extras": _nested(5)}]}
    for form in (too_deep, json.dumps(too_deep)):
        with pytest.raises(ProtocolError) as info:
            decode(form, limits=limits)
        assert info.value.path == "presence[0].extras"
    with pytest.raises(ProtocolError) as info:
        decode({"action": 1, "res": [_nested(5)]}, limits=limits)
    assert info.value.path == "res[0]"


def test_nesting_limit_on_error_causes() -> None:
    error: dict[str, Any] = {"code": 1, "statusCode": 2}
    for _ in range(3):
        error = {"code": 1, "statusCode": 2, "cause": error}
    assert decode({"action": 9, "error": error}, limits=CodecLimits(max_nesting_depth=4)).error
    with pytest.raises(ProtocolError) as info:
        decode({"action": 9, "error": error}, limits=CodecLimits(max_nesting_depth=3))
    assert info.value.path == "error.cause.cause.cause"


def test_too_deep_json_data_stays_encoded_RSL6b() -> None:
    """RSL6b: a payload we refuse to decode is delivered raw, with its encoding."""
    limits = CodecLimits(max_nesting_depth=3)
    deep, shallow = json.dumps(_nested(4)), json.dumps(_nested(3))
    frame = {
        "action": 14,
        "presence": [
            {"action": 2, "data": deep, "encoding": "json"},
            {"action": 2, "data": shallow, "encoding": "json"},
        ],
    }
    presence = decode(frame, limits=limits).presence
    assert presence is not None
    assert (presence[0].data, presence[0].encoding) == (deep, "json")
    assert (presence[1].data, presence[1].encoding) == (_nested(3), None)


def test_dict_frame_with_non_json_values_is_rejected() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    for data in ({1, 2}, float("nan"), cyclic, {1: "int key"}, object()):
        frame = {"action": 14, "presence": [{"action": 2, "data": data}]}
        with pytest.raises(ProtocolError) as info:
            decode(frame)
        assert info.value.path == "presence[0].data"


def test_codec_limits_are_validated_and_frozen() -> None:
    bad: Any
    for bad in (0, -1, True, 1.5):
        with pytest.raises(UsageError):
            CodecLimits(max_frame_bytes=bad)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        DEFAULT_LIMITS.max_frame_bytes = 1  # type: ignore[misc]


# --- data encodings (RSL4, RSL6) -----------------------------------------------------------

DECODE_DATA: list[Any] = [
    pytest.param('{"a":1}', "json", {"a": 1}, None, id="json-object"),
    pytest.param("[1,2]", "json", [1, 2], None, id="json-array"),
    pytest.param(' "s" ', "json", "s", None, id="json-string-with-whitespace"),
    pytest.param(b64(b"hello"), "base64", b"hello", None, id="base64"),
    pytest.param(b64(b"hello"), "utf-8/base64", "hello", None, id="utf8-base64"),
    pytest.param(b64(b'{"a":1}'), "json/utf-8/base64", {"a": 1}, None, id="json-utf8-base64"),
    pytest.param(b64(b'["x"]'), "json/base64", ["x"], None, id="json-over-bytes"),
    pytest.param("hello", "utf-8", "hello", None, id="utf8-on-text-is-a-no-op"),
    pytest.param("x", None, "x", None, id="no-encoding"),
    pytest.param("x", "", "x", None, id="empty-encoding"),
    pytest.param(None, "json", None, "json", id="no-data"),
    # RSL6b: stop at the first step that is unknown, a cipher, or fails; keep the rest.
    pytest.param(
        b64(b"\x00\x01"),
        "cipher+aes-128-cbc/base64",
        b"\x00\x01",
        "cipher+aes-128-cbc",
        id="cipher-after-base64",
    ),
    pytest.param(
        b64(b"\x00\x01"),
        "json/utf-8/cipher+aes-256-cbc/base64",
        b"\x00\x01",
        "json/utf-8/cipher+aes-256-cbc",
        id="json-over-cipher",
    ),
    pytest.param("delta", "vcdiff", "delta", "vcdiff", id="unknown-step"),
    pytest.param('{"a":1}', "json/x-custom", '{"a":1}', "json/x-custom", id="unknown-last-step"),
    pytest.param("{not json", "json", "{not json", "json", id="invalid-json"),
    pytest.param("NaN", "json", "NaN", "json", id="nan-is-not-json"),
    pytest.param("[1] [2]", "json", "[1] [2]", "json", id="two-json-values"),
    pytest.param("@@@", "base64", "@@@", "base64", id="invalid-base64"),
    pytest.param("héllo", "base64", "héllo", "base64", id="non-ascii-base64"),
    pytest.param(b64(b"\xff"), "utf-8/base64", b"\xff", "utf-8", id="invalid-utf8"),
    pytest.param({"a": 1}, "json", {"a": 1}, "json", id="json-step-on-non-text"),
    pytest.param(5, "base64", 5, "base64", id="base64-step-on-number"),
    pytest.param(5, "utf-8", 5, "utf-8", id="utf8-step-on-number"),
]


@pytest.mark.parametrize(("data", "encoding", "expected", "remaining"), DECODE_DATA)
def test_RSL6_decode_data(data: Any, encoding: str | None, expected: Any, remaining: Any) -> None:
    assert decode_data(data, encoding) == (expected, remaining)


def test_RSL6_decode_data_bounds_json_depth() -> None:
    deep = "[" * 40 + "]" * 40
    assert decode_data(deep, "json") == (deep, "json")
    assert decode_data(deep, "json", limits=CodecLimits(max_nesting_depth=40))[1] is None


ENCODE_DATA: list[Any] = [
    pytest.param({"a": 1}, '{"a":1}', "json", id="object"),
    pytest.param([1, "x"], '[1,"x"]', "json", id="array"),
    pytest.param(5, "5", "json", id="number"),
    pytest.param(True, "true", "json", id="bool"),
    pytest.param(b"hello", "aGVsbG8=", "base64", id="bytes"),
    pytest.param(bytearray(b"\x00"), "AA==", "base64", id="bytearray"),
    pytest.param("text", "text", None, id="text"),
    pytest.param(None, None, None, id="none"),
]


@pytest.mark.parametrize(("data", "wire", "step"), ENCODE_DATA)
def test_RSL4_encode_data(data: Any, wire: Any, step: str | None) -> None:
    assert encode_data(data) == (wire, step)


def test_RSL4_encode_data_rejects_what_json_cannot_carry() -> None:
    for bad in ({1, 2}, float("inf"), {"x": object()}):
        with pytest.raises(UsageError) as info:
            encode_data(bad)
        assert info.value.code == 40013


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b64(b"\x10\x20"), "cipher+aes-128-cbc/base64"),
        (b64(b"\x10\x20"), "json/utf-8/cipher+aes-128-cbc/base64"),
        ("opaque", "vcdiff"),
        ('{"a":1}', "x-custom/json"),
        ("{broken", "json"),
        (b64(b"\xff"), "utf-8/base64"),
    ],
)
def test_RSL6b_undecodable_payload_is_relayed_unchanged(data: str, encoding: str) -> None:
    """A payload that still carries an encoding goes back out exactly as it came in."""
    wire = {"action": 14, "presence": [{"action": 2, "data": data, "encoding": encoding}]}
    message = decode(wire)
    assert message.presence is not None
    assert message.presence[0].encoding is not None
    assert encode(message) == wire


@given(strategies.payloads())
def test_RSL4_RSL6_payload_round_trip(payload: tuple[Any, str | None]) -> None:
    data, remaining = payload
    wire, step = encode_data(data)
    encoding = step if remaining is None else remaining if step is None else f"{remaining}/{step}"
    assert decode_data(wire, encoding) == (data, remaining)


def test_RSL4_encoding_appends_to_a_remaining_encoding() -> None:
    message = ProtocolMessage(
        action=14,
        presence=(PresenceMessage(action=ENTER, data=b"\x01", encoding="cipher+aes-128-cbc"),),
    )
    assert encode(message)["presence"] == [
        {"action": 2, "data": "AQ==", "encoding": "cipher+aes-128-cbc/base64"}
    ]


def test_testing_package_imports_without_hypothesis() -> None:
    """Hypothesis is an optional extra: only presence_core.testing.strategies needs it."""
    block = "import sys; sys.modules['hypothesis'] = None; "

    def run(statement: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", block + statement], check=False, capture_output=True, text=True
        )

    assert run("import presence_core, presence_core.testing").returncode == 0
    blocked = run("import presence_core.testing.strategies")  # shows the block works
    assert blocked.returncode != 0
    assert "hypothesis" in blocked.stderr
