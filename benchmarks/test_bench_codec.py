"""Codec benchmarks: decoding and encoding PRESENCE and SYNC frames.

Frames are built once from a seeded room (benchmarks/_inputs.py) as an Ably server sends them:
every item carries its id, clientId, connectionId and timestamp, and object data travels as a
JSON string with ``encoding: "json"``.  The ``sync-frame-100`` group puts
``presence_core.decode`` next to ``json.loads`` on the same text (the target is within 3x).

Run with ``pytest benchmarks/ --benchmark-only``.
"""

from __future__ import annotations

import json
from typing import Any, Final

import pytest

from benchmarks._inputs import make_room, wire_presence_frame, wire_sync_frame
from presence_core import (
    ProtocolMessage,
    decode,
    encode,
    encode_text,
)

BenchmarkFixture = Any

_MEMBERS: Final = make_room(100).members
#: Wire frames (dicts) by name; their JSON text is what a socket delivers.
FRAMES: Final = {
    "presence-1": wire_presence_frame(_MEMBERS[:1]),
    "presence-100": wire_presence_frame(_MEMBERS),
    "sync-100": wire_sync_frame(_MEMBERS),
}
TEXTS: Final = {name: json.dumps(frame, separators=(",", ":")) for name, frame in FRAMES.items()}


def _decoded(name: str) -> ProtocolMessage:
    return decode(TEXTS[name])


@pytest.mark.parametrize("name", ["presence-1", "presence-100"])
@pytest.mark.benchmark(group="decode-presence")
def test_decode_presence_text(benchmark: BenchmarkFixture, name: str) -> None:
    """decode(str) of a PRESENCE frame with 1 or 100 entering members, from JSON text."""
    message = benchmark(decode, TEXTS[name])
    assert message.presence is not None
    assert len(message.presence) == len(FRAMES[name]["presence"])


@pytest.mark.parametrize("name", ["presence-1", "presence-100"])
@pytest.mark.benchmark(group="decode-presence")
def test_decode_presence_dict(benchmark: BenchmarkFixture, name: str) -> None:
    """decode(dict) of an already-parsed PRESENCE frame (1 or 100 members): no JSON parsing."""
    message = benchmark(decode, FRAMES[name])
    assert message.presence is not None


@pytest.mark.benchmark(group="sync-frame-100")
def test_decode_sync_text(benchmark: BenchmarkFixture) -> None:
    """decode(str) of a 100-member SYNC frame: JSON parsing, TP3 and the items' json data."""
    message = benchmark(decode, TEXTS["sync-100"])
    assert message.presence is not None
    assert len(message.presence) == 100


@pytest.mark.benchmark(group="sync-frame-100")
def test_json_loads_sync_text(benchmark: BenchmarkFixture) -> None:
    """json.loads alone on the same 100-member SYNC text: the baseline decode is held to."""
    obj = benchmark(json.loads, TEXTS["sync-100"])
    assert len(obj["presence"]) == 100


@pytest.mark.benchmark(group="sync-frame-100")
def test_decode_sync_dict(benchmark: BenchmarkFixture) -> None:
    """decode(dict) of an already-parsed 100-member SYNC frame."""
    message = benchmark(decode, FRAMES["sync-100"])
    assert message.presence is not None


@pytest.mark.parametrize("name", ["presence-1", "presence-100", "sync-100"])
@pytest.mark.benchmark(group="encode")
def test_encode(benchmark: BenchmarkFixture, name: str) -> None:
    """encode(): a decoded PRESENCE or SYNC frame back to a JSON-ready wire dict."""
    message = _decoded(name)
    wire = benchmark(encode, message)
    assert len(wire["presence"]) == len(FRAMES[name]["presence"])


@pytest.mark.parametrize("name", ["presence-1", "presence-100", "sync-100"])
@pytest.mark.benchmark(group="encode-text")
def test_encode_text(benchmark: BenchmarkFixture, name: str) -> None:
    """encode_text(): a decoded PRESENCE or SYNC frame straight to compact JSON text."""
    message = _decoded(name)
    text = benchmark(encode_text, message)
    assert decode(text) == message
