"""The member map: memberKey, newness, storage as PRESENT, LEAVE outside a sync, queries.

Rules: TP3h, TP3a/d/g, RTP2, RTP2a, RTP2b1, RTP2b1a, RTP2b2, RTP2c, RTP2d, RTP2h, RTP2h1,
D5, D6, RTP11c2/c3 (filters), ABSENT never visible.  Several cases are ported from the UTS
``presence_map`` spec.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, strategies as st

from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolError,
)
from presence_core._newness import (
    NO_POSITION,
    is_newer,
    position,
)
from tests.presence_set_support import (
    ENTER,
    LEAVE,
    NOW,
    PRESENT,
    UPDATE,
    actions,
    keys,
    make_set,
    pm,
    presence,
    presence_events,
    sync,
    with_members,
)


def test_TP3h_member_key_is_connection_and_client() -> None:
    """TP3h: the same clientId on two connections is two members; get filters by both."""
    ps = with_members(pm(ENTER, "ann", "c1"), pm(ENTER, "ann", "c2"), pm(ENTER, "bob", "c1"))
    assert keys(ps) == {("c1", "ann"), ("c2", "ann"), ("c1", "bob")}
    assert {m.connection_id for m in ps.get(client_id="ann")} == {"c1", "c2"}
    assert [m.client_id for m in ps.get(client_id="ann", connection_id="c2")] == ["ann"]
    assert {m.client_id for m in ps.get(connection_id="c1")} == {"ann", "bob"}
    assert ps.get(client_id="ann", connection_id="c3") == []
    assert ps.get(client_id="zed") == []


def test_RTP11c2_c3_index_follows_second_connection_leaving() -> None:
    """RTP11c2/c3 via the clientId index: a clientId stays present until its last connection
    leaves, and the index shrinks back to one connection."""
    ps = with_members(pm(ENTER, "ann", "c1", 1), pm(ENTER, "ann", "c2", 1))
    ps.receive(presence(pm(LEAVE, "ann", "c1", 2)), now=NOW)
    assert ps.is_user_present("ann")
    assert [m.connection_id for m in ps.get(client_id="ann")] == ["c2"]
    assert ps.get(client_id="ann", connection_id="c1") == []
    ps.receive(presence(pm(LEAVE, "ann", "c2", 2)), now=NOW)
    assert not ps.is_user_present("ann")
    assert ps.get(client_id="ann") == []


def test_RTP2d_enter_update_present_stored_as_present_emitted_with_original_action() -> None:
    """RTP2d/RTP2d1/RTP2d2: emitted with the original action, stored (and listed) as PRESENT."""
    ps = make_set()
    out = ps.receive(
        presence(
            pm(ENTER, "a", "c1", 1, data={"s": 1}),
            pm(UPDATE, "b", "c1", 2),
            pm(PRESENT, "c", "c1", 3),
        ),
        now=NOW,
    )
    assert actions(out) == [("enter", "a"), ("update", "b"), ("present", "c")]
    assert {m.action for m in ps.get()} == {PRESENT}
    (a,) = ps.get(client_id="a")
    assert (a.data, a.updated_at, a.connection_id) == ({"s": 1}, 100, "c1")


def test_RTP2d_event_is_the_received_message_itself() -> None:
    """RTP2d: the event is the applied message (no copy is made on the hot path)."""
    ps = make_set()
    item = pm(ENTER, "a", "c1", 1)
    out = ps.receive(presence(item), now=NOW)
    assert presence_events(out)[0] is item


def test_RTP2d2_update_for_unknown_member_is_stored_and_emitted_as_update() -> None:
    """RTP2d2: an UPDATE for an unknown member is an update, not a synthetic enter."""
    ps = make_set()
    out = ps.receive(presence(pm(UPDATE, "a", "c1", 1)), now=NOW)
    assert actions(out) == [("update", "a")]
    assert keys(ps) == {("c1", "a")}


def test_RTP2a_older_message_dropped_without_event() -> None:
    """RTP2a: a message older than the stored one has no effect and no event."""
    ps = with_members(pm(ENTER, "a", "c1", 5, data="new"))
    out = ps.receive(presence(pm(UPDATE, "a", "c1", 4, data="old")), now=NOW)
    assert not out
    assert ps.get()[0].data == "new"


def test_RTP2b2_msgserial_then_index() -> None:
    """RTP2b2: msgSerial decides first, then index; larger wins."""
    ps = with_members(pm(ENTER, "a", "c1", 5, 3, data="s5i3"))
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", 5, 2, data="x")), now=NOW)
    out = ps.receive(presence(pm(UPDATE, "a", "c1", 5, 4, data="s5i4")), now=NOW)
    assert actions(out) == [("update", "a")]
    out = ps.receive(presence(pm(UPDATE, "a", "c1", 6, 0, data="s6i0")), now=NOW)
    assert actions(out) == [("update", "a")]
    assert ps.get()[0].data == "s6i0"


def test_RTP2b2_numeric_not_lexicographic() -> None:
    """RTP2b2: serials compare as integers (10 > 9), which guards the old many-updates bug."""
    ps = with_members(pm(ENTER, "a", "c1", 9))
    assert actions(ps.receive(presence(pm(UPDATE, "a", "c1", 10)), now=NOW)) == [("update", "a")]
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", 9, 99)), now=NOW)


def test_RTP2b2_equal_position_is_not_newer() -> None:
    """RTP2b2 / RTP2d: a PRESENT with the same id as the stored message gives no event."""
    ps = with_members(pm(ENTER, "a", "c1", 3))
    assert not ps.receive(presence(pm(PRESENT, "a", "c1", 3)), now=NOW)


def test_presence_many_updates_each_emit() -> None:
    """RTP2b2 (ably-js presence_many_updates): 15 consecutive updates yield 15 events."""
    ps = make_set()
    out = ps.receive(presence(*[pm(UPDATE, "a", "c1", serial) for serial in range(15)]), now=NOW)
    assert len(presence_events(out)) == 15


def test_RTP2b1_synthesized_compares_timestamps() -> None:
    """RTP2b1: if either side is synthesized (id not prefixed by connectionId) use timestamps."""
    ps = with_members(pm(ENTER, "a", "c1", 50, ts=1000))
    # A server-synthesized leave: id from another connection, older timestamp: rejected.
    assert not ps.receive(presence(pm(LEAVE, "a", "c1", id="srv:1:0", ts=999)), now=NOW)
    out = ps.receive(presence(pm(LEAVE, "a", "c1", id="srv:1:0", ts=1001)), now=NOW)
    assert actions(out) == [("leave", "a")]
    assert ps.get() == []


def test_RTP2b1_synthesized_stored_side_compares_timestamps() -> None:
    """RTP2b1: the stored message being synthesized is enough to switch to timestamps."""
    ps = with_members(pm(ENTER, "a", "c1", id="xyz", ts=1000))
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", 999, ts=999)), now=NOW)
    assert ps.receive(presence(pm(UPDATE, "a", "c1", 0, ts=1001)), now=NOW)


def test_RTP2b1a_equal_timestamps_incoming_wins() -> None:
    """RTP2b1a: synthesized comparison with equal timestamps: the incoming message wins."""
    ps = with_members(pm(ENTER, "a", "c1", 5, ts=1000, data="old"))
    out = ps.receive(presence(pm(UPDATE, "a", "c1", id="other:0:0", ts=1000, data="new")), now=NOW)
    assert actions(out) == [("update", "a")]
    assert ps.get()[0].data == "new"


def test_D5_missing_id_compares_timestamps() -> None:
    """D5: an id still missing after inheritance means timestamp comparison."""
    ps = with_members(pm(ENTER, "a", "c1", 50, ts=1000))
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", id=None, ts=900)), now=NOW)
    assert ps.receive(presence(pm(UPDATE, "a", "c1", id=None, ts=1100)), now=NOW)


def test_D5_missing_timestamp_too_incoming_wins() -> None:
    """D5: id and timestamp both missing: the incoming message wins."""
    ps = with_members(pm(ENTER, "a", "c1", 50, ts=1000, data="old"))
    out = ps.receive(presence(pm(UPDATE, "a", "c1", id=None, ts=None, data="new")), now=NOW)
    assert actions(out) == [("update", "a")]
    assert ps.get()[0].data == "new"
    assert is_newer(pm(UPDATE, "a", "c1", id=None, ts=5), pm(ENTER, "a", "c1", id=None, ts=None))


def test_D6_prefix_form_requires_colon_after_connection_id() -> None:
    """D6: we use the strict prefix ``<connectionId>:``.  With the spec's plain-prefix form,
    ``c10:3:0`` would count as non-synthesized for connection ``c1``; here it is synthesized
    and compared by timestamp.  Both forms agree on ordinary ids."""
    assert position("c1:3:7", "c1") == (3, 7)  # both forms: not synthesized
    assert position("c10:3:0", "c1") == (NO_POSITION, 0)  # plain-prefix form would differ
    ps = with_members(pm(ENTER, "a", "c1", 50, ts=1000))
    # By msgSerial this would lose (3 < 50); by timestamp it wins.
    out = ps.receive(presence(pm(UPDATE, "a", "c1", id="c10:3:0", ts=2000)), now=NOW)
    assert actions(out) == [("update", "a")]


@pytest.mark.parametrize(
    "bad_id",
    [
        "c1:\u0663:0",  # Arabic-Indic three as the msgSerial
        "c1:3:\u0660",  # Arabic-Indic zero as the index
        "c1:\u0969:0",  # Devanagari three
        "c1:\uff13:0",  # fullwidth three
        "c1:3\u0663:0",  # an ASCII digit followed by a non-ASCII one
    ],
)
def test_RTP2b2_D6_non_ascii_digits_make_the_id_unparsable(bad_id: str) -> None:
    """RTP2b2 / D6: only the ASCII digits 0-9 form a msgSerial or index.  ``int()`` reads other
    Unicode decimal digits (``c1:\u0663:0`` would be msgSerial 3), so such an id must count as
    unparsable and be compared by timestamp."""
    assert position(bad_id, "c1") == (NO_POSITION, 0)
    ps = with_members(pm(ENTER, "a", "c1", 1, ts=1000))
    # By msgSerial 3 > 1 it would win; by timestamp it is older and loses.
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", id=bad_id, ts=999)), now=NOW)
    # Stored with the bad id, it loses by timestamp to a later message of any position.
    ps = with_members(pm(ENTER, "a", "c1", id=bad_id, ts=1000))
    out = ps.receive(presence(pm(UPDATE, "a", "c1", 0, ts=1001, data="new")), now=NOW)
    assert actions(out) == [("update", "a")]


def _expected_position(message_id: str, connection_id: str) -> tuple[int, int] | None:
    """RTP2b2 / D6 written plainly: ``<connectionId>:<digits>:<digits>``, ASCII digits only."""
    match = re.fullmatch(re.escape(connection_id) + r":([0-9]+):([0-9]+)", message_id)
    return (int(match[1]), int(match[2])) if match else None


def _expected_newer(new_id: str, new_ts: int, old_id: str, old_ts: int) -> bool:
    """RTP2b as the reference: positions if both parse, else timestamps, ties to incoming."""
    new_pos = _expected_position(new_id, "c1")
    old_pos = _expected_position(old_id, "c1")
    if new_pos is not None and old_pos is not None:
        return new_pos > old_pos
    return new_ts >= old_ts


# Ids over an alphabet rich in the characters a parser trips on: the connectionId, colons,
# ASCII and non-ASCII digits, signs, spaces, underscores, and letters; and ids of the
# ``c1:<serial>:<index>`` shape whose numbers may hold a non-ASCII digit or junk, and which
# may have something after the index.
_id_chars = "c1:0 9-+_x\u0663\uff13"
_numbers = st.one_of(
    st.integers(0, 12).map(str),
    st.text("09\u0663\uff13", min_size=1, max_size=3),
    st.text(_id_chars, max_size=4),
)
_after = st.sampled_from(["", "", ":", ":0", " ", "\n", "x"])
_any_ids = st.one_of(
    st.builds("c1:{}:{}{}".format, _numbers, _numbers, _after),
    st.text(alphabet=_id_chars, max_size=10),
    st.text(max_size=8),
)


@given(
    new_id=_any_ids,
    old_id=_any_ids,
    new_ts=st.integers(0, 3),
    old_ts=st.integers(0, 3),
)
# The traps a parser falls into, each one an id that parses wrongly or raises if mishandled.
@example(new_id="c1:\u0663:0", old_id="c1:1:0", new_ts=0, old_ts=1)
@example(new_id="c1:1:0", old_id="c1:0:\uff13", new_ts=0, old_ts=1)
@example(new_id="c1:1:0:", old_id="c1:0:0", new_ts=0, old_ts=1)
@example(new_id="c1:+1:0", old_id="c1:0:0", new_ts=0, old_ts=1)
@example(new_id="c1:1: 0", old_id="c1:0:0", new_ts=0, old_ts=1)
@example(new_id="c1:1:x", old_id="c1:1:", new_ts=0, old_ts=1)
def test_RTP2b_D6_unparsable_ids_compare_by_timestamp_and_never_raise(
    new_id: str, old_id: str, new_ts: int, old_ts: int
) -> None:
    """RTP2b / D6: for any ids, the member map and is_newer decide exactly as a plain
    reference does: by position when both ids parse as ``c1:<digits>:<digits>``, otherwise by
    timestamp, as for a synthesized message.  Nothing raises, whichever side is unparsable."""
    expected = _expected_newer(new_id, new_ts, old_id, old_ts)
    # Built directly: ``pm`` reads an empty id as "use the default id".
    stored = PresenceMessage(
        action=ENTER, client_id="a", connection_id="c1", id=old_id, timestamp=old_ts, data="old"
    )
    incoming = PresenceMessage(
        action=UPDATE, client_id="a", connection_id="c1", id=new_id, timestamp=new_ts, data="new"
    )
    assert is_newer(incoming, stored) is expected
    ps = with_members(stored)
    out = ps.receive(presence(incoming), now=NOW)
    assert actions(out) == ([("update", "a")] if expected else [])
    assert ps.get()[0].data == ("new" if expected else "old")
    expected_position = _expected_position(new_id, "c1")
    assert position(new_id, "c1") == (expected_position or (NO_POSITION, 0))


def test_RTP2b_unparsable_id_treated_as_synthesized() -> None:
    """RTP2b: ``c1:x:y`` or ``c1:5`` cannot be parsed; they are compared by timestamp."""
    ps = with_members(pm(ENTER, "a", "c1", 50, ts=1000))
    assert not ps.receive(presence(pm(UPDATE, "a", "c1", id="c1:x:y", ts=999)), now=NOW)
    assert ps.receive(presence(pm(UPDATE, "a", "c1", id="c1:5", ts=1001)), now=NOW)


def test_RTP2c_sync_uses_same_newness() -> None:
    """RTP2c: a SYNC entry older than a live event is dropped."""
    ps = with_members(pm(ENTER, "a", "c1", 5, data="live"))
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 4, data="sync")), now=NOW)
    assert not presence_events(out)
    assert ps.get()[0].data == "live"


def test_RTP2h1_leave_outside_sync_emits_and_deletes() -> None:
    """RTP2h1a/b: outside a sync a LEAVE for a known member emits leave and deletes it."""
    ps = with_members(pm(ENTER, "a", "c1", 1), pm(ENTER, "b", "c2", 1))
    leave = pm(LEAVE, "a", "c1", 2, data="bye")
    out = ps.receive(presence(leave), now=NOW)
    assert presence_events(out) == [leave]
    assert keys(ps) == {("c2", "b")}
    assert not ps.is_user_present("a")


def test_RTP2h_leave_for_unknown_member_is_noop() -> None:
    """RTP2h: outside a sync a LEAVE for an unknown member does nothing."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    before = ps.snapshot()
    assert not ps.receive(presence(pm(LEAVE, "zed", "c9", 2)), now=NOW)
    assert ps.snapshot() == before


