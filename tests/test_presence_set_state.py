"""Channel-state effects and frame handling: RTP5a, RTP5b, RTP5f, RTL3a-d, RTL11, RTL11a,
RTL12, RTL13a/b, RTL5k, RTL15b, ERROR -> FAILED, malformed frames, determinism.  Ported from
the UTS ``realtime_presence_channel_state`` spec where the cases are presence-level.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from presence_core import (
    ChannelMode,
    ChannelState,
    ChannelStateChanged,
    ErrorInfo,
    FrameIgnored,
    OperationFailed,
    OperationSucceeded,
    PresenceMessage,
    PresenceSet,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    Send,
    UsageError,
)
from tests.presence_set_support import (
    CH,
    ENTER,
    LEAVE,
    NOW,
    PRESENT,
    attached,
    detached,
    echo,
    keys,
    make_set,
    pm,
    presence,
    presence_events,
    sends,
    state_changes,
    sync,
    with_members,
)

S = ChannelState


def _send_actions(out: Any) -> list[int]:
    return [c.message.action for c in out.commands if isinstance(c, Send)]


def _queued_set() -> tuple[PresenceSet, Any]:
    ps = make_set(attach=False)
    out = ps.enter("q", now=NOW)
    return ps, out.operation


@pytest.mark.parametrize("how", ["server", "connection-closed"])
def test_RTP5a_detached_fails_queued_clears_maps_no_leaves(how: str) -> None:
    """RTP5a: DETACHED fails queued operations, clears both maps and emits no leave."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    echo(ps, ps.enter("x", now=NOW))
    ps.receive(detached(), now=NOW)  # RTL13a -> ATTACHING (maps kept)
    queued = ps.enter("q", now=NOW).operation
    reason = ErrorInfo(code=80017, status_code=400, message="closed")
    if how == "server":
        ps.detach(now=NOW)
        out = ps.receive(detached(error=reason), now=NOW)
    else:
        out = ps.set_channel_state(S.DETACHED, reason=reason, now=NOW)
    assert ps.state is S.DETACHED
    assert not presence_events(out)
    assert ps.get() == []
    assert ps.own_members == {}
    failed = [c for c in out.events if isinstance(c, OperationFailed)]
    assert [(f.operation, f.error) for f in failed] == [(queued, reason)]
    assert ps.pending == ()


def test_RTP5a_error_frame_fails_channel() -> None:
    """RTP5a: an ERROR naming the channel makes it FAILED: queued ops fail, maps cleared."""
    ps, op = _queued_set()
    err = ErrorInfo(code=40160, status_code=401)
    out = ps.receive(ProtocolMessage(action=ProtocolAction.ERROR, channel=CH, error=err), now=NOW)
    assert ps.state is S.FAILED
    assert state_changes(out)[0].reason == err
    assert out.events[1:] == (OperationFailed(operation=op, error=err),)
    again = ps.receive(ProtocolMessage(action=ProtocolAction.ERROR, channel=CH), now=NOW)
    assert isinstance(again.events[0], FrameIgnored)


def test_RTP5f_suspended_fails_queued_keeps_members() -> None:
    """RTP5f: SUSPENDED fails queued ops and keeps the member map; after reattach the sync
    only produces events for real changes (ably-js suspended_preserves_presence)."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 0), pm(ENTER, "c", "c3", 0))
    ps.set_channel_state(S.SUSPENDED, now=NOW)
    assert keys(ps) == {("c1", "a"), ("c2", "b"), ("c3", "c")}
    ps.set_channel_state(S.ATTACHING, now=NOW)
    ps.receive(attached(has_presence=True), now=NOW)
    out = ps.receive(sync("s:", pm(PRESENT, "a", "c1", 0), pm(PRESENT, "b", "c2", 0)), now=NOW)
    assert [(e.action, e.client_id) for e in presence_events(out)] == [(LEAVE, "c")]


def test_RTP5f_RTL11_suspended_fails_queued_ops() -> None:
    """RTL11 + RTP5f: the queue fails on SUSPENDED (default error 90001 without a reason)."""
    ps, op = _queued_set()
    out = ps.set_channel_state(S.SUSPENDED, now=NOW)
    (_changed, failed) = out.events
    assert isinstance(failed, OperationFailed)
    assert failed.operation == op
    assert failed.error.code == 90001
    assert ps.state is S.SUSPENDED


def test_RTL11a_sent_ops_survive_state_changes_and_ack_later() -> None:
    """RTL11a (UTS 'ACK after detach still resolves'): sent ops await their ACK whatever the
    channel state; the ACK still settles them."""
    ps = make_set()
    op = ps.enter(now=NOW).operation
    assert op is not None
    ps.detach(now=NOW)
    out = ps.receive(detached(), now=NOW)
    assert not [c for c in out.events if isinstance(c, OperationFailed)]
    assert ps.pending == (op,)
    assert ps.acknowledge([op], now=NOW).events == (OperationSucceeded(operation=op),)


def test_RTP5b_attached_flushes_queue() -> None:
    """RTP5b (UTS 'ATTACHED flushes queue'): queued ops go out on ATTACHED."""
    ps, op = _queued_set()
    (frame,) = sends(ps.receive(attached(), now=NOW))
    assert frame.operations == (op,)


def test_RTL13a_server_detached_while_attached_reattaches_keeping_maps() -> None:
    """RTL13a: DETACHED while ATTACHED/SUSPENDED: straight to ATTACHING with a new ATTACH
    (91007 arrives this way); both maps are kept."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    echo(ps, ps.enter(now=NOW))
    err = ErrorInfo(code=91007, status_code=500)
    out = ps.receive(detached(error=err), now=NOW)
    assert ps.state is S.ATTACHING
    assert _send_actions(out) == [ProtocolAction.ATTACH]
    assert state_changes(out)[0].reason == err
    assert ps.is_user_present("a")
    assert ps.own_members


