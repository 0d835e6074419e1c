"""Rules of the codec, the errors and the PresenceSet that no other test states on its own.

Each test is named after the rule it checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from presence_core import (
    ChannelSettings,
    CodecLimits,
    Message,
    PresenceSet,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
    decode,
    encode,
)
from tests.fuzz.frames import nested
from tests.presence_set_support import CH, ENTER, ME, MY_CONN, NOW, attached, pm, presence


class _Text(str):
    __slots__ = ()


class _Number(int):
    pass


# --- codec ---------------------------------------------------------------------------------


def test_a_str_subclass_in_a_dict_frame_decodes_as_plain_str() -> None:
    message = decode({"action": 14, "channel": _Text("room")})
    assert message.channel == "room"
    assert type(message.channel) is str


def test_str_and_int_subclasses_are_json_in_opaque_values() -> None:
    extras = {"a": _Text("x"), "b": _Number(3)}
    frame = {"action": 14, "channel": "r", "presence": [{"action": 2, "extras": extras}]}
    (item,) = decode(frame).presence or ()
    assert item.extras == {"a": "x", "b": 3}


@pytest.mark.parametrize("text", ['{"action":0,"x":1e400}', '{"action":0,"timestamp":-1e999}'])
def test_a_number_beyond_the_float_range_is_refused_even_in_an_unknown_field(text: str) -> None:
    # It would parse to an infinity, which JSON cannot carry back out.
    with pytest.raises(ProtocolError) as refused:
        decode(text)
    assert refused.value.code == 40000
    assert "out of range" in refused.value.message


def test_a_number_or_boolean_payload_is_kept_as_it_came() -> None:
    items = [
        {"action": 2, "clientId": "a", "data": 5},
        {"action": 2, "clientId": "b", "data": True},
    ]
    message = decode({"action": 14, "channel": "r", "presence": items})
    assert [(item.data, item.encoding) for item in message.presence or ()] == [
        (5, None),
        (True, None),
    ]


def test_a_dict_frame_deeper_than_python_recurses_is_refused_whatever_the_limits() -> None:
    # With a nesting bound above the interpreter's recursion limit, the walk itself runs out
    # of stack; that still ends in the codec's one error, not a RecursionError.
    frame = {"action": 14, "presence": [{"action": 2, "extras": {"x": nested(5_000)}}]}
    with pytest.raises(ProtocolError) as refused:
        decode(frame, limits=CodecLimits(max_nesting_depth=1_000_000))
    assert refused.value.message == "frame nested too deeply"


def test_non_string_data_with_an_encoding_must_still_be_json() -> None:
    item = {"action": 2, "data": {"a": float("nan")}, "encoding": "base64"}
    with pytest.raises(ProtocolError) as refused:
        decode({"action": 14, "presence": [item]})
    assert refused.value.path == "presence[0].data"


def test_params_keys_must_be_strings() -> None:
    with pytest.raises(ProtocolError) as refused:
        decode({"action": 10, "params": {1: "x"}})
    assert refused.value.path == "params"


def test_text_data_goes_out_as_is_without_an_encoding() -> None:
    """RSL4: a string payload needs no encoding step."""
    wire = encode(ProtocolMessage(action=ProtocolAction.MESSAGE, messages=(Message(data="hi"),)))
    assert wire["messages"] == [{"data": "hi"}]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "text"),
    [
        (
            ProtocolError("bad", path="presence[0].id"),
            "ProtocolError('presence[0].id: bad', code=40000)",
        ),
        (UsageError("no", code=40012), "UsageError('no', code=40012)"),
    ],
)
def test_an_error_repr_names_its_class_message_and_code(error: Exception, text: str) -> None:
    assert repr(error) == text


# --- PresenceSet ---------------------------------------------------------------------------


def test_a_presence_set_needs_a_channel_name() -> None:
    with pytest.raises(UsageError) as refused:
        PresenceSet("")
    assert refused.value.code == 40010


@pytest.mark.parametrize("field", ["request_timeout", "channel_retry_timeout"])
def test_channel_timeouts_must_be_positive(field: str) -> None:
    settings: dict[str, Any] = {field: 0}
    with pytest.raises(UsageError):
        ChannelSettings(**settings)


def test_set_connection_needs_a_connection_id_and_changes_nothing_without_one() -> None:
    room = PresenceSet(CH, client_id="alice")
    room.set_connection(MY_CONN, client_id="alice", now=NOW)
    before = room.snapshot()
    with pytest.raises(UsageError):
        room.set_connection("", now=NOW)
    assert room.connection_id == MY_CONN
    assert room.snapshot() == before


def test_an_enter_acked_under_a_wildcard_identity_is_not_kept_for_reentry() -> None:
    """RTP8j, RTP17: a wildcard is not a member's identity, so there is nothing to re-enter."""
    room = PresenceSet(CH, client_id="*")
    room.enter("x", now=NOW)  # queued: the connection is not known yet
    room.set_connection(MY_CONN, client_id="*", now=NOW)
    room.receive(attached(), now=NOW)
    (operation,) = room.pending
    room.acknowledge([operation], now=NOW)
    assert room.pending == ()
    assert room.own_members == {}


def test_snapshots_compare_members_by_value_even_with_unhashable_data() -> None:
    """A caller-built frame may carry data no decoder makes (a bytearray, a set); two rooms
    that applied the same frames still have equal snapshots, and different data differs."""

    def room_with(data: object) -> PresenceSet:
        room = PresenceSet(CH, client_id=ME)
        room.set_connection(MY_CONN, client_id=ME, now=NOW)
        room.attach(now=NOW)
        room.receive(attached(), now=NOW)
        room.receive(presence(pm(ENTER, "bob", "C2", data=data)), now=NOW)
        return room

    assert room_with(bytearray(b"x")).snapshot() == room_with(bytearray(b"x")).snapshot()
    assert room_with({1, 2}).snapshot() == room_with({1, 2}).snapshot()
    assert room_with(bytearray(b"x")).snapshot() != room_with(bytearray(b"y")).snapshot()
