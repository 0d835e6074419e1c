"""The channel state table: every (state, input) pair, and random walks through it.

Each pair is either a row of the table, and the PresenceSet ends in the row's next state, or it
is missing, and the PresenceSet refuses it the way the input's kind defines, changing nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from presence_core import (
    ChannelSettings,
    ChannelState,
    ChannelStateChanged,
    ErrorInfo,
    FrameIgnored,
    Operation,
    OperationFailed,
    Output,
    PresenceSet,
    ProtocolAction,
    ProtocolMessage,
    Send,
    SendMessage,
    SendPresence,
    UsageError,
)
from presence_core._channel_state import (
    LOCAL_INPUTS,
    REFUSAL,
    TRANSITIONS,
    ChannelInput,
    InputKind,
    attached_input,
)
from tests.presence_set_support import (
    CH,
    ENTER,
    NOW,
    attached,
    detached,
    echo,
    make_set,
    pm,
    presence,
    state_of,
)

S = ChannelState
ERROR = ErrorInfo(code=90000, status_code=400, message="channel error")
RULE_ID = re.compile(r"\b(RT[A-Z]\d+[a-z0-9]*|D\d+)\b")


def _error_frame() -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ERROR, channel=CH, error=ERROR)


def _attached_frame(inp: ChannelInput) -> ProtocolMessage:
    return attached(
        resumed=inp in (ChannelInput.ATTACHED_RESUMED, ChannelInput.ATTACHED_RESUMED_HAS_PRESENCE),
        has_presence=inp
        in (ChannelInput.ATTACHED_HAS_PRESENCE, ChannelInput.ATTACHED_RESUMED_HAS_PRESENCE),
    )


def apply(ps: PresenceSet, inp: ChannelInput) -> Output:
    """Feed one table input to ``ps`` through its public API."""
    if inp is ChannelInput.ATTACH:
        return ps.attach(now=NOW)
    if inp is ChannelInput.DETACH:
        return ps.detach(now=NOW)
    if inp is ChannelInput.ENTER:
        return ps.enter("x", now=NOW)
    if inp is ChannelInput.UPDATE:
        return ps.update("y", now=NOW)
    if inp is ChannelInput.LEAVE:
        return ps.leave(now=NOW)
    if inp is ChannelInput.PUBLISH:
        return ps.publish("typing", {"on": True}, now=NOW)
    if inp is ChannelInput.DETACHED:
        return ps.receive(detached(), now=NOW)
    if inp is ChannelInput.ERROR:
        return ps.receive(_error_frame(), now=NOW)
    if inp is ChannelInput.TIMEOUT:
        deadline = ps.next_deadline()
        return ps.tick(now=NOW if deadline is None else deadline)
    if inp.kind is InputKind.FRAME:
        return ps.receive(_attached_frame(inp), now=NOW)
    (target,) = [state for state, local in LOCAL_INPUTS.items() if local is inp]
    return ps.set_channel_state(target, now=NOW)


def _to(*steps: Callable[[PresenceSet], object]) -> Callable[[], PresenceSet]:
    def build() -> PresenceSet:
        ps = make_set(attach=False)
        for step in steps:
            step(ps)
        return ps

    return build


def _attach(ps: PresenceSet) -> object:
    return ps.attach(now=NOW)


def _attached(ps: PresenceSet) -> object:
    return ps.receive(attached(), now=NOW)


def _detach(ps: PresenceSet) -> object:
    return ps.detach(now=NOW)


#: A recipe per state, from a new PresenceSet through public calls only.
REACH: dict[ChannelState, Callable[[], PresenceSet]] = {
    S.INITIALIZED: _to(),
    S.ATTACHING: _to(_attach),
    S.ATTACHED: _to(_attach, _attached),
    S.DETACHING: _to(_attach, _attached, _detach),
    S.DETACHED: _to(_attach, _attached, _detach, lambda ps: ps.receive(detached(), now=NOW)),
    S.SUSPENDED: _to(_attach, _attached, lambda ps: ps.set_channel_state(S.SUSPENDED, now=NOW)),
    S.FAILED: _to(lambda ps: ps.receive(_error_frame(), now=NOW)),
}

PAIRS = [(state, inp) for state in ChannelState for inp in ChannelInput]


def check_refused(ps: PresenceSet, inp: ChannelInput) -> None:
    """A pair missing from the table is refused as its input's kind defines; nothing changes."""
    before = ps.snapshot()
    if inp.kind is InputKind.USER:
        with pytest.raises(UsageError) as refused:
            apply(ps, inp)
        assert refused.value.code == 90001
    elif inp.kind is InputKind.FRAME:
        out = apply(ps, inp)
        assert [type(e) for e in out.events] == [FrameIgnored]
        assert not out.commands
    else:
        assert not apply(ps, inp)
    assert ps.snapshot() == before


