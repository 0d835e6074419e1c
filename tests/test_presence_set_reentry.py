"""The own-member map and automatic re-entry: RTP17, RTP17a/b/e/g/g1/h/i, D4, D9, D10.

Ported from the UTS ``local_presence_map`` and ``realtime_presence_reentry`` specs; the mock
WebSocket of those specs is replaced by feeding frames and reading commands directly.
"""

from __future__ import annotations

import pytest

from presence_core import (
    ChannelState,
    ChannelStateChanged,
    ErrorInfo,
    OperationFailed,
    OperationSucceeded,
    Output,
    PresenceMessage,
    PresenceSet,
    ReentryFailed,
    RoomOptions,
    UsageError,
)
from tests.presence_set_support import (
    ENTER,
    LEAVE,
    ME,
    MY_CONN,
    NOW,
    PRESENT,
    UPDATE,
    attached,
    detached,
    echo,
    keys,
    make_set,
    ops_of,
    pm,
    presence,
    presence_events,
    sends,
    state_changes,
    sync,
)


def _reentries(out: object) -> list[PresenceMessage]:
    return [p for s in sends(out) for p in (s.message.presence or ())]  # type: ignore[arg-type]


def test_RTP17_own_map_fed_from_echo() -> None:
    """RTP17/RTP17a: the own-member map is fed from the server's echo, not the enter call."""
    ps = make_set()
    out = ps.enter("hello", now=NOW)
    assert ps.own_members == {}
    echo(ps, out)
    assert set(ps.own_members) == {ME}
    assert ps.own_members[ME].data == "hello"


def test_RTP17a_own_member_visible_without_presence_subscribe() -> None:
    """RTP17a: with subscribe=False the echo of our own member still arrives and is applied:
    it is in both maps."""
    ps = make_set(options=RoomOptions(subscribe=False))
    echo(ps, ps.enter("x", now=NOW))
    assert keys(ps) == {(MY_CONN, ME)}
    assert set(ps.own_members) == {ME}


def test_RTP17b_other_connection_not_in_own_map() -> None:
    """RTP17b: only messages whose connectionId is the current connection feed the map."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, ME, "other", 0), pm(ENTER, "x", "other", 1)), now=NOW)
    assert ps.own_members == {}


def test_RTP17b_enter_update_present_add_and_overwrite() -> None:
    """RTP17b (UTS local_presence_map): ENTER/UPDATE/PRESENT add; later ones overwrite."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "a", MY_CONN, 0, data=1)), now=NOW)
    ps.receive(presence(pm(PRESENT, "b", MY_CONN, 1, data=2)), now=NOW)
    ps.receive(presence(pm(UPDATE, "a", MY_CONN, 2, data=3)), now=NOW)
    assert {c: m.data for c, m in ps.own_members.items()} == {"a": 3, "b": 2}


def test_RTP17b_non_synthesized_leave_removes() -> None:
    """RTP17b: a LEAVE from the current connection with a real id removes the record."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "a", MY_CONN, 0), pm(ENTER, "b", MY_CONN, 1)), now=NOW)
    ps.receive(presence(pm(LEAVE, "a", MY_CONN, 2)), now=NOW)
    assert set(ps.own_members) == {"b"}


def test_RTP17b_synthesized_leave_ignored() -> None:
    """RTP17b: a server-synthesized LEAVE (id not prefixed by our connection) keeps the
    record, although it does remove the member from the public map."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "a", MY_CONN, 0, ts=100)), now=NOW)
    ps.receive(presence(pm(LEAVE, "a", MY_CONN, id="srv:9:0", ts=200)), now=NOW)
    assert ps.get() == []
    assert set(ps.own_members) == {"a"}


