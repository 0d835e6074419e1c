"""The PresenceSet hot path's shortcuts change no result.

Rules: RTP2b (id positions, parsed lazily and memoized), RTP2/RTP2h/RTP19 (a one-item frame
takes its own path through the reducer), and the fast ``Output`` constructor.
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest
from hypothesis import example, given, strategies as st

from presence_core import (
    Output,
    PresenceAction,
    PresenceMessage,
    PresenceSet,
)
from presence_core._newness import (
    _REST_MEMO,
    _REST_MEMO_LIMIT,
    NO_POSITION,
    UNPARSED,
    is_newer,
    position,
    superseding,
)
from presence_core._output import (
    EMPTY_OUTPUT,
    events_output,
)
from tests.presence_set_support import (
    ENTER,
    LEAVE,
    MY_CONN,
    NOW,
    PRESENT,
    UPDATE,
    make_set,
    presence,
    sync,
)


def _reference_position(message_id: object, connection_id: object) -> tuple[int, int]:
    """The RTP2b parse written plainly: strict ``<connectionId>:`` prefix (D6), then two
    runs of ASCII digits separated by one colon (RTP2b2)."""
    if type(message_id) is str and type(connection_id) is str:
        match = re.fullmatch(re.escape(connection_id) + r":([0-9]+):([0-9]+)", message_id)
        if match:
            return int(match[1]), int(match[2])
    return (NO_POSITION, 0)


# Ids and connectionIds over a small alphabet rich in colons and digits (a non-ASCII decimal
# digit and leading zeros included), so prefixes, extra colons and bad numbers all occur.
_pieces = st.text(alphabet="c1:0٣x", max_size=8)
_conns = st.one_of(st.sampled_from(["c1", "c", "c1:0", "", ":"]), _pieces)


@given(conn=_conns, middle=st.sampled_from(["", ":", "::"]), tail=_pieces, raw=_pieces)
@example(conn="c1", middle=":", tail="\u0663:0", raw="c1:0:\u0663")  # non-ASCII digits
def test_RTP2b_position_matches_reference(conn: str, middle: str, tail: str, raw: str) -> None:
    """RTP2b/D6: the memoized parse gives exactly the strict-prefix parse, cold or warm."""
    for mid in (f"{conn}{middle}{tail}", raw, f"{conn}:{tail}"):
        expected = _reference_position(mid, conn)
        assert position(mid, conn) == expected
        assert position(mid, conn) == expected  # now possibly from the memo


@pytest.mark.parametrize("bad", [None, 5, b"c1:1:0"])
def test_RTP2b_position_of_non_strings_is_none(bad: object) -> None:
    """RTP2b/D5: a missing or non-string id or connectionId has no position."""
    assert position(bad, "c1") == (NO_POSITION, 0)
    assert position("c1:1:0", bad) == (NO_POSITION, 0)


def test_RTP2b_position_memo_is_bounded_and_keeps_caching() -> None:
    """RTP2b: ids with ever new tails cannot grow the parse memo past its limit, and once
    it has been full, the tails seen since are still cached (and parsed correctly)."""
    for serial in range(_REST_MEMO_LIMIT + 50):
        assert position(f"k:{serial}:7", "k") == (serial, 7)
        assert len(_REST_MEMO) <= _REST_MEMO_LIMIT
    assert _REST_MEMO[f"{_REST_MEMO_LIMIT + 49}:7"] == (_REST_MEMO_LIMIT + 49, 7)
    assert position(f"k:{_REST_MEMO_LIMIT + 10**6}:0", "k") == (_REST_MEMO_LIMIT + 10**6, 0)
    assert position("k:3:7", "k") == (3, 7)


_ids = st.sampled_from(["c1:1:0", "c1:1:1", "c1:2:0", "c1:01:0", "c1:x", "c2:9:0", None])


def _message(action: PresenceAction, mid: str | None, ts: int | None) -> PresenceMessage:
    return PresenceMessage(action=action, client_id="a", connection_id="c1", id=mid, timestamp=ts)


@given(
    new_id=_ids,
    old_id=_ids,
    new_ts=st.one_of(st.none(), st.integers(0, 2)),
    old_ts=st.one_of(st.none(), st.integers(0, 2)),
    parsed_before=st.booleans(),
)
def test_RTP2b_lazy_comparison_matches_is_newer(
    new_id: str | None,
    old_id: str | None,
    new_ts: int | None,
    old_ts: int | None,
    parsed_before: bool,
) -> None:
    """RTP2b: comparing against an entry stored unparsed (or parsed) decides as is_newer does;
    a losing unparsed entry keeps its parse, a winning message comes with its own."""
    incoming = _message(UPDATE, new_id, new_ts)
    old = _message(ENTER, old_id, old_ts)
    key = ("c1", "a")
    stored = (old, *position(old_id, "c1")) if parsed_before else (old, UNPARSED, 0)
    table = {key: stored}
    entry = superseding(incoming, "c1", stored, table, key)
    assert (entry is not None) == is_newer(incoming, old)
    if entry is not None:
        assert entry == (incoming, *position(new_id, "c1"))
        assert table[key] is stored
    else:
        assert table[key] == (old, *position(old_id, "c1"))


def test_RTP2b_unparsed_entry_is_parsed_once_and_kept() -> None:
    """RTP2b: a member stored without a parse is compared correctly later, and a message
    that loses against it leaves the member as it was."""
    ps = make_set()
    ps.receive(presence(_message(ENTER, "c1:5:0", 10)), now=NOW)
    assert not ps.receive(presence(_message(UPDATE, "c1:4:9", 99)), now=NOW)  # older by id
    assert not ps.receive(presence(_message(UPDATE, "c1:5:0", 99)), now=NOW)  # same id
    out = ps.receive(presence(_message(UPDATE, "c1:5:1", 1)), now=NOW)  # newer by index
    assert [e.id for e in out.events if isinstance(e, PresenceMessage)] == ["c1:5:1"]


_members = [("a", "c1"), ("b", "c2"), ("me", MY_CONN), ("a", "c2")]


@st.composite
def _items(draw: Any) -> PresenceMessage:
    client, conn = draw(st.sampled_from(_members))
    serial, index = draw(st.integers(0, 3)), draw(st.integers(0, 1))
    mid = draw(
        st.sampled_from([f"{conn}:{serial}:{index}", f"{conn}:{serial}:{index}", None, "srv:1:0"])
    )
    return PresenceMessage(
        action=draw(st.sampled_from([ENTER, UPDATE, PRESENT, LEAVE])),
        client_id=client,
        connection_id=conn,
        id=mid,
        timestamp=draw(st.one_of(st.none(), st.integers(0, 3))),
        data=draw(st.integers(0, 2)),
    )


def _prepared(before: list[PresenceMessage], syncing: bool) -> PresenceSet:
    """A set holding ``before``; if ``syncing``, a sync started with them all residual."""
    ps = make_set()
    for item in before:
        ps.receive(presence(item), now=NOW)
    if syncing:
        ps.receive(sync("s1:more"), now=NOW)  # RTP18: a sync the server starts
    return ps


@given(
    before=st.lists(_items(), max_size=5),
    items=st.lists(_items(), min_size=2, max_size=5),
    syncing=st.booleans(),
)
def test_RTP2_one_item_frames_match_one_frame(
    before: list[PresenceMessage], items: list[PresenceMessage], syncing: bool
) -> None:
    """RTP2/RTP2h/RTP17b: a frame of several items gives the same events and the same state
    as the same items sent one per frame (the one-item frame has its own fast path)."""
    whole = _prepared(before, syncing)
    split = _prepared(before, syncing)
    events = whole.receive(presence(*items), now=NOW).events
    one_by_one = tuple(e for item in items for e in split.receive(presence(item), now=NOW).events)
    assert events == one_by_one
    assert whole.snapshot() == split.snapshot()
    end = sync("s1:")
    assert whole.receive(end, now=NOW) == split.receive(end, now=NOW)
    assert whole.snapshot() == split.snapshot()


def test_events_output_equals_output() -> None:
    """The fast Output constructor gives an equal, equally hashed, frozen Output."""
    events = (_message(ENTER, "c1:1:0", 1),)
    fast = events_output(events)
    assert type(fast) is Output
    assert fast == Output(events)
    assert hash(fast) == hash(Output(events))
    assert repr(fast) == repr(Output(events))
    assert (fast.events, fast.commands, fast.operation) == (events, (), None)
    assert fast != EMPTY_OUTPUT
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        fast.events = ()  # type: ignore[misc]
