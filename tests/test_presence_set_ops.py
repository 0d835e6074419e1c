"""Outbound operations: RTP8, RTP9, RTP10, RTP14/RTP15, RTP16 with D8, room options and
modes, ACK/NACK settlement.  Ported from the UTS ``realtime_presence_enter`` spec where the
cases are presence-level.

Error model (the PresenceSet module docstring): caller misuse that the reducer can see
before sending (wrong state, option ``enter`` false, bad clientId) raises
:class:`~presence_core.UsageError` and changes nothing; failures the server reports, or that
channel states cause for queued work, settle the operation with ``OperationFailed``.
"""

from __future__ import annotations

from typing import Any

import pytest

from presence_core import (
    ChannelMode,
    ChannelState,
    ErrorInfo,
    OperationFailed,
    OperationSucceeded,
    PresenceSet,
    ProtocolAction,
    RoomOptions,
    Send,
    UsageError,
)
from tests.presence_set_support import (
    CH,
    ENTER,
    LEAVE,
    ME,
    NOW,
    UPDATE,
    attached,
    detached,
    echo,
    make_set,
    sends,
    state_changes,
    state_of,
)


def _attach_sends(out: object) -> list[Send]:
    return [
        c
        for c in out.commands  # type: ignore[attr-defined]
        if isinstance(c, Send) and c.message.action == ProtocolAction.ATTACH
    ]


def test_RTP8a_RTP8c_enter_wire_shape_without_client_id() -> None:
    """RTP8a/RTP8c: one PRESENCE frame with one ENTER item, data, and no clientId."""
    ps = make_set()
    out = ps.enter({"status": "busy"}, extras={"headers": {"h": "1"}}, now=NOW)
    (frame,) = sends(out)
    assert frame.message.action == ProtocolAction.PRESENCE
    assert frame.message.channel == CH
    assert frame.message.msg_serial is None  # numbered by the connection owner
    (item,) = frame.message.presence or ()
    assert (item.action, item.client_id, item.data) == (ENTER, None, {"status": "busy"})
    assert item.encoding is None  # the codec encodes at the wire boundary
    assert item.extras == {"headers": {"h": "1"}}
    assert frame.operations == (out.operation,)


def test_RTP9_RTP10_update_and_leave_wire_shape() -> None:
    """RTP9a/RTP9d and RTP10a/RTP10c: UPDATE and LEAVE without clientId."""
    ps = make_set()
    up = sends(ps.update("d", now=NOW))[0].message.presence or ()
    lv = sends(ps.leave("bye", now=NOW))[0].message.presence or ()
    assert [(p.action, p.client_id, p.data) for p in up + lv] == [
        (UPDATE, None, "d"),
        (LEAVE, None, "bye"),
    ]


def test_RTP16a_attached_sends_each_operation_in_its_own_frame() -> None:
    """RTP16a: on ATTACHED each operation goes out at once, one op per frame."""
    ps = make_set()
    a = ps.enter(now=NOW)
    b = ps.update(now=NOW)
    assert len(sends(a)) == len(sends(b)) == 1
    assert a.operation != b.operation
    assert ps.pending == (a.operation, b.operation)


def test_RTP8d_RTP16b_enter_on_initialized_attaches_and_queues() -> None:
    """RTP8d/RTP16b: enter on INITIALIZED sends ATTACH with the mode flags and queues; the
    queued op goes out on ATTACHED (RTP5b)."""
    ps = make_set(attach=False)
    out = ps.enter("x", now=NOW)
    assert ps.state is ChannelState.ATTACHING
    (att,) = _attach_sends(out)
    assert att.message.flags == int(RoomOptions().modes)
    assert not sends(out)
    assert ps.pending == (out.operation,)
    flushed = ps.receive(attached(), now=NOW)
    (frame,) = sends(flushed)
    assert frame.operations == (out.operation,)


def test_RTP16b_attaching_queues_in_order() -> None:
    """RTP16b: on ATTACHING operations queue (no second ATTACH) and go out in order."""
    ps = make_set(attach=False, client_id="*")
    ps.attach(now=NOW)
    outs = [ps.enter_client(f"u{i}", now=NOW) for i in range(10)]  # ably-js multiple_pending
    assert all(not o.commands for o in outs)
    (frame,) = sends(ps.receive(attached(), now=NOW))
    assert [p.client_id for p in frame.message.presence or ()] == [f"u{i}" for i in range(10)]


def test_RTP8g_D8_enter_on_detached_attaches_implicitly() -> None:
    """RTP8g asserts D8: enter on a DETACHED room attaches it implicitly and queues the enter
    (a deliberate deviation from the spec's error, as ably-js does)."""
    ps = make_set()
    ps.detach(now=NOW)
    ps.receive(detached(), now=NOW)
    assert ps.state is ChannelState.DETACHED
    out = ps.enter("again", now=NOW)
    assert state_of(ps) is ChannelState.ATTACHING
    assert _attach_sends(out)
    assert [c.current for c in state_changes(out)] == [ChannelState.ATTACHING]
    assert ps.pending == (out.operation,)


