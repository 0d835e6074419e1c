"""Channel messages on the presence connection: publish (RTL6) and received MESSAGEs (RTL7).

The test plays the server, as in ``tests/test_connection.py``.  A publish is numbered in the
connection's one msgSerial sequence, is settled by its ACK or NACK like a presence operation,
and needs its room attached, attaching it implicitly (D8).
"""

from __future__ import annotations

from typing import Any

import pytest

from presence_core import (
    ChannelEvents,
    ChannelState,
    ConnectionDetails,
    ErrorInfo,
    FrameIgnored,
    Message,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    PresenceSet,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    SendMessage,
    UsageError,
    decode,
    encode_text,
)
from tests.connection_support import lost, receive
from tests.presence_set_support import CH, make_set
from tests.test_connection import (
    OTHER,
    ROOM,
    RTO,
    ack,
    attached,
    connected,
    nack,
    numbered,
    of_type,
    sent,
    up,
    up_with_rooms,
)

P = ProtocolAction


def messages_sent(out: Output) -> list[ProtocolMessage]:
    return [m for m in sent(out) if m.action == P.MESSAGE]


def handle(out: Output) -> Operation:
    op = out.operation
    assert op is not None
    return op


def incoming(*items: Message, channel: str = ROOM, serial: str | None = None) -> ProtocolMessage:
    return ProtocolMessage(
        action=P.MESSAGE, channel=channel, messages=items, channel_serial=serial, id="srv:1"
    )


# -- publish -----------------------------------------------------------------------------------


def test_RTL6_publish_sends_a_MESSAGE_numbered_with_presence() -> None:
    """RTN7b: presence and messages share one msgSerial sequence across rooms."""
    c = up_with_rooms(ROOM, OTHER)
    serials = numbered(c.enter(ROOM, now=2_000))
    out = c.publish(ROOM, "typing", {"on": True}, extras={"ephemeral": True}, now=2_001)
    (frame,) = messages_sent(out)
    serials += numbered(out)
    serials += numbered(c.publish(OTHER, None, "hi", now=2_002))
    serials += numbered(c.update(ROOM, "x", now=2_003))
    assert serials == [0, 1, 2, 3]
    assert frame.channel == ROOM
    assert frame.messages == (
        Message(name="typing", data={"on": True}, extras={"ephemeral": True}),
    )
    op = handle(out)
    assert (op.action, op.name, op.channel) == (None, "typing", ROOM)


def test_RTL6_the_MESSAGE_frame_goes_over_the_wire() -> None:
    """The encoded frame decodes back to the same messages."""
    c = up_with_rooms()
    (frame,) = messages_sent(c.publish(ROOM, "typing", {"on": True}, now=2_000))
    back = decode(encode_text(frame))
    assert back.action == P.MESSAGE
    assert back.msg_serial == 0
    assert [(m.name, m.data) for m in back.messages or ()] == [("typing", {"on": True})]


def test_RTL6_publish_ids_share_the_room_operation_sequence() -> None:
    c = up_with_rooms()
    ids = [
        handle(c.enter(ROOM, now=2_000)).id,
        handle(c.publish(ROOM, "a", now=2_001)).id,
        handle(c.update(ROOM, now=2_002)).id,
    ]
    assert ids == [1, 2, 3]


def test_RTL6_ACK_settles_a_publish_as_succeeded_once() -> None:
    c = up_with_rooms()
    op = handle(c.publish(ROOM, "typing", now=2_000))
    assert c.room(ROOM).pending == (op,)
    out = receive(c, ack(0), now=2_001)
    assert [s.operation for s in of_type(out, OperationSucceeded)] == [op]
    assert c.room(ROOM).pending == ()
    again = receive(c, ack(0), now=2_002)
    assert of_type(again, OperationSucceeded) == []
    assert of_type(again, FrameIgnored) != []


def test_RTL6_NACK_fails_a_publish_with_its_error() -> None:
    c = up_with_rooms()
    enter = handle(c.enter(ROOM, now=2_000))
    op = handle(c.publish(ROOM, "typing", now=2_001))
    error = ErrorInfo(code=40160, status_code=401, message="no publish capability")
    out = receive(c, nack(0, count=2, error=error), now=2_002)
    failed = of_type(out, OperationFailed)
    assert [(f.operation, f.error) for f in failed] == [(enter, error), (op, error)]
    assert c.snapshot().pending == ()


def test_RTL6_a_presence_set_settles_only_its_own_published_messages() -> None:
    """A handle the room never issued, or one already settled, settles nothing."""
    ps = make_set()
    out = ps.publish("typing", now=0)
    op = handle(out)
    stranger = Operation(id=op.id, channel="elsewhere", action=None, name="typing")
    assert ps.acknowledge([stranger], now=1) == Output()
    assert ps.reject([stranger], ErrorInfo(code=1, status_code=1, message="x"), now=1) == Output()
    assert [type(e) for e in ps.acknowledge([op], now=1).events] == [OperationSucceeded]
    assert ps.acknowledge([op], now=2) == Output()


