"""SYNC: RTP1, RTP18/RTP18a/b/c, RTP19 (and its UTS clarification), RTP19a, RTP13,
RTP2h2a/b with decisions D1, D2, D3 and D7.  Several cases are ported from the UTS
``presence_sync`` and ``presence_map`` specs.
"""

from __future__ import annotations

import pytest

from presence_core import (
    FrameIgnored,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
)
from tests.presence_set_support import (
    ENTER,
    LEAVE,
    NOW,
    PRESENT,
    UPDATE,
    actions,
    attached,
    is_complete,
    keys,
    make_set,
    pm,
    presence,
    presence_events,
    sync,
    with_members,
)


def test_RTP1_attached_with_has_presence_starts_sync() -> None:
    """RTP1 + RTP13: HAS_PRESENCE marks a sync in progress; sync_complete turns false."""
    ps = make_set(attach=False)
    assert is_complete(ps)
    ps.attach(now=NOW)
    ps.receive(attached(has_presence=True), now=NOW)
    assert not is_complete(ps)
    out = ps.receive(sync("seq1:", pm(PRESENT, "a", "c1", 1)), now=NOW)
    assert actions(out) == [("present", "a")]
    assert is_complete(ps)


def test_RTP1_attached_without_has_presence_is_known_empty() -> None:
    """RTP1: without HAS_PRESENCE the set is complete (and empty) at once."""
    ps = make_set(attach=False)
    ps.attach(now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert is_complete(ps)
    assert ps.get() == []
    assert presence_events(out) == []


def test_RTP18_multi_page_sync_with_cursor() -> None:
    """RTP18/RTP18a: pages share a sync id; members accumulate; the last page ends it."""
    ps = make_set()
    ps.receive(attached(has_presence=True), now=NOW)
    ps.receive(sync("seq1:c1", pm(PRESENT, "a", "c1", 1)), now=NOW)
    assert not is_complete(ps)
    ps.receive(sync("seq1:c2", pm(PRESENT, "b", "c2", 1)), now=NOW)
    assert not is_complete(ps)
    assert keys(ps) == {("c1", "a"), ("c2", "b")}
    ps.receive(sync("seq1:", pm(PRESENT, "c", "c3", 1)), now=NOW)
    assert is_complete(ps)
    assert keys(ps) == {("c1", "a"), ("c2", "b"), ("c3", "c")}


def test_RTP18a_cursor_split_at_first_colon() -> None:
    """RTP18a: the sync id never has a colon, the cursor may; ``s:a:b`` is id ``s``."""
    ps = with_members(pm(ENTER, "old", "c0", 1))
    ps.receive(sync("s:a:b", pm(PRESENT, "a", "c1", 1)), now=NOW)
    assert not is_complete(ps)
    # Same sync id with another colon-laden cursor continues the same sync.
    ps.receive(sync("s:x:", pm(PRESENT, "b", "c1", 2)), now=NOW)
    assert not is_complete(ps)
    out = ps.receive(sync("s:", pm(PRESENT, "c", "c1", 3)), now=NOW)
    assert is_complete(ps)
    assert actions(out) == [("present", "c"), ("leave", "old")]


def test_RTP18a_sync_cursor_without_colon_is_malformed() -> None:
    """RTP18a: a SYNC channelSerial with no colon raises ProtocolError and changes nothing."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    before = ps.snapshot()
    with pytest.raises(ProtocolError) as info:
        ps.receive(sync("nocolon", pm(PRESENT, "b", "c2", 1)), now=NOW)
    assert info.value.path == "channelSerial"
    assert ps.snapshot() == before


def test_RTP18a_D3_new_sync_id_restarts_and_rebuilds_residuals() -> None:
    """RTP18a + D3: a new sync id discards the in-flight sync; residuals are rebuilt from the
    current non-ABSENT members, so a member seen only in the discarded sync is residual again."""
    ps = with_members(pm(ENTER, "a", "c1", 1), pm(ENTER, "b", "c2", 1))
    ps.receive(sync("s1:more", pm(PRESENT, "a", "c1", 2)), now=NOW)
    ps.receive(sync("s2:more", pm(PRESENT, "b", "c2", 2)), now=NOW)
    out = ps.receive(sync("s2:"), now=NOW + 1)
    # "a" was seen only by the discarded s1: it is a residual of s2.
    assert actions(out) == [("leave", "a")]
    assert keys(ps) == {("c2", "b")}


def test_RTP18a_new_sync_both_seen_no_leaves() -> None:
    """RTP18a (UTS presence_sync 'new sync discards previous'): both seen in the new sync."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 0))
    ps.receive(sync("s1:x", pm(PRESENT, "a", "c1", 1)), now=NOW)
    out = ps.receive(sync("s2:", pm(PRESENT, "a", "c1", 2), pm(PRESENT, "b", "c2", 1)), now=NOW)
    assert [a for a, _ in actions(out)] == ["present", "present"]
    assert keys(ps) == {("c1", "a"), ("c2", "b")}


def test_D3_discarded_sync_tombstones_kept_until_new_sync_ends() -> None:
    """D3: tombstones of the discarded sync still block an older entry in the new sync."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    ps.receive(sync("s1:more"), now=NOW)
    ps.receive(presence(pm(LEAVE, "a", "c1", 5)), now=NOW)  # tombstone in s1
    ps.receive(sync("s2:more", pm(PRESENT, "a", "c1", 3)), now=NOW)  # older than the leave
    assert keys(ps) == set()
    ps.receive(sync("s2:"), now=NOW)
    assert ps.snapshot().members == frozenset()  # tombstones gone at the end


def test_RTP18b_empty_cursor_ends_after_applying_page() -> None:
    """RTP18b: the final page's members are applied, then the sync ends."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    out = ps.receive(sync("s:", pm(PRESENT, "b", "c2", 1)), now=NOW)
    assert actions(out) == [("present", "b"), ("leave", "a")]
    assert keys(ps) == {("c2", "b")}
    assert is_complete(ps)


def test_RTP18c_sync_without_channel_serial_is_one_page() -> None:
    """RTP18c: no channelSerial: start, apply and end in one step."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 0))
    out = ps.receive(sync(None, pm(PRESENT, "a", "c1", 1)), now=NOW)
    assert actions(out) == [("present", "a"), ("leave", "b")]
    assert keys(ps) == {("c1", "a")}
    assert is_complete(ps)


def test_RTP18c_one_page_sync_after_has_presence_keeps_members_seen_since_attach() -> None:
    """RTP18c after RTP1: the sync announced by ATTACHED is the same sync, not a restart."""
    ps = with_members(pm(ENTER, "old", "c0", 1))
    ps.receive(attached(has_presence=True), now=NOW)
    ps.receive(presence(pm(ENTER, "live", "c5", 1)), now=NOW)
    out = ps.receive(sync(None, pm(PRESENT, "x", "c1", 1)), now=NOW)
    assert actions(out) == [("present", "x"), ("leave", "old")]
    assert keys(ps) == {("c5", "live"), ("c1", "x")}


def test_D7_sync_without_presence_array_honours_cursor() -> None:
    """D7: a SYNC with no presence field still ends the sync when its cursor is empty."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    ps.receive(attached(has_presence=True), now=NOW)
    frame = ProtocolMessage(action=ProtocolAction.SYNC, channel="room1::$chat", channel_serial="s:")
    out = ps.receive(frame, now=NOW + 9)
    assert is_complete(ps)
    (leave,) = presence_events(out)
    assert (leave.action, leave.client_id, leave.timestamp) == (LEAVE, "a", NOW + 9)


def test_RTP19_residual_members_get_synthesized_leave() -> None:
    """RTP19: members not seen during the sync leave, with stored attributes, id None and
    timestamp now."""
    ps = with_members(
        pm(ENTER, "a", "c1", 0),
        pm(ENTER, "b", "c2", 0, data="bob-data", extras={"headers": {"k": "v"}}),
    )
    ps.receive(attached(has_presence=True), now=NOW)
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 1)), now=NOW + 42)
    (present, leave) = presence_events(out)
    assert present.client_id == "a"
    assert (leave.action, leave.client_id, leave.connection_id) == (LEAVE, "b", "c2")
    assert (leave.data, leave.extras) == ("bob-data", {"headers": {"k": "v"}})
    assert leave.id is None
    assert leave.timestamp == NOW + 42
    assert keys(ps) == {("c1", "a")}


