"""msgpack codec for Ably protocol v6 frames: the binary format ably-js uses by default on Node.

Theory of operation
-------------------
A msgpack frame is the same map as a JSON frame, with the same wire names.
:func:`decode_msgpack` parses it and hands the map to the JSON codec's checks
(:mod:`presence_core._codec`), so every rule there holds unchanged: TP3 inheritance, RSL6 data
decoding, unknown fields ignored, one :class:`~presence_core.ProtocolError` (40000) for anything
malformed, the bounds of :class:`~presence_core.CodecLimits`.  :func:`encode_msgpack` packs the
dict :func:`~presence_core.encode` would build.  What differs from JSON:

* Binary data (RSL4, RSL6).  An item whose data is ``bytes`` goes as msgpack bin with no
  ``base64`` step (JSON carries the same bytes as base64 text with step ``base64``), and bin
  data received decodes to ``bytes``, further steps such as ``utf-8`` still applied.  Other
  non-string data goes as JSON text with step ``json``, as in JSON: ably-js sends objects that
  way on both formats and expects them so.  Bin is accepted only as an item's ``data``; in any
  other field it is a wrong type, as it would be in JSON.
* Bounds before building.  The frame size is checked first.  msgpack then refuses an array or
  map longer than the larger item bound (``max_presence_items``, ``max_message_items``),
  wherever it is in the frame, as soon as its header is read, before the container is
  allocated, and any string, bin or container that claims more than the frame holds.  Its
  parser refuses nesting deeper than its fixed stack; the codec's ``max_nesting_depth`` then
  applies to each field the codec keeps, as in JSON.
* Refused outright: bytes after the frame's map, ext types (timestamps included), a map key
  that is not a string, a string that is not UTF-8 (but for a lone surrogate's bytes, below).
  A NaN or an infinity is refused wherever
  the codec reads a value, as an integer field or an opaque value; like anything else in an
  unknown field, it is not looked at.
* A lone surrogate, which JSON carries as an escape, travels as its ``surrogatepass`` bytes in
  both directions, and an integer beyond 64 bits in an opaque value goes as a float, so that
  whatever a JSON peer may send can be relayed to a msgpack one.

msgpack is imported at first use: the core's install is attrs-only, and the ``server`` extra
brings msgpack.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
from typing import Any, Final, NoReturn

from presence_core._codec import DEFAULT_LIMITS, CodecLimits, _decode_frame, _fail, _type_name
from presence_core._encoder import encode_data, encode_frame
from presence_core._errors import UsageError
from presence_core._wire import ProtocolMessage

__all__ = ["decode_msgpack", "encode_msgpack"]

#: The ``format`` query parameter of this codec.
FORMAT: Final = "msgpack"
#: Why msgpack cannot be used: it is not installed.
MISSING: Final = 'msgpack is not installed; pip install "presence-core[server]" to use it'
_NO_EXT: Final = "msgpack ext types are not part of the protocol"
_INT64_MIN: Final = -(1 << 63)
_UINT64_MAX: Final = (1 << 64) - 1


@functools.cache
def load() -> Any:
    """Return the ``msgpack`` module, imported on first use.

    Raises:
        UsageError: msgpack is not installed (the message names the install command).
    """
    try:
        import msgpack  # noqa: PLC0415 - the core's install does not include it
    except ImportError:
        raise UsageError(MISSING) from None
    return msgpack


def available() -> bool:
    """Whether msgpack is installed, found without importing it."""
    try:
        return importlib.util.find_spec("msgpack") is not None
    except ValueError:  # a module that stands in for msgpack, without a spec
        return "msgpack" in sys.modules


def decode_msgpack(
    frame: bytes | bytearray | memoryview, *, limits: CodecLimits = DEFAULT_LIMITS
) -> ProtocolMessage:
    """Decode one msgpack frame into a :class:`~presence_core.ProtocolMessage`.

    The rules are :func:`~presence_core.decode`'s, and bin data decodes to ``bytes``; the
    module docstring lists what else differs.

    Args:
        frame: The frame's bytes, as a binary WebSocket message carries them.
        limits: Size, nesting and item bounds.

    Returns:
        The decoded frame.

    Raises:
        ProtocolError: code 40000, for any malformed input; its ``path`` names the field.
        UsageError: msgpack is not installed.
    """
    raw: object = frame
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _fail("", f"a msgpack frame must be bytes, not {_type_name(raw)}")
    limit = limits.max_frame_bytes
    size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
    if size > limit:
        raise _fail("", f"frame too large ({size} > {limit} bytes)")
    if isinstance(raw, memoryview):
        raw = raw.tobytes()  # the parser needs contiguous bytes
    msgpack = load()
    items = max(limits.max_presence_items, limits.max_message_items)
    try:
        obj = msgpack.unpackb(
            raw,
            raw=False,
            unicode_errors="surrogatepass",
            strict_map_key=False,  # every key is checked, with a clearer error, below
            object_hook=_string_keys,
            ext_hook=_no_ext,
            max_array_len=items,
            max_map_len=items,
            max_ext_len=0,
        )
    except msgpack.ExtraData:
        raise _fail("", "bytes after the frame's map") from None
    except msgpack.StackError:
        raise _fail("", "frame nested too deeply") from None
    except TypeError:  # a key the parser cannot even hash
        raise _fail("", "map keys must be strings, got an array or a map") from None
    except ValueError as exc:  # malformed input, a length over its limit, invalid UTF-8
        if "max_ext_len" in str(exc):
            raise _fail("", _NO_EXT) from None
        raise _fail("", f"frame is not valid msgpack: {exc}") from None
    if not isinstance(obj, dict):
        raise _fail("", f"a frame must be a msgpack map, not {_type_name(obj)}")
    return _decode_frame(obj, limits, binary=True)


def _string_keys(obj: dict[Any, Any]) -> dict[Any, Any]:
    # Called by the parser for every map, once its entries are read.
    for key in obj:
        if type(key) is not str:
            raise _fail("", f"map keys must be strings, got {_type_name(key)}")
    return obj


def _no_ext(code: int, data: bytes) -> NoReturn:
    # The parser's ext_hook; an ext with data never gets this far (max_ext_len is 0).
    raise _fail("", _NO_EXT)


def unpack_unchecked(data: bytes | bytearray) -> Any:
    """Parse one msgpack value with none of the codec's checks (to read a refused frame).

    Raises:
        ValueError: ``data`` is not exactly one msgpack value, or msgpack is not installed
            (:class:`~presence_core.UsageError` is a ValueError).
        TypeError: A map key is a map or an array.
    """
    return load().unpackb(data, raw=False, strict_map_key=False)


def encode_msgpack(message: ProtocolMessage) -> bytes:
    """Encode a :class:`~presence_core.ProtocolMessage` as one msgpack frame.

    The map is the one :func:`~presence_core.encode` builds, except that ``bytes`` data goes
    as msgpack bin with no ``base64`` step (RSL4).  A server encodes a broadcast once with this
    and sends the same bytes to every msgpack subscriber.

    Raises:
        UsageError: msgpack is not installed, or a value in the message cannot be represented
            (code 40013 for item data, as :func:`~presence_core.encode_text` raises).
    """
    wire = encode_frame(message, _encode_binary_data)
    packb = load().packb
    try:
        try:
            result: bytes = packb(wire, use_bin_type=True, unicode_errors="surrogatepass")
        except OverflowError:
            # Only an opaque value can hold an int this large (every wire int is int64).
            result = packb(_fit_ints(wire), use_bin_type=True, unicode_errors="surrogatepass")
    except (TypeError, ValueError, OverflowError) as exc:
        raise UsageError(f"message cannot be encoded as msgpack: {exc}") from None
    return result


def _encode_binary_data(data: Any) -> tuple[Any, str | None]:
    """RSL4 for a binary format: bytes as they are, anything else as :func:`encode_data` does."""
    if type(data) is bytes:
        return data, None
    if isinstance(data, bytearray | memoryview):
        return bytes(data), None
    return encode_data(data)


def _fit_ints(value: Any) -> Any:
    """``value`` with every int msgpack cannot hold as a float, as a JavaScript peer reads it."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if _INT64_MIN <= value <= _UINT64_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if isinstance(value, dict):
        return {key: _fit_ints(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_fit_ints(item) for item in value]
    return value
