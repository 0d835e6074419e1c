"""Encoding for Ably protocol v6 frames: compact JSON text, payloads (RSL4) and whole frames.

The decoding side, and the module docstring that states the wire rules both sides follow, is
:mod:`presence_core._codec`, which re-exports every public name here.  A frame is encoded in two
steps: :func:`encode_frame` builds a dict with exactly the wire names, leaving ``None`` fields
out, and a serializer turns it into text (:func:`encode_text`) or into a binary format.  Each
format passes its own payload encoder: JSON has to turn bytes into base64 text, a binary format
carries them as they are.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from presence_core._errors import UsageError
from presence_core._wire import ErrorInfo, Message, PresenceMessage, ProtocolMessage

__all__: list[str] = []

#: Encodes one item's payload for a format: ``(wire_data, step)``, as :func:`encode_data` does.
DataEncoder: TypeAlias = Callable[[Any], tuple[Any, str | None]]


# --- JSON text -----------------------------------------------------------------------------

# Compact output; ensure_ascii keeps lone surrogates (legal in JSON strings) encodable as UTF-8.
_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def _not_json(value: object) -> Any:
    msg = f"{type(value).__name__} is not JSON serializable"
    raise TypeError(msg)


# JSONEncoder.encode builds a fresh C encoder on every call, which costs more than encoding a
# small payload; build it once (the same arguments JSONEncoder passes, without the cycle check:
# a cycle ends in RecursionError instead).
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODER: Final[Callable[[object, int], list[str]] | None] = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
)


def _dumps(value: object) -> str:
    """Compact JSON text.  Raises TypeError, ValueError or RecursionError for non-JSON."""
    if _C_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(value)
    return "".join(_C_ENCODER(value, 0))


# Sizes count non-ASCII text as its UTF-8 bytes, as a peer's limit does, so this encoder keeps it
# unescaped; built once for the same reason as _C_ENCODER.
_C_SIZE_ENCODER: Final[Callable[[object, int], list[str]] | None] = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
)
_SIZE_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_size(value: object) -> int:
    """Return the UTF-8 length of ``value``'s compact JSON text, non-ASCII kept as is.

    Raises:
        TypeError, ValueError or RecursionError: ``value`` is not JSON (a lone surrogate is a
            ValueError).
    """
    if _C_SIZE_ENCODER is None:  # pragma: no cover - CPython always has the C encoder
        text = _SIZE_ENCODER.encode(value)
    else:
        text = "".join(_C_SIZE_ENCODER(value, 0))
    return len(text) if text.isascii() else len(text.encode("utf-8"))


# --- payloads (RSL4) ----------------------------------------------------------------------


def encode_data(data: Any) -> tuple[str | None, str | None]:
    """Encode a payload for the JSON protocol (RSL4): the reverse of :func:`decode_data`.

    ``str`` and ``None`` go as they are; ``bytes`` become base64 text (step ``base64``); any
    other JSON value (a dict, list, number or bool) becomes compact JSON text (step ``json``).

    Returns:
        ``(wire_data, step)``; ``step`` is ``None`` when no encoding was needed.  Append it to
        any encoding the payload still carries: ``f"{remaining}/{step}"``.

    Raises:
        UsageError: code 40013, when ``data`` cannot be represented as JSON.
    """
    if data is None or isinstance(data, str):
        return data, None
    if isinstance(data, bytes | bytearray | memoryview):
        return binascii.b2a_base64(data, newline=False).decode("ascii"), "base64"
    try:
        return _dumps(data), "json"
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"message data cannot be encoded as JSON: {exc}"
        raise UsageError(msg, code=40013) from None


def _join_encoding(remaining: str | None, step: str | None) -> str | None:
    if step is None:
        return remaining
    if remaining is None:
        return step
    return f"{remaining}/{step}"


# --- frames --------------------------------------------------------------------------------

# (attribute, wire name) of the scalar ProtocolMessage fields, in the order they are written.
_FRAME_SCALARS: Final = (
    ("id", "id"),
    ("channel", "channel"),
    ("channel_serial", "channelSerial"),
    ("connection_id", "connectionId"),
    ("connection_key", "connectionKey"),
    ("msg_serial", "msgSerial"),
    ("count", "count"),
    ("flags", "flags"),
    ("timestamp", "timestamp"),
)
_DETAILS_FIELDS: Final = (
    ("client_id", "clientId"),
    ("connection_key", "connectionKey"),
    ("max_message_size", "maxMessageSize"),
    ("max_idle_interval", "maxIdleInterval"),
    ("connection_state_ttl", "connectionStateTtl"),
    ("server_id", "serverId"),
    ("max_inbound_rate", "maxInboundRate"),
    ("max_outbound_rate", "maxOutboundRate"),
    ("max_frame_size", "maxFrameSize"),
)
_MESSAGE_SCALARS: Final = (
    ("id", "id"),
    ("name", "name"),
    ("client_id", "clientId"),
    ("connection_id", "connectionId"),
    ("timestamp", "timestamp"),
    ("serial", "serial"),
    ("action", "action"),
)


def encode(message: ProtocolMessage) -> dict[str, Any]:
    """Encode a :class:`~presence_core.ProtocolMessage` as a JSON-ready dict with wire names.

    ``None`` fields are left out.  Item data is encoded per RSL4 (see :func:`encode_data`); a
    payload that still carries an encoding (an undecodable step, RSL6b) keeps it, so a relayed
    message goes out as it came in.  The dict may share ``extras`` and ``res`` objects with
    ``message``.

    Raises:
        UsageError: code 40013, when some item's data cannot be represented as JSON.
    """
    return encode_frame(message, encode_data)


def encode_frame(message: ProtocolMessage, data_encoder: DataEncoder) -> dict[str, Any]:
    """Encode ``message`` as :func:`encode` does, each item's payload by ``data_encoder``."""
    out: dict[str, Any] = {"action": int(message.action)}
    for attribute, key in _FRAME_SCALARS:
        value = getattr(message, attribute)
        if value is not None:
            # Flags are often built from IntFlag members; the wire wants plain numbers.
            out[key] = int(value) if isinstance(value, int) and type(value) is not int else value
    if message.connection_details is not None:
        details = message.connection_details
        out["connectionDetails"] = {
            key: value
            for attribute, key in _DETAILS_FIELDS
            if (value := getattr(details, attribute)) is not None
        }
    if message.error is not None:
        out["error"] = _encode_error(message.error)
    if message.presence is not None:
        out["presence"] = [_encode_presence(item, data_encoder) for item in message.presence]
    if message.messages is not None:
        out["messages"] = [_encode_message(item, data_encoder) for item in message.messages]
    if message.params is not None:
        out["params"] = dict(message.params)
    if message.res is not None:
        out["res"] = list(message.res)
    if message.auth is not None:
        out["auth"] = {"accessToken": message.auth.access_token}
    return out


