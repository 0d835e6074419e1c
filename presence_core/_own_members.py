"""The own-member map and automatic re-entry: RTP17, extended to follow the user's intent, and D4.

THE RE-ENTRY RULE (stated here once; the rest of the library points to it)

1. The own-member map holds, per clientId (RTP17h), the last echo of this connection's own
   presence (RTP17b): an ENTER, UPDATE or PRESENT from the current connectionId adds or
   replaces the entry, and a LEAVE from it that is not synthesized removes it.  The LEAVE is
   remembered, so that a PRESENT of the same connection older than it (from a SYNC page made
   before the leave and sent after it) does not bring the entry back.  A message from the
   current connectionId always replaces an entry stored from an older connection, whatever
   its serial; a message from any other connection never enters the map (D4).
2. When an ATTACHED re-enters (every ATTACHED except a RESUMED one on an attached channel,
   RTP17i), each clientId follows the user's latest intent:
   a. a user operation queued for the same PRESENCE frame decides: it is not re-entered;
   b. else an operation of its in flight (sent, no ACK or NACK yet) decides, because the
      connection resends it: it is not re-entered now;
   c. else its entry is re-entered: an ENTER with its data and extras, and with its id when the
      entry came from the current connection (RTP17g, RTP17g1).
3. An ACK settles what a lost echo would have told.  When an own ENTER or UPDATE is ACKed and
   the map does not hold its content, the content is recorded there without id or timestamp,
   so any later echo supersedes it; an ACKed LEAVE removes the clientId.  For a clientId's
   latest operation this always happens (an echo applied after it was sent may be an earlier
   operation's).  For an earlier one it happens only if the map has not changed for that
   clientId since it was sent: the fallback should the later one fail.
4. If that latest ENTER or UPDATE was sent before a non-RESUMED ATTACHED, and is ACKed with no
   echo for its clientId since that ATTACHED, the server deduplicated a resend whose effect it
   had lost.  The ACK then re-enters the clientId with the operation's data and extras, and no
   id (the entry's id does not describe this data).
5. A DETACHED or FAILED channel clears the map (RTP5a); operations sent before that carry no
   intent any more.  A leave on a SUSPENDED, DETACHING or FAILED channel is refused (90001) if
   the intent is to be present, and is a no-op success otherwise.

Why: Ably's RTP17 feeds the map from echoes alone.  An operation in flight across a reconnect
then races the re-entry: a LEAVE is undone by the re-entry behind it, an UPDATE is overwritten
by a re-entry of older data, and an ENTER whose resend the server deduplicated is never
re-entered.  Rule 4 waits for the ACK instead of re-entering at once, because whenever the
resend itself is applied (a resume within the grace period, a new connection id, frames held
back while disconnected) an immediate id-less re-entry would show peers a spurious UPDATE.

How "since" is known: a stamp grows by one per operation sent, on an RTP5a clear and on a
non-resumed ATTACHED.  An echo that changes the map stores the current stamp for its clientId,
and so does a change made by an ACK, so "changed after operation N was sent" reads "stored
stamp >= stamp of N".
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

from presence_core._member_map import Entry, picture
from presence_core._newness import NO_POSITION, newer_than, position
from presence_core._output import Operation
from presence_core._wire import PresenceAction, PresenceMessage

__all__: list[str] = []

_ENTER: Final = PresenceAction.ENTER
_LEAVE: Final = PresenceAction.LEAVE
_PRESENT: Final = PresenceAction.PRESENT

#: An operation sent and awaiting its ACK/NACK: (operation, the clientId it acts for or None
#: if unknown, the PRESENCE item sent, its send stamp).
Sent: TypeAlias = tuple[Operation, str | None, PresenceMessage, int]


def _same_content(stored: PresenceMessage, item: PresenceMessage) -> bool:
    """Whether a stored own member already carries an operation's data, encoding and extras."""
    return (
        stored.encoding == item.encoding
        and type(stored.data) is type(item.data)
        and bool(stored.data == item.data)
        and bool(stored.extras == item.extras)
    )


def _reentry_item(client: str, sent: PresenceMessage) -> PresenceMessage:
    """Rule 4: a re-entry carrying an ACKed ENTER/UPDATE's content, without an id."""
    return PresenceMessage(
        action=_ENTER,
        client_id=client,
        data=sent.data,
        encoding=sent.encoding,
        extras=sent.extras,
    )


