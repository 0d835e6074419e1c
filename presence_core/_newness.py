"""Newness of presence messages (RTP2b), shared by the member map and the own-member map.

A message's *position* is what RTP2b2 compares: ``(msgSerial, index)`` parsed from an id of the
form ``<connectionId>:<msgSerial>:<index>``.  A message has no position (it is compared by
timestamp, RTP2b1) when:

* its id does not start with ``<connectionId>:``.  This is the stricter of the two prefix forms
  discussed in ably-presence-rules.md §9 D6: the spec only asks for "connectionId is an initial
  substring of id", which would call ``c10:3:0`` non-synthesized for connection ``c1`` and then
  mis-parse it;
* the id or the connectionId is missing (D5);
* the rest after the prefix is not exactly two non-negative decimal integers.  Unparsable ids
  therefore never raise: they are deterministically treated like synthesized ones.

Timestamps: equal timestamps let the incoming message win (RTP2b1a), and a missing timestamp on
either side also lets the incoming message win (D5).
"""

from __future__ import annotations

from typing import Final

from presence_core._wire import PresenceMessage

__all__ = ["is_newer"]

#: The msgSerial stored for a message without a position (synthesized or unparsable id).
NO_POSITION: Final = -1
_NONE: Final = (NO_POSITION, 0)


def position(message_id: object, connection_id: object) -> tuple[int, int]:
    """Return ``(msgSerial, index)`` of a message, or ``(NO_POSITION, 0)`` if it has none."""
    if (
        type(message_id) is str
        and type(connection_id) is str
        and message_id.startswith(connection_id)
    ):
        cut = len(connection_id)
        if message_id[cut : cut + 1] == ":":
            serial, sep, index = message_id[cut + 1 :].partition(":")
            if sep and serial.isdecimal() and index.isdecimal():
                return int(serial), int(index)
    return _NONE


def newer_than(
    incoming: PresenceMessage, serial: int, index: int, stored: tuple[PresenceMessage, int, int]
) -> bool:
    """RTP2b for an incoming message with a parsed position against a stored entry."""
    old_serial = stored[1]
    if serial < 0 or old_serial < 0:
        new_ts = incoming.timestamp
        old_ts = stored[0].timestamp
        return new_ts is None or old_ts is None or new_ts >= old_ts
    if serial != old_serial:
        return serial > old_serial
    return index > stored[2]


def is_newer(incoming: PresenceMessage, stored: PresenceMessage) -> bool:
    """Whether ``incoming`` supersedes ``stored`` for the same member (RTP2a/RTP2b).

    If either message is synthesized (its id does not start with ``<connectionId>:``, or it
    lacks an id or connectionId, or the id cannot be parsed) the timestamps decide, and the
    incoming message wins ties and missing timestamps.  Otherwise the larger
    ``(msgSerial, index)`` wins, and an equal position is not newer.
    """
    serial, index = position(incoming.id, incoming.connection_id)
    old_serial, old_index = position(stored.id, stored.connection_id)
    return newer_than(incoming, serial, index, (stored, old_serial, old_index))