def test_RTP19_members_updated_during_sync_survive() -> None:
    """RTP19: members refreshed by SYNC or by PRESENCE during the sync are not residual."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 0), pm(ENTER, "c", "c3", 0))
    ps.receive(attached(has_presence=True), now=NOW)
    ps.receive(sync("s:more", pm(PRESENT, "a", "c1", 1)), now=NOW)
    ps.receive(presence(pm(UPDATE, "b", "c2", 1, data="new")), now=NOW)
    out = ps.receive(sync("s:"), now=NOW)
    assert actions(out) == [("leave", "c")]
    assert ps.get(client_id="b")[0].data == "new"


def test_RTP19_member_added_during_sync_not_stale() -> None:
    """RTP19: a member entering during the sync is not a residual."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    ps.receive(sync("s:more", pm(PRESENT, "a", "c1", 1)), now=NOW)
    ps.receive(presence(pm(ENTER, "new", "c9", 0)), now=NOW)
    assert not presence_events(ps.receive(sync("s:"), now=NOW))
    assert keys(ps) == {("c1", "a"), ("c9", "new")}


def test_RTP19_stale_sync_entry_still_counts_as_seen() -> None:
    """RTP19 (UTS clarification, stale-sync-removes-from-residuals): an entry losing the
    newness test still takes the member out of the residual set."""
    ps = with_members(pm(ENTER, "a", "c1", 5, data="original"))
    ps.receive(attached(has_presence=True), now=NOW)
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 3, data="stale")), now=NOW)
    assert not presence_events(out)
    assert ps.get()[0].data == "original"


