"""JSON codec for Ably protocol v6 frames: the wire boundary of presence_core.

Theory of operation
-------------------
:func:`decode` turns one frame (a dict, or JSON text or bytes) into a
:class:`~presence_core.ProtocolMessage`; :func:`encode` turns one back into a JSON-ready dict whose
keys are exactly the wire names (``clientId``, ``msgSerial``, ``connectionDetails`` ...).  A field
absent on the wire is ``None`` in the object, and a ``None`` field is left out of the dict, so
nothing is invented in either direction.  The encoding side is :mod:`presence_core._encoder`;
the msgpack format (:mod:`presence_core._msgpack`) parses its frame and hands the map to the
checks here, with ``bytes`` admitted as item data.

On receipt the codec does what every Ably client does before anything else:

* TP3a/TP3d/TP3g (and TM2a/TM2c/TM2f for MESSAGE items): an item with no ``id``,
  ``connectionId`` or ``timestamp`` inherits it from the enclosing frame; the id becomes
  ``<frame id>:<index>``, where index is the item's position in the array as received.
* RSL6: ``data`` is decoded per its slash-separated ``encoding``, last step first (``json``,
  ``utf-8``, ``base64``).  Decoding stops at the first step it cannot apply (an unknown step,
  ``cipher+...``, or a payload that fails to decode); the data decoded so far is kept together
  with the steps still to undo (RSL6b).  Encoding (RSL4) is the reverse, so a still-encoded
  payload goes back out exactly as it came in.

Forward compatibility: unknown fields are ignored everywhere.  An unknown protocol action is
kept as a plain ``int`` (the reducers ignore it).  A presence item with an unknown action is
dropped, because a PresenceMessage must carry a :class:`~presence_core.PresenceAction`; the
other items keep their original indexes for TP3a.

Safety: :func:`decode` raises :class:`~presence_core.ProtocolError` (code 40000) and nothing else
for any input: invalid UTF-8 or JSON, NaN, a non-object top level, wrong types (``bool`` is not an
int; an integral float such as ``1.7e12`` is), integers outside int64, too many items, too deep
nesting.  The error names the field path, such as ``presence[3].timestamp``.  Sizes are bounded
by :class:`CodecLimits`.

Speed: decoding a 100-member SYNC frame costs about twice ``json.loads`` of the same text.  The
per-item loop reads each field once, checks types with ``type(x) is ...`` and builds every
:class:`~presence_core.PresenceMessage` through its slot descriptors, which halves the cost of
the frozen attrs ``__init__`` (see :func:`_new_presence`).
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Callable
from typing import Any, Final

import attrs

from presence_core._encoder import (
    encode,
    encode_data,
    encode_text,
    json_size as json_size,  # noqa: PLC0414 - the server's size checks import it from here
)
from presence_core._errors import ProtocolError, UsageError
from presence_core._wire import (
    AuthDetails,
    ConnectionDetails,
    ErrorInfo,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)

__all__ = [
    "CodecLimits",
    "decode",
    "encode",
    "encode_text",
    "decode_data",
    "encode_data",
]


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        msg = f"CodecLimits.{attribute.name} must be a positive int, not {value!r}"
        raise UsageError(msg)


@attrs.frozen(kw_only=True)
class CodecLimits:
    """Bounds on what :func:`decode` (and ``decode_msgpack``) accepts from a peer.

    Exceeding a bound raises :class:`~presence_core.ProtocolError`.  The frame size is checked
    before parsing and the item counts before any item is decoded.  The JSON parser itself stops
    at Python's recursion limit, which also becomes a ProtocolError; msgpack's bounds are in its
    module.

    The defaults are generous for any conforming peer and still cap what a hostile one can make
    us do per frame.
    """

    #: Largest frame, in UTF-8 bytes, accepted as text or bytes.  Ably's servers typically
    #: advertise a ``maxFrameSize`` of 256 KiB and a ``maxMessageSize`` of 64 KiB; 1 MiB leaves
    #: room for a server that pages SYNC more coarsely, while bounding the JSON parse per frame.
    #: A dict frame has already been parsed by the caller and is not measured.
    max_frame_bytes: int = attrs.field(default=1 << 20, validator=_positive)
    #: Deepest nesting of an opaque JSON value the codec keeps (``data``, ``extras``, ``res``
    #: entries), and longest chain of ``error.cause``.  Real payloads nest a handful of levels;
    #: 32 keeps every later step (encoding, equality, repr) far below Python's recursion limit
    #: of 1000.
    max_nesting_depth: int = attrs.field(default=32, validator=_positive)
    #: Most items in one ``presence`` array.  A client's PRESENCE carries a few items and a SYNC
    #: page a bounded batch (the benchmarks use pages of 100).  1000 bounds the per-frame work,
    #: and the events one frame can cause, at ten such pages.
    max_presence_items: int = attrs.field(default=1000, validator=_positive)
    #: Most items in one ``messages`` array, and in an ACK's ``res`` array (one entry per
    #: acknowledged message).  Same reasoning as ``max_presence_items``.
    max_message_items: int = attrs.field(default=1000, validator=_positive)


#: The limits :func:`decode` uses unless told otherwise.
DEFAULT_LIMITS: Final = CodecLimits()

# Ably serials, counts and timestamps are int64 on the wire.
_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 63) - 1

_PROTOCOL_ACTIONS: Final[dict[int, int]] = {int(a): a for a in ProtocolAction}
_PRESENCE_ACTIONS: Final[dict[int, PresenceAction]] = {int(a): a for a in PresenceAction}
_JSON_WHITESPACE: Final = " \t\n\r"


# --- errors and scalar checks --------------------------------------------------------------


def _path(base: str, field: str) -> str:
    return f"{base}.{field}" if base else field


def _fail(path: str, message: str) -> ProtocolError:
    return ProtocolError(message, path=path)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _describe(value: object) -> str:
    # Never repr() an arbitrary value: a container may be huge, deep or hold an int too long
    # to print (CPython limits int-to-str conversion).
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    return _type_name(value)


def _as_int(value: object, path: str) -> int:
    """Check an int field.  ``bool`` is rejected; an integral float (JS sends 1.7e12) is not."""
    if (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, float) and value.is_integer()
    ):
        result = int(value)
    else:
        raise _fail(path, f"expected an integer, got {_describe(value)}")
    if not _INT_MIN <= result <= _INT_MAX:
        raise _fail(path, "integer out of int64 range")
    return result


def _opt_int(value: object, path: str) -> int | None:
    if value is None:
        return None
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    return _as_int(value, path)


def _opt_str(value: object, path: str) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, str):
        return str(value)
    raise _fail(path, f"expected a string, got {_type_name(value)}")


def _as_dict(value: object, path: str) -> dict[Any, Any]:
    if isinstance(value, dict):
        return value
    raise _fail(path, f"expected an object, got {_type_name(value)}")


def _as_list(value: object, path: str, limit: int) -> list[Any] | tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise _fail(path, f"expected an array, got {_type_name(value)}")
    if len(value) > limit:
        raise _fail(path, f"too many items ({len(value)} > {limit})")
    return value


# --- opaque JSON values --------------------------------------------------------------------

_SCALAR_TYPES: Final = frozenset({str, int, bool, type(None)})


def _check_json(value: object, depth: int, path: str) -> None:
    """Check that an opaque value is JSON (as ``json.loads`` could produce) within ``depth``.

    A parsed text frame can only hold JSON types, but a dict frame comes from the caller and
    may hold anything, even a cycle; the depth bound also ends a cycle.
    """
    if type(value) in _SCALAR_TYPES:
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _fail(path, "NaN and infinities are not JSON")
        return
    if isinstance(value, str | int):  # subclasses; bool is an int
        return
    if depth <= 0:
        raise _fail(path, "nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(path, f"object key must be a string, got {_type_name(key)}")
            if type(item) not in _SCALAR_TYPES:
                _check_json(item, depth - 1, path)
    elif isinstance(value, list | tuple):
        for item in value:
            if type(item) not in _SCALAR_TYPES:
                _check_json(item, depth - 1, path)
    else:
        raise _fail(path, f"{_type_name(value)} is not a JSON value")


def _check_opaque_dict(value: object, path: str, limits: CodecLimits) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(path, f"expected an object, got {_type_name(value)}")
    _check_json(value, limits.max_nesting_depth, path)
    return value


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them by default.
    msg = f"{name} is not valid JSON"
    raise ValueError(msg)


def _finite_float(text: str) -> float:
    # A huge exponent such as 1e400 parses to inf, which JSON cannot carry back out.
    value = float(text)
    if not math.isfinite(value):
        msg = f"number {text[:40]} is out of range"
        raise ValueError(msg)
    return value


_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# JSONDecoder.__init__ sets scan_once; typeshed does not declare it.
_SCAN_ONCE: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _parse_json(text: str) -> Any:
    """Parse JSON text.  Raises ValueError or RecursionError when it is not valid JSON."""
    # The scanner alone is about twice as fast as JSONDecoder.decode on small payloads, which
    # matters once per presence item; whitespace around the value takes the slow path.
    try:
        value, end = _SCAN_ONCE(text, 0)
    except StopIteration:
        return _DECODER.decode(text)
    if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
        return _DECODER.decode(text)  # raises: extra data after the value
    return value


# --- data encodings (RSL4 / RSL6) ----------------------------------------------------------


def _decode_json_step(data: object, limits: CodecLimits) -> tuple[bool, Any]:
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            return False, None
    if not isinstance(data, str):
        return False, None
    try:
        value = _parse_json(data)
    except (ValueError, RecursionError):
        return False, None
    # Counting brackets (fast, in C) bounds the depth from above; walk only when it might be
    # too deep.
    depth = limits.max_nesting_depth
    if data.count("{") + data.count("[") > depth:
        try:
            _check_json(value, depth, "")
        except ProtocolError:
            return False, None
    return True, value


def decode_data(
    data: Any, encoding: str | None, *, limits: CodecLimits = DEFAULT_LIMITS
) -> tuple[Any, str | None]:
    """Undo the encoding steps of a message payload (RSL6), last step first.

    Known steps: ``json`` (JSON text to a value), ``base64`` (text to bytes) and ``utf-8``
    (bytes to text; a no-op on text).  Decoding stops at the first step that is unknown, a
    ``cipher+...`` step (encryption is out of scope), or whose payload fails to decode; the
    payload decoded so far is returned with the steps still to undo (RSL6b).  This never
    raises.

    Args:
        data: The wire payload.
        encoding: The slash-separated encoding, such as ``"json/utf-8/base64"``, or ``None``.
        limits: ``max_nesting_depth`` bounds a ``json`` result; a deeper one stays encoded.

    Returns:
        ``(data, remaining_encoding)``; ``remaining_encoding`` is ``None`` when fully decoded.
    """
    if not encoding:
        return data, None
    steps = encoding.split("/")
    while steps:
        step = steps[-1]
        if step == "json":
            ok, value = _decode_json_step(data, limits)
            if not ok:
                break
            data = value
        elif step == "base64":
            if not isinstance(data, str):
                break
            try:
                data = binascii.a2b_base64(data, strict_mode=True)
            except ValueError:  # binascii.Error, or non-ASCII text
                break
        elif step == "utf-8":
            if isinstance(data, bytes):
                try:
                    data = data.decode("utf-8")
                except UnicodeDecodeError:
                    break
            elif not isinstance(data, str):
                break
        else:
            break
        steps.pop()
    return data, "/".join(steps) or None


def check_outgoing(data: Any, extras: object) -> None:
    """Check, at the call, that a presence operation's payload can go out in a frame.

    A payload the encoder would refuse must be refused before it is queued or sent: once in a
    pending frame it would fail in the embedder's ``encode`` and be resent on every resume.

    Raises:
        UsageError: code 40013 when ``data`` cannot be encoded (see :func:`encode_data`), code
            40000 when ``extras`` is neither ``None`` nor a JSON object within the nesting
            limit.
    """
    encode_data(data)
    if extras is None:
        return
    if not isinstance(extras, dict):
        msg = f"extras must be a dict of JSON values, not {_type_name(extras)}"
        raise UsageError(msg)
    try:
        _check_json(extras, DEFAULT_LIMITS.max_nesting_depth, "extras")
    except ProtocolError as exc:
        raise UsageError(f"extras cannot be sent: {exc.message}") from None


def _decode_payload(
    item: dict[Any, Any], base: str, limits: CodecLimits, binary: bool
) -> tuple[Any, str | None]:
    """Decode an item's ``data`` per its ``encoding``; ``binary`` admits bytes (a binary format)."""
    data = item.get("data")
    encoding = item.get("encoding")
    if encoding is None:
        if data is not None and type(data) is not str and not (binary and type(data) is bytes):
            _check_json(data, limits.max_nesting_depth, _path(base, "data"))
        return data, None
    if type(encoding) is not str:
        encoding = _opt_str(encoding, _path(base, "encoding"))
    if data is not None and type(data) is not str and not (binary and type(data) is bytes):
        _check_json(data, limits.max_nesting_depth, _path(base, "data"))
    if encoding == "json" and type(data) is str:
        # The common case (ably-js sends objects this way), without the general loop.
        ok, value = _decode_json_step(data, limits)
        if ok:
            return value, None
        return data, encoding
    return decode_data(data, encoding, limits=limits)


