"""The msgpack codec: the JSON codec's rules on a binary format, and binary data as bin.

Rule ids: RSL4 (encoding data: bytes as bin, objects as JSON text), RSL6 (decoding data: bin to
bytes, remaining steps still applied), TP3a/d/g (inheritance, shared with JSON).  Each refusal
is a ProtocolError 40000, named after what it refuses.
"""

from __future__ import annotations

import base64
import math
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from hypothesis import given

from presence_core import (
    CodecLimits,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
    decode,
    encode,
    encode_text,
)
from presence_core._codec import DEFAULT_LIMITS
from presence_core._msgpack import MISSING, available, decode_msgpack, encode_msgpack, load
from presence_core.testing import strategies

ENTER = PresenceAction.ENTER
T = 1_700_000_000_000


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def enter(*items: dict[str, Any], **frame: Any) -> bytes:
    return pack({"action": 14, "channel": "room", **frame, "presence": list(items)})


def refused(frame: object, limits: CodecLimits = DEFAULT_LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_msgpack(frame, limits=limits)  # type: ignore[arg-type]
    assert caught.value.code == 40000
    return caught.value


# --- round trips and equivalence with JSON -----------------------------------------------


@given(strategies.protocol_messages())
def test_round_trip_of_every_protocol_message_shape(message: ProtocolMessage) -> None:
    packed = encode_msgpack(message)
    assert decode_msgpack(packed) == message
    assert decode_msgpack(bytearray(packed)) == message
    assert decode_msgpack(memoryview(packed)) == message
    assert encode_msgpack(decode_msgpack(packed)) == packed


@given(strategies.protocol_messages())
def test_json_and_msgpack_decode_to_the_same_message(message: ProtocolMessage) -> None:
    assert decode_msgpack(encode_msgpack(message)) == decode(encode_text(message))


@given(strategies.protocol_messages())
def test_msgpack_map_is_the_json_dict_but_for_binary_data(message: ProtocolMessage) -> None:
    """Same wire names and values; only bytes data differs: bin here, base64 text in JSON."""
    packed = msgpack.unpackb(encode_msgpack(message))
    for key in ("presence", "messages"):
        for item in packed.get(key, ()):
            if isinstance(item.get("data"), bytes):
                item["data"] = base64.b64encode(item["data"]).decode("ascii")
                item["encoding"] = "/".join(filter(None, (item.get("encoding"), "base64")))
    assert packed == encode(message)


@given(strategies.payloads())
def test_RSL4_RSL6_payload_round_trip_in_msgpack(payload: tuple[Any, str | None]) -> None:
    data, encoding = payload
    message = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        presence=(PresenceMessage(action=ENTER, data=data, encoding=encoding),),
    )
    (item,) = decode_msgpack(encode_msgpack(message)).presence or ()
    assert (item.data, item.encoding) == (data, encoding)


# --- binary data (RSL4, RSL6) --------------------------------------------------------------


def test_RSL4_bytes_data_is_sent_as_bin_without_a_base64_step() -> None:
    message = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        presence=(
            PresenceMessage(action=ENTER, data=b"\x00\xff"),
            PresenceMessage(action=ENTER, data=bytearray(b"\x01")),
            PresenceMessage(action=ENTER, data=memoryview(b"\x02")),
        ),
        messages=(Message(name="typing", data=b"\x03"),),
    )
    wire = msgpack.unpackb(encode_msgpack(message))
    assert wire["presence"] == [
        {"action": 2, "data": b"\x00\xff"},
        {"action": 2, "data": b"\x01"},
        {"action": 2, "data": b"\x02"},
    ]
    assert wire["messages"] == [{"name": "typing", "data": b"\x03"}]
    # The same data in JSON: base64 text with its step.
    assert encode(message)["presence"][0] == {"action": 2, "data": "AP8=", "encoding": "base64"}


def test_RSL4_objects_go_as_json_text_and_strings_as_they_are() -> None:
    message = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        presence=(
            PresenceMessage(action=ENTER, data={"status": "away"}),
            PresenceMessage(action=ENTER, data=[1, 2]),
            PresenceMessage(action=ENTER, data="plain"),
        ),
    )
    assert msgpack.unpackb(encode_msgpack(message))["presence"] == [
        {"action": 2, "data": '{"status":"away"}', "encoding": "json"},
        {"action": 2, "data": "[1,2]", "encoding": "json"},
        {"action": 2, "data": "plain"},
    ]


def test_RSL4_bytes_still_carrying_an_encoding_keep_it_without_base64() -> None:
    item = PresenceMessage(action=ENTER, data=b"\x10", encoding="cipher+aes-128-cbc")
    message = ProtocolMessage(action=ProtocolAction.PRESENCE, presence=(item,))
    (wire,) = msgpack.unpackb(encode_msgpack(message))["presence"]
    assert wire == {"action": 2, "data": b"\x10", "encoding": "cipher+aes-128-cbc"}
    assert encode(message)["presence"][0]["encoding"] == "cipher+aes-128-cbc/base64"