def test_REACH_recipes_reach_their_states() -> None:
    for state, build in REACH.items():
        assert build().state is state


#: What each pair must do, written apart from the table: the next state, "!" when a
#: ChannelStateChanged event comes out, then the frames sent (+A ATTACH, +D DETACH, +P
#: PRESENCE, +M MESSAGE); "-" when the pair is refused.  Columns: INITIALIZED, ATTACHING, ATTACHED,
#: DETACHING, DETACHED, SUSPENDED, FAILED.  A new PresenceSet has nothing queued and no own
#: member, so ATTACHED sends no PRESENCE here.
EXPECTED = {
    ChannelInput.ATTACH: "AG!+A AG AD DG AG!+A AG!+A AG!+A",
    ChannelInput.DETACH: "I DG!+D DG!+D DG DD DD! -",
    ChannelInput.ENTER: "AG!+A AG AD+P - AG!+A - -",
    ChannelInput.UPDATE: "AG!+A AG AD+P - AG!+A - -",
    ChannelInput.LEAVE: "I AG AD+P DG DD S F",
    ChannelInput.PUBLISH: "AG!+A AG AD+M - AG!+A - -",
    ChannelInput.ATTACHED: "AD! AD! AD! DG+D DD+D AD! -",
    ChannelInput.ATTACHED_HAS_PRESENCE: "AD! AD! AD! DG+D DD+D AD! -",
    ChannelInput.ATTACHED_RESUMED: "AD! AD! AD DG+D DD+D AD! -",
    ChannelInput.ATTACHED_RESUMED_HAS_PRESENCE: "AD! AD! AD DG+D DD+D AD! -",
    ChannelInput.DETACHED: "- S! AG!+A DD! - AG!+A -",
    ChannelInput.ERROR: "F! F! F! F! F! F! -",
    ChannelInput.TO_ATTACHING: "- AG+A AG!+A DG+D - AG!+A -",
    ChannelInput.TO_SUSPENDED: "- S! S! - - - -",
    ChannelInput.TO_DETACHED: "- DD! DD! DD! - DD! -",
    ChannelInput.TO_FAILED: "- F! F! F! - F! -",
    ChannelInput.TIMEOUT: "- S! - AD! - AG!+A -",
}
SHORT = {
    S.INITIALIZED: "I",
    S.ATTACHING: "AG",
    S.ATTACHED: "AD",
    S.DETACHING: "DG",
    S.DETACHED: "DD",
    S.SUSPENDED: "S",
    S.FAILED: "F",
}
FRAMES = {
    ProtocolAction.ATTACH: "+A",
    ProtocolAction.DETACH: "+D",
    ProtocolAction.PRESENCE: "+P",
    ProtocolAction.MESSAGE: "+M",
}


def outcome(ps: PresenceSet, out: Output) -> str:
    """The EXPECTED notation for what one input did."""
    changed = "!" if any(isinstance(e, ChannelStateChanged) for e in out.events) else ""
    sent = "".join(
        FRAMES[ProtocolAction(c.message.action)]
        for c in out.commands
        if isinstance(c, Send | SendPresence | SendMessage)
    )
    return SHORT[ps.state] + changed + sent


@pytest.mark.parametrize(("state", "inp"), PAIRS, ids=[f"{s.name}-{i.name}" for s, i in PAIRS])
def test_channel_state_table_every_pair(state: ChannelState, inp: ChannelInput) -> None:
    """RTL2: every (state, input) pair does what EXPECTED says, through the table or a refusal."""
    expected = EXPECTED[inp].split()[list(ChannelState).index(state)]
    ps = REACH[state]()
    cell = TRANSITIONS.get((state, inp))
    assert (cell is None) == (expected == "-")
    if cell is None:
        check_refused(ps, inp)
        return
    assert outcome(ps, apply(ps, inp)) == expected, cell.rule
    assert ps.state is (cell.next_state or S.ATTACHED)  # REACH detaches from ATTACHED


def test_channel_state_table_rows_name_their_rule_and_handler() -> None:
    for (state, inp), cell in TRANSITIONS.items():
        assert RULE_ID.search(cell.rule), (state, inp, cell.rule)
        assert callable(getattr(PresenceSet, cell.handler, None)), cell.handler
    assert set(REFUSAL) == set(InputKind)