def test_RTL13b_detached_while_attaching_suspends() -> None:
    """RTL13b: DETACHED in reply to our ATTACH: SUSPENDED, queued ops fail (RTP5f); retrying
    is the owner's job (no timers in the reducer)."""
    ps, _ = _queued_set()
    out = ps.receive(detached(), now=NOW)
    assert ps.state is S.SUSPENDED
    assert [type(c) for c in out.events if not isinstance(c, ChannelStateChanged)] == [
        OperationFailed
    ]


def test_RTL12_attached_while_attached_resumed_is_silent() -> None:
    """RTL12: an extra ATTACHED with RESUMED while ATTACHED changes nothing."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    before = ps.snapshot()
    assert not ps.receive(attached(resumed=True), now=NOW)
    assert ps.snapshot() == before


def test_RTL3c_connection_suspended() -> None:
    """RTL3c: ATTACHING/ATTACHED channels become SUSPENDED; others are unchanged."""
    ps = make_set()
    out = ps.set_channel_state(S.SUSPENDED, now=NOW)
    assert [(c.previous, c.current) for c in state_changes(out)] == [(S.ATTACHED, S.SUSPENDED)]
    idle = make_set(attach=False)
    assert not idle.set_channel_state(S.SUSPENDED, now=NOW)
    assert idle.state is S.INITIALIZED


def test_RTL3a_RTL3b_connection_failed_or_closed() -> None:
    """RTL3a/RTL3b: FAILED/DETACHED from the connection clear the maps (RTP5a)."""
    for target in (S.FAILED, S.DETACHED):
        ps = with_members(pm(ENTER, "a", "c1", 0))
        out = ps.set_channel_state(target, now=NOW)
        assert ps.state is target
        assert ps.get() == []
        assert not presence_events(out)
    idle = make_set(attach=False)
    assert not idle.set_channel_state(S.FAILED, now=NOW)


def test_RTL3d_connected_reattaches() -> None:
    """RTL3d: on CONNECTED, ATTACHED/ATTACHING/SUSPENDED channels (re)send ATTACH."""
    for prepare in (S.ATTACHED, S.ATTACHING, S.SUSPENDED):
        ps = make_set(attach=prepare is not S.ATTACHING)
        if prepare is S.ATTACHING:
            ps.attach(now=NOW)
        elif prepare is S.SUSPENDED:
            ps.set_channel_state(S.SUSPENDED, now=NOW)
        out = ps.set_channel_state(S.ATTACHING, now=NOW)
        assert ps.state is S.ATTACHING
        assert _send_actions(out) == [ProtocolAction.ATTACH]
    idle = make_set(attach=False)
    assert not idle.set_channel_state(S.ATTACHING, now=NOW)


def test_RTL3_other_target_states_are_usage_errors() -> None:
    """RTL3 gives only ATTACHING/SUSPENDED/DETACHED/FAILED as connection-caused changes."""
    ps = make_set()
    with pytest.raises(UsageError):
        ps.set_channel_state(S.ATTACHED, now=NOW)


def test_RTL5k_attached_while_detaching_resends_detach() -> None:
    """RTL5k: an ATTACHED while DETACHING is answered with DETACH; the state stays."""
    ps = make_set()
    ps.detach(now=NOW)
    out = ps.receive(attached(), now=NOW)
    assert _send_actions(out) == [ProtocolAction.DETACH]
    assert ps.state is S.DETACHING


def test_RTL5_detach_from_suspended_and_failed() -> None:
    """RTL5j: detach from SUSPENDED is immediate; RTL5b: from FAILED it raises 90001."""
    ps = make_set()
    ps.set_channel_state(S.SUSPENDED, now=NOW)
    ps.detach(now=NOW)
    assert ps.state is S.DETACHED
    ps.set_channel_state(S.FAILED, now=NOW)  # DETACHED is not active: unchanged
    assert ps.state is S.DETACHED
    failed = make_set()
    failed.set_channel_state(S.FAILED, now=NOW)
    with pytest.raises(UsageError) as info:
        failed.detach(now=NOW)
    assert info.value.code == 90001


def test_RTL15b_channel_serial_sent_in_attach_and_cleared_on_detached() -> None:
    """RTL15b/RTL15b2: ATTACH carries the last channelSerial from ATTACHED/PRESENCE (never
    from SYNC); DETACHED clears it."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "a", "c1", 0), channel_serial="p:7"), now=NOW)
    ps.receive(sync("sy:"), now=NOW)
    out = ps.receive(detached(), now=NOW)
    (att,) = [c for c in out.commands if isinstance(c, Send)]
    assert att.message.channel_serial == "p:7"
    ps.receive(attached(), now=NOW)
    ps.detach(now=NOW)
    ps.receive(detached(), now=NOW)
    (att,) = [c for c in ps.attach(now=NOW).commands if isinstance(c, Send)]
    assert att.message.channel_serial is None


