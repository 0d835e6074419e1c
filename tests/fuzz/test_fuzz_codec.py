"""Fuzzing the JSON codec with mangled frames: only ProtocolError comes out of decode, only
UsageError out of encode, and whatever decode accepts survives a round trip.

tests/test_codec_fuzz.py fuzzes arbitrary values and frame-shaped dicts; this module fuzzes
what a broken or hostile peer sends: valid traffic mutated as a dict, as text and as bytes.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from presence_core import (
    CodecLimits,
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
from presence_core.testing import strategies
from tests.fuzz.frames import client_frames, hostile_values, server_frames, wire_frames
from tests.test_codec_fuzz import check_decode

TIGHT = CodecLimits(
    max_frame_bytes=512, max_nesting_depth=3, max_presence_items=2, max_message_items=2
)

any_traffic = st.one_of(server_frames(), client_frames(), strategies.protocol_messages())


@given(wire_frames(any_traffic))
def test_decode_refuses_mangled_traffic_with_protocol_error_only(frame: Any) -> None:
    check_decode(frame)
    check_decode(frame, TIGHT)


@given(wire_frames(any_traffic), st.sampled_from([bytearray, memoryview]))
def test_decode_treats_every_bytes_type_alike(frame: Any, kind: type) -> None:
    """A bytearray or memoryview frame decodes (or is refused) exactly as its bytes are."""
    if isinstance(frame, str):
        frame = frame.encode("utf-8", "surrogatepass")
    if not isinstance(frame, bytes):
        return
    outcomes: list[object] = []
    for raw in (frame, kind(frame)):
        try:
            outcomes.append(decode(raw, limits=TIGHT))
        except ProtocolError as exc:
            outcomes.append(exc.message)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("depth", [10, 1_000, 200_000])
def test_decode_refuses_deep_nesting_without_recursion_error(depth: int) -> None:
    text = '{"action":14,"presence":[{"action":2,"clientId":"a","extras":{"x":'
    text += "[" * depth + "]" * depth + "}}]}"
    if depth <= CodecLimits().max_nesting_depth:
        assert decode(text).presence
        return
    with pytest.raises(ProtocolError) as refused:
        decode(text)
    assert refused.value.code == 40000


def _with_item_value(message: ProtocolMessage, field: str, value: Any) -> ProtocolMessage:
    item = PresenceMessage(action=PresenceAction.ENTER, client_id="alice")
    return attrs.evolve(message, presence=(attrs.evolve(item, **{field: value}),))


unencodable = hostile_values | st.sets(st.integers(), max_size=2) | st.builds(object)


@given(
    st.one_of(
        st.tuples(st.just("data"), unencodable),
        # extras is typed as a dict; its values may be anything.
        st.tuples(st.just("extras"), st.dictionaries(st.just("k"), unencodable, max_size=1)),
    )
)
def test_encode_refuses_what_json_cannot_carry_with_usage_error_only(
    field_value: tuple[str, Any],
) -> None:
    field, value = field_value
    message = _with_item_value(
        ProtocolMessage(action=ProtocolAction.PRESENCE, channel="c"), field, value
    )
    try:
        text = encode_text(message)
    except UsageError as exc:
        error = exc
    else:
        check_reads_back(text, message)
        return
    assert error.code in (40000, 40013)


def check_reads_back(text: str, message: ProtocolMessage) -> None:
    # What the encoder writes decodes, or is refused for a limit (a value nested deeper than
    # max_nesting_depth), and the text and the dict forms decode alike.
    try:
        from_text = decode(text)
    except ProtocolError:
        with pytest.raises(ProtocolError):
            decode(encode(message))
    else:
        assert from_text == decode(encode(message))