def test_RSL6_received_bin_decodes_to_bytes_and_later_steps_still_apply() -> None:
    message = decode_msgpack(
        enter(
            {"action": 2, "clientId": "a", "data": b"\xff\x00"},
            {"action": 2, "clientId": "b", "data": "caf\u00e9".encode(), "encoding": "utf-8"},
            {"action": 2, "clientId": "c", "data": b'{"x":1}', "encoding": "json"},
            {"action": 2, "clientId": "d", "data": b"\xff", "encoding": "utf-8"},
            {"action": 2, "clientId": "e", "data": b"\x01", "encoding": "cipher+aes-128-cbc"},
        )
    )
    assert [(p.data, p.encoding) for p in message.presence or ()] == [
        (b"\xff\x00", None),
        ("caf\u00e9", None),
        ({"x": 1}, None),
        (b"\xff", "utf-8"),  # RSL6b: not UTF-8, kept with the step still to undo
        (b"\x01", "cipher+aes-128-cbc"),
    ]
    (item,) = (
        decode_msgpack(
            pack({"action": 15, "channel": "room", "messages": [{"name": "n", "data": b"\x07"}]})
        ).messages
        or ()
    )
    assert item.data == b"\x07"


def test_RSL6_bin_data_decodes_the_same_as_base64_in_json() -> None:
    """An item with binary data is the same message whichever format carried it."""
    fields = {"action": 2, "clientId": "a", "connectionId": "c1", "id": "c1:0:0", "timestamp": T}
    in_json = decode({"action": 14, "presence": [{**fields, "data": "AP8=", "encoding": "base64"}]})
    in_msgpack = decode_msgpack(pack({"action": 14, "presence": [{**fields, "data": b"\x00\xff"}]}))
    assert in_json == in_msgpack


def test_bin_is_refused_outside_item_data() -> None:
    assert refused(enter({"action": 2, "clientId": b"a"})).path == "presence[0].clientId"
    assert refused(enter({"action": 2, "extras": {"k": b"v"}})).path == "presence[0].extras"
    assert refused(enter({"action": 2, "data": [b"v"]})).path == "presence[0].data"
    assert refused(pack({"action": 14, "channel": b"room"})).path == "channel"


def test_bytes_data_stays_refused_in_a_json_dict_frame() -> None:
    """Only a binary format's frames admit bytes; a dict frame of the JSON codec holds JSON."""
    with pytest.raises(ProtocolError) as caught:
        decode({"action": 14, "presence": [{"action": 2, "data": b"x"}]})
    assert caught.value.path == "presence[0].data"
    with pytest.raises(ProtocolError):
        decode({"action": 15, "messages": [{"data": b"x", "encoding": "utf-8"}]})


def test_inheritance_TP3_applies_to_msgpack_frames() -> None:
    message = decode_msgpack(
        enter({"action": 2, "clientId": "a"}, id="c9:4", connectionId="c9", timestamp=T)
    )
    (item,) = message.presence or ()
    assert (item.id, item.connection_id, item.timestamp) == ("c9:4:0", "c9", T)


def test_integral_float_numbers_decode_as_ints() -> None:
    """A JavaScript encoder writes a number beyond 32 bits as a float64."""
    (item,) = decode_msgpack(enter({"action": 2, "timestamp": float(T)})).presence or ()
    assert item.timestamp == T
    assert type(item.timestamp) is int


def test_unknown_fields_are_ignored() -> None:
    message = decode_msgpack(pack({"action": 0, "futureField": {"x": [1, b"y"]}}))
    assert message == ProtocolMessage(action=ProtocolAction.HEARTBEAT)


# --- refusals ------------------------------------------------------------------------------


def test_trailing_bytes_are_refused() -> None:
    assert "bytes after" in refused(pack({"action": 0}) + b"\x00").message


def test_ext_types_are_refused_timestamps_included() -> None:
    for ext in (msgpack.ExtType(5, b"x"), msgpack.ExtType(5, b""), msgpack.Timestamp(1, 0)):
        assert "ext" in refused(pack({"action": 0, "x": ext})).message
        assert "ext" in refused(pack({"action": ext})).message


def test_non_string_map_keys_are_refused() -> None:
    int_key: dict[Any, Any] = {"action": 0, 1: 2}
    bytes_key: dict[Any, Any] = {"action": 0, b"raw": 2}
    assert "keys" in refused(pack(int_key)).message
    assert "keys" in refused(pack(bytes_key)).message
    bytes_item_key: dict[Any, Any] = {"action": 2, b"clientId": "a"}
    assert "keys" in refused(enter(bytes_item_key)).message
    assert "keys" in refused(enter({"action": 2, "extras": {b"k": 1}})).message
    assert "keys" in refused(b"\x82\xa6action\x00\x91\x01\x02").message  # an array as a key
    assert "keys" in refused(b"\x82\xa6action\x00\xc0\x02").message  # nil as a key


def test_nan_and_infinity_are_refused() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        assert refused(enter({"action": 2, "timestamp": bad})).path == "presence[0].timestamp"
        assert refused(enter({"action": 2, "extras": {"n": bad}})).path == "presence[0].extras"
        assert refused(enter({"action": 2, "data": bad})).path == "presence[0].data"
        assert refused(pack({"action": bad})).path == "action"