def test_unknown_or_unhandled_actions_are_ignored() -> None:
    """Forward compatibility: unknown and non-presence actions give FrameIgnored, no error."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    before = ps.snapshot()
    for action in (99, ProtocolAction.HEARTBEAT, ProtocolAction.ACK):
        out = ps.receive(ProtocolMessage(action=action, channel=CH), now=NOW)
        assert isinstance(out.events[0], FrameIgnored)
    assert ps.snapshot() == before


def test_frame_for_another_channel_is_malformed() -> None:
    """An ATTACHED (or any frame) for another channel raises ProtocolError, no change."""
    ps = make_set()
    before = ps.snapshot()
    with pytest.raises(ProtocolError) as info:
        ps.receive(attached(channel="other"), now=NOW)
    assert info.value.path == "channel"
    assert ps.snapshot() == before


_ids = st.one_of(st.none(), st.text("c1:2x", max_size=8))
_maybe_str = st.one_of(st.none(), st.sampled_from(["a", "b", "c1", "c2"]), st.integers())
_items = st.builds(
    PresenceMessage,
    action=st.sampled_from([*list(range(6)), 77]),
    client_id=_maybe_str,
    connection_id=_maybe_str,
    id=st.one_of(_ids, st.integers()),
    timestamp=st.one_of(st.none(), st.integers(0, 5), st.text(max_size=2), st.booleans()),
)
_frames = st.builds(
    ProtocolMessage,
    action=st.sampled_from([ProtocolAction.PRESENCE, ProtocolAction.SYNC]),
    channel=st.sampled_from([CH, CH, CH, "elsewhere"]),
    channel_serial=st.one_of(st.none(), st.text("s:x", max_size=4)),
    connection_id=st.one_of(st.none(), st.just("c2")),
    id=st.one_of(st.none(), st.just("c2:4")),
    timestamp=st.one_of(st.none(), st.just(3)),
    presence=st.one_of(st.none(), st.lists(_items, max_size=4).map(tuple)),
)


@given(frames=st.lists(_frames, min_size=1, max_size=6))
def test_malformed_frames_raise_and_leave_snapshot_unchanged(frames: list[ProtocolMessage]) -> None:
    """Validate-then-mutate: a frame either applies or raises ProtocolError with the snapshot
    unchanged; nothing else is ever raised."""
    ps = with_members(pm(ENTER, "a", "c1", 0), pm(ENTER, "b", "c2", 1))
    ps.receive(attached(has_presence=True), now=NOW)
    for frame in frames:
        before = ps.snapshot()
        try:
            ps.receive(frame, now=NOW)
        except ProtocolError:
            assert ps.snapshot() == before
        for member in ps.get():
            assert type(member.client_id) is str
            assert type(member.connection_id) is str


def _script(ps: PresenceSet) -> list[Any]:
    """Every output and a few snapshots of a run through queueing, two syncs (the second with
    several residual leaves), re-entry, the RTP19a clear and SUSPENDED."""
    members = [pm(PRESENT, f"user{i}", f"conn{i % 4}", 1, data=i) for i in range(12)]
    outs: list[Any] = []
    outs.append(ps.enter({"a": [1, 2]}, now=NOW))
    outs.append(ps.receive(attached(has_presence=True), now=NOW))
    outs.append(ps.receive(sync("s:1", *members[:6]), now=NOW))
    outs.append(ps.receive(presence(pm(ENTER, "me", "myconn", 0, data={"a": [1, 2]})), now=NOW))
    outs.append(ps.receive(sync("s:", *members[6:], pm(PRESENT, "z", "c3", 0)), now=NOW + 1))
    outs.append(ps.snapshot())
    # D9: a non-resumed ATTACHED reruns the sync; listing two members leaves the rest residual.
    outs.append(ps.receive(attached(has_presence=True), now=NOW + 2))
    outs.append(ps.receive(sync("t:1", pm(PRESENT, "user5", "conn1", 2)), now=NOW + 3))
    outs.append(ps.snapshot())
    outs.append(ps.receive(sync("t:", pm(PRESENT, "user0", "conn0", 2)), now=NOW + 4))
    outs.append(ps.receive(attached(), now=NOW + 5))
    outs.append(ps.set_channel_state(S.SUSPENDED, now=NOW + 6))
    outs.append(ps.snapshot())
    return outs


def _stable(value: Any) -> str:
    """``value`` written out so that it does not depend on the hash seed: the elements of a
    set are sorted (set order is not the reducer's doing); lists, tuples, dicts and attrs
    instances keep their order, because the reducer chose it."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(_stable(v) for v in value)) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_stable(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_stable(k)}: {_stable(v)}" for k, v in value.items()) + "}"
    if attrs.has(type(value)):
        fields = (f"{f.name}={_stable(getattr(value, f.name))}" for f in attrs.fields(type(value)))
        return f"{type(value).__name__}({', '.join(fields)})"
    return repr(value)