def test_RTL6_publish_refuses_bad_input_and_changes_nothing() -> None:
    """A bad name (40000), unencodable data (40013) or bad extras (40000); no room is made."""
    c = up()
    before = c.snapshot()
    cases: list[tuple[Any, Any, Any, int]] = [
        (7, None, None, 40000),
        ("n", {1, 2}, None, 40013),
        ("n", None, ["not", "an", "object"], 40000),
    ]
    for name, data, extras, code in cases:
        with pytest.raises(UsageError) as refused:
            c.publish(ROOM, name, data, extras=extras, now=2_000)
        assert refused.value.code == code
    assert c.snapshot() == before
    assert ROOM not in c.rooms


# -- the room must be attached (D8, a departure from RTL6c) -----------------------------------


def test_RTL6c_D8_publish_on_a_new_room_attaches_it_and_waits_for_ATTACHED() -> None:
    c = up()
    out = c.publish(ROOM, "typing", now=2_000)
    op = handle(out)
    assert [m.action for m in sent(out)] == [P.ATTACH]
    assert c.room(ROOM).state is ChannelState.ATTACHING
    assert c.room(ROOM).pending == (op,)
    out = receive(c, attached(), now=2_001)
    (frame,) = messages_sent(out)
    assert frame.msg_serial == 0
    assert [s.operation for s in of_type(receive(c, ack(0), now=2_002), OperationSucceeded)] == [op]


def test_RTL6c_D8_publish_on_a_detached_room_attaches_it_again() -> None:
    c = up_with_rooms()
    c.detach(ROOM, now=2_000)
    receive(c, ProtocolMessage(action=P.DETACHED, channel=ROOM), now=2_001)
    out = c.publish(ROOM, "typing", now=2_002)
    assert [m.action for m in sent(out)] == [P.ATTACH]
    assert messages_sent(receive(c, attached(), now=2_003)) != []


@pytest.mark.parametrize("state", ["suspended", "detaching", "failed"])
def test_RTL6c_D8_publish_is_refused_with_90001_on_a_room_that_cannot_attach(state: str) -> None:
    c = up_with_rooms()
    if state == "suspended":
        c.room(ROOM).set_channel_state(ChannelState.SUSPENDED, now=2_000)
    elif state == "detaching":
        c.detach(ROOM, now=2_000)
    else:
        error = ErrorInfo(code=40160, status_code=401, message="denied")
        receive(c, ProtocolMessage(action=P.ERROR, channel=ROOM, error=error), now=2_000)
    before = c.snapshot()
    with pytest.raises(UsageError) as refused:
        c.publish(ROOM, "typing", now=2_001)
    assert refused.value.code == 90001
    assert c.snapshot() == before


def test_RTL6_queued_messages_follow_the_queued_presence_in_their_order() -> None:
    c = up()
    first = handle(c.publish(ROOM, "a", now=2_000))
    enter = handle(c.enter(ROOM, now=2_001))
    second = handle(c.publish(ROOM, "b", now=2_002))
    out = receive(c, attached(), now=2_003)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [(P.PRESENCE, 0), (P.MESSAGE, 1)]
    (frame,) = messages_sent(out)
    assert [m.name for m in frame.messages or ()] == ["a", "b"]
    assert not [c for c in out.commands if isinstance(c, SendMessage)]  # numbered as Send
    done = receive(c, ack(0, count=2), now=2_004)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == [enter, first, second]


def test_RTL4f_a_timed_out_attach_fails_the_messages_queued_for_it() -> None:
    c = up(now=1_000)
    op = handle(c.publish(ROOM, "typing", now=1_000))
    out = c.tick(now=1_000 + RTO)
    (failed,) = of_type(out, OperationFailed)
    assert failed.operation == op
    assert failed.error.code == 90007
    assert c.room(ROOM).pending == ()


# -- across transports ----------------------------------------------------------------------


def test_RTL3d2_a_publish_while_disconnected_waits_for_the_rooms_ATTACHED() -> None:
    c = up_with_rooms()
    lost(c, now=2_000)
    out = c.publish(ROOM, "typing", now=2_001)
    op = handle(out)
    assert sent(out) == []
    assert c.snapshot().queued == ((ROOM, (op.id,)),)
    assert [m.action for m in sent(receive(c, connected("C1"), now=2_002))] == [P.ATTACH]
    out = receive(c, attached(), now=2_003)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [(P.MESSAGE, 0)]


def test_RTN19a_an_unacknowledged_publish_is_resent_with_its_serial_on_resume() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=2_000)
    op = handle(c.publish(ROOM, "typing", now=2_001))
    lost(c, now=2_002)
    out = receive(c, connected("C1"), now=2_003)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [
        (P.ATTACH, None),
        (P.PRESENCE, 0),
        (P.MESSAGE, 1),
    ]
    done = receive(c, ack(1), now=2_004)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == [op]


def test_RTN15c7_a_failed_resume_renumbers_a_pending_publish() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=2_000)
    receive(c, ack(0), now=2_000)
    c.publish(ROOM, "typing", now=2_001)
    lost(c, now=2_002)
    out = receive(c, connected("C2"), now=2_003)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [(P.ATTACH, None), (P.MESSAGE, 0)]