def test_RTP19_presence_echoes_then_sync_with_same_ids_keep_all() -> None:
    """RTP19 (UTS): PRESENCE echoes then a SYNC with the same ids: all members survive."""
    items = [pm(ENTER, f"user-{i}", "c1", i, data=f"data-{i}") for i in range(3)]
    ps = with_members(*items)
    ps.receive(attached(has_presence=True), now=NOW)
    out = ps.receive(
        sync("s:", *[pm(PRESENT, f"user-{i}", "c1", i, data=f"data-{i}") for i in range(3)]),
        now=NOW,
    )
    assert not presence_events(out)  # RTP2d: same id is not newer: a re-sync stays quiet
    assert [m.data for m in ps.get()] == ["data-0", "data-1", "data-2"]


def test_RTP19_empty_map_sync_no_leaves() -> None:
    """RTP19: no members at sync start: no leaves at sync end."""
    ps = make_set()
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 0)), now=NOW)
    assert actions(out) == [("present", "a")]


def test_RTP19_event_order_page_events_then_residual_leaves() -> None:
    """RTP19 event order (docs/rules.md): on a final page, the page's own events come first,
    then residual leaves (in the order the residual members first appeared)."""
    ps = with_members(pm(ENTER, "r1", "c1", 0), pm(ENTER, "r2", "c2", 0), pm(ENTER, "k", "c3", 0))
    out = ps.receive(sync("s:", pm(PRESENT, "k", "c3", 1), pm(PRESENT, "n", "c4", 0)), now=NOW)
    assert actions(out) == [("present", "k"), ("present", "n"), ("leave", "r1"), ("leave", "r2")]


def test_RTP19a_attached_without_has_presence_clears_with_leaves() -> None:
    """RTP19a: a leave per member (original attributes, id None, timestamp now), set empty."""
    ps = with_members(
        pm(ENTER, "a", "c1", 0, data="a"),
        pm(ENTER, "b", "c2", 0, data="b"),
        pm(ENTER, "c", "c3", 0, data="c"),
    )
    out = ps.receive(attached(), now=NOW + 7)
    leaves = presence_events(out)
    assert [(e.action, e.client_id, e.data, e.id, e.timestamp) for e in leaves] == [
        (LEAVE, "a", "a", None, NOW + 7),
        (LEAVE, "b", "b", None, NOW + 7),
        (LEAVE, "c", "c", None, NOW + 7),
    ]
    assert ps.get() == []
    assert is_complete(ps)


def test_RTP19a_ends_a_running_sync() -> None:
    """RTP19a during a sync: the set is cleared and the sync is over (no tombstones left)."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    ps.receive(sync("s:more"), now=NOW)
    ps.receive(presence(pm(LEAVE, "z", "c9", 1)), now=NOW)  # D2 tombstone
    ps.receive(attached(), now=NOW)
    snap = ps.snapshot()
    assert snap.sync_complete
    assert snap.members == frozenset()


def test_RTP2h2_D1_leave_during_sync_emits_once_and_tombstones() -> None:
    """RTP2h2a/RTP2h2b with D1: a LEAVE for a known member during a sync emits exactly one
    leave, at once; it stores an ABSENT tombstone so an older SYNC entry cannot resurrect the
    member; the member leaves the residual set (no second, synthesized leave at sync end); the
    tombstone is deleted silently at sync end."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 0))
    ps.receive(attached(has_presence=True), now=NOW)
    ps.receive(sync("s:more", pm(PRESENT, "a", "c1", 1)), now=NOW)
    leave = pm(LEAVE, "b", "c2", 5)
    out = ps.receive(presence(leave), now=NOW)
    assert presence_events(out) == [leave]  # exactly one leave, now
    assert not ps.is_user_present("b")
    assert ("absent", ("c2", "b", "c2:5:0", 100, None, None, None)) in ps.snapshot().members
    # An older SYNC entry for b loses against the tombstone.
    out = ps.receive(sync("s:more", pm(PRESENT, "b", "c2", 3)), now=NOW)
    assert not presence_events(out)
    assert not ps.is_user_present("b")
    out = ps.receive(sync("s:"), now=NOW)
    assert not presence_events(out)  # no second leave for b
    assert keys(ps) == {("c1", "a")}
    assert ps.snapshot().members == frozenset(
        {("present", ("c1", "a", "c1:1:0", 100, None, None, None))}
    )