def _scripted_run() -> str:
    """The script on a fresh set, written out stably (the child processes print this)."""
    return _stable(_script(make_set(attach=False)))


_HASH_SEEDS = ("0", "1", "12345")


def test_determinism_same_inputs_equal_outputs_under_any_hash_seed() -> None:
    """Determinism (D11): the same inputs give equal Outputs and snapshots, in one process and
    in processes with different ``PYTHONHASHSEED`` values, so nothing depends on the order in
    which a set of strings is iterated."""
    assert _script(make_set(attach=False)) == _script(make_set(attach=False))
    code = (
        f"import sys; sys.path[:0] = {sys.path!r}; "
        "from tests.test_presence_set_state import _scripted_run; print(_scripted_run())"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in _HASH_SEEDS
    ]
    results = [child.communicate(timeout=60) for child in children]
    for child, (_, err) in zip(children, results, strict=True):
        assert child.returncode == 0, err
    expected = _scripted_run() + "\n"
    assert [out for out, _ in results] == [expected] * len(_HASH_SEEDS)


def test_ABSENT_never_visible_after_any_sync_step() -> None:
    """ABSENT entries never appear in get() or is_user_present."""
    ps = with_members(pm(ENTER, "a", "c1", 0))
    ps.receive(sync("s:x"), now=NOW)
    ps.receive(presence(pm(LEAVE, "a", "c1", 1), pm(LEAVE, "g", "c9", 1)), now=NOW)
    assert ps.get() == []
    assert not ps.is_user_present("a")
    assert not ps.is_user_present("g")
    absent = {k for k, _ in ps.snapshot().members}
    assert absent == {"absent"}


def test_RTL4m_granted_modes_are_the_mode_bits_of_the_last_attached() -> None:
    """RTL4m: ATTACHED's mode bits (not its HAS_PRESENCE/RESUMED flags) are the granted modes."""
    ps = make_set(attach=False)
    before = ps.granted_modes
    ps.attach(now=NOW)
    ps.receive(attached(has_presence=True, resumed=True), now=NOW)
    assert (before, ps.granted_modes) == (None, ChannelMode(0xF0000))
    granted = ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE
    ps.receive(
        ProtocolMessage(action=ProtocolAction.ATTACHED, channel=CH, flags=int(granted)),
        now=NOW,
    )
    assert ps.granted_modes == granted