def encode_text(message: ProtocolMessage) -> str:
    """Encode a :class:`~presence_core.ProtocolMessage` straight to compact JSON text.

    A server encodes a broadcast once with this and sends the same text to every subscriber.

    Raises:
        UsageError: when a value in the message cannot be represented as JSON (code 40013 for
            item data, 40000 otherwise, such as NaN in ``extras``).
    """
    wire = encode(message)
    try:
        return _dumps(wire)
    except (TypeError, ValueError, RecursionError) as exc:
        msg = f"message cannot be encoded as JSON: {exc}"
        raise UsageError(msg) from None


def _encode_error(error: ErrorInfo) -> dict[str, Any]:
    out: dict[str, Any] = {
        "code": error.code,
        "statusCode": error.status_code,
        "message": error.message,
    }
    if error.href is not None:
        out["href"] = error.href
    if error.cause is not None:
        out["cause"] = _encode_error(error.cause)
    return out


def _encode_presence(item: PresenceMessage, data_encoder: DataEncoder) -> dict[str, Any]:
    out: dict[str, Any] = {"action": int(item.action)}
    if item.id is not None:
        out["id"] = item.id
    if item.client_id is not None:
        out["clientId"] = item.client_id
    if item.connection_id is not None:
        out["connectionId"] = item.connection_id
    if item.timestamp is not None:
        out["timestamp"] = item.timestamp
    data = item.data
    if type(data) is str and item.encoding is None:
        out["data"] = data
    elif data is not None or item.encoding is not None:
        _put_payload(out, data, item.encoding, data_encoder)
    if item.extras is not None:
        out["extras"] = item.extras
    return out


def _encode_message(item: Message, data_encoder: DataEncoder) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attribute, key in _MESSAGE_SCALARS:
        value = getattr(item, attribute)
        if value is not None:
            out[key] = value
    if item.data is not None or item.encoding is not None:
        _put_payload(out, item.data, item.encoding, data_encoder)
    if item.extras is not None:
        out["extras"] = item.extras
    return out


def _put_payload(
    out: dict[str, Any], data: Any, remaining: str | None, data_encoder: DataEncoder
) -> None:
    """Write an item's ``data`` and ``encoding``: its remaining steps, then the encoder's."""
    wire, step = data_encoder(data)
    if wire is not None:
        out["data"] = wire
    encoding = _join_encoding(remaining, step)
    if encoding is not None:
        out["encoding"] = encoding