# --- fast construction ---------------------------------------------------------------------

# A frozen attrs __init__ sets each slot through object.__setattr__ by name.  Calling the slot
# descriptors directly builds an identical instance in about half the time; this matters once
# per presence item.  It is valid only while PresenceMessage has exactly these fields and no
# validators, converters or post-init hook; the import-time check below enforces that.
_PRESENCE_FIELDS: Final = (
    "action",
    "client_id",
    "connection_id",
    "id",
    "data",
    "encoding",
    "extras",
    "timestamp",
)


def _check_fast_path(cls: type, names: tuple[str, ...]) -> None:
    fields = attrs.fields(cls)
    plain = all(f.validator is None and f.converter is None for f in fields)
    if (
        tuple(f.name for f in fields) != names
        or not plain
        or hasattr(cls, "__attrs_post_init__")
        or "__slots__" not in cls.__dict__
    ):
        msg = f"_codec's fast constructor is out of date with {cls.__name__}"
        raise RuntimeError(msg)


_check_fast_path(PresenceMessage, _PRESENCE_FIELDS)

_new_object = object.__new__
_slots = PresenceMessage.__dict__
_set_action = _slots["action"].__set__
_set_client_id = _slots["client_id"].__set__
_set_connection_id = _slots["connection_id"].__set__
_set_id = _slots["id"].__set__
_set_data = _slots["data"].__set__
_set_encoding = _slots["encoding"].__set__
_set_extras = _slots["extras"].__set__
_set_timestamp = _slots["timestamp"].__set__
del _slots


