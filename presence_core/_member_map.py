"""The member map of one channel, with its sync: RTP2, RTP18, RTP19/RTP19a and D1-D3.

This is the hot path of the library.  Every PRESENCE and SYNC item the server sends for a
channel lands here, so the code trades a little repetition for fewer calls per item.

Rules of this module:

* Members are keyed by memberKey (TP3h), the pair (connectionId, clientId).  The stored message
  is the one received (its action may be ENTER, UPDATE or PRESENT); queries present it as
  PRESENT.  Visible members and ABSENT tombstones live in two dicts, so listing members never
  filters and the clientId index covers visible members only.
* Newness is :mod:`presence_core._newness` (RTP2a/RTP2b/RTP2c: SYNC and PRESENCE items compare
  the same way).
* The events of one frame are the applied items themselves, in item order.  On the last page
  of a sync the residual leaves (RTP19) follow the page's own events, in the order the members
  first appeared.  A synthesized leave carries the member's stored attributes, ``id=None`` and
  ``timestamp=now``.
* During a sync: a LEAVE for a known member emits one leave at once, stores an ABSENT
  tombstone and takes the member out of the residual set (D1, RTP2h2a); a LEAVE for an unknown
  member stores a tombstone silently (D2); an ENTER, UPDATE or PRESENT for a key counts as
  seen even if it loses the newness check, while a stale LEAVE does not (RTP19); a new sync id
  restarts the sync, rebuilding the residual set from the visible members and keeping the
  tombstones until the new sync ends (D3, RTP18a).
  Tombstones are dropped silently when the sync ends (RTP2h2b).
* Items reach this module validated and TP3-inherited (:func:`checked_items`); nothing here
  raises after a change has started, so a frame is applied whole or not at all.

Items from the channel's own connection (``own_connection``, kept current by the room) also
feed the own-member map: this module calls ``own.observe(item)`` for each such item, in item
order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias

import attrs

from presence_core._errors import ProtocolError
from presence_core._newness import UNPARSED, superseding
from presence_core._wire import Message, PresenceAction, PresenceMessage, ProtocolMessage

if TYPE_CHECKING:
    from presence_core._own_members import OwnMembers

__all__ = ["PresenceMember"]

_LEAVE: Final = PresenceAction.LEAVE
_ABSENT: Final = PresenceAction.ABSENT
_PRESENT: Final = PresenceAction.PRESENT
_UNPARSED: Final = UNPARSED
_KNOWN_ACTIONS: Final = frozenset(int(a) for a in PresenceAction)

#: A stored message with its cached RTP2b position: (message, msgSerial or a marker, index).
Entry: TypeAlias = tuple[PresenceMessage, int, int]
#: memberKey (TP3h): (connectionId, clientId).
Key: TypeAlias = tuple[str, str]


@attrs.frozen(kw_only=True)
class PresenceMember:
    """A member as :meth:`~presence_core.PresenceSet.get` returns it: always action PRESENT."""

    action: PresenceAction
    client_id: str
    connection_id: str
    data: Any = None
    extras: dict[str, Any] | None = None
    #: Epoch ms of the message that last set this member.
    updated_at: int | None = None


def checked_items(message: ProtocolMessage) -> Sequence[PresenceMessage]:
    """Return a frame's presence items, validated and TP3-inherited.

    Raises:
        ProtocolError: An item without a clientId or connectionId (after inheritance), a
            non-integer timestamp, a non-string id, or a presence field that is not an array.
    """
    items = message.presence
    if items.__class__ is not tuple:
        if items is None:
            return ()
        return normalized_items(message)
    for m in items:
        # The common case first: a decoded item needing no inheritance or coercion.
        if (
            m.__class__ is not PresenceMessage
            or m.client_id.__class__ is not str
            or m.connection_id.__class__ is not str
            or m.id.__class__ is not str
            or m.timestamp.__class__ is not int
            or m.action.__class__ is not PresenceAction
            or m.action is _ABSENT
        ):
            return normalized_items(message)
    return items


def normalized_items(message: ProtocolMessage) -> list[PresenceMessage]:
    """The slow path of :func:`checked_items`: inherit (TP3), coerce, skip unknown, or raise."""
    items: Any = message.presence
    if not isinstance(items, tuple | list):
        raise ProtocolError("presence must be an array", path="presence")
    parent_id = message.id
    parent_conn = message.connection_id
    parent_ts = message.timestamp
    out: list[PresenceMessage] = []
    for i, m in enumerate(items):
        path = f"presence[{i}]"
        if not isinstance(m, PresenceMessage):
            raise ProtocolError("not a presence message", path=path)
        action: Any = m.action
        if action.__class__ is not PresenceAction:
            if type(action) is not int or action not in _KNOWN_ACTIONS:
                continue  # an unknown presence action is forward-compatible: skip it
            action = PresenceAction(action)
        if action is _ABSENT:
            continue  # ABSENT is a local marker, which a peer never sends
        conn = m.connection_id if m.connection_id is not None else parent_conn
        mid = m.id
        if mid is None and type(parent_id) is str:
            mid = f"{parent_id}:{i}"
        ts = m.timestamp if m.timestamp is not None else parent_ts
        if type(m.client_id) is not str:
            raise ProtocolError("missing or non-string clientId", path=f"{path}.clientId")
        if type(conn) is not str:
            raise ProtocolError("missing or non-string connectionId", path=f"{path}.connectionId")
        if ts is not None and type(ts) is not int:
            raise ProtocolError("timestamp must be an integer", path=f"{path}.timestamp")
        if mid is not None and type(mid) is not str:
            raise ProtocolError("id must be a string", path=f"{path}.id")
        if (
            action is not m.action
            or conn is not m.connection_id
            or mid is not m.id
            or ts is not m.timestamp
        ):
            out.append(attrs.evolve(m, action=action, connection_id=conn, id=mid, timestamp=ts))
        else:
            out.append(m)
    return out


def synthesized_leave(message: PresenceMessage, now: int) -> PresenceMessage:
    """RTP19/RTP19a: the member's stored attributes, action LEAVE, id None, timestamp now."""
    return PresenceMessage(
        action=_LEAVE,
        client_id=message.client_id,
        connection_id=message.connection_id,
        id=None,
        data=message.data,
        encoding=message.encoding,
        extras=message.extras,
        timestamp=now,
    )


