"""The outbox on its own: numbering, pending, holding, resends and failing, by spec id.

The connection tests drive the same rules end to end; these pin the outbox's own contract:
what it numbers, keeps and hands back, in which order.
"""

from __future__ import annotations

import attrs
from hypothesis import given, strategies as st

from presence_core import (
    Command,
    ErrorInfo,
    Operation,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    Send,
)
from presence_core._outbox import Frame, Outbox

A = "a::$chat"
B = "b::$chat"
ERROR = ErrorInfo(code=80002, status_code=503, message="suspended")


def frame(channel: str, op_id: int) -> Frame:
    op = Operation(id=op_id, channel=channel, action=PresenceAction.ENTER)
    message = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=channel,
        presence=(PresenceMessage(action=PresenceAction.ENTER, client_id="alice"),),
    )
    return Frame(channel, message, (op,))


def ids(frames: list[Frame]) -> list[tuple[str, int]]:
    return [(f.channel, f.operations[0].id) for f in frames]


def serials(commands: list[Command] | list[Send]) -> list[int | None]:
    return [c.message.msg_serial for c in commands if isinstance(c, Send)]


def open_outbox(*submitted: Frame) -> tuple[Outbox, list[Command]]:
    outbox = Outbox()
    outbox.open()
    commands: list[Command] = []
    for f in submitted:
        assert outbox.submit(f, commands) is None
    return outbox, commands


def test_RTN7b_open_outbox_numbers_from_zero_and_sends_the_numbered_frame() -> None:
    f = frame(A, 1)
    outbox, commands = open_outbox(f, frame(B, 2), frame(A, 3))
    assert serials(commands) == [0, 1, 2]
    first = commands[0]
    assert isinstance(first, Send)
    assert first.message == attrs.evolve(f.message, msg_serial=0)
    assert f.message.msg_serial is None  # the kept frame stays unnumbered
    assert outbox.serial == 3
    assert outbox.pending_ids() == ((0, A, (1,)), (1, B, (2,)), (2, A, (3,)))


def test_a_new_outbox_holds_until_opened() -> None:
    outbox = Outbox()
    commands: list[Command] = []
    assert outbox.submit(frame(A, 1), commands) is None
    assert commands == []
    assert outbox.holding == 1
    assert outbox.serial == 0


def test_RTL3d2_held_frames_wait_per_channel_in_order_until_released() -> None:
    outbox = Outbox()
    outbox.hold()
    commands: list[Command] = []
    for f in (frame(A, 1), frame(B, 2), frame(A, 3)):
        assert outbox.submit(f, commands) is None
    assert commands == []
    assert outbox.holding == 3
    assert outbox.held_ids() == ((A, (1,)), (A, (3,)), (B, (2,)))
    assert ids(outbox.release(A)) == [(A, 1), (A, 3)]
    assert outbox.release(A) == []
    assert outbox.holding == 1
    assert outbox.held_ids() == ((B, (2,)),)


def test_refusing_outbox_returns_its_error_and_keeps_nothing() -> None:
    outbox = Outbox()
    outbox.refuse(ERROR)
    commands: list[Command] = []
    assert outbox.submit(frame(A, 1), commands) is ERROR
    assert commands == []
    assert outbox.holding == 0
    assert outbox.pending_ids() == ()
    assert outbox.drain() == []


def test_gate_follows_the_last_call() -> None:
    outbox = Outbox()
    outbox.refuse(ERROR)
    outbox.hold()
    assert (outbox.is_open, outbox.refusal) == (False, None)
    outbox.open()
    assert (outbox.is_open, outbox.refusal) == (True, None)
    outbox.refuse(ERROR)
    assert (outbox.is_open, outbox.refusal) == (False, ERROR)


def test_RTN7a_ACK_settles_the_frames_its_serial_and_count_cover() -> None:
    outbox, _ = open_outbox(*(frame(A, i) for i in range(5)))
    assert ids(outbox.settle(1, 1)) == [(A, 1)]
    assert ids(outbox.settle(0, 3)) == [(A, 0), (A, 2)]  # 1 is already settled
    assert [p[0] for p in outbox.pending_ids()] == [3, 4]


def test_RTN7a_duplicate_and_unknown_ACKs_settle_nothing() -> None:
    outbox, _ = open_outbox(frame(A, 1))
    assert len(outbox.settle(0, 1)) == 1
    assert outbox.settle(0, 1) == []
    assert outbox.settle(7, 3) == []


def test_RTN7a_a_count_wider_than_what_is_pending_settles_only_what_is_pending() -> None:
    outbox, _ = open_outbox(*(frame(A, i) for i in range(3)))
    assert ids(outbox.settle(1, 2**40)) == [(A, 1), (A, 2)]
    assert ids(outbox.settle(0, 2**40)) == [(A, 0)]