def _new_presence(  # noqa: PLR0917 - positional arguments keep the per-item call cheap
    action: PresenceAction,
    client_id: str | None,
    connection_id: str | None,
    id: str | None,
    data: Any,
    encoding: str | None,
    extras: dict[str, Any] | None,
    timestamp: int | None,
) -> PresenceMessage:
    """Build a PresenceMessage equal to ``PresenceMessage(action=..., ...)``, faster."""
    message: PresenceMessage = _new_object(PresenceMessage)
    _set_action(message, action)
    _set_client_id(message, client_id)
    _set_connection_id(message, connection_id)
    _set_id(message, id)
    _set_data(message, data)
    _set_encoding(message, encoding)
    _set_extras(message, extras)
    _set_timestamp(message, timestamp)
    return message


# --- decoding ------------------------------------------------------------------------------


def decode(
    frame: dict[str, Any] | str | bytes | bytearray | memoryview,
    *,
    limits: CodecLimits = DEFAULT_LIMITS,
) -> ProtocolMessage:
    """Decode one frame of the JSON protocol into a :class:`~presence_core.ProtocolMessage`.

    Items inherit ``id``, ``connectionId`` and ``timestamp`` from the frame (TP3a/d/g), data is
    decoded per its encoding (RSL6), unknown fields are ignored, an unknown protocol action is
    kept as an int and a presence item with an unknown action is dropped.  See the module
    docstring.

    Args:
        frame: A parsed JSON object, or its text as ``str`` or UTF-8 bytes (``bytes``,
            ``bytearray`` or ``memoryview``).  A dict frame must hold only JSON values; the
            result may share sub-objects (``extras``, ``params``, object ``data``) with it, so
            do not mutate it afterwards.
        limits: Size and nesting bounds.

    Returns:
        The decoded frame.

    Raises:
        ProtocolError: code 40000, for any malformed input; its ``path`` names the field.  No
            other exception escapes.
    """
    raw: object = frame
    if isinstance(raw, dict):
        obj = raw
    else:
        try:
            obj = _parse_json(_frame_text(raw, limits))
        except RecursionError:
            raise _fail("", "frame nested too deeply") from None
        except ValueError as exc:
            raise _fail("", f"frame is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _fail("", f"a frame must be a JSON object, not {_type_name(obj)}")
    try:
        return _decode_frame(obj, limits)
    except RecursionError:
        # Only reachable with a pathological dict frame; the depth bounds should come first.
        raise _fail("", "frame nested too deeply") from None


def _frame_text(raw: object, limits: CodecLimits) -> str:
    """Return the text of a str or bytes frame, after checking its size in UTF-8 bytes."""
    limit = limits.max_frame_bytes
    if isinstance(raw, str):
        size = len(raw)
        # len() counts characters; only non-ASCII text needs encoding to count its bytes.
        if size <= limit and not raw.isascii():
            size = len(raw.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise _fail("", f"frame too large ({size} > {limit} bytes)")
        return raw
    if isinstance(raw, bytes | bytearray | memoryview):
        size = raw.nbytes if isinstance(raw, memoryview) else len(raw)
        if size > limit:
            raise _fail("", f"frame too large ({size} > {limit} bytes)")
        try:
            return (
                bytes(raw).decode("utf-8") if isinstance(raw, memoryview) else raw.decode("utf-8")
            )
        except UnicodeDecodeError as exc:
            raise _fail("", f"frame is not valid UTF-8: {exc.reason}") from None
    raise _fail("", f"a frame must be a dict, str or bytes, not {_type_name(raw)}")


def _decode_frame(
    obj: dict[Any, Any], limits: CodecLimits, binary: bool = False
) -> ProtocolMessage:
    """Decode a parsed frame; ``binary`` (a binary format's frame) admits bytes as item data."""
    get = obj.get
    raw_action = get("action")
    if raw_action is None:
        raise _fail("action", "missing")
    action = _as_int(raw_action, "action")
    # A known action becomes its enum member (a nicer repr, equal to the int); an unknown one
    # stays an int so that reducers can ignore it (forward compatibility).
    action = _PROTOCOL_ACTIONS.get(action, action)

    frame_id = _opt_str(get("id"), "id")
    connection_id = _opt_str(get("connectionId"), "connectionId")
    timestamp = _opt_int(get("timestamp"), "timestamp")

    raw = get("connectionDetails")
    details = None if raw is None else _decode_details(raw)
    raw = get("error")
    error = None if raw is None else _decode_error(raw, "error", limits.max_nesting_depth)
    raw = get("presence")
    presence = (
        None
        if raw is None
        else _decode_presence(raw, frame_id, connection_id, timestamp, limits, binary=binary)
    )
    raw = get("messages")
    messages = (
        None
        if raw is None
        else _decode_messages(raw, frame_id, connection_id, timestamp, limits, binary=binary)
    )
    raw = get("params")
    params = None if raw is None else _decode_params(raw)
    raw = get("res")
    res = None
    if raw is not None:
        items = _as_list(raw, "res", limits.max_message_items)
        for index, entry in enumerate(items):
            path = f"res[{index}]"
            _check_json(_as_dict(entry, path), limits.max_nesting_depth, path)
        res = tuple(items)
    raw = get("auth")
    auth = None if raw is None else _decode_auth(raw)

    return ProtocolMessage(
        action=action,
        id=frame_id,
        channel=_opt_str(get("channel"), "channel"),
        channel_serial=_opt_str(get("channelSerial"), "channelSerial"),
        connection_id=connection_id,
        connection_key=_opt_str(get("connectionKey"), "connectionKey"),
        connection_details=details,
        msg_serial=_opt_int(get("msgSerial"), "msgSerial"),
        count=_opt_int(get("count"), "count"),
        error=error,
        flags=_opt_int(get("flags"), "flags"),
        presence=presence,
        messages=messages,
        timestamp=timestamp,
        params=params,
        res=res,
        auth=auth,
    )


def _decode_presence(
    raw: object,
    frame_id: str | None,
    frame_connection_id: str | None,
    frame_timestamp: int | None,
    limits: CodecLimits,
    *,
    binary: bool,
) -> tuple[PresenceMessage, ...]:
    items = _as_list(raw, "presence", limits.max_presence_items)
    out: list[PresenceMessage] = []
    append = out.append
    actions = _PRESENCE_ACTIONS
    scan = _SCAN_ONCE
    max_depth = limits.max_nesting_depth
    for index, item in enumerate(items):
        if type(item) is not dict:
            _as_dict(item, f"presence[{index}]")
        get = item.get

        raw_action = get("action")
        if type(raw_action) is not int:
            if raw_action is None:
                raise _fail(f"presence[{index}].action", "missing")
            raw_action = _as_int(raw_action, f"presence[{index}].action")
        action = actions.get(raw_action)
        if action is None:
            continue  # unknown presence action: drop the item (forward compatibility)

        client_id = get("clientId")
        if client_id is not None and type(client_id) is not str:
            client_id = _opt_str(client_id, f"presence[{index}].clientId")
        item_id = get("id")
        if item_id is None:
            # TP3a: the id is derived from the frame's id and the item's original position.
            if frame_id is not None:
                item_id = f"{frame_id}:{index}"
        elif type(item_id) is not str:
            item_id = _opt_str(item_id, f"presence[{index}].id")
        connection_id = get("connectionId")
        if connection_id is None:
            connection_id = frame_connection_id  # TP3d
        elif type(connection_id) is not str:
            connection_id = _opt_str(connection_id, f"presence[{index}].connectionId")
        timestamp = get("timestamp")
        if timestamp is None:
            timestamp = frame_timestamp  # TP3g
        elif type(timestamp) is not int or not _INT_MIN <= timestamp <= _INT_MAX:
            timestamp = _as_int(timestamp, f"presence[{index}].timestamp")
        extras = get("extras")
        if extras is not None:
            extras = _check_opaque_dict(extras, f"presence[{index}].extras", limits)

        encoding = get("encoding")
        data = get("data")
        if encoding == "json" and type(data) is str:
            # The common case (ably-js sends objects as JSON text), inlined: it runs per item.
            try:
                value, end = scan(data, 0)
            except (StopIteration, ValueError, RecursionError):
                end = -1
            if end == len(data) and data.count("{") + data.count("[") <= max_depth:
                data, encoding = value, None
            else:
                data, encoding = _decode_payload(item, f"presence[{index}]", limits, binary)
        elif encoding is not None or (data is not None and type(data) is not str):
            data, encoding = _decode_payload(item, f"presence[{index}]", limits, binary)

        message = _new_presence(
            action, client_id, connection_id, item_id, data, encoding, extras, timestamp
        )
        append(message)
    return tuple(out)


def _decode_messages(
    raw: object,
    frame_id: str | None,
    frame_connection_id: str | None,
    frame_timestamp: int | None,
    limits: CodecLimits,
    *,
    binary: bool,
) -> tuple[Message, ...]:
    items = _as_list(raw, "messages", limits.max_message_items)
    out: list[Message] = []
    for index, item in enumerate(items):
        base = f"messages[{index}]"
        get = _as_dict(item, base).get
        item_id = _opt_str(get("id"), _path(base, "id"))
        if item_id is None and frame_id is not None:
            item_id = f"{frame_id}:{index}"  # TM2a
        connection_id = _opt_str(get("connectionId"), _path(base, "connectionId"))
        timestamp = _opt_int(get("timestamp"), _path(base, "timestamp"))
        data, encoding = _decode_payload(item, base, limits, binary)
        out.append(
            Message(
                name=_opt_str(get("name"), _path(base, "name")),
                data=data,
                encoding=encoding,
                extras=_check_opaque_dict(get("extras"), _path(base, "extras"), limits),
                id=item_id,
                client_id=_opt_str(get("clientId"), _path(base, "clientId")),
                # TM2c, TM2f
                connection_id=frame_connection_id if connection_id is None else connection_id,
                timestamp=frame_timestamp if timestamp is None else timestamp,
                serial=_opt_str(get("serial"), _path(base, "serial")),
                action=_opt_int(get("action"), _path(base, "action")),
            )
        )
    return tuple(out)


def _decode_details(raw: object) -> ConnectionDetails:
    get = _as_dict(raw, "connectionDetails").get
    base = "connectionDetails"
    return ConnectionDetails(
        client_id=_opt_str(get("clientId"), _path(base, "clientId")),
        connection_key=_opt_str(get("connectionKey"), _path(base, "connectionKey")),
        max_message_size=_opt_int(get("maxMessageSize"), _path(base, "maxMessageSize")),
        max_idle_interval=_opt_int(get("maxIdleInterval"), _path(base, "maxIdleInterval")),
        connection_state_ttl=_opt_int(get("connectionStateTtl"), _path(base, "connectionStateTtl")),
        server_id=_opt_str(get("serverId"), _path(base, "serverId")),
        max_inbound_rate=_opt_int(get("maxInboundRate"), _path(base, "maxInboundRate")),
        max_outbound_rate=_opt_int(get("maxOutboundRate"), _path(base, "maxOutboundRate")),
        max_frame_size=_opt_int(get("maxFrameSize"), _path(base, "maxFrameSize")),
    )


def _decode_auth(raw: object) -> AuthDetails:
    token = _opt_str(_as_dict(raw, "auth").get("accessToken"), "auth.accessToken")
    if token is None:
        raise _fail("auth.accessToken", "missing")
    return AuthDetails(access_token=token)


def _decode_error(raw: object, base: str, depth: int) -> ErrorInfo:
    get = _as_dict(raw, base).get
    code = get("code")
    status_code = get("statusCode")
    if code is None:
        raise _fail(_path(base, "code"), "missing")
    if status_code is None:
        raise _fail(_path(base, "statusCode"), "missing")
    cause = get("cause")
    if cause is not None:
        if depth <= 1:
            raise _fail(_path(base, "cause"), "nested too deeply")
        cause = _decode_error(cause, _path(base, "cause"), depth - 1)
    message = _opt_str(get("message"), _path(base, "message"))
    return ErrorInfo(
        code=_as_int(code, _path(base, "code")),
        status_code=_as_int(status_code, _path(base, "statusCode")),
        message="" if message is None else message,
        href=_opt_str(get("href"), _path(base, "href")),
        cause=cause,
    )


def _decode_params(raw: object) -> dict[str, str]:
    params = _as_dict(raw, "params")
    for key, value in params.items():
        if not isinstance(key, str):
            raise _fail("params", f"keys must be strings, got {_type_name(key)}")
        if not isinstance(value, str):
            raise _fail(f"params.{key}", f"expected a string, got {_type_name(value)}")
    return params
