"""Raw frames in: decoding with the server's codec limits, and the answer to a refused frame.

RULES OF THIS MODULE

* A transport's raw frames decode by the ``format`` its connect named: ``json`` or ``msgpack``;
  a connection on any other format has its frames decoded by the adapter, which calls
  ``receive`` with them.  A JSON frame may come as text or as UTF-8 bytes (a binary WebSocket
  message), since the text is the same either way.  A msgpack frame must be bytes: a text
  WebSocket message holds UTF-8 text, which a msgpack encoder never produces, so one on a
  msgpack connection is refused (40000) like any other malformed frame.
* A frame the codec refuses is answered, never raised, and changes nothing: a NACK of its
  msgSerial when one can be read from it, so the client fails that publish rather than count
  it acknowledged by the next ACK (RTN7); otherwise an ERROR naming its channel when one can be
  read, which fails only that channel; otherwise an ERROR for the connection.  The error is
  40009 for a frame over ``max_frame_bytes`` and the codec's 40000 for anything else.
* Reading a refused frame: one within the size limit is parsed as plain JSON or msgpack, which
  accepts what the codec's checks refuse (a NaN, a wrong type, too deep, too many items).  One
  that is too large, or does not parse, is only looked at where ably-js writes the msgSerial,
  at the very end: ``,"msgSerial":N}`` in JSON, where only a top-level field can end so; in
  msgpack the key ``msgSerial`` and an integer, which a nested map's last entry could mimic,
  harmlessly: the answer is a NACK of a serial the client may not have pending, for a frame
  that is refused either way.
* Which of the two a refused frame is, is read from its first byte, not from the connection's
  format: a msgpack map starts with a byte from 0x80 to 0x8f, 0xde or 0xdf, which no JSON text
  does, and a JSON object starts with ``{`` or whitespace, which no msgpack map does.
* Nothing about a refused frame is recorded: it was not applied, and a msgSerial read from text
  that failed the codec's checks must not move the connection's dedup record.
"""

from __future__ import annotations

import json
import re
import types
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeAlias

from presence_core._codec import CodecLimits, decode
from presence_core._errors import ProtocolError, UsageError
from presence_core._msgpack import FORMAT as MSGPACK, decode_msgpack, unpack_unchecked
from presence_core._wire import ProtocolAction, ProtocolMessage
from presence_core.server._output import error, error_frame

__all__: list[str] = []

#: What an adapter reads from a WebSocket: a text frame or a binary one.
RawFrame: TypeAlias = str | bytes | bytearray | memoryview

_Decoder: TypeAlias = Callable[[RawFrame, CodecLimits], ProtocolMessage]


def _decode_json(frame: RawFrame, limits: CodecLimits) -> ProtocolMessage:
    return decode(frame, limits=limits)


def _decode_msgpack(frame: RawFrame, limits: CodecLimits) -> ProtocolMessage:
    if isinstance(frame, str):
        raise ProtocolError("a msgpack frame must be a binary WebSocket message, not text")
    return decode_msgpack(frame, limits=limits)


#: One decoder per ``format`` query parameter.
_DECODERS: Final[Mapping[str, _Decoder]] = types.MappingProxyType(
    {"json": _decode_json, MSGPACK: _decode_msgpack}
)

_INT64_MAX: Final = (1 << 63) - 1
# The end of a frame that ably-js wrote: its msgSerial is the last field.  The tail looked at
# is long enough for the field with any int64 and some whitespace.
_TAIL: Final = 64
_TAIL_SERIAL: Final = re.compile(rb'[{,]\s*"msgSerial"\s*:\s*([0-9]{1,19})\s*}\s*\Z')
# The key as msgpack writes it (a fixstr of 9 bytes); an integer is at most 9 bytes more.
_MSGPACK_KEY: Final = b"\xa9msgSerial"
_MAP_STARTS: Final = frozenset(bytes((byte,)) for byte in (*range(0x80, 0x90), 0xDE, 0xDF))


def decode_frame(fmt: str, frame: RawFrame, limits: CodecLimits) -> ProtocolMessage:
    """Decode ``frame`` of format ``fmt`` with ``limits``.

    Raises:
        ProtocolError: The codec refuses the frame.
        UsageError: No decoder for ``fmt``: the adapter decodes such frames itself.
    """
    decoder = _DECODERS.get(fmt)
    if decoder is None:
        raise UsageError(f"no decoder for format {fmt!r}; decode the frame and call receive")
    return decoder(frame, limits)


def refusal(frame: object, problem: ProtocolError, limits: CodecLimits) -> ProtocolMessage:
    """The NACK or ERROR answering ``frame``, which the codec refused with ``problem``."""
    too_large = _size(frame) > limits.max_frame_bytes
    if too_large:
        reason = error(40009, 413, f"Frame exceeds {limits.max_frame_bytes} bytes")
    else:
        reason = problem.to_error_info()
    fields = None if too_large else _parse(frame)
    if fields is None:
        serial, channel = _tail_serial(frame), None
    else:
        serial, channel = _serial(fields.get("msgSerial")), fields.get("channel")
    if serial is not None:
        return ProtocolMessage(action=ProtocolAction.NACK, msg_serial=serial, count=1, error=reason)
    return error_frame(reason, channel if isinstance(channel, str) and channel else None)


def _size(frame: object) -> int:
    if isinstance(frame, str):
        return len(frame) if frame.isascii() else len(frame.encode("utf-8", "surrogatepass"))
    if isinstance(frame, memoryview):
        return frame.nbytes
    if isinstance(frame, bytes | bytearray):
        return len(frame)
    return 0


def _is_msgpack_map(frame: object) -> bool:
    """Whether ``frame`` starts as a msgpack map does (see the rules)."""
    return isinstance(frame, bytes | bytearray | memoryview) and bytes(frame[:1]) in _MAP_STARTS


def _parse(frame: object) -> dict[Any, Any] | None:
    """The frame's top-level map, parsed without the codec's checks; None if it does not parse."""
    if isinstance(frame, dict):
        return frame
    try:
        if isinstance(frame, bytes | bytearray | memoryview) and _is_msgpack_map(frame):
            value = unpack_unchecked(bytes(frame))
        elif isinstance(frame, str):
            value = json.loads(frame)
        elif isinstance(frame, bytes | bytearray | memoryview):
            value = json.loads(bytes(frame).decode())
        else:
            return None
    except (ValueError, TypeError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def _tail_serial(frame: object) -> int | None:
    if isinstance(frame, bytes | bytearray | memoryview) and _is_msgpack_map(frame):
        tail = bytes(frame[-_TAIL:])
        start = tail.rfind(_MSGPACK_KEY)
        if start < 0:
            return None
        try:
            value = unpack_unchecked(tail[start + len(_MSGPACK_KEY) :])
        except (ValueError, TypeError):
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JavaScript encoders may write any number as a float64
        return _serial(value)
    if isinstance(frame, str):
        tail = frame[-_TAIL:].encode("utf-8", "surrogatepass")
    elif isinstance(frame, bytes | bytearray | memoryview):
        tail = bytes(frame[-_TAIL:])
    else:
        return None
    found = _TAIL_SERIAL.search(tail)
    return None if found is None else _serial(int(found.group(1)))


def _serial(value: object) -> int | None:
    """``value`` if it is a msgSerial (an int64 from 0), else None."""
    if type(value) is int and 0 <= value <= _INT64_MAX:
        return value
    return None
