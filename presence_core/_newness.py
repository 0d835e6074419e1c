"""Newness of presence messages (RTP2b), shared by the member map and the own-member map.

A message's *position* is what RTP2b2 compares: ``(msgSerial, index)`` parsed from an id of the
form ``<connectionId>:<msgSerial>:<index>``.  A message has no position (it is compared by
timestamp, RTP2b1) when:

* its id does not start with ``<connectionId>:`` (D6).  The spec only asks for "connectionId is
  an initial substring of id", which would call ``c10:3:0`` non-synthesized for connection
  ``c1`` and then mis-parse it;
* the id or the connectionId is missing (D5);
* the rest after the prefix is not exactly two non-negative integers written in the ASCII
  digits ``0``-``9`` (other Unicode digits, signs and spaces included, make it unparsable).
  Unparsable ids therefore never raise: they are deterministically treated like synthesized
  ones.

Timestamps: equal timestamps let the incoming message win (RTP2b1a), and a missing timestamp on
either side also lets the incoming message win (D5).

Performance: stored entries are ``(message, msgSerial, index)`` tuples, and a member map may
store a message :data:`UNPARSED`: its id is parsed on the first comparison that needs it (and
the parse kept in the entry), so entering a new member or a SYNC into an empty set parses
nothing.  Parsing itself is one ``partition`` and a lookup in a bounded memo of the
``"<msgSerial>:<index>"`` tails seen recently.  Neither changes any result.
"""

from __future__ import annotations

from typing import Final, TypeVar

from presence_core._wire import PresenceMessage

__all__: list[str] = []

#: The msgSerial stored for a message without a position (synthesized or unparsable id).
NO_POSITION: Final = -1
#: The msgSerial stored for a message whose id has not been parsed yet.  Parsing waits until a
#: newness comparison needs the position (a new member or a SYNC into an empty set never does);
#: :func:`superseding` parses such an entry and caches the parse.
UNPARSED: Final = -2
_NONE: Final = (NO_POSITION, 0)
_K = TypeVar("_K")
# Memo of ``"<serial>:<index>"`` -> position for the part of an id after its connectionId, so a
# common id costs one ``partition`` and one dict lookup instead of a split and two ``int()``
# calls.  It is a pure function's cache (same answer with or without it), filled on demand.
# It is bounded so that arbitrary peer ids cannot grow it without limit (an entry is about
# 160 bytes, so 2.6 MB at most), and cleared when full rather than frozen, so that a long-lived
# client keeps caching the tails it sees now instead of the first ones it ever saw.  Tails in
# use at once beyond the limit would miss every time, so the limit is generous.
_REST_MEMO: Final[dict[str, tuple[int, int]]] = {}
_REST_MEMO_LIMIT: Final = 16384


def position(message_id: object, connection_id: object) -> tuple[int, int]:
    """Return ``(msgSerial, index)`` of a message, or ``(NO_POSITION, 0)`` if it has none."""
    if message_id.__class__ is not str or connection_id.__class__ is not str:
        return _NONE
    head, sep, rest = message_id.partition(":")
    if head != connection_id:
        # A connectionId containing ':' needs the general form (rare); any other id that does
        # not start with ``<connectionId>:`` has no position.
        if sep and ":" in connection_id:
            return _position_general(message_id, connection_id)
        return _NONE
    found = _REST_MEMO.get(rest)
    if found is not None:
        return found
    found = _rest_position(rest)
    if found is not _NONE:
        if len(_REST_MEMO) >= _REST_MEMO_LIMIT:
            _REST_MEMO.clear()
        _REST_MEMO[rest] = found
    return found


def _rest_position(rest: str) -> tuple[int, int]:
    # ``isdecimal`` alone accepts every Unicode decimal digit (``int`` reads Arabic-Indic
    # ``٣`` as 3), but only ASCII digits form a position (RTP2b2); anything else is
    # unparsable (D6).  One ``isascii`` over the whole tail is the cheapest way to say so.
    if not rest.isascii():
        return _NONE
    serial, sep, index = rest.partition(":")
    if sep and serial.isdecimal() and index.isdecimal():
        return int(serial), int(index)
    return _NONE


def _position_general(message_id: str, connection_id: str) -> tuple[int, int]:
    """:func:`position` by prefix and partition; needed when the connectionId contains ':'."""
    if message_id.startswith(connection_id):
        cut = len(connection_id)
        if message_id[cut : cut + 1] == ":":
            return _rest_position(message_id[cut + 1 :])
    return _NONE


def parsed(stored: tuple[PresenceMessage, int, int]) -> tuple[PresenceMessage, int, int]:
    """A stored entry with its position parsed (the entry itself if it already is)."""
    if stored[1] != UNPARSED:
        return stored
    message = stored[0]
    serial, index = position(message.id, message.connection_id)
    return message, serial, index


def superseding(
    incoming: PresenceMessage,
    connection_id: str,
    stored: tuple[PresenceMessage, int, int],
    table: dict[_K, tuple[PresenceMessage, int, int]],
    key: _K,
) -> tuple[PresenceMessage, int, int] | None:
    """RTP2b against ``stored`` (kept at ``table[key]``), for messages of one connection.

    Returns the entry to store for ``incoming`` (with its parsed position) if it is newer,
    else ``None``; a losing ``stored`` that was still :data:`UNPARSED` gets its parse cached
    in ``table[key]``.  Both messages must have ``connection_id`` (true of a member map keyed
    by connectionId), so equal ids have equal positions and need one parse, not two.
    """
    old, old_serial, old_index = stored
    mid = incoming.id
    # position(), inlined for the common id (``connection_id`` is a str here).
    found = None
    if mid.__class__ is str:
        head, _, rest = mid.partition(":")
        if head == connection_id:
            found = _REST_MEMO.get(rest)
    serial, index = found or position(mid, connection_id)
    reparsed = old_serial == UNPARSED
    if reparsed:
        old_id = old.id
        if mid == old_id:
            old_serial = serial
            old_index = index
        else:
            found = None
            if old_id.__class__ is str:
                head, _, rest = old_id.partition(":")
                if head == connection_id:
                    found = _REST_MEMO.get(rest)
            old_serial, old_index = found or position(old_id, connection_id)
    if serial >= 0 and old_serial >= 0:
        if serial > old_serial or (serial == old_serial and index > old_index):
            return incoming, serial, index
    else:
        new_ts = incoming.timestamp
        old_ts = old.timestamp
        if new_ts is None or old_ts is None or new_ts >= old_ts:
            return incoming, serial, index
    if reparsed:
        table[key] = (old, old_serial, old_index)
    return None


def newer_than(
    incoming: PresenceMessage, serial: int, index: int, stored: tuple[PresenceMessage, int, int]
) -> bool:
    """RTP2b for an incoming message with a parsed position against a stored entry.

    A stored entry still :data:`UNPARSED` is parsed here; callers that keep the entry cache
    the parse by storing :func:`parsed` of it first.
    """
    if serial >= 0:
        old_serial = stored[1]
        if old_serial == UNPARSED:
            old_serial, old_index = parsed(stored)[1:]
        else:
            old_index = stored[2]
        if old_serial >= 0:
            if serial != old_serial:
                return serial > old_serial
            return index > old_index
    new_ts = incoming.timestamp
    old_ts = stored[0].timestamp
    return new_ts is None or old_ts is None or new_ts >= old_ts


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