def test_RTP17h_keyed_by_client_id() -> None:
    """RTP17h: keyed by clientId, so a leave after a connection-id change still removes the
    record entered on the old connection."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "a", MY_CONN, 5)), now=NOW)
    ps.set_connection("conn2", now=NOW)
    ps.receive(presence(pm(LEAVE, "a", "conn2", 0)), now=NOW)
    assert ps.own_members == {}


def test_D4_different_connection_always_wins_in_own_map() -> None:
    """D4: after a failed resume, the new connection's re-entry echo ``connB:0:0`` replaces
    the stored ``connA:5:0`` although its msgSerial is lower, and a later explicit LEAVE
    ``connB:1:0`` removes it: no zombie re-entry."""
    ps = make_set(conn="connA")
    ps.receive(presence(pm(ENTER, ME, "connA", 5, data="v1")), now=NOW)
    ps.set_connection("connB", now=NOW)
    ps.receive(presence(pm(ENTER, ME, "connB", 0, data="v2")), now=NOW)
    assert ps.own_members[ME].connection_id == "connB"
    assert ps.own_members[ME].data == "v2"
    ps.receive(presence(pm(LEAVE, ME, "connB", 1)), now=NOW)
    assert ps.own_members == {}
    out = ps.receive(attached(), now=NOW)
    assert not sends(out)


def test_D4_late_message_from_old_connection_not_applied_to_own_map() -> None:
    """D4 with RTP17b: a late echo from the old connection id does not feed the own map (its
    connectionId is not current), so the latest current-connection state is re-entered."""
    ps = make_set(conn="connA")
    ps.receive(presence(pm(ENTER, ME, "connA", 1, data="old")), now=NOW)
    ps.set_connection("connB", now=NOW)
    ps.receive(presence(pm(ENTER, ME, "connB", 0, data="new")), now=NOW)
    ps.receive(presence(pm(UPDATE, ME, "connA", 9, data="late")), now=NOW)
    assert ps.own_members[ME].data == "new"


def test_RTP17i_reentry_on_non_resumed_attached() -> None:
    """RTP17i/RTP17g: a non-resumed ATTACHED (after RTL13a) re-enters with ENTER, the stored
    clientId, data and extras."""
    ps = make_set()
    echo(ps, ps.enter("hello", extras={"headers": {"a": "b"}}, now=NOW))
    ps.receive(detached(), now=NOW)  # RTL13a: straight back to ATTACHING
    assert ps.state is ChannelState.ATTACHING
    out = ps.receive(attached(), now=NOW)
    (item,) = _reentries(out)
    assert (item.action, item.client_id, item.data) == (ENTER, ME, "hello")
    assert item.extras == {"headers": {"a": "b"}}
    (op,) = ops_of(out)
    assert op.reentry
    assert op.client_id == ME


def test_RTP17g_reentry_of_several_enter_client_members() -> None:
    """RTP17g (UTS): members entered with enter_client are re-entered with their data."""
    ps = make_set(client_id="*")
    echo(ps, ps.enter_client("alice", "alice-data", now=NOW), serial=0)
    echo(ps, ps.enter_client("bob", "bob-data", now=NOW), serial=1)
    out = ps.receive(attached(), now=NOW)
    assert [(p.client_id, p.data, p.action) for p in _reentries(out)] == [
        ("alice", "alice-data", ENTER),
        ("bob", "bob-data", ENTER),
    ]
    assert len(sends(out)) == 1  # D10: one PRESENCE frame


def test_RTP17g_reentry_keeps_id_on_same_connection() -> None:
    """RTP17g: on the same connection the re-entry carries the stored id."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW), serial=3)
    out = ps.receive(attached(), now=NOW)
    assert _reentries(out)[0].id == f"{MY_CONN}:3:0"


def test_RTP17g1_reentry_omits_id_on_new_connection() -> None:
    """RTP17g1: if the stored connectionId differs from the current one, no id is sent."""
    ps = make_set(conn="conn-1")
    echo(ps, ps.enter("hello", now=NOW), conn="conn-1")
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    ps.set_connection("conn-2", now=NOW)
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(), now=NOW)
    (item,) = _reentries(out)
    assert item.id is None
    assert item.data == "hello"


def test_RTP17i_no_reentry_on_resumed_while_attached() -> None:
    """RTP17i/RTL12: ATTACHED with RESUMED while already ATTACHED: nothing at all."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    out = ps.receive(attached(resumed=True), now=NOW)
    assert not out


def test_RTP17i_reentry_on_resumed_from_attaching() -> None:
    """RTP17i: from ATTACHING even a RESUMED ATTACHED re-enters (only attached+resumed skips)."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(resumed=True), now=NOW)
    assert [p.client_id for p in _reentries(out)] == [ME]
    assert state_changes(out)[0].resumed