def test_channel_state_table_leave_by_intent_refuses_only_while_present() -> None:
    """D8: leave on SUSPENDED, DETACHING or FAILED refuses (90001) only if present."""
    for state in (S.SUSPENDED, S.DETACHING, S.FAILED):
        assert TRANSITIONS[(state, ChannelInput.LEAVE)].handler == "_h_leave_by_intent"
    ps = make_set()
    echo(ps, ps.enter("here", now=NOW))
    ps.set_channel_state(S.SUSPENDED, now=NOW)
    before = ps.snapshot()
    with pytest.raises(UsageError) as refused:
        ps.leave(now=NOW)
    assert refused.value.code == 90001
    assert ps.snapshot() == before


def test_attached_input_reads_both_flags() -> None:
    assert {
        attached_input(resumed=r, has_presence=h) for r in (False, True) for h in (False, True)
    } == {i for i in ChannelInput if i.name.startswith("ATTACHED")}


class ChannelWalk(RuleBasedStateMachine):
    """Random walks through the table, with ACKs so that own members (and leave refusals) occur.

    After every input the state is the one the table predicts, or the input was refused as its
    kind defines and the whole snapshot is unchanged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ps = make_set(attach=False)
        self.unacked: list[Operation] = []
        # RTL4h, modelled apart from the reducer: attach() while DETACHING waits for the detach.
        self.attach_waiting = False
        # RTL5f: the state a detach started from, where a timed-out detach returns.
        self.detach_from = S.ATTACHED

    @rule(inp=st.sampled_from(ChannelInput))
    def step(self, inp: ChannelInput) -> None:
        state = self.ps.state
        cell = TRANSITIONS.get((state, inp))
        if cell is None:
            check_refused(self.ps, inp)
            return
        before = self.ps.snapshot()
        refused: UsageError | None = None
        out = Output()
        try:
            out = apply(self.ps, inp)
        except UsageError as error:
            refused = error
        if refused is not None:
            # Only the leave-by-intent cells may refuse, and then nothing changes.
            assert cell.handler == "_h_leave_by_intent"
            assert refused.code == 90001
            assert self.ps.snapshot() == before
            return
        expected = cell.next_state if cell.next_state is not None else self.detach_from
        if inp is ChannelInput.DETACH and expected is S.DETACHING and state is not S.DETACHING:
            self.detach_from = state
        if state is S.DETACHING:
            if inp is ChannelInput.ATTACH:
                self.attach_waiting = True
            elif inp is ChannelInput.DETACH:
                self.attach_waiting = False
            elif expected is not S.DETACHING:
                if self.attach_waiting and expected is S.DETACHED:
                    expected = S.ATTACHING  # the detach completed; the waiting attach runs
                    assert any(
                        isinstance(c, Send) and c.message.action == ProtocolAction.ATTACH
                        for c in out.commands
                    )
                self.attach_waiting = False
        assert self.ps.state is expected, cell.rule
        self.unacked += [
            op for c in out.commands if isinstance(c, SendPresence) for op in c.operations
        ]

    @rule()
    def ack(self) -> None:
        ops, self.unacked = self.unacked, []
        out = self.ps.acknowledge(ops, now=NOW)
        self.unacked += [
            op for c in out.commands if isinstance(c, SendPresence) for op in c.operations
        ]

    @invariant()
    def maps_are_empty_when_cleared(self) -> None:
        if self.ps.state in (S.DETACHED, S.FAILED):
            assert not self.ps.get()
            assert not self.ps.own_members  # RTP5a: nothing left to re-enter
            assert self.ps.sync_complete


TestChannelWalk = ChannelWalk.TestCase


def _detaching_with_own_member() -> PresenceSet:
    ps = make_set()
    echo(ps, ps.enter("here", now=NOW))
    ps.detach(now=NOW)
    return ps


def test_RTL4h_attach_while_detaching_waits_for_detached() -> None:
    """RTL4h: attach() while DETACHING sends nothing; the DETACHED applies RTP5a (both maps
    cleared) and then the ATTACH goes out, so the next ATTACHED re-enters nobody."""
    ps = _detaching_with_own_member()
    assert not ps.attach(now=NOW)
    assert ps.state is S.DETACHING
    out = ps.receive(detached(), now=NOW)
    assert [(e.previous, e.current) for e in out.events if isinstance(e, ChannelStateChanged)] == [
        (S.DETACHING, S.DETACHED),
        (S.DETACHED, S.ATTACHING),
    ]
    assert [c.message.action for c in out.commands if isinstance(c, Send)] == [
        ProtocolAction.ATTACH
    ]
    assert ps.own_members == {}
    assert not [c for c in ps.receive(attached(), now=NOW).commands if isinstance(c, SendPresence)]
    assert state_of(ps) is S.ATTACHED


def test_RTL4h_detach_and_attach_while_the_detach_was_never_sent() -> None:
    """RTL4h with the connection down: the DETACH goes out on CONNECTED (RTL3d), and the
    attach still waits for its DETACHED."""
    ps = _detaching_with_own_member()
    ps.attach(now=NOW)
    resent = ps.set_channel_state(S.ATTACHING, now=NOW)
    assert [c.message.action for c in resent.commands if isinstance(c, Send)] == [
        ProtocolAction.DETACH
    ]
    assert ps.state is S.DETACHING
    ps.receive(detached(), now=NOW)
    assert state_of(ps) is S.ATTACHING
    assert ps.own_members == {}


def test_RTL4h_detach_again_drops_the_waiting_attach() -> None:
    """RTL5: the latest call decides; detach() after attach() while DETACHING ends DETACHED."""
    ps = _detaching_with_own_member()
    ps.attach(now=NOW)
    ps.detach(now=NOW)
    ps.receive(detached(), now=NOW)
    assert ps.state is S.DETACHED


def test_RTL4f_attach_timeout_suspends_and_fails_queued_operations() -> None:
    """RTL4f: no ATTACHED within the request timeout: SUSPENDED with 90007, and the queued
    operations fail with that error (RTL11)."""
    ps = make_set(attach=False)
    queued = ps.enter("x", now=NOW).operation
    assert ps.next_deadline() == NOW + 10_000
    assert not ps.tick(now=NOW + 9_999)
    out = ps.tick(now=NOW + 10_000)
    assert ps.state is S.SUSPENDED
    (changed, failed) = out.events
    assert isinstance(changed, ChannelStateChanged)
    assert changed.reason is not None
    assert changed.reason.code == 90007
    assert failed == OperationFailed(operation=queued, error=changed.reason)  # type: ignore[arg-type]


def test_RTL5f_detach_timeout_returns_to_the_previous_state() -> None:
    """RTL5f: no DETACHED within the request timeout: back to ATTACHED, members kept."""
    ps = make_set()
    ps.receive(presence(pm(ENTER, "bob", "c2")), now=NOW)
    ps.detach(now=NOW)
    out = ps.tick(now=NOW + 10_000)
    assert [(e.previous, e.current) for e in out.events if isinstance(e, ChannelStateChanged)] == [
        (S.DETACHING, S.ATTACHED)
    ]
    assert state_of(ps) is S.ATTACHED
    assert ps.next_deadline() is None
    assert [m.client_id for m in ps.get()] == ["bob"]


def test_RTL13b_suspended_channel_attaches_again_after_the_retry_timeout() -> None:
    """RTL13b: a SUSPENDED channel sends ATTACH again after channelRetryTimeout, and a
    custom ChannelSettings changes both timeouts."""
    ps = PresenceSet(
        CH, client_id="me", settings=ChannelSettings(request_timeout=500, channel_retry_timeout=700)
    )
    ps.set_connection("conn", client_id="me", now=NOW)
    ps.attach(now=NOW)
    ps.receive(detached(), now=NOW + 1)  # the attach was refused: SUSPENDED (RTL13b)
    assert ps.next_deadline() == NOW + 701
    out = ps.tick(now=NOW + 701)
    assert [c.message.action for c in out.commands if isinstance(c, Send)] == [
        ProtocolAction.ATTACH
    ]
    assert state_of(ps) is S.ATTACHING
    assert ps.next_deadline() == NOW + 1_201


def test_channel_timer_only_in_attaching_detaching_and_suspended() -> None:
    """The channel keeps a timer exactly while ATTACHING, DETACHING or SUSPENDED."""
    for state, build in REACH.items():
        ps = build()
        has_timer = state in (S.ATTACHING, S.DETACHING, S.SUSPENDED)
        assert (ps.next_deadline() is not None) == has_timer, state


def test_RTL13b_RTB1_suspended_retries_back_off_with_jitter() -> None:
    """RTL13b + RTB1: each retry of a SUSPENDED channel waits channelRetryTimeout times the
    backoff (1, 4/3, 5/3, 2, 2 ...) and the jitter coefficient (1 - u/5); ATTACHED resets it."""
    ps = PresenceSet(CH, client_id="me", jitter=lambda: 0.5)
    ps.set_connection("conn", client_id="me", now=NOW)
    ps.attach(now=NOW)
    waits = []
    now = NOW
    for _ in range(5):
        ps.receive(detached(), now=now)  # the attach is refused: SUSPENDED (RTL13b)
        deadline = ps.next_deadline()
        assert deadline is not None
        waits.append(deadline - now)
        now = deadline
        ps.tick(now=now)  # attaches again
    assert waits == [13_500, 18_000, 22_500, 27_000, 27_000]
    ps.receive(attached(), now=now)
    ps.receive(detached(), now=now)  # RTL13a: reattaching, not suspended
    ps.receive(detached(), now=now)  # refused again: the backoff starts over
    assert ps.next_deadline() == now + 13_500
