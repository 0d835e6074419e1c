"""The own-member map and the re-entry rule, driven directly (rules 1-5 of its module header)."""

from __future__ import annotations

from presence_core import Operation, PresenceAction, PresenceMessage
from presence_core._own_members import OwnMembers

ENTER = PresenceAction.ENTER
UPDATE = PresenceAction.UPDATE
LEAVE = PresenceAction.LEAVE
CONN = "c1"


def echo(
    action: PresenceAction, client: str, serial: int, *, conn: str = CONN, data: object = None
) -> PresenceMessage:
    return PresenceMessage(
        action=action,
        client_id=client,
        connection_id=conn,
        id=f"{conn}:{serial}:0",
        timestamp=100 + serial,
        data=data,
    )


def op(op_id: int, action: PresenceAction, client: str | None = None) -> Operation:
    return Operation(id=op_id, channel="room", action=action, client_id=client)


def item(action: PresenceAction, data: object = None) -> PresenceMessage:
    return PresenceMessage(action=action, data=data)


def sent(own: OwnMembers, op_id: int, action: PresenceAction, data: object = None) -> Operation:
    operation = op(op_id, action)
    own.track(operation, "me", item(action, data))
    return operation


def ack(own: OwnMembers, operation: Operation, *, attached: bool = True) -> PresenceMessage | None:
    found, reentry = own.settle(operation, acked=True, connection_id=CONN, attached=attached)
    assert found
    return reentry


def test_RTP17b_echoes_from_the_current_connection_fill_the_map() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1, data="a"))
    own.observe(echo(UPDATE, "me", 2, data="b"))
    assert own.members["me"].data == "b"
    own.observe(echo(LEAVE, "me", 3))
    assert own.members == {}


def test_RTP17b_synthesized_leave_keeps_the_entry() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1))
    synthesized = PresenceMessage(
        action=LEAVE, client_id="me", connection_id=CONN, id="server:7:0", timestamp=900
    )
    own.observe(synthesized)
    assert "me" in own.members


def test_RTP2b_older_echo_does_not_replace_a_newer_entry() -> None:
    own = OwnMembers()
    own.observe(echo(UPDATE, "me", 5, data="new"))
    own.observe(echo(ENTER, "me", 4, data="old"))
    assert own.members["me"].data == "new"


def test_D4_current_connection_wins_over_an_older_one_whatever_the_serial() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 50, conn="old", data="before"))
    own.observe(echo(ENTER, "me", 1, conn="new", data="after"))
    assert own.members["me"].data == "after"


def test_RTP17g_RTP17g1_reentry_items_carry_id_only_on_the_same_connection() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1, data="a"))
    own.observe(echo(ENTER, "bot", 2, data="b"))
    items = own.reentries(set(), resumed=False, connection_id=CONN)
    assert [(i.client_id, i.id, i.data) for i in items] == [
        ("me", "c1:1:0", "a"),
        ("bot", "c1:2:0", "b"),
    ]
    items = own.reentries(set(), resumed=False, connection_id="c2")
    assert [i.id for i in items] == [None, None]


def test_intent_rule_2_queued_or_in_flight_operation_decides() -> None:
    """Rule 2: a clientId acted for in the same frame, or with an operation in flight, is
    not re-entered."""
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1))
    own.observe(echo(ENTER, "bot", 2))
    assert [i.client_id for i in own.reentries({"me"}, resumed=False, connection_id=CONN)] == [
        "bot"
    ]
    own.track(op(9, LEAVE, "bot"), "bot", item(LEAVE))
    assert own.reentries({"me"}, resumed=False, connection_id=CONN) == []


def test_intent_rule_3_ack_without_echo_records_the_content() -> None:
    own = OwnMembers()
    enter = sent(own, 1, ENTER, "hello")
    assert ack(own, enter) is None
    record = own.members["me"]
    assert (record.data, record.id, record.timestamp) == ("hello", None, None)
    leave = sent(own, 2, LEAVE)
    ack(own, leave)
    assert own.members == {}


def test_intent_rule_3_earlier_operation_acked_after_a_change_records_nothing() -> None:
    own = OwnMembers()
    first = sent(own, 1, ENTER, "first")
    sent(own, 2, UPDATE, "second")
    own.observe(echo(UPDATE, "me", 2, data="second"))
    ack(own, first)
    assert own.members["me"].data == "second"


def test_intent_rule_4_dedup_ack_after_a_non_resumed_attached_reenters() -> None:
    own = OwnMembers()
    enter = sent(own, 1, ENTER, "lost")
    own.reentries(set(), resumed=False, connection_id=CONN)
    reentry = ack(own, enter)
    assert reentry is not None
    assert (reentry.action, reentry.client_id, reentry.id, reentry.data) == (
        ENTER,
        "me",
        None,
        "lost",
    )


def test_intent_rule_4_echo_since_the_attached_means_no_reentry() -> None:
    own = OwnMembers()
    enter = sent(own, 1, ENTER, "kept")
    own.reentries(set(), resumed=False, connection_id=CONN)
    own.observe(echo(ENTER, "me", 1, data="kept"))
    assert ack(own, enter) is None


def test_intent_rule_4_reentry_waits_for_an_attached_channel() -> None:
    own = OwnMembers()
    enter = sent(own, 1, ENTER, "x")
    own.reentries(set(), resumed=False, connection_id=CONN)
    assert ack(own, enter, attached=False) is None


def test_intent_rule_5_clear_forgets_map_and_intent() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1))
    enter = sent(own, 2, ENTER, "late")
    own.clear()
    assert own.members == {}
    assert not own.present_by_intent("me")
    ack(own, enter)
    assert own.members == {}


def test_intent_rule_5_present_by_intent_follows_the_latest_operation() -> None:
    own = OwnMembers()
    assert not own.present_by_intent("me")
    assert not own.present_by_intent(None)
    own.observe(echo(ENTER, "me", 1))
    assert own.present_by_intent("me")
    sent(own, 2, LEAVE)
    assert not own.present_by_intent("me")
    sent(own, 3, ENTER)
    assert own.present_by_intent("me")


def test_settle_ignores_an_operation_not_in_flight() -> None:
    own = OwnMembers()
    assert own.settle(op(1, ENTER), acked=True, connection_id=CONN, attached=True) == (False, None)
    enter = sent(own, 1, ENTER)
    own.settle(enter, acked=False, connection_id=CONN, attached=True)
    assert own.members == {}
    assert own.in_flight == ()


def test_RTP17b_an_entry_older_than_the_leave_that_removed_it_does_not_bring_it_back() -> None:
    """A SYNC page made before a leave and delivered after its echo carries the member as it
    was: the own map must not take it back, or a later re-entry would resurrect it."""
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 1, data="a"))
    own.observe(echo(LEAVE, "me", 3))
    stale = PresenceMessage(
        action=PresenceAction.PRESENT,
        client_id="me",
        connection_id=CONN,
        id=f"{CONN}:1:0",
        timestamp=101,
        data="a",
    )
    own.observe(stale)
    assert own.members == {}
    own.observe(echo(ENTER, "me", 4, data="b"))  # a newer enter does
    assert own.members["me"].data == "b"


def test_D4_a_leave_of_an_older_connection_does_not_block_the_current_one() -> None:
    own = OwnMembers()
    own.observe(echo(ENTER, "me", 5, conn="old"))
    own.observe(echo(LEAVE, "me", 9, conn="old"))
    own.observe(echo(ENTER, "me", 1, conn="new", data="x"))
    assert own.members["me"].data == "x"