def test_D9_non_resumed_attached_while_attached_reruns_presence() -> None:
    """D9/RTL12: an ATTACHED without RESUMED while ATTACHED emits an update, reruns presence
    handling (here RTP19a leaves) and re-enters."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "other", "c9", 0)), now=NOW)
    echo(ps, ps.enter("x", now=NOW))
    out = ps.receive(attached(), now=NOW)
    (change,) = state_changes(out)
    assert (change.previous, change.current, change.resumed) == (
        ChannelState.ATTACHED,
        ChannelState.ATTACHED,
        False,
    )
    assert [(e.action, e.client_id) for e in presence_events(out)] == [
        (LEAVE, "other"),
        (LEAVE, ME),
    ]
    assert [p.client_id for p in _reentries(out)] == [ME]


def test_D9_non_resumed_attached_with_has_presence_restarts_sync() -> None:
    """D9: with HAS_PRESENCE the rerun starts a sync (no leaves yet) and re-enters."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    out = ps.receive(attached(has_presence=True), now=NOW)
    assert not ps.sync_complete
    assert [p.client_id for p in _reentries(out)] == [ME]


def test_D10_channel_attached_before_reentry_and_queued_ops_first_in_one_frame() -> None:
    """D10: the channel is ATTACHED first; re-entries go out at once, after the user
    operations queued while attaching, all in ONE PRESENCE frame."""
    ps = make_set(client_id="*")
    echo(ps, ps.enter_client("alice", "a", now=NOW))
    ps.receive(detached(), now=NOW)  # RTL13a -> ATTACHING
    queued = ps.enter_client("bob", "b", now=NOW)
    assert not queued.commands
    out = ps.receive(attached(), now=NOW)
    assert ps.state is ChannelState.ATTACHED
    assert state_changes(out)[0].current is ChannelState.ATTACHED
    (frame,) = sends(out)
    assert [p.client_id for p in frame.message.presence or ()] == ["bob", "alice"]
    assert [op.reentry for op in frame.operations] == [False, True]
    assert frame.operations[0] == queued.operation


def test_reentry_skipped_for_client_with_queued_user_operation() -> None:
    """RTP17i refinement (documented): a clientId whose user leave/update is queued in the same
    frame is not also re-entered, which would undo the leave or restore stale data."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    ps.receive(detached(), now=NOW)
    ps.leave(now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert [(p.action, p.client_id) for p in _reentries(out)] == [(LEAVE, None)]


def test_RTP17e_reentry_nack_gives_91004_and_channel_stays_attached() -> None:
    """RTP17e: a NACKed re-entry fails its operation, gives ReentryFailed with 91004 naming the
    clientId with the NACK error as cause, and a channel update event (resumed true); the
    channel stays attached."""
    ps = make_set()
    echo(ps, ps.enter("hello", now=NOW))
    out = ps.receive(attached(), now=NOW)
    nack = ErrorInfo(code=40160, status_code=401, message="Presence denied")
    failed = ps.reject(ops_of(out), nack, now=NOW)
    (opfail, reentry, update) = failed.events
    assert isinstance(opfail, OperationFailed)
    assert opfail.error == nack
    assert isinstance(reentry, ReentryFailed)
    assert reentry.client_id == ME
    assert reentry.error.code == 91004
    assert reentry.error.status_code == 400
    assert ME in reentry.error.message
    assert reentry.error.cause == nack
    assert isinstance(update, ChannelStateChanged)
    assert (update.previous, update.current, update.resumed) == (
        ChannelState.ATTACHED,
        ChannelState.ATTACHED,
        True,
    )
    assert update.reason == reentry.error
    assert ps.state is ChannelState.ATTACHED


def test_RTP17e_reentry_ack_succeeds_quietly() -> None:
    """RTP17: an ACKed re-entry just settles its operation."""
    ps = make_set()
    echo(ps, ps.enter("hello", now=NOW))
    out = ps.receive(attached(), now=NOW)
    acked = ps.acknowledge(ops_of(out), now=NOW)
    assert [type(c) for c in acked.events] == [OperationSucceeded]
    assert not acked.commands


def test_RTP5a_detached_clears_own_map_so_no_reentry() -> None:
    """RTP5a: DETACHED clears the own-member map: a later attach re-enters nobody."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    ps.detach(now=NOW)
    ps.receive(detached(), now=NOW)
    assert ps.own_members == {}
    ps.attach(now=NOW)
    assert not sends(ps.receive(attached(), now=NOW))