def test_RTN7e_a_pending_publish_fails_when_the_connection_fails() -> None:
    c = up_with_rooms()
    op = handle(c.publish(ROOM, "typing", now=2_000))
    error = ErrorInfo(code=80019, status_code=400, message="fatal")
    out = receive(c, ProtocolMessage(action=P.ERROR, error=error), now=2_001)
    assert [f.operation for f in of_type(out, OperationFailed)] == [op]


def test_RTN16_the_recovery_key_counts_published_messages() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=2_000)
    c.publish(ROOM, "typing", now=2_001)
    assert c.msg_serial == 2
    assert c.recovery_key is not None
    assert '"msgSerial":2' in c.recovery_key


# -- the server's limits (D10) --------------------------------------------------------------


def _limited(size: int | None = None, rate: int | None = None) -> ProtocolMessage:
    return ProtocolMessage(
        action=P.CONNECTED,
        connection_id="C1",
        connection_details=ConnectionDetails(
            client_id="alice",
            connection_key="key-C1",
            max_message_size=size,
            max_idle_interval=15_000,
            connection_state_ttl=120_000,
            max_inbound_rate=rate,
        ),
    )


def test_D10_queued_messages_are_split_by_max_message_size_and_settle_in_parts() -> None:
    c = up(now=0)
    receive(c, _limited(size=400), now=0)
    ops = [handle(c.publish(ROOM, f"m{k}", "x" * 100, now=0)) for k in range(5)]
    out = receive(c, attached(), now=0)
    frames = messages_sent(out)
    assert len(frames) > 1
    assert all(len(encode_text(f)) <= 400 for f in frames)
    assert [m.name for f in frames for m in f.messages or ()] == [f"m{k}" for k in range(5)]
    first = frames[0]
    assert first.msg_serial is not None
    done = receive(c, ack(first.msg_serial), now=1)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == ops[
        : len(first.messages or ())
    ]


def test_D10_each_message_counts_against_the_inbound_rate() -> None:
    """With 4 messages a second (a bucket of 2), three queued messages go out as 2, then 1."""
    c = up(now=0)
    receive(c, _limited(rate=4), now=0)
    for name in "abc":
        c.publish(ROOM, name, now=0)
    out = receive(c, attached(), now=0)
    assert [[m.name for m in f.messages or ()] for f in messages_sent(out)] == [["a", "b"]]
    assert numbered(c.publish(ROOM, "d", now=0)) == []
    deadline = c.next_deadline()
    assert deadline is not None
    assert 0 < deadline <= 1_000
    later = c.tick(now=deadline)
    assert [[m.name for m in f.messages or ()] for f in messages_sent(later)] == [["c"]]


# -- received messages (RTL7) ---------------------------------------------------------------


def test_RTL7_a_received_MESSAGE_becomes_a_channel_event() -> None:
    c = up_with_rooms()
    item = Message(name="typing", data={"on": True}, client_id="bob", connection_id="C9")
    out = receive(c, incoming(item), now=2_000)
    assert out.events == (ChannelEvents(channel=ROOM, events=(item,)),)


def test_RTL7_the_codec_fills_received_messages_from_their_frame() -> None:
    """TM2a, TM2c, TM2f: id, connectionId and timestamp come from the frame when absent."""
    text = (
        '{"action":15,"channel":"room1::$chat","id":"abc:0","connectionId":"C9",'
        '"timestamp":5,"messages":[{"name":"typing","data":"x"}]}'
    )
    c = up_with_rooms()
    out = receive(c, decode(text), now=2_000)
    ((batch,),) = [out.events]
    assert isinstance(batch, ChannelEvents)
    (item,) = batch.events
    assert isinstance(item, Message)
    assert (item.id, item.connection_id, item.timestamp) == ("abc:0:0", "C9", 5)


def test_RTL17_a_MESSAGE_on_a_room_not_attached_is_ignored() -> None:
    ps = make_set(attach=False)
    ps.attach(now=0)
    before = ps.snapshot()
    out = ps.receive(incoming(Message(name="typing"), channel=CH), now=1)
    assert [type(e) for e in out.events] == [FrameIgnored]
    assert ps.snapshot() == before


def test_RTL15b_a_MESSAGE_channel_serial_is_kept_for_the_next_attach() -> None:
    ps = make_set()
    ps.receive(incoming(Message(name="typing"), channel=CH, serial="serial-7"), now=1)
    assert ps.channel_serial == "serial-7"


def test_RTL7_a_MESSAGE_whose_items_are_not_messages_is_malformed() -> None:
    ps: PresenceSet = make_set()
    before = ps.snapshot()
    bad = ProtocolMessage(action=P.MESSAGE, channel=CH, messages=("nope",))  # type: ignore[arg-type]
    with pytest.raises(ProtocolError, match="not a channel message"):
        ps.receive(bad, now=1)
    assert ps.snapshot() == before