@pytest.mark.parametrize("state", ["suspended", "detaching", "failed"])
def test_RTP16c_D8_enter_refused_with_90001(state: str) -> None:
    """RTP16c asserts D8: on SUSPENDED, DETACHING or FAILED enter/update raise 90001 and
    nothing changes."""
    ps = make_set()
    if state == "suspended":
        ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    elif state == "detaching":
        ps.detach(now=NOW)
    else:
        ps.set_channel_state(ChannelState.FAILED, now=NOW)
    before = ps.snapshot()
    for call in (ps.enter, ps.update):
        with pytest.raises(UsageError) as info:
            call("x", now=NOW)
        assert info.value.code == 90001
    with pytest.raises(UsageError):
        ps.enter_client("bob", now=NOW)
    assert ps.snapshot() == before


def test_RTP16c_D8_leave_never_attaches() -> None:
    """RTP16c asserts D8: leave on an unattached room where we are not present succeeds at
    once as a no-op and sends nothing."""
    for prepare in ("initialized", "detached", "failed", "suspended"):
        ps = make_set(attach=prepare != "initialized")
        if prepare == "detached":
            ps.detach(now=NOW)
            ps.receive(detached(), now=NOW)
        elif prepare in ("failed", "suspended"):
            ps.set_channel_state(ChannelState(prepare), now=NOW)
        state = ps.state
        out = ps.leave(now=NOW)
        assert out.operation is not None
        assert out.events == (OperationSucceeded(operation=out.operation),), prepare
        assert ps.state is state
        assert ps.pending == ()


def test_RTP10_leave_while_suspended_and_present_is_refused() -> None:
    """D8/RTP16c: SUSPENDED while in the own-member map: leave raises 90001."""
    ps = make_set()
    echo(ps, ps.enter(now=NOW))
    ps.set_channel_state(ChannelState.SUSPENDED, now=NOW)
    with pytest.raises(UsageError) as info:
        ps.leave(now=NOW)
    assert info.value.code == 90001


def test_RTP10_leave_on_attaching_is_queued() -> None:
    """RTP10/RTP16b: leave on ATTACHING queues (it does not attach by itself)."""
    ps = make_set(attach=False)
    ps.attach(now=NOW)
    out = ps.leave(now=NOW)
    assert not out.commands
    assert ps.pending == (out.operation,)


def test_RTP8j_anonymous_or_wildcard_client_refused_when_connected() -> None:
    """RTP8j: once connected with a clientId of None or '*', enter/update/leave raise 40012."""
    for client in (None, "*"):
        ps = make_set(client_id=client)
        before = ps.snapshot()
        for call in (ps.enter, ps.update, ps.leave):
            with pytest.raises(UsageError) as info:
                call(now=NOW)
            assert info.value.code == 40012
        assert ps.snapshot() == before


def test_RTP8j_unknown_client_id_before_connected_is_allowed() -> None:
    """RTP8j: before CONNECTED the clientId may still arrive; enter is queued, not refused."""
    ps = PresenceSet(CH)
    out = ps.enter(now=NOW)
    assert ps.state is ChannelState.ATTACHING
    assert ps.pending == (out.operation,)


def test_RTP14_RTP15_enter_update_leave_client() -> None:
    """RTP14/RTP15: the *_client operations carry the clientId on the wire."""
    ps = make_set(client_id="*")
    items = [
        sends(call("bob", "d", now=NOW))[0].message.presence[0]  # type: ignore[index]
        for call in (ps.enter_client, ps.update_client, ps.leave_client)
    ]
    assert [(p.action, p.client_id) for p in items] == [
        (ENTER, "bob"),
        (UPDATE, "bob"),
        (LEAVE, "bob"),
    ]


def test_RTP15f_mismatched_client_id_raises_40012_and_keeps_usable() -> None:
    """RTP15f: a concrete library clientId and a different argument: 40012, nothing changes,
    the set stays usable."""
    ps = make_set(client_id="alice")
    before = ps.snapshot()
    with pytest.raises(UsageError) as info:
        ps.enter_client("bob", now=NOW)
    assert info.value.code == 40012
    assert ps.snapshot() == before
    assert sends(ps.enter_client("alice", now=NOW))


@pytest.mark.parametrize("bad", ["", "*"])
def test_RTP15_invalid_client_id_argument(bad: str) -> None:
    """RTP15: enter_client needs a concrete clientId."""
    ps = make_set(client_id="*")
    with pytest.raises(UsageError):
        ps.enter_client(bad, now=NOW)


def test_RTP15_enter_client_does_not_disturb_own_enter() -> None:
    """RTP14/RTP15 (UTS): enter_client members and the own enter coexist in both maps."""
    ps = make_set(client_id=ME)
    echo(ps, ps.enter("mine", now=NOW), serial=0)
    echo(ps, ps.enter_client(ME, "again", now=NOW), serial=1)
    ps2 = make_set(client_id="*")
    echo(ps2, ps2.enter_client("bot1", "b1", now=NOW), serial=0)
    echo(ps2, ps2.enter_client("bot2", "b2", now=NOW), serial=1)
    assert {c: m.data for c, m in ps2.own_members.items()} == {"bot1": "b1", "bot2": "b2"}
    assert ps.own_members[ME].data == "again"