def test_RTP2h2a_newer_entry_replaces_tombstone() -> None:
    """RTP2h2a: a newer message for a tombstoned key makes it a member again, with an event."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    ps.receive(sync("s:more"), now=NOW)
    ps.receive(presence(pm(LEAVE, "a", "c1", 2)), now=NOW)
    out = ps.receive(presence(pm(ENTER, "a", "c1", 3)), now=NOW)
    assert actions(out) == [("enter", "a")]
    assert not presence_events(ps.receive(sync("s:"), now=NOW))
    assert keys(ps) == {("c1", "a")}


def test_D2_unknown_member_leave_during_sync_tombstones_silently() -> None:
    """D2: a LEAVE for an unknown member during a sync stores a tombstone, no event, so a
    later (out-of-order) older SYNC entry cannot resurrect a ghost."""
    ps = make_set()
    ps.receive(attached(has_presence=True), now=NOW)
    out = ps.receive(presence(pm(LEAVE, "ghost", "c7", 9)), now=NOW)
    assert not out.events
    out = ps.receive(sync("s:", pm(PRESENT, "ghost", "c7", 4)), now=NOW)
    assert not presence_events(out)
    assert ps.get() == []
    assert ps.snapshot().members == frozenset()


def test_RTP2h2_stale_leave_during_sync_keeps_member_residual() -> None:
    """RTP2h + RTP19: a stale LEAVE during a sync changes nothing; the member is still residual."""
    ps = with_members(pm(ENTER, "a", "c1", 5))
    ps.receive(sync("s:more"), now=NOW)
    assert not ps.receive(presence(pm(LEAVE, "a", "c1", 4)), now=NOW)
    out = ps.receive(sync("s:"), now=NOW)
    assert actions(out) == [("leave", "a")]


def test_RTP18_sync_starts_while_attached_without_announcement() -> None:
    """RTP18: the server may start a SYNC at any time while attached."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    assert is_complete(ps)
    ps.receive(sync("z:1"), now=NOW)
    assert not is_complete(ps)


def test_RTP13_sync_complete_lifecycle() -> None:
    """RTP13: true initially, false during a sync, true after it and after a clear."""
    ps = make_set(attach=False)
    assert is_complete(ps)
    ps.attach(now=NOW)
    ps.receive(attached(has_presence=True), now=NOW)
    assert not is_complete(ps)
    ps.receive(sync("s:"), now=NOW)
    assert is_complete(ps)
    ps.receive(attached(has_presence=True), now=NOW)
    assert not is_complete(ps)
    ps.receive(attached(), now=NOW)
    assert is_complete(ps)


def test_sync_end_forgets_sync_id() -> None:
    """Sync-end bookkeeping (RTP18b): the sync id is forgotten, so a later SYNC with
    the same id is a new sync."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    ps.receive(sync("s:"), now=NOW)  # "a" is not in this sync: it leaves
    assert ps.get() == []
    ps.receive(presence(pm(ENTER, "b", "c2", 0)), now=NOW)
    out = ps.receive(sync("s:"), now=NOW)
    assert actions(out) == [("leave", "b")]
    assert dict(ps.snapshot().extra)["sync_id"] is None


def test_RTL17_presence_ignored_unless_attached() -> None:
    """RTL17: PRESENCE and SYNC frames are ignored (FrameIgnored) unless ATTACHED."""
    ps = make_set(attach=False)
    ps.attach(now=NOW)
    out = ps.receive(presence(pm(ENTER, "a", "c1", 0)), now=NOW)
    assert isinstance(out.events[0], FrameIgnored)
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 0)), now=NOW)
    assert isinstance(out.events[0], FrameIgnored)
    assert ps.get() == []