def test_RTP2h_stale_leave_rejected() -> None:
    """RTP2h: a LEAVE that fails newness is dropped (UTS presence_map stale LEAVE)."""
    ps = with_members(pm(ENTER, "a", "c1", 5))
    assert not ps.receive(presence(pm(LEAVE, "a", "c1", 4)), now=NOW)
    assert keys(ps) == {("c1", "a")}


def test_RTP2_reenter_after_leave() -> None:
    """RTP2: after a leave the same key may enter again (index rebuilt)."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    ps.receive(presence(pm(LEAVE, "a", "c1", 2)), now=NOW)
    out = ps.receive(presence(pm(ENTER, "a", "c1", 3)), now=NOW)
    assert actions(out) == [("enter", "a")]
    assert ps.is_user_present("a")


def test_TP3_inheritance_applied_when_codec_did_not() -> None:
    """TP3a/TP3d/TP3g: missing id, connectionId and timestamp come from the ProtocolMessage."""
    ps = make_set()
    item = PresenceMessage(action=ENTER, client_id="bob")
    out = ps.receive(presence(item, id="c2:5", connection_id="c2", timestamp=777), now=NOW)
    (event,) = presence_events(out)
    assert (event.id, event.connection_id, event.timestamp) == ("c2:5:0", "c2", 777)
    assert keys(ps) == {("c2", "bob")}
    # The inherited id makes the next message from c2 comparable by msgSerial.
    assert not ps.receive(presence(pm(UPDATE, "bob", "c2", 4, ts=999)), now=NOW)


def test_unknown_presence_action_skipped() -> None:
    """Forward compatibility: an item with an unknown action is skipped, the rest applied."""
    ps = make_set()
    odd = PresenceMessage(
        action=9,  # type: ignore[arg-type]
        client_id="x",
        connection_id="c1",
        id="c1:0:0",
        timestamp=1,
    )
    out = ps.receive(presence(odd, pm(ENTER, "a", "c1", 1)), now=NOW)
    assert actions(out) == [("enter", "a")]
    assert keys(ps) == {("c1", "a")}


def test_plain_int_actions_are_coerced() -> None:
    """A harness passing plain ints for known presence actions is understood."""
    ps = make_set()
    item = PresenceMessage(
        action=2,  # type: ignore[arg-type]
        client_id="a",
        connection_id="c1",
        id="c1:0:0",
        timestamp=1,
    )
    out = ps.receive(presence(item), now=NOW)
    assert [e.action for e in presence_events(out)] == [PresenceAction.ENTER]


def test_absent_from_wire_never_visible() -> None:
    """ABSENT is a local marker: received as an item it is skipped and never listed."""
    ps = make_set()
    out = ps.receive(presence(pm(PresenceAction.ABSENT, "a", "c1", 1)), now=NOW)
    assert not out
    assert ps.get() == []


def test_item_without_client_id_is_malformed() -> None:
    """A PRESENCE item without clientId cannot form a memberKey: ProtocolError, no change."""
    ps = with_members(pm(ENTER, "a", "c1", 1))
    before = ps.snapshot()
    bad = PresenceMessage(action=ENTER, connection_id="c1", id="c1:2:0", timestamp=1)
    with pytest.raises(ProtocolError) as info:
        ps.receive(presence(pm(ENTER, "b", "c2"), bad), now=NOW)
    assert info.value.path == "presence[1].clientId"
    assert info.value.code == 40000
    assert ps.snapshot() == before


def test_item_without_connection_id_even_after_inheritance_is_malformed() -> None:
    """TP3d: no connectionId on the item nor on the frame: ProtocolError, no change."""
    ps = make_set()
    bad = PresenceMessage(action=ENTER, client_id="a", id="x:1:0", timestamp=1)
    before = ps.snapshot()
    with pytest.raises(ProtocolError) as info:
        ps.receive(presence(pm(ENTER, "b", "c2"), bad), now=NOW)
    assert info.value.path == "presence[1].connectionId"
    assert ps.snapshot() == before


def test_get_never_lists_a_member_twice_and_only_present() -> None:
    """ABSENT never visible; every listed member has action PRESENT."""
    ps = with_members(pm(ENTER, "a", "c1", 1), pm(UPDATE, "a", "c1", 2), pm(ENTER, "b", "c1", 3))
    ps.receive(sync("s:cur", pm(LEAVE, "b", "c1", 4)), now=NOW)  # tombstone during sync
    listed = [(m.connection_id, m.client_id) for m in ps.get()]
    assert listed == [("c1", "a")]
    assert all(m.action is PRESENT for m in ps.get())
    assert not ps.is_user_present("b")