def test_RTP15_fifty_members_via_enter_client() -> None:
    """RTP15 (UTS): 50 members entered via enter_client on one connection are all listed."""
    ps = make_set(client_id="*")
    for i in range(50):
        echo(ps, ps.enter_client(f"m{i}", i, now=NOW), serial=i)
    assert len(ps.get()) == 50
    assert len(ps.own_members) == 50


def test_room_option_enter_false_refuses_locally() -> None:
    """Room options (docs/rules.md): enter=False makes enter/update fail locally before anything
    is sent, with a clear error; the ATTACH omits the PRESENCE mode."""
    opts = RoomOptions(enter=False)
    assert not opts.modes & ChannelMode.PRESENCE
    ps = make_set(options=opts)
    before = ps.snapshot()
    for call in (ps.enter, ps.update):
        with pytest.raises(UsageError, match="'enter' is false"):
            call(now=NOW)
    with pytest.raises(UsageError):
        ps.enter_client(ME, now=NOW)
    assert ps.snapshot() == before


def test_room_option_subscribe_maps_to_mode_flag() -> None:
    """RTL4l + room options (docs/rules.md): ATTACH requests explicit mode flags, and
    subscribe=False drops PRESENCE_SUBSCRIBE; the option is kept for the async client (102108
    on subscribe)."""
    ps = make_set(attach=False, options=RoomOptions(subscribe=False))
    (att,) = _attach_sends(ps.attach(now=NOW))
    flags = att.message.flags or 0
    assert flags & ChannelMode.PRESENCE
    assert not flags & ChannelMode.PRESENCE_SUBSCRIBE
    assert flags & ChannelMode.PUBLISH
    assert flags & ChannelMode.SUBSCRIBE
    assert not ps.options.subscribe


def test_RTN7_acknowledge_and_reject_settle_once() -> None:
    """RTN7a/b at presence level: an ACK settles once; a duplicate ACK or NACK is ignored."""
    ps = make_set()
    out = ps.enter(now=NOW)
    assert out.operation is not None
    ok = ps.acknowledge([out.operation], now=NOW)
    assert ok.events == (OperationSucceeded(operation=out.operation),)
    assert not ps.acknowledge([out.operation], now=NOW)
    err = ErrorInfo(code=40160, status_code=401)
    assert not ps.reject([out.operation], err, now=NOW)
    out2 = ps.enter(now=NOW)
    assert out2.operation is not None
    assert ps.reject([out2.operation], err, now=NOW).events == (
        OperationFailed(operation=out2.operation, error=err),
    )


def test_RTP8h_nack_fails_the_operation() -> None:
    """RTP8h (UTS enter NACK 40160): the NACK error fails the operation; state unchanged."""
    ps = make_set()
    out = ps.enter(now=NOW)
    assert out.operation is not None
    err = ErrorInfo(code=40160, status_code=401, message="no presence capability")
    res = ps.reject([out.operation], err, now=NOW)
    assert res.events == (OperationFailed(operation=out.operation, error=err),)
    assert not res.commands
    assert ps.state is ChannelState.ATTACHED


@pytest.mark.parametrize(
    ("data", "extras", "code"),
    [
        (object(), None, 40013),
        ({"x": float("nan")}, None, 40013),
        ([float("inf")], None, 40013),
        ("fine", "not a dict", 40000),
        ("fine", {"a": object()}, 40000),
        ("fine", {"a": float("nan")}, 40000),
    ],
    ids=["object", "nan", "inf", "extras-str", "extras-object", "extras-nan"],
)
def test_RTP8_payload_that_cannot_be_encoded_is_refused_at_the_call(
    data: object, extras: Any, code: int
) -> None:
    """RTP8/RTP9/RTP14: data or extras the encoder would refuse raise UsageError at the call
    (40013 for data, 40000 for extras), in every state, and change nothing: queued or sent, it
    would fail in the embedder's encode and be resent on every resume."""
    for ps in (make_set(), make_set(attach=False)):
        before = ps.snapshot()
        for call in (ps.enter, ps.update, ps.leave):
            with pytest.raises(UsageError) as refused:
                call(data, extras=extras, now=NOW)
            assert refused.value.code == code
        with pytest.raises(UsageError):
            ps.enter_client("bot", data, extras=extras, now=NOW)
        assert ps.snapshot() == before


def test_room_option_enter_false_leave_is_a_noop_success() -> None:
    """Room options (docs/rules.md): in a room opened with enter=False nobody is present, so
    leave() succeeds at once and sends nothing (the server would NACK it with 40160)."""
    for ps in (
        make_set(options=RoomOptions(enter=False)),
        make_set(attach=False, options=RoomOptions(enter=False)),
    ):
        before_state = ps.state
        out = ps.leave(now=NOW)
        assert out.operation is not None
        assert out.events == (OperationSucceeded(operation=out.operation),)
        assert not out.commands
        assert ps.state is before_state
        assert ps.pending == ()