def test_RTP5f_suspended_keeps_own_map_for_reentry() -> None:
    """RTP5f: SUSPENDED keeps both maps; the reattach re-enters; the sync stays quiet for
    unchanged members."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW), serial=4)
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    assert set(ps.own_members) == {ME}
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(has_presence=True), now=NOW)
    assert [p.client_id for p in _reentries(out)] == [ME]
    out = ps.receive(sync("s:", pm(PRESENT, ME, MY_CONN, 4, ts=200, data="x")), now=NOW)
    assert not out.events


def test_local_map_uts_remove_and_clear_and_unknown() -> None:
    """UTS local_presence_map: several clientIds; remove one; unknown leave is harmless."""
    ps = make_set()
    ps.receive(
        presence(
            pm(ENTER, "a", MY_CONN, 0), pm(ENTER, "b", MY_CONN, 1), pm(ENTER, "c", MY_CONN, 2)
        ),
        now=NOW,
    )
    ps.receive(presence(pm(LEAVE, "b", MY_CONN, 3), pm(LEAVE, "zz", MY_CONN, 4)), now=NOW)
    assert set(ps.own_members) == {"a", "c"}
    ps.set_channel_state(ChannelState.FAILED, now=NOW)
    assert ps.own_members == {}


# -- re-entry follows the user's latest intent (the rule in presence_core._own_members) ------


def _ack(ps: PresenceSet, out: Output) -> Output:
    return ps.acknowledge(ops_of(out), now=NOW)


def test_RTP17i_no_reentry_behind_a_leave_in_flight() -> None:
    """RTP17i + intent: a LEAVE in flight at a re-entering ATTACHED (its echo not back, so the
    own map still holds the member) is not followed by a re-entry that would undo it."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    leave = ps.leave(now=NOW)
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)  # RTL3d after a resume
    out = ps.receive(attached(resumed=True), now=NOW)
    assert not sends(out)
    assert not sends(ps.receive(attached(), now=NOW))  # D9 rerun: still in flight
    done = ps.acknowledge(ops_of(leave), now=NOW)  # no echo: ACKed as a duplicate
    assert not sends(done)
    assert ps.own_members == {}