def test_RTN19a_resend_keeps_the_serials_when_the_connection_was_kept() -> None:
    outbox, _ = open_outbox(*(frame(A, i) for i in range(3)))
    outbox.settle(0, 1)
    outbox.hold()  # transport lost
    outbox.open()
    assert serials(outbox.resend()) == [1, 2]
    assert outbox.serial == 3


def test_RTN15c7_restart_renumbers_pending_frames_from_zero_in_order() -> None:
    outbox, _ = open_outbox(*(frame(A, i) for i in range(4)))
    outbox.settle(1, 1)
    outbox.restart()
    assert outbox.pending_ids() == ((0, A, (0,)), (1, A, (2,)), (2, A, (3,)))
    assert outbox.serial == 3
    resent = outbox.resend()
    assert serials(resent) == [0, 1, 2]
    commands: list[Command] = []
    outbox.submit(frame(B, 9), commands)
    assert serials(commands) == [3]


def test_RTN7e_drain_takes_pending_frames_then_held_ones_by_channel() -> None:
    outbox = Outbox()
    outbox.add_channel(B)
    outbox.add_channel(A)
    outbox.open()
    commands: list[Command] = []
    outbox.submit(frame(A, 1), commands)
    outbox.submit(frame(B, 2), commands)
    outbox.hold()
    outbox.submit(frame(A, 3), commands)  # A holds first, but B was added first
    outbox.submit(frame(B, 4), commands)
    outbox.submit(frame(A, 5), commands)
    assert outbox.held_ids() == ((B, (4,)), (A, (3,)), (A, (5,)))
    assert ids(outbox.drain()) == [(A, 1), (B, 2), (B, 4), (A, 3), (A, 5)]
    assert (outbox.pending_ids(), outbox.held_ids(), outbox.holding) == ((), (), 0)
    assert outbox.serial == 2  # draining does not renumber


@st.composite
def _steps(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    step = st.one_of(
        st.tuples(st.just("submit"), st.sampled_from([0, 1]), st.just(0)),
        st.tuples(st.just("ack"), st.integers(0, 12), st.integers(1, 20)),
        st.tuples(st.just("gate"), st.sampled_from([0, 1]), st.just(0)),
        st.tuples(st.just("release"), st.sampled_from([0, 1]), st.just(0)),
        st.tuples(st.just("restart"), st.just(0), st.just(0)),
    )
    return draw(st.lists(step, max_size=40))


@given(_steps())
def test_every_submitted_frame_comes_back_exactly_once(steps: list[tuple[str, int, int]]) -> None:
    """Settle, release and drain hand each frame back once, and settle matches a plain model."""
    outbox = Outbox()
    model: dict[int, Frame] = {}  # msgSerial -> frame, as the outbox should hold them
    serial = 0
    submitted: list[Frame] = []
    returned: list[Frame] = []
    for kind, a, b in steps:
        if kind == "submit":
            f = frame((A, B)[a], len(submitted))
            submitted.append(f)
            commands: list[Command] = []
            outbox.submit(f, commands)
            if outbox.is_open:
                assert serials(commands) == [serial]
                model[serial] = f
                serial += 1
        elif kind == "ack":
            expected = [model.pop(s) for s in sorted(model) if a <= s < a + b]
            got = outbox.settle(a, b)
            assert got == expected
            returned.extend(got)
        elif kind == "gate" and a:
            outbox.open()
        elif kind == "gate":
            outbox.hold()
        elif kind == "release":
            returned.extend(outbox.release((A, B)[a]))
        else:
            outbox.restart()
            model = dict(enumerate(model[s] for s in sorted(model)))
            serial = len(model)
        assert outbox.serial == serial
        assert [p[0] for p in outbox.pending_ids()] == sorted(model)
    returned.extend(outbox.drain())
    assert sorted(id(f) for f in returned) == sorted(id(f) for f in submitted)


def test_RTP17g1_restart_drops_only_the_ids_stamped_for_the_old_connection() -> None:
    ops = tuple(Operation(id=i, channel=A, action=PresenceAction.ENTER) for i in range(3))
    items = (
        PresenceMessage(action=PresenceAction.ENTER, client_id="a", id="C1:4:0"),
        PresenceMessage(action=PresenceAction.ENTER, client_id="b", id="C10:4:1"),
        PresenceMessage(action=PresenceAction.ENTER, client_id="c"),
    )
    message = ProtocolMessage(action=ProtocolAction.PRESENCE, channel=A, presence=items)
    outbox, _ = open_outbox(Frame(A, message, ops))
    outbox.restart("C1")
    (again,) = outbox.resend()
    assert [item.id for item in again.message.presence or ()] == [None, "C10:4:1", None]
    assert again.message.msg_serial == 0
