"""Recovery keys (RTN16): what a new Connection needs to carry on an old one's connection.

The rules of the key, applied here and nowhere else:

* **Contents (RTN16g).**  The connectionKey, the msgSerial the next frame would get, and the
  channelSerial of every attached room that has one.
* **Form (RTN16g1).**  A JSON object ``{"connectionKey", "msgSerial", "channelSerials"}``, the
  form ably-js uses; JSON escapes any Unicode channel name.
* **A key that cannot be read (RTN16f1)** is no key: the connection connects as if it had been
  given none.  The reducer has nowhere to log, so :func:`read_recovery_key` says so by
  returning ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

__all__: list[str] = []

# msgSerial is an int64 on the wire.
_INT_MAX = (1 << 63) - 1


@attrs.frozen(kw_only=True)
class Recovery:
    """A recovery key, read."""

    connection_key: str
    msg_serial: int
    #: ``(channel, channelSerial)`` pairs, in the key's order.
    channel_serials: tuple[tuple[str, str], ...]


def make_recovery_key(connection_key: str, msg_serial: int, serials: Mapping[str, str]) -> str:
    """The recovery key text for these parts."""
    key = {"connectionKey": connection_key, "msgSerial": msg_serial, "channelSerials": serials}
    return json.dumps(key, separators=(",", ":"))


def read_recovery_key(text: object) -> Recovery | None:
    """The parts of a recovery key, or ``None`` if ``text`` is not one (RTN16f1)."""
    if not isinstance(text, str):
        return None
    try:
        obj: Any = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    key, serial, serials = obj.get("connectionKey"), obj.get("msgSerial"), obj.get("channelSerials")
    if not isinstance(key, str) or not key:
        return None
    if type(serial) is not int or not 0 <= serial <= _INT_MAX:
        return None
    if not isinstance(serials, dict) or not all(
        isinstance(name, str) and name and isinstance(value, str) for name, value in serials.items()
    ):
        return None
    return Recovery(connection_key=key, msg_serial=serial, channel_serials=tuple(serials.items()))