def freeze(value: Any) -> Any:
    """A hashable, comparable stand-in for decoded data (dicts and lists are unhashable)."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((repr(k), freeze(v)) for k, v in value.items()))))
    if isinstance(value, list | tuple):
        return ("list", tuple(freeze(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return ("repr", repr(value))
    return value


def picture(message: PresenceMessage | Message) -> tuple[Any, ...]:
    """A comparable picture of a stored message, for snapshots."""
    return (
        message.connection_id,
        message.client_id,
        message.id,
        message.timestamp,
        freeze(message.data),
        message.encoding,
        freeze(message.extras),
    )


class MemberMap:
    """The visible members of one channel, the tombstones, the clientId index and the sync."""

    __slots__ = (
        "by_client",
        "members",
        "own",
        "own_connection",
        "residual",
        "sync_id",
        "syncing",
        "tombstones",
    )

    def __init__(self, own: OwnMembers) -> None:
        #: The own-member map that items from ``own_connection`` feed (RTP17b).
        self.own = own
        self.own_connection: str | None = None
        #: RTP2: the visible members only.
        self.members: dict[Key, Entry] = {}
        #: RTP2h2a: ABSENT tombstones, kept while a sync runs.
        self.tombstones: dict[Key, Entry] = {}
        # clientId -> connectionId, or an ordered dict of connectionIds when the same clientId
        # is present on several connections (rare; a plain str keeps memory low).
        self.by_client: dict[str, str | dict[str, None]] = {}
        self.syncing = False
        self.sync_id: str | None = None
        # RTP19 residual set; a dict (insertion ordered) so synthesized leaves come out in a
        # deterministic order in every process, whatever the string hash seed.
        self.residual: dict[Key, None] = {}

    # -- applying items ---------------------------------------------------------------------
    def apply(self, items: Sequence[PresenceMessage]) -> tuple[PresenceMessage, ...]:
        """Apply validated PRESENCE or SYNC items (RTP2); return the applied ones (the events).

        Per item: one dict lookup, a newness check only if the key is stored already, a dict
        write, and the clientId index update when a key appears or disappears.  An id is parsed
        into its RTP2b position only when a comparison needs it: a new member is stored
        ``UNPARSED`` and parsed (and the parse cached in its entry) on its first comparison.
        """
        members = self.members
        tombstones = self.tombstones
        by_client = self.by_client
        syncing = self.syncing
        residual = self.residual
        own_connection = self.own_connection
        applied: list[PresenceMessage] = []
        for m in items:
            # Validated on receipt: both are str here.
            cid: str = m.connection_id  # type: ignore[assignment]
            client: str = m.client_id  # type: ignore[assignment]
            key = (cid, client)
            old = members.get(key)
            if m.action is _LEAVE:
                if old is not None:
                    entry = superseding(m, cid, old, members, key)
                    if entry is not None:
                        del members[key]
                        conns = by_client.pop(client)
                        if conns.__class__ is not str:
                            self._unindex_many(client, cid, conns)
                        if syncing:
                            # D1: a tombstone, one leave now, and no residual leave later.
                            tombstones[key] = entry
                            residual.pop(key, None)
                        applied.append(m)
                elif syncing:
                    # D2: a silent tombstone, so an older SYNC entry cannot resurrect it.
                    old = tombstones.get(key)
                    if old is None:
                        tombstones[key] = (m, _UNPARSED, 0)
                    else:
                        entry = superseding(m, cid, old, tombstones, key)
                        if entry is not None:
                            tombstones[key] = entry
            else:
                if syncing:
                    residual.pop(key, None)  # RTP19: seen, even if it loses newness
                if old is not None:
                    entry = superseding(m, cid, old, members, key)
                    if entry is not None:
                        members[key] = entry
                        applied.append(m)
                elif not tombstones or self._beats_tombstone(key, m):
                    members[key] = (m, _UNPARSED, 0)
                    if by_client.setdefault(client, cid) is not cid:
                        self._index_many(client, cid)
                    applied.append(m)
            if cid == own_connection:
                self.own.observe(m)
        return tuple(applied)

    def apply_one(self, m: PresenceMessage) -> bool:
        """:meth:`apply` for a frame of one item, step for step; return whether it applied.

        The stateful model test mixes frames of one and of several items, and
        ``test_one_item_frames_match_one_frame`` compares the two paths directly.
        """
        # Validated on receipt: both are str here.
        cid: str = m.connection_id  # type: ignore[assignment]
        client: str = m.client_id  # type: ignore[assignment]
        key = (cid, client)
        members = self.members
        old = members.get(key)
        applied = False
        if m.action is _LEAVE:
            if old is not None:
                entry = superseding(m, cid, old, members, key)
                if entry is not None:
                    del members[key]
                    conns = self.by_client.pop(client)
                    if conns.__class__ is not str:
                        self._unindex_many(client, cid, conns)
                    if self.syncing:
                        self.tombstones[key] = entry  # D1, as in apply
                        self.residual.pop(key, None)
                    applied = True
            elif self.syncing:
                tombstones = self.tombstones  # D2, as in apply
                old = tombstones.get(key)
                if old is None:
                    tombstones[key] = (m, _UNPARSED, 0)
                else:
                    entry = superseding(m, cid, old, tombstones, key)
                    if entry is not None:
                        tombstones[key] = entry
        else:
            if self.syncing:
                self.residual.pop(key, None)  # RTP19, as in apply
            if old is not None:
                entry = superseding(m, cid, old, members, key)
                if entry is not None:
                    members[key] = entry
                    applied = True
            elif not self.tombstones or self._beats_tombstone(key, m):
                members[key] = (m, _UNPARSED, 0)
                if self.by_client.setdefault(client, cid) is not cid:
                    self._index_many(client, cid)
                applied = True
        if cid == self.own_connection:
            self.own.observe(m)
        return applied

    def _beats_tombstone(self, key: Key, m: PresenceMessage) -> bool:
        """Whether a member message supersedes the tombstone for its key (and drop it if so)."""
        tombstones = self.tombstones
        old = tombstones.get(key)
        if old is None:
            return True
        if superseding(m, key[0], old, tombstones, key) is not None:
            del tombstones[key]
            return True
        return False

    # -- the clientId index -----------------------------------------------------------------
    def _index_many(self, client: str, cid: str) -> None:
        current = self.by_client[client]
        if isinstance(current, str):
            self.by_client[client] = {current: None, cid: None}
        else:
            current[cid] = None

    def _unindex_many(self, client: str, cid: str, conns: str | dict[str, None]) -> None:
        """Put back the index entry ``conns`` (popped for ``client``) without ``cid``.

        Callers pop the entry first, which is all a clientId on one connection needs; only a
        clientId on several connections (a dict entry) comes here.
        """
        assert type(conns) is dict  # the str case is handled by the callers
        del conns[cid]
        self.by_client[client] = next(iter(conns)) if len(conns) == 1 else conns

    def _index_remove(self, client: str, cid: str) -> None:
        conns = self.by_client.pop(client)
        if type(conns) is not str:
            self._unindex_many(client, cid, conns)

    # -- sync -------------------------------------------------------------------------------
    def sync_page(
        self,
        sync_id: str | None,
        items: Sequence[PresenceMessage],
        *,
        last: bool,
        now: int,
    ) -> tuple[PresenceMessage, ...]:
        """Apply one SYNC page; ``last`` when its cursor is empty (RTP18b) or absent (RTP18c)."""
        if not self.syncing:
            self.start_sync(sync_id)  # RTP18: the server may start a sync at any time
        elif self.sync_id is None:
            self.sync_id = sync_id  # the sync that ATTACHED's HAS_PRESENCE announced
        elif sync_id is None or sync_id != self.sync_id:
            self.start_sync(sync_id)  # RTP18a, D3: restart, keeping the tombstones
        events = self.apply(items) if items else ()
        if last:
            events += self.end_sync(now)  # RTP18b: this page's events first
        return events

    def start_sync(self, sync_id: str | None) -> None:
        """RTP19: every visible member is residual until seen."""
        self.syncing = True
        self.sync_id = sync_id
        self.residual = dict.fromkeys(self.members)

    def end_sync(self, now: int) -> tuple[PresenceMessage, ...]:
        """RTP19 residual leaves (id None, timestamp now); RTP2h2b silent tombstone removal."""
        events: list[PresenceMessage] = []
        members = self.members
        for key in self.residual:
            message = members.pop(key)[0]
            self._index_remove(key[1], key[0])
            events.append(synthesized_leave(message, now))
        self.residual = {}
        self.tombstones.clear()
        self.syncing = False
        self.sync_id = None
        return tuple(events)

    def clear_with_leaves(
        self, now: int, keep: Callable[[Key], bool] | None = None
    ) -> list[PresenceMessage]:
        """RTP19a: a leave for every member ``keep`` does not vouch for; the set is complete.

        Without ``keep`` every member leaves and the set ends empty.
        """
        kept = [] if keep is None else [(k, e) for k, e in self.members.items() if keep(k)]
        events = [
            synthesized_leave(entry[0], now)
            for key, entry in self.members.items()
            if keep is None or not keep(key)
        ]
        self.clear()
        for key, entry in kept:
            self.members[key] = entry
            if self.by_client.setdefault(key[1], key[0]) is not key[0]:
                self._index_many(key[1], key[0])
        return events

    def clear(self) -> None:
        """Forget every member and tombstone, silently (RTP5a), and any sync in progress."""
        self.members.clear()
        self.by_client.clear()
        self.tombstones.clear()
        self.residual = {}
        self.syncing = False
        self.sync_id = None

    # -- queries ----------------------------------------------------------------------------
    def get(self, client_id: str | None, connection_id: str | None) -> list[PresenceMember]:
        """Visible members, optionally filtered; see :meth:`PresenceSet.get`."""
        members = self.members
        if client_id is not None:
            conns = self.by_client.get(client_id)
            if conns is None:
                return []
            if type(conns) is str:
                if connection_id is not None and connection_id != conns:
                    return []
                return [as_member(members[(conns, client_id)][0])]
            return [
                as_member(members[(conn, client_id)][0])
                for conn in conns
                if connection_id is None or conn == connection_id
            ]
        if connection_id is not None:
            return [as_member(e[0]) for k, e in members.items() if k[0] == connection_id]
        return [as_member(e[0]) for e in members.values()]

    def pictures(self) -> frozenset[Any]:
        """``("present" | "absent", picture)`` for every member and tombstone."""
        return frozenset(
            [("present", picture(e[0])) for e in self.members.values()]
            + [("absent", picture(e[0])) for e in self.tombstones.values()]
        )

    def extra(self) -> tuple[Any, ...]:
        """The rest of the state, for snapshots: sync id, residual set, clientId index."""
        return (
            ("sync_id", self.sync_id),
            ("residual", frozenset(self.residual)),
            ("index", frozenset((c, freeze(v)) for c, v in self.by_client.items())),
        )


def as_member(message: PresenceMessage) -> PresenceMember:
    """The stored message as a :class:`PresenceMember` (action PRESENT)."""
    return PresenceMember(
        action=_PRESENT,
        client_id=message.client_id,  # type: ignore[arg-type]  # validated on receipt
        connection_id=message.connection_id,  # type: ignore[arg-type]
        data=message.data,
        extras=message.extras,
        updated_at=message.timestamp,
    )
