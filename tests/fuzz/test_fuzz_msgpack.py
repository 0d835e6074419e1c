"""Fuzzing the msgpack codec, and the Server's raw-frame path on a msgpack connection.

The same traffic as the JSON fuzz tests, packed as msgpack and then mangled (truncated, bits
flipped, bytes inserted), or with hostile values packed in.  Properties: ``decode_msgpack``
raises only ProtocolError (40000); what it accepts packs again and decodes to the same frame;
and a server answers a refused msgpack frame with one NACK or ERROR and changes nothing.
"""

from __future__ import annotations

import msgpack
from hypothesis import given, strategies as st

from presence_core import (
    CodecLimits,
    ProtocolError,
    ProtocolMessage,
    UsageError,
    decode_msgpack,
    encode_msgpack,
)
from tests.fuzz.frames import client_frames, mutated_bytes, mutated_wire, server_frames
from tests.fuzz.test_fuzz_server import LIMITS, T0, check_refusal, start, state

TIGHT = CodecLimits(
    max_frame_bytes=512, max_nesting_depth=3, max_presence_items=2, max_message_items=2
)
traffic = st.one_of(server_frames(), client_frames())


def _packed(message: ProtocolMessage) -> bytes:
    try:
        packed: bytes = encode_msgpack(message)
    except UsageError:  # a payload msgpack cannot carry
        return b"\x80"
    return packed


def check_decode(frame: bytes, limits: CodecLimits) -> ProtocolMessage | None:
    """Decode ``frame``; only ProtocolError may escape, and an accepted frame round-trips."""
    try:
        message: ProtocolMessage = decode_msgpack(frame, limits=limits)
    except ProtocolError as exc:
        error = exc
    else:
        assert decode_msgpack(encode_msgpack(message), limits=limits) == message
        return message
    assert error.code == 40000
    return None


@given(traffic.map(_packed).flatmap(mutated_bytes))
def test_msgpack_decode_refuses_mangled_frames_with_protocol_error_only(frame: bytes) -> None:
    check_decode(frame, CodecLimits())
    check_decode(frame, TIGHT)


@st.composite
def hostile_maps(draw: st.DrawFn) -> bytes:
    """A frame's wire map with hostile values in it, packed as msgpack."""
    wire = draw(traffic.flatmap(mutated_wire))
    try:
        packed: bytes = msgpack.packb(wire, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):  # too deep, or an int beyond 64 bits
        return b"\xc1"  # the one byte msgpack never uses
    return packed


@given(hostile_maps())
def test_msgpack_decode_refuses_hostile_values_with_protocol_error_only(frame: bytes) -> None:
    check_decode(frame, CodecLimits())
    check_decode(frame, TIGHT)


@given(st.lists(st.one_of(hostile_maps(), traffic.map(_packed).flatmap(mutated_bytes)), max_size=8))
def test_server_answers_bad_msgpack_frames_and_changes_nothing(frames: list[bytes]) -> None:
    server = start()
    server.connect("m1", {"key": "app.alice:s1", "clientId": "carol", "format": "msgpack"}, now=T0)
    now = T0
    live = True
    for frame in frames:
        if not live:
            break
        now += 10
        server.tick(now=now)
        before = state(server)
        out = server.receive_frame("m1", frame, now=now)
        try:
            decode_msgpack(frame, limits=LIMITS)
        except ProtocolError:
            check_refusal(out, "m1")
            assert state(server) == before
        live = "m1" not in out.disconnected()