def test_RTP17i_update_in_flight_defers_reentry_and_its_echo_settles_it() -> None:
    """RTP17i + intent: with an UPDATE in flight, a non-resumed ATTACHED does not re-enter the
    older own-map data; the resent update's echo after the ATTACHED shows it was applied, so
    its ACK re-enters nothing."""
    ps = make_set()
    echo(ps, ps.enter(1, now=NOW))
    update = ps.update(2, now=NOW)
    ps.receive(detached(), now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert not sends(out)
    done = echo(ps, update, serial=1)
    assert not sends(done)
    assert ps.own_members[ME].data == 2


def test_RTP17i_deduplicated_enter_acked_without_echo_is_reentered() -> None:
    """RTP17i + intent rule 4: an ENTER sent before a non-resumed ATTACHED and ACKed
    with no echo since (a resend the server deduplicated after losing its effect) is re-entered
    by the ACK, with its data and extras and no id."""
    ps = make_set()
    enter = ps.enter("hello", extras={"headers": {"k": "v"}}, now=NOW)
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert not sends(out)
    done = ps.acknowledge(ops_of(enter), now=NOW)
    assert isinstance(done.events[0], OperationSucceeded)
    (item,) = _reentries(done)
    assert (item.action, item.client_id, item.id, item.data) == (ENTER, ME, None, "hello")
    assert item.extras == {"headers": {"k": "v"}}
    (op,) = ops_of(done)
    assert op.reentry
    assert op.client_id == ME


def test_RTP17i_resumed_attached_leaves_an_enter_in_flight_to_its_resend() -> None:
    """RTP17i + intent: after a RESUMED ATTACHED the server kept its state, so an ENTER in
    flight ACKed without an echo (deduplicated) is recorded but not re-entered."""
    ps = make_set()
    enter = ps.enter("hello", now=NOW)
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    assert not sends(ps.receive(attached(resumed=True), now=NOW))
    done = ps.acknowledge(ops_of(enter), now=NOW)
    assert not sends(done)
    assert ps.own_members[ME].data == "hello"


def test_RTP17i_deferred_reentry_uses_the_latest_operation_only() -> None:
    """RTP17i + intent: with an ENTER then an UPDATE in flight, the deduplicated pair re-enters
    once, with the update's data."""
    ps = make_set()
    enter = ps.enter(1, now=NOW)
    update = ps.update(2, now=NOW)
    ps.receive(detached(), now=NOW)
    ps.receive(attached(), now=NOW)
    assert not sends(ps.acknowledge(ops_of(enter), now=NOW))
    done = ps.acknowledge(ops_of(update), now=NOW)
    assert [(p.data, p.id) for p in _reentries(done)] == [(2, None)]


def test_RTP17i_deferred_reentry_not_sent_unless_attached() -> None:
    """RTP17i + intent rule 4: if the channel is not ATTACHED any more when the ACK comes, the
    recorded own member is re-entered by the next ATTACHED instead."""
    ps = make_set()
    enter = ps.enter("x", now=NOW)
    ps.receive(detached(), now=NOW)
    ps.receive(attached(), now=NOW)
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    assert not sends(ps.acknowledge(ops_of(enter), now=NOW))
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert [(p.client_id, p.data, p.id) for p in _reentries(out)] == [(ME, "x", None)]


def test_RTP5a_operations_in_flight_before_a_clear_carry_no_intent() -> None:
    """RTP5a + intent: an ENTER in flight when DETACHED clears both maps is not recorded by its
    later ACK, and nothing is re-entered on the next attach."""
    ps = make_set()
    enter = ps.enter("x", now=NOW)
    ps.detach(now=NOW)
    ps.receive(detached(), now=NOW)
    ps.attach(now=NOW)
    assert not sends(ps.receive(attached(), now=NOW))
    assert not sends(ps.acknowledge(ops_of(enter), now=NOW))
    assert ps.own_members == {}


def test_D8_leave_while_suspended_follows_the_intent() -> None:
    """D8 + intent: on SUSPENDED a leave is refused (90001) while an ENTER is in flight (the
    member is present by intent), and is a no-op success while a LEAVE is in flight."""
    ps = make_set()
    enter = ps.enter("x", now=NOW)
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    with pytest.raises(UsageError) as refused:
        ps.leave(now=NOW)
    assert refused.value.code == 90001
    ps.acknowledge(ops_of(enter), now=NOW)
    ps2 = make_set()
    echo(ps2, ps2.enter("x", now=NOW))
    ps2.leave(now=NOW)
    ps2.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    out = ps2.leave(now=NOW)
    assert [type(c) for c in out.events] == [OperationSucceeded]


def test_RTP17_enter_client_acked_without_echo_is_recorded_and_reentered() -> None:
    """RTP17 + intent: an enter_client ACKed without its echo (a deduplicated resend) is
    recorded in the own map without id or timestamp, and a later non-resumed ATTACHED
    re-enters it without an id."""
    ps = make_set(client_id="*", options=RoomOptions(subscribe=False))
    _ack(ps, ps.enter_client("x", "hello", now=NOW))
    recorded = ps.own_members["x"]
    assert (recorded.data, recorded.id, recorded.timestamp) == ("hello", None, None)
    assert recorded.connection_id == MY_CONN
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert [(p.client_id, p.data, p.id) for p in _reentries(out)] == [("x", "hello", None)]


def test_RTP17_leave_acked_without_echo_removes_own_member() -> None:
    """RTP17 + intent: a LEAVE ACKed without its echo removes the own member: no zombie."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW))
    _ack(ps, ps.leave(now=NOW))
    assert ps.own_members == {}
    assert not sends(ps.receive(attached(), now=NOW))


def test_RTP17g_echo_before_ack_is_kept_with_its_id() -> None:
    """RTP17g + intent: an ACK after the echo of the same content keeps the echo, so the
    re-entry still carries the id."""
    ps = make_set()
    echo(ps, ps.enter("x", now=NOW), serial=7)
    assert ps.own_members[ME].id == f"{MY_CONN}:7:0"
    out = ps.receive(attached(), now=NOW)
    assert _reentries(out)[0].id == f"{MY_CONN}:7:0"


def test_RTP17b_later_echo_supersedes_the_recorded_entry() -> None:
    """RTP17b + intent: the recorded entry has no position or timestamp, so any later echo
    replaces it."""
    ps = make_set()
    _ack(ps, ps.enter("x", now=NOW))
    ps.receive(presence(pm(UPDATE, ME, MY_CONN, 0, data="y", ts=1)), now=NOW)
    assert (ps.own_members[ME].data, ps.own_members[ME].id) == ("y", f"{MY_CONN}:0:0")


def test_RTP17_ack_of_latest_update_overrides_an_earlier_operations_echo() -> None:
    """RTP17 + intent: enter(1) and update(2) in flight; only the enter's echo arrives (after
    the update was sent).  The update's ACK without echo still records data 2."""
    ps = make_set()
    enter = ps.enter(1, now=NOW)
    update = ps.update(2, now=NOW)
    ps.receive(presence(pm(ENTER, ME, MY_CONN, 0, data=1)), now=NOW)
    _ack(ps, enter)
    assert ps.own_members[ME].data == 1
    _ack(ps, update)
    assert ps.own_members[ME].data == 2