def test_over_deep_nesting_is_refused() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"k": deep}
    assert "deep" in refused(enter({"action": 2, "extras": deep})).message
    # Deeper than msgpack's own parser goes: refused while parsing.
    assert "deep" in refused(b"\x81\xa1x" + b"\x91" * 5000 + b"\xc0").message


def test_frame_size_limit_is_checked_first() -> None:
    limits = CodecLimits(max_frame_bytes=20)
    frame = pack({"action": 0, "x": "y" * 8})
    assert len(frame) == 20
    assert decode_msgpack(frame, limits=limits).action == ProtocolAction.HEARTBEAT
    # One byte more, and malformed too: the size is what is reported.
    assert "too large" in refused(frame + b"\xc1", limits).message
    assert "too large" in refused(memoryview(frame + b"\xc1"), limits).message


def test_item_counts_are_bounded() -> None:
    limits = CodecLimits(max_presence_items=2, max_message_items=3)
    assert len(decode_msgpack(enter(*[{"action": 2}] * 2), limits=limits).presence or ()) == 2
    assert "too many" in refused(enter(*[{"action": 2}] * 3), limits).message


def test_long_arrays_and_maps_are_refused_from_their_header() -> None:
    """Anywhere in the frame, an array or map longer than the larger item bound is refused
    as soon as its header is read, before anything is built for it."""
    limits = CodecLimits(max_presence_items=2, max_message_items=3)
    assert decode_msgpack(pack({"action": 0, "x": [0] * 3}), limits=limits)
    assert "max_array_len" in refused(pack({"action": 0, "x": [0] * 4}), limits).message
    wide = {str(i): i for i in range(4)}
    assert "max_map_len" in refused(pack({"action": 0, "x": wide}), limits).message
    # A header claiming four billion entries, in a five-byte frame.
    assert "max_array_len" in refused(b"\x81\xa1x\xdd\xff\xff\xff\xff").message


def test_malformed_msgpack_is_refused() -> None:
    for bad in (b"", b"\xc1", b"\x82\xa6action", b"\x81\xa1x\xa2\xff\xfe"):
        assert "not valid msgpack" in refused(bad).message


def test_a_frame_must_be_a_map_and_bytes() -> None:
    assert "map" in refused(pack([1])).message
    assert "bytes" in refused('{"action": 0}').message
    assert "bytes" in refused({"action": 0}).message
    assert refused(pack({"presence": []})).path == "action"


def test_lone_surrogates_travel_both_ways() -> None:
    """JSON can carry a lone surrogate as an escape; msgpack relays it as surrogatepass bytes."""
    message = decode('{"action":14,"presence":[{"action":2,"clientId":"\\ud800","data":"x"}]}')
    assert decode_msgpack(encode_msgpack(message)) == message


# --- encoding errors -----------------------------------------------------------------------


def test_an_int_beyond_64_bits_in_an_opaque_value_goes_as_a_float() -> None:
    extras = {"big": 1 << 70, "huge": -(10**400), "small": 5, "list": [1 << 64, True]}
    message = decode(
        encode_text(
            ProtocolMessage(
                action=ProtocolAction.PRESENCE,
                presence=(PresenceMessage(action=ENTER, extras=extras),),
            )
        )
    )
    (item,) = msgpack.unpackb(encode_msgpack(message))["presence"]
    assert item["extras"] == {
        "big": float(1 << 70),
        "huge": -math.inf,
        "small": 5,
        "list": [float(1 << 64), True],
    }
    assert type(item["extras"]["small"]) is int


def test_unencodable_values_raise_usage_error() -> None:
    bad_data = ProtocolMessage(
        action=ProtocolAction.PRESENCE, presence=(PresenceMessage(action=ENTER, data={1, 2}),)
    )
    with pytest.raises(UsageError) as caught:
        encode_msgpack(bad_data)
    assert caught.value.code == 40013
    bad_extras = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        presence=(PresenceMessage(action=ENTER, extras={"s": {1, 2}}),),
    )
    with pytest.raises(UsageError, match="msgpack"):
        encode_msgpack(bad_extras)


# --- msgpack is optional -------------------------------------------------------------------


def test_msgpack_missing_raises_usage_error_naming_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)  # an import of it now fails
    load.cache_clear()
    try:
        assert not available()
        for call in (lambda: decode_msgpack(pack({"action": 0})), lambda: encode_msgpack(HB)):
            with pytest.raises(UsageError) as caught:
                call()
            assert caught.value.message == MISSING
            assert 'pip install "presence-core[server]"' in caught.value.message
    finally:
        load.cache_clear()
    monkeypatch.undo()
    assert available()
    assert decode_msgpack(encode_msgpack(HB)) == HB


HB = ProtocolMessage(action=ProtocolAction.HEARTBEAT)


def test_the_core_does_not_import_msgpack() -> None:
    """The core's install is attrs-only: importing it, or the server, imports no msgpack."""
    code = (
        "import sys, presence_core, presence_core.server; "
        "presence_core.server.ServerConfig(); "
        "print('msgpack' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "False"
