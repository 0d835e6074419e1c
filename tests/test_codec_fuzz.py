"""Fuzzing the wire boundary: whatever a peer sends, decode raises ProtocolError or succeeds.

And whatever decode accepts can be encoded again and decodes to the same value, so a server can
relay anything it accepted.
"""

from __future__ import annotations

import json
from typing import Any

import attrs
from hypothesis import assume, given, strategies as st

from presence_core import (
    CodecLimits,
    ProtocolError,
    ProtocolMessage,
    decode,
    decode_data,
    encode,
    encode_text,
)
from presence_core.testing import strategies

SMALL = CodecLimits(max_frame_bytes=4096, max_nesting_depth=4, max_presence_items=3)


def check_decode(frame: Any, limits: CodecLimits | None = None) -> ProtocolMessage | None:
    """Decode ``frame``; only ProtocolError may escape, and an accepted frame must re-encode."""
    limits = CodecLimits() if limits is None else limits
    try:
        message = decode(frame, limits=limits)
    except ProtocolError as exc:
        error = exc
    else:
        # Under the same nesting and item limits: a payload left encoded for being too deep
        # under tight limits would decode further under the defaults.  Not the same frame
        # size: the encoder escapes non-ASCII text, which can make the frame longer.
        again = attrs.evolve(limits, max_frame_bytes=1 << 30)
        text = encode_text(message)
        assert decode(text, limits=again) == message
        assert encode(decode(encode(message), limits=again)) == encode(message)
        return message
    assert error.code == 40000
    return None


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function: hypothesis reads a lambda's source to check that it recurses, and a
    # lambda spread over lines can read as one that does not (a warning, which the suite's
    # filterwarnings makes an error).
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=6), children, max_size=4
    )


# Arbitrary Python-side values, NaN and infinities included (a dict frame is not parsed).
any_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    _containers,
    max_leaves=15,
)

FRAME_KEYS = [
    "action", "id", "channel", "channelSerial", "connectionId", "connectionKey",
    "connectionDetails", "msgSerial", "count", "error", "flags", "presence", "messages",
    "timestamp", "params", "res",
]  # fmt: skip
ITEM_KEYS = [
    "action", "id", "clientId", "connectionId", "timestamp", "data", "encoding", "extras",
    "name", "serial",
]  # fmt: skip
ENCODINGS = ["json", "utf-8", "base64", "cipher+aes-128-cbc", "vcdiff", "", "json/base64"]


def _mostly(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a valid value, so that the checks of the other fields are reached too."""
    return st.sampled_from((True, True, True, False)).flatmap(
        lambda use_valid: valid if use_valid else any_values
    )


def _items() -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda action, rest: {**rest, "action": action},
        _mostly(st.integers(0, 5)),
        st.dictionaries(
            st.sampled_from(ITEM_KEYS[1:]),
            st.sampled_from(ENCODINGS) | any_values,
            max_size=6,
        ),
    )


# Dicts shaped like frames, so the fuzz reaches the field checks, not just "missing action".
frame_like = st.builds(
    lambda action, rest: {**rest, "action": action},
    _mostly(st.integers(0, 21)),
    st.dictionaries(
        st.sampled_from(FRAME_KEYS[1:]),
        any_values | st.lists(_items(), max_size=4) | _items(),
        max_size=6,
    ),
)


@given(any_values)
def test_decode_any_python_value(value: Any) -> None:
    check_decode(value)


@given(frame_like)
def test_decode_frame_shaped_dicts(frame: dict[str, Any]) -> None:
    check_decode(frame)
    check_decode(frame, SMALL)


@given(frame_like)
def test_decode_frame_shaped_json_text(frame: dict[str, Any]) -> None:
    try:
        text = json.dumps(frame)  # NaN and infinities are written as bare words
    except (ValueError, RecursionError):  # pragma: no cover - depends on the draw
        assume(False)
    check_decode(text)
    check_decode(text.encode("utf-8"), SMALL)


@given(strategies.json_values())
def test_decode_any_json_value_as_text(value: Any) -> None:
    check_decode(json.dumps(value))


@given(st.text())
def test_decode_any_text(text: str) -> None:
    check_decode(text)


@given(st.binary())
def test_decode_any_bytes(data: bytes) -> None:
    check_decode(data)


@st.composite
def mutated_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A valid frame's wire dict with one field, anywhere in it, replaced or deleted."""
    wire = encode(draw(strategies.protocol_messages()))
    # Every place a field can live: the frame, its objects, and each array item.
    targets: list[dict[str, Any]] = [wire]
    for key in ("connectionDetails", "error", "params"):
        if isinstance(wire.get(key), dict):
            targets.append(wire[key])
    for key in ("presence", "messages", "res"):
        targets.extend(item for item in wire.get(key, ()) if isinstance(item, dict))
    target = draw(st.sampled_from(targets))
    key = draw(st.sampled_from(sorted({*target, *FRAME_KEYS[:3], *ITEM_KEYS[:3]})))
    if draw(st.booleans()) and key in target:
        del target[key]
    else:
        target[key] = draw(any_values)
    return wire


@given(mutated_frames())
def test_decode_mutated_valid_frames(wire: dict[str, Any]) -> None:
    check_decode(wire)
    try:
        text = json.dumps(wire)
    except (ValueError, RecursionError):  # pragma: no cover - depends on the draw
        return
    check_decode(text)


@given(
    st.none() | st.binary(max_size=20) | strategies.json_values(),
    st.lists(st.sampled_from([*ENCODINGS, "x"]), max_size=4).map("/".join),
)
def test_decode_data_never_raises(data: Any, encoding: str) -> None:
    """RSL6b: decoding a payload never fails; the remaining steps are a prefix of the encoding."""
    _, remaining = decode_data(data, encoding)
    assert remaining is None or encoding.startswith(remaining)