def test_RTP17_earlier_operation_ack_is_the_fallback_when_the_later_one_fails() -> None:
    """RTP17 + intent: with no echoes, the enter's ACK records data 1; the update's NACK keeps
    it, so the re-entry restores what the server holds."""
    ps = make_set()
    enter = ps.enter(1, now=NOW)
    update = ps.update(2, now=NOW)
    _ack(ps, enter)
    ps.reject(ops_of(update), ErrorInfo(code=40009, status_code=413), now=NOW)
    assert ps.own_members[ME].data == 1
    out = ps.receive(attached(), now=NOW)
    assert [p.data for p in _reentries(out)] == [1]


def test_RTP17_earlier_operation_ack_does_not_override_a_later_echo() -> None:
    """RTP17 + intent: the echoes of enter(1) and update(2) arrived; the enter's late ACK does
    not bring data 1 back."""
    ps = make_set()
    enter = ps.enter(1, now=NOW)
    update = ps.update(2, now=NOW)
    ps.receive(
        presence(pm(ENTER, ME, MY_CONN, 0, data=1), pm(UPDATE, ME, MY_CONN, 1, data=2)), now=NOW
    )
    _ack(ps, enter)
    assert ps.own_members[ME].data == 2
    _ack(ps, update)
    assert ps.own_members[ME].id == f"{MY_CONN}:1:0"


def test_RTP17_out_of_order_ack_of_an_earlier_operation_does_not_override() -> None:
    """RTP17 + intent: if the update's ACK is handled before the enter's (a harness may settle
    in any order), the enter's late ACK does not bring data 1 back."""
    ps = make_set()
    enter = ps.enter(1, now=NOW)
    update = ps.update(2, now=NOW)
    _ack(ps, update)
    _ack(ps, enter)
    assert ps.own_members[ME].data == 2


def _without_presence_subscribe() -> PresenceSet:
    """A room whose ATTACHED grants no PRESENCE_SUBSCRIBE, with our own member entered."""
    ps = make_set(attach=False, options=RoomOptions(subscribe=False))
    ps.attach(now=NOW)
    ps.receive(attached(modes=0x30000), now=NOW)  # PRESENCE | PUBLISH, no PRESENCE_SUBSCRIBE
    echo(ps, ps.enter("here", now=NOW))
    return ps


def test_RTP19a_D13_attached_without_presence_subscribe_keeps_own_members() -> None:
    """D13: without PRESENCE_SUBSCRIBE the server never syncs, so an ATTACHED without
    HAS_PRESENCE (after a resume) says nothing about who is present: the client's own member
    stays, with no leave event, and is re-entered."""
    ps = _without_presence_subscribe()
    ps.set_channel_state(ChannelState.ATTACHING, now=NOW)
    out = ps.receive(attached(resumed=True, modes=0x30000), now=NOW)
    assert presence_events(out) == []
    assert keys(ps) == {(MY_CONN, ME)}
    (frame,) = sends(out)
    assert [(p.action, p.client_id) for p in frame.message.presence or ()] == [(ENTER, ME)]


def test_RTP19a_D13_without_presence_subscribe_other_members_still_leave() -> None:
    """D13 vouches only for the current connection's members the user means to be present:
    a member of an old connection id, or one the user has left, still gets its RTP19a leave."""
    ps = _without_presence_subscribe()
    ps.set_connection("newconn", client_id=ME, now=NOW)  # a failed resume: a new connection id
    out = ps.receive(attached(modes=0x30000), now=NOW)
    assert [(e.action, e.connection_id) for e in presence_events(out)] == [(LEAVE, MY_CONN)]
    assert keys(ps) == set()


def test_RTP19a_with_presence_subscribe_clears_own_members_with_leaves() -> None:
    """RTP19a as specified when PRESENCE_SUBSCRIBE is granted: the server would have synced
    any member, so every member leaves, our own included, and is then re-entered."""
    ps = make_set()
    echo(ps, ps.enter("here", now=NOW))
    out = ps.receive(attached(), now=NOW)
    assert [(e.action, e.client_id) for e in presence_events(out)] == [(LEAVE, ME)]
    assert len(sends(out)) == 1