class OwnMembers:
    """The own-member map and the operations in flight that carry the user's intent."""

    __slots__ = (
        "_cleared_at",
        "_in_flight",
        "_last_sent",
        "_left",
        "_map",
        "_reattached_at",
        "_recorded",
        "_seen",
        "_stamp",
    )

    def __init__(self) -> None:
        self._map: dict[str, Entry] = {}
        # Sent operations by id, in send order, so stamps increase along the dict.
        self._in_flight: dict[int, Sent] = {}
        self._stamp = 0
        # The stamp of the last RTP5a clear, and of the last non-resumed re-entering ATTACHED.
        self._cleared_at = 0
        self._reattached_at = 0
        # clientId -> stamp of the last change to its entry made by an echo / by an ACK.
        self._seen: dict[str, int] = {}
        self._recorded: dict[str, int] = {}
        # clientId -> stamp of its latest sent operation, until that one settles.
        self._last_sent: dict[str, int] = {}
        # clientId -> the LEAVE echo that removed its entry, until a newer message replaces it.
        self._left: dict[str, Entry] = {}

    # -- rule 1: echoes ---------------------------------------------------------------------
    def observe(self, m: PresenceMessage) -> None:
        """Feed an item from the current connection into the map (RTP17b, RTP17h, D4)."""
        serial, index = position(m.id, m.connection_id)
        client: str = m.client_id  # type: ignore[assignment]  # validated on receipt
        old = self._map.get(client)
        if m.action is _LEAVE:
            # A synthesized leave (no position) must not drop the re-entry record (RTP17b).
            if serial < 0:
                return
            if old is None:
                self._remember_leave(client, m, serial, index)
            elif old[0].connection_id != m.connection_id or newer_than(m, serial, index, old):
                del self._map[client]
                self._seen[client] = self._stamp
                self._remember_leave(client, m, serial, index)
            return
        left = self._left.get(client) if m.action is _PRESENT else None
        if (
            left is not None
            and left[0].connection_id == m.connection_id
            and not newer_than(m, serial, index, left)
        ):
            return  # older than the leave that removed the entry (rule 1)
        if (
            old is None
            or old[0].connection_id != m.connection_id  # D4: the current connection wins
            or newer_than(m, serial, index, old)
        ):
            self._map[client] = (m, serial, index)
            self._seen[client] = self._stamp
            self._left.pop(client, None)

    def _remember_leave(self, client: str, m: PresenceMessage, serial: int, index: int) -> None:
        left = self._left.get(client)
        if (
            left is None
            or left[0].connection_id != m.connection_id
            or newer_than(m, serial, index, left)
        ):
            self._left[client] = (m, serial, index)

    # -- operations in flight ---------------------------------------------------------------
    def track(self, op: Operation, client: str | None, item: PresenceMessage) -> None:
        """Record ``op`` (acting for ``client``, if known) as sent, with a fresh stamp."""
        self._stamp = stamp = self._stamp + 1
        self._in_flight[op.id] = (op, client, item, stamp)
        if client is not None:
            self._last_sent[client] = stamp

    def settle(
        self, op: Operation, *, acked: bool, connection_id: str | None, attached: bool
    ) -> tuple[bool, PresenceMessage | None]:
        """Settle ``op`` (rule 3); return whether it was in flight, and a rule-4 re-entry item.

        The re-entry item is only returned while ``attached``.
        """
        sent = self._in_flight.pop(op.id, None)
        if sent is None:
            return False, None
        _, client, item, stamp = sent
        if client is None:
            return True, None
        latest = self._last_sent.get(client) == stamp
        if latest:
            del self._last_sent[client]
            if not acked:
                # A refusal can settle a frame ahead of earlier ones still in flight (a full
                # outbox refuses at once): the latest sent is then the newest of those.
                earlier = [s for _, c, _, s in self._in_flight.values() if c == client]
                if earlier:
                    self._last_sent[client] = max(earlier)
        if not acked or stamp < self._cleared_at:
            return True, None
        echoed = self._seen.get(client, -1)
        unchanged = max(echoed, self._recorded.get(client, -1)) < stamp
        own = self._map
        if op.action is _LEAVE:
            if (latest or unchanged) and own.pop(client, None) is not None:
                self._recorded[client] = self._stamp
            return True, None
        if latest or unchanged:
            old = own.get(client)
            # An echo holding the same content is kept: its id makes a better re-entry.
            if old is None or not _same_content(old[0], item):
                record = PresenceMessage(
                    action=item.action,
                    client_id=client,
                    connection_id=connection_id,
                    data=item.data,
                    encoding=item.encoding,
                    extras=item.extras,
                )
                own[client] = (record, NO_POSITION, 0)
                self._recorded[client] = self._stamp
        reenter = latest and stamp < self._reattached_at and echoed < self._reattached_at
        if reenter and attached:
            return True, _reentry_item(client, item)
        return True, None

    def _latest_in_flight(self) -> dict[str, PresenceMessage]:
        """Each clientId's last operation sent since the last RTP5a clear.

        One pass over the operations in flight; used on ATTACHED and by a leave in a refusing
        state only, never per received message.
        """
        latest: dict[str, PresenceMessage] = {}
        cleared = self._cleared_at
        for _, client, item, stamp in self._in_flight.values():
            if client is not None and stamp > cleared:
                latest[client] = item  # send order: a later operation overwrites
        return latest

    # -- rules 2 and 5 ----------------------------------------------------------------------
    def reentries(
        self, acted: set[str | None], *, resumed: bool, connection_id: str | None
    ) -> list[PresenceMessage]:
        """Rule 2: the ENTER items an ATTACHED re-enters, given the clientIds ``acted`` for."""
        if not resumed:
            # Echoes applied from now on store a stamp >= _reattached_at (rule 4).
            self._stamp += 1
            self._reattached_at = self._stamp
        latest = self._latest_in_flight() if self._in_flight else {}
        items: list[PresenceMessage] = []
        for client, (stored, _, _) in self._map.items():
            if client in acted or client in latest:
                continue
            items.append(
                PresenceMessage(
                    action=_ENTER,
                    client_id=client,
                    id=stored.id if stored.connection_id == connection_id else None,
                    data=stored.data,
                    encoding=stored.encoding,
                    extras=stored.extras,
                )
            )
        return items

    def present_by_intent(self, client: str | None) -> bool:
        """Whether the user's latest intent for ``client`` is to be present (rule 5)."""
        if client is None:
            return False
        sent = self._latest_in_flight().get(client)
        if sent is not None:
            return sent.action is not _LEAVE
        return client in self._map

    def clear(self) -> None:
        """RTP5a: forget the map; operations in flight stop carrying an intent (rule 5)."""
        self._map.clear()
        self._left.clear()
        self._seen.clear()
        self._recorded.clear()
        self._last_sent.clear()
        self._stamp += 1
        self._cleared_at = self._stamp

    # -- queries ----------------------------------------------------------------------------
    @property
    def members(self) -> dict[str, PresenceMessage]:
        """A copy of the map: clientId -> the last applied echo (or ACK record, rule 3)."""
        return {client: entry[0] for client, entry in self._map.items()}

    @property
    def in_flight(self) -> tuple[Operation, ...]:
        """The operations sent and awaiting an ACK or NACK, in send order."""
        return tuple(s[0] for s in self._in_flight.values())

    def pictures(self) -> frozenset[Any]:
        """``(clientId, picture)`` for every entry, for snapshots."""
        return frozenset((client, picture(e[0])) for client, e in self._map.items())

    def pending_pictures(self) -> tuple[Any, ...]:
        """The operations in flight, for snapshots."""
        return tuple(("sent", s[0], s[1], picture(s[2]), s[3]) for s in self._in_flight.values())

    def extra(self) -> tuple[Any, ...]:
        """The intent bookkeeping, for snapshots."""
        return (
            ("stamps", (self._stamp, self._cleared_at, self._reattached_at)),
            ("own_seen", frozenset(self._seen.items())),
            ("own_left", frozenset((c, picture(e[0])) for c, e in self._left.items())),
            ("recorded", frozenset(self._recorded.items())),
            ("last_sent", frozenset(self._last_sent.items())),
        )
