"""The connection reducer: one test per rule, named after its spec id.

Every test drives a :class:`~presence_core.Connection` with decoded frames and an explicit
``now``; the test plays the server.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from presence_core import (
    DEFAULT_MODES,
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    CloseTransport,
    Connection,
    ConnectionDetails,
    ConnectionSettings,
    ConnectionState,
    ConnectionStateChanged,
    ErrorInfo,
    Flag,
    FrameIgnored,
    OpenTransport,
    OperationFailed,
    OperationSucceeded,
    Output,
    PingAnswered,
    PingFailed,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    RoomOptions,
    Send,
    UsageError,
)
from tests.connection_support import lost, receive

KEY = "app.key:secret"
ROOM = "room1::$chat"
OTHER = "room2::$chat"
MAX_IDLE = 15_000
TTL = 120_000
RTO = 10_000  # the default realtime_request_timeout


# -- helpers ---------------------------------------------------------------------------------


def connected(
    cid: str = "C1",
    key: str | None = None,
    *,
    client_id: str | None = "alice",
    max_idle: int | None = MAX_IDLE,
    ttl: int | None = TTL,
    error: ErrorInfo | None = None,
) -> ProtocolMessage:
    return ProtocolMessage(
        action=ProtocolAction.CONNECTED,
        connection_id=cid,
        connection_details=ConnectionDetails(
            client_id=client_id,
            connection_key=key or f"key-{cid}",
            max_message_size=65536,
            max_idle_interval=max_idle,
            connection_state_ttl=ttl,
        ),
        error=error,
    )


def attached(channel: str = ROOM, *, flags: int = int(DEFAULT_MODES)) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ATTACHED, channel=channel, flags=flags)


def ack(serial: int, count: int | None = 1) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.ACK, msg_serial=serial, count=count)


def nack(serial: int, count: int = 1, error: ErrorInfo | None = None) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.NACK, msg_serial=serial, count=count, error=error)


def sent(out: Output) -> list[ProtocolMessage]:
    return [c.message for c in out.commands if isinstance(c, Send)]


def numbered(out: Output) -> list[int]:
    return [m.msg_serial for m in sent(out) if m.msg_serial is not None]


def of_type(out: Output, kind: type[Any]) -> list[Any]:
    return [c for c in (*out.events, *out.commands) if isinstance(c, kind)]


def states(out: Output) -> list[ConnectionState]:
    return [e.current for e in out.events if isinstance(e, ConnectionStateChanged)]


def channel_states(out: Output, channel: str = ROOM) -> list[ChannelState]:
    return [
        e.current
        for batch in out.events
        if isinstance(batch, ChannelEvents) and batch.channel == channel
        for e in batch.events
        if isinstance(e, ChannelStateChanged)
    ]


def open_params(out: Output) -> dict[str, str]:
    (command,) = of_type(out, OpenTransport)
    params: dict[str, str] = command.params
    return params


def new_connection(client_id: str | None = "alice", **settings: Any) -> Connection:
    return Connection(key=KEY, client_id=client_id, settings=ConnectionSettings(**settings))


def up(now: int = 1_000, cid: str = "C1", **settings: Any) -> Connection:
    """A CONNECTED connection with no rooms."""
    c = new_connection(**settings)
    c.connect(now=now)
    receive(c, connected(cid), now=now)
    return c


def up_with_rooms(*channels: str, now: int = 1_000) -> Connection:
    """A CONNECTED connection whose rooms are ATTACHED."""
    c = up(now)
    for channel in channels or (ROOM,):
        c.attach(channel, now=now)
        receive(c, attached(channel), now=now)
    return c


# -- connecting and CONNECTED ------------------------------------------------------------------


def test_RTN2_connect_opens_a_transport_with_the_query_parameters() -> None:
    c = new_connection()
    out = c.connect(now=0)
    assert states(out) == [ConnectionState.CONNECTING]
    assert open_params(out) == {
        "key": KEY,
        "clientId": "alice",
        "format": "json",
        "heartbeats": "true",
        "v": "6",
    }
    assert c.connect(now=1) == Output()  # already connecting


def test_RTN2_token_auth_sends_access_token_and_heartbeats_can_be_off() -> None:
    c = Connection(token="opaque", settings=ConnectionSettings(heartbeats=False))
    params = open_params(c.connect(now=0))
    assert params == {"access_token": "opaque", "format": "json", "heartbeats": "false", "v": "6"}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"key": KEY, "token": "t"}, {"key": KEY, "client_id": "*"}, {"key": KEY, "client_id": ""}],
)
def test_constructor_rejects_bad_credentials_and_client_ids(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Connection(**kwargs)


def test_settings_reject_non_positive_durations() -> None:
    with pytest.raises(UsageError):
        ConnectionSettings(realtime_request_timeout=0)


def test_RTN4b_CONNECTED_records_connection_id_client_id_and_details() -> None:
    """RTN4b/RTN21: CONNECTED gives the id, the clientId and connectionDetails."""
    c = new_connection()
    c.connect(now=0)
    out = receive(c, connected("C1", "K1"), now=5)
    assert states(out) == [ConnectionState.CONNECTED]
    assert c.state is ConnectionState.CONNECTED
    assert c.connection_id == "C1"
    assert c.connection_key == "K1"
    assert c.client_id == "alice"
    assert c.details is not None
    assert c.details.max_idle_interval == MAX_IDLE
    assert c.details.connection_state_ttl == TTL
    assert c.details.max_message_size == 65536
    assert c.msg_serial == 0


def test_RSA7b_client_id_is_adopted_from_CONNECTED() -> None:
    c = new_connection(client_id=None)
    c.connect(now=0)
    receive(c, connected(client_id="bob"), now=1)
    assert c.client_id == "bob"
    assert c.room(ROOM).snapshot().client_id == "bob"


def test_RSA15c_client_id_mismatch_fails_the_connection_with_40102() -> None:
    """RSA15c: CONNECTED naming another clientId than asked for is fatal (40102)."""
    c = new_connection(client_id="bob")
    c.attach(ROOM, now=0)
    c.connect(now=0)
    out = receive(c, connected(client_id="alice"), now=1)
    assert c.state is ConnectionState.FAILED
    assert c.error_reason is not None
    assert c.error_reason.code == 40102
    (close,) = of_type(out, CloseTransport)
    assert close.reason.code == 40102
    assert c.room(ROOM).state is ChannelState.FAILED  # RTL3a
    with pytest.raises(UsageError) as info:
        c.enter(ROOM, now=2)
    assert info.value.code == 80000


def test_RTN24_CONNECTED_while_connected_updates_details_without_reattaching() -> None:
    c = up_with_rooms()
    out = receive(c, connected("C1", max_idle=5_000), now=2_000)
    assert states(out) == [ConnectionState.CONNECTED]
    assert sent(out) == []
    assert c.details is not None
    assert c.details.max_idle_interval == 5_000
    assert c.room(ROOM).state is ChannelState.ATTACHED


# -- msgSerial, ACK and NACK -------------------------------------------------------------------


def test_RTN7b_msg_serial_numbers_frames_from_zero_across_rooms() -> None:
    c = up_with_rooms(ROOM, OTHER)
    serials = []
    for channel in (ROOM, OTHER, ROOM):
        out = c.enter(channel, {"n": 1}, now=2_000)
        serials += numbered(out)
        assert out.operation is not None
    assert serials == [0, 1, 2]
    assert c.msg_serial == 3
    message = sent(c.update(OTHER, "x", now=2_001))[0]
    assert message.action == ProtocolAction.PRESENCE
    assert message.channel == OTHER
    assert message.msg_serial == 3


def test_RTN7a_ACK_with_count_settles_each_covered_frame_in_its_room() -> None:
    c = up_with_rooms(ROOM, OTHER)
    ops = [c.enter(ch, now=2_000).operation for ch in (ROOM, OTHER, ROOM)]
    out = receive(c, ack(0, count=3), now=2_001)
    assert [s.operation for s in of_type(out, OperationSucceeded)] == ops
    assert c.snapshot().pending == ()


def test_RTN7a_ACK_without_count_covers_one_frame() -> None:
    c = up_with_rooms()
    first = c.enter(ROOM, now=2_000).operation
    c.update(ROOM, now=2_000)
    out = receive(c, ack(0, count=None), now=2_001)
    assert [s.operation for s in of_type(out, OperationSucceeded)] == [first]
    assert [p[0] for p in c.snapshot().pending] == [1]


def test_RTN7a_NACK_fails_the_covered_operations_with_its_error() -> None:
    c = up_with_rooms(ROOM, OTHER)
    op_a = c.enter(ROOM, now=2_000).operation
    op_b = c.enter(OTHER, now=2_000).operation
    error = ErrorInfo(code=40160, status_code=401, message="no presence capability")
    out = receive(c, nack(0, count=2, error=error), now=2_001)
    failed = of_type(out, OperationFailed)
    assert [(f.operation, f.error) for f in failed] == [(op_a, error), (op_b, error)]


def test_RTN7a_NACK_without_error_still_fails_the_operation() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=2_000)
    out = receive(c, nack(0), now=2_001)
    (failed,) = of_type(out, OperationFailed)
    assert failed.error.code == 50000


def test_RTN7a_duplicate_ACK_is_ignored() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=2_000)
    assert len(of_type(receive(c, ack(0), now=2_001), OperationSucceeded)) == 1
    again = receive(c, ack(0), now=2_002)
    assert of_type(again, OperationSucceeded) == []
    assert [e.reason for e in of_type(again, FrameIgnored)] == ["ACK/NACK matches no pending frame"]
    late_nack = receive(c, nack(0), now=2_003)
    assert of_type(late_nack, OperationFailed) == []


def test_RTN7a_overlapping_ACK_settles_only_what_is_still_pending() -> None:
    c = up_with_rooms()
    ops = [c.enter(ROOM, now=2_000).operation for _ in range(3)]
    receive(c, ack(0, count=2), now=2_001)
    out = receive(c, ack(1, count=2), now=2_002)
    assert [s.operation for s in of_type(out, OperationSucceeded)] == [ops[2]]


# -- resume kept or failed ---------------------------------------------------------------------


def _lose_acks(c: Connection) -> list[Any]:
    """Enter three times, ACK the first only, then lose the transport."""
    ops = [c.enter(ROOM, {"i": i}, now=2_000).operation for i in range(3)]
    receive(c, ack(0), now=2_001)
    out = lost(c, now=3_000)
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert open_params(out)["resume"] == "key-C1"
    return ops


def test_RTN15a_transport_loss_retries_at_once_with_resume() -> None:
    c = up_with_rooms()
    out = lost(c, now=3_000)
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    params = open_params(out)
    assert params["resume"] == "key-C1"
    assert params["clientId"] == "alice"
    assert c.room(ROOM).state is ChannelState.ATTACHED  # RTL3e


def test_RTN19a_resume_kept_resends_unacked_frames_with_their_serials() -> None:
    """RTN19a/RTN15c6: same connectionId: unacked frames go again with the same msgSerial."""
    c = up_with_rooms()
    ops = _lose_acks(c)
    out = receive(c, connected("C1"), now=3_001)
    messages = sent(out)
    assert [m.action for m in messages] == [
        ProtocolAction.ATTACH,
        ProtocolAction.PRESENCE,
        ProtocolAction.PRESENCE,
    ]
    assert [m.msg_serial for m in messages[1:]] == [1, 2]
    assert [m.presence[0].data for m in messages[1:] if m.presence] == [{"i": 1}, {"i": 2}]
    assert c.msg_serial == 3
    done = receive(c, ack(1, count=2), now=3_002)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == ops[1:]


def test_RTN15c7_failed_resume_restarts_msg_serial_and_renumbers_unacked_frames() -> None:
    """RTN15c7/RTN19a2: a new connectionId numbers from 0; unacked frames are renumbered."""
    c = up_with_rooms()
    ops = _lose_acks(c)
    error = ErrorInfo(code=80008, status_code=400, message="unable to recover connection")
    out = receive(c, connected("C2", error=error), now=3_001)
    (change,) = of_type(out, ConnectionStateChanged)
    assert change.reason == error
    assert c.connection_id == "C2"
    assert c.connection_key == "key-C2"
    messages = sent(out)
    assert messages[0].action == ProtocolAction.ATTACH
    assert [m.msg_serial for m in messages[1:]] == [0, 1]
    assert [m.presence[0].data for m in messages[1:] if m.presence] == [{"i": 1}, {"i": 2}]
    assert c.msg_serial == 2
    # The room learnt the new connection id.
    assert c.room(ROOM).snapshot().connection_id == "C2"
    done = receive(c, ack(0, count=2), now=3_002)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == ops[1:]
    # The ACKs came without echoes, so the ACKed enter is what the non-resumed ATTACHED
    # re-enters (RTP17i); numbering simply continues on the new connection.
    assert numbered(receive(c, attached(), now=3_003)) == [2]
    assert numbered(c.update(ROOM, now=3_004)) == [3]


def test_RTN14d_failed_attempt_retries_after_disconnected_retry_timeout() -> None:
    c = new_connection()
    c.connect(now=0)
    out = lost(c, now=100)
    assert states(out) == [ConnectionState.DISCONNECTED]
    assert of_type(out, OpenTransport) == []
    assert c.next_deadline() == 100 + 15_000
    assert c.tick(now=15_099) == Output()
    retry = c.tick(now=15_100)
    assert states(retry) == [ConnectionState.CONNECTING]
    assert "resume" not in open_params(retry)  # never connected: nothing to resume


def test_RTN14c_no_CONNECTED_within_the_request_timeout_drops_the_attempt() -> None:
    c = new_connection()
    c.connect(now=0)
    assert c.next_deadline() == RTO
    out = c.tick(now=RTO)
    assert of_type(out, CloseTransport)[0].reason.code == 80014
    assert states(out) == [ConnectionState.DISCONNECTED]


def test_RTN11_connect_while_disconnected_retries_now() -> None:
    c = new_connection()
    c.connect(now=0)
    lost(c, now=1)
    out = c.connect(now=2)
    assert states(out) == [ConnectionState.CONNECTING]


def test_RTN14e_RTN15g_suspended_after_connection_state_ttl_then_fresh_connection() -> None:
    """RTN14e: DISCONNECTED for connectionStateTtl -> SUSPENDED; RTN15g: then no resume."""
    c = up_with_rooms()
    op = c.enter(ROOM, now=1_500).operation
    lost(c, now=2_000)  # suspend at 2_000 + TTL
    now = 2_000
    while c.state is not ConnectionState.SUSPENDED:
        out = lost(c, now=now)  # every attempt fails
        deadline = c.next_deadline()
        assert deadline is not None
        now = deadline
        out = c.tick(now=now)
    assert now == 2_000 + TTL
    assert c.room(ROOM).state is ChannelState.SUSPENDED  # RTL3c
    failed = of_type(out, OperationFailed)  # RTN7e
    assert [(f.operation, f.error.code) for f in failed] == [(op, 80002)]
    assert c.connection_key is None
    assert c.next_deadline() == now + 30_000
    with pytest.raises(UsageError) as info:
        c.enter(ROOM, now=now)
    assert info.value.code == 80002
    retry = c.tick(now=now + 30_000)
    assert states(retry) == [ConnectionState.CONNECTING]
    assert "resume" not in open_params(retry)
    # A failed attempt from SUSPENDED goes back to SUSPENDED, not DISCONNECTED.
    assert states(lost(c, now=now + 30_001)) == [ConnectionState.SUSPENDED]
    c.connect(now=now + 30_002)
    back = receive(c, connected("C9"), now=now + 30_003)
    assert c.msg_serial == 0
    assert [m.action for m in sent(back)] == [ProtocolAction.ATTACH]  # RTL3d from SUSPENDED
    assert c.room(ROOM).state is ChannelState.ATTACHING


def test_RTN15h_server_DISCONNECTED_drops_the_transport_and_resumes() -> None:
    c = up_with_rooms()
    error = ErrorInfo(code=80003, status_code=503, message="going away")
    out = receive(c, ProtocolMessage(action=ProtocolAction.DISCONNECTED, error=error), now=2_000)
    assert of_type(out, CloseTransport) == [CloseTransport(reason=error)]
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert open_params(out)["resume"] == "key-C1"


# -- heartbeats, pings and the idle deadline ---------------------------------------------------


def test_RTN23a_idle_deadline_is_last_activity_plus_max_idle_plus_request_timeout() -> None:
    c = up(now=1_000)
    assert c.next_deadline() == 1_000 + MAX_IDLE + RTO
    receive(c, ProtocolMessage(action=ProtocolAction.HEARTBEAT), now=5_000)
    assert c.next_deadline() == 5_000 + MAX_IDLE + RTO
    assert c.tick(now=5_000 + MAX_IDLE + RTO - 1) == Output()
    out = c.tick(now=5_000 + MAX_IDLE + RTO)
    assert [m.action for m in sent(out)] == [ProtocolAction.DISCONNECT]
    assert of_type(out, CloseTransport)[0].reason.code == 80003
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert open_params(out)["resume"] == "key-C1"


def test_RTN23a_the_request_timeout_is_a_named_setting() -> None:
    c = up(now=0, realtime_request_timeout=1_500)
    assert c.next_deadline() == MAX_IDLE + 1_500


def test_RTN23a_no_idle_timer_without_max_idle_interval() -> None:
    c = new_connection()
    c.connect(now=0)
    receive(c, connected(max_idle=None), now=1)
    assert c.next_deadline() is None


def test_RTN13_a_HEARTBEAT_with_the_ping_id_answers_the_ping() -> None:
    c = up(now=0)
    out = c.ping("p1", now=100)
    assert sent(out) == [ProtocolMessage(action=ProtocolAction.HEARTBEAT, id="p1")]
    answer = receive(c, ProtocolMessage(action=ProtocolAction.HEARTBEAT, id="p1"), now=130)
    assert of_type(answer, PingAnswered) == [PingAnswered(id="p1", round_trip=30)]
    # A HEARTBEAT with an id that is not an outstanding ping is activity only: answering it
    # could make two peers echo the same id back and forth for ever.
    other = receive(c, ProtocolMessage(action=ProtocolAction.HEARTBEAT, id="p1"), now=140)
    assert other == Output()


def test_RTN13_unanswered_and_interrupted_pings_fail() -> None:
    c = up(now=0, max_pending_pings=2)
    c.ping("late", now=0)
    with pytest.raises(UsageError):
        c.ping("late", now=0)
    c.ping("lost", now=RTO - 1)
    with pytest.raises(UsageError):
        c.ping("third", now=RTO - 1)
    assert c.next_deadline() == RTO
    out = c.tick(now=RTO)
    assert [e.id for e in of_type(out, PingFailed)] == ["late"]
    out = lost(c, now=RTO + 1)
    assert [e.id for e in of_type(out, PingFailed)] == ["lost"]
    with pytest.raises(UsageError):
        c.ping("p", now=RTO + 2)


# -- connection states acting on rooms (RTL3) -----------------------------------------------


def test_RTL3e_disconnected_leaves_rooms_untouched() -> None:
    c = up_with_rooms()
    out = lost(c, now=2_000)
    assert not [e for e in out.events if isinstance(e, ChannelEvents)]
    assert c.room(ROOM).state is ChannelState.ATTACHED


def test_RTL3d_CONNECTED_reattaches_attached_attaching_and_suspended_rooms() -> None:
    c = new_connection()
    c.connect(now=0)
    receive(c, connected("C1"), now=0)
    c.attach(ROOM, now=0)
    receive(c, attached(ROOM), now=0)  # ATTACHED
    c.attach(OTHER, now=0)  # stays ATTACHING
    idle = c.room("idle::$chat")  # INITIALIZED
    lost(c, now=10)
    out = receive(c, connected("C1"), now=11)
    attaches = [m.channel or "" for m in sent(out) if m.action == ProtocolAction.ATTACH]
    assert sorted(attaches) == sorted([ROOM, OTHER])
    assert channel_states(out, ROOM) == [ChannelState.ATTACHING]
    assert c.room(ROOM).state is ChannelState.ATTACHING
    assert idle.state is ChannelState.INITIALIZED
    receive(c, attached(ROOM, flags=int(DEFAULT_MODES | Flag.RESUMED)), now=12)
    assert c.room(ROOM).state is ChannelState.ATTACHED


def test_RTL3d_rooms_attached_before_connecting_attach_on_CONNECTED() -> None:
    c = new_connection()
    out = c.attach(ROOM, now=0)
    assert sent(out) == []  # no transport yet: the ATTACH waits for CONNECTED
    c.connect(now=0)
    out = receive(c, connected(), now=1)
    assert [(m.action, m.channel) for m in sent(out)] == [(ProtocolAction.ATTACH, ROOM)]


def test_RTL3d_a_detaching_room_sends_DETACH_again_on_CONNECTED() -> None:
    c = up_with_rooms()
    lost(c, now=2_000)
    assert sent(c.detach(ROOM, now=2_001)) == []
    out = receive(c, connected("C1"), now=2_002)
    assert [(m.action, m.channel) for m in sent(out)] == [(ProtocolAction.DETACH, ROOM)]


def test_RTL3d2_presence_while_disconnected_waits_for_the_rooms_ATTACHED() -> None:
    """RTL3d2/RTP16a: the frame is queued, then numbered after the new ATTACHED."""
    c = up_with_rooms()
    lost(c, now=2_000)
    out = c.enter(ROOM, "hi", now=2_001)
    op = out.operation
    assert op is not None
    assert sent(out) == []
    assert c.snapshot().queued == ((ROOM, (op.id,)),)
    reconnect = receive(c, connected("C1"), now=2_002)
    assert [m.action for m in sent(reconnect)] == [ProtocolAction.ATTACH]
    out = receive(c, attached(ROOM), now=2_003)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [(ProtocolAction.PRESENCE, 0)]
    done = receive(c, ack(0), now=2_004)
    assert [s.operation for s in of_type(done, OperationSucceeded)] == [op]


def test_RTL11_queued_frames_fail_when_the_room_fails_before_attaching() -> None:
    c = up_with_rooms()
    lost(c, now=2_000)
    op = c.enter(ROOM, now=2_001).operation
    receive(c, connected("C1"), now=2_002)
    error = ErrorInfo(code=40160, status_code=401, message="denied")
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, channel=ROOM, error=error), now=1)
    assert c.room(ROOM).state is ChannelState.FAILED
    (failed,) = of_type(out, OperationFailed)
    assert failed.operation == op
    assert failed.error.code == 90001
    assert c.snapshot().queued == ()


def test_RTL3d2_RTL11_queued_frames_belong_to_their_room_only() -> None:
    """Queues are listed in room order; one room failing leaves another's queue alone."""
    c = up_with_rooms(ROOM, OTHER)
    lost(c, now=2_000)
    other_op = c.enter(OTHER, now=2_001).operation
    op = c.enter(ROOM, now=2_002).operation
    assert other_op is not None
    assert op is not None
    assert c.snapshot().queued == ((ROOM, (op.id,)), (OTHER, (other_op.id,)))
    receive(c, connected("C1"), now=2_003)
    error = ErrorInfo(code=40160, status_code=401, message="denied")
    out = receive(
        c, ProtocolMessage(action=ProtocolAction.ERROR, channel=OTHER, error=error), now=1
    )
    assert [f.operation for f in of_type(out, OperationFailed)] == [other_op]
    assert c.snapshot().queued == ((ROOM, (op.id,)),)
    out = receive(c, attached(ROOM), now=2_004)
    assert [(m.action, m.msg_serial) for m in sent(out)] == [(ProtocolAction.PRESENCE, 0)]
    assert c.snapshot().queued == ()


def test_RTL3c_RTN7e_suspended_suspends_rooms_and_fails_pending_frames() -> None:
    c = up_with_rooms(ROOM, OTHER)
    c.detach(OTHER, now=1_000)  # DETACHING
    op = c.enter(ROOM, now=1_000).operation
    lost(c, now=2_000)
    lost(c, now=2_001)
    out = c.tick(now=2_000 + TTL)
    assert c.state is ConnectionState.SUSPENDED
    assert c.room(ROOM).state is ChannelState.SUSPENDED
    assert c.room(OTHER).state is ChannelState.DETACHED
    assert [f.operation for f in of_type(out, OperationFailed)] == [op]


def test_RTL3a_RTN7e_connection_ERROR_fails_the_connection_rooms_and_pending_frames() -> None:
    """RTN14g/RTN15i: an ERROR without a channel is fatal (FAILED, transport closed); RTN25: it
    becomes the error reason; RTL3a: rooms fail; RTN7e: pending operations fail with it."""
    c = up_with_rooms()
    op = c.enter(ROOM, now=1_000).operation
    error = ErrorInfo(code=40101, status_code=401, message="bad key")
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=error), now=1_001)
    assert c.state is ConnectionState.FAILED
    assert c.error_reason == error
    assert of_type(out, CloseTransport) == [CloseTransport(reason=error)]
    assert c.room(ROOM).state is ChannelState.FAILED
    assert [(f.operation, f.error) for f in of_type(out, OperationFailed)] == [(op, error)]
    assert c.next_deadline() is None
    again = c.connect(now=1_002)  # RTN11d: a fresh connection
    assert "resume" not in open_params(again)


def test_RTL3b_RTN12_close_detaches_rooms_and_fails_pending_frames() -> None:
    c = up_with_rooms()
    op = c.enter(ROOM, now=1_000).operation
    out = c.close(now=1_001)
    assert states(out) == [ConnectionState.CLOSING]
    assert [m.action for m in sent(out)] == [ProtocolAction.CLOSE]
    assert c.next_deadline() == 1_001 + RTO
    with pytest.raises(UsageError) as info:
        c.enter(ROOM, now=1_002)
    assert info.value.code == 80017
    out = receive(c, ProtocolMessage(action=ProtocolAction.CLOSED), now=1_003)
    assert states(out) == [ConnectionState.CLOSED]
    assert of_type(out, CloseTransport) == [CloseTransport()]
    assert c.room(ROOM).state is ChannelState.DETACHED
    assert [(f.operation, f.error.code) for f in of_type(out, OperationFailed)] == [(op, 80017)]
    assert c.close(now=1_004) == Output()


def test_RTN12_close_times_out_without_CLOSED() -> None:
    c = up_with_rooms()
    c.close(now=1_000)
    out = c.tick(now=1_000 + RTO)
    assert of_type(out, CloseTransport) == [CloseTransport()]
    assert c.state is ConnectionState.CLOSED


@pytest.mark.parametrize("setup", ["initialized", "connecting", "disconnected"])
def test_RTN12_close_without_an_established_transport_is_immediate(setup: str) -> None:
    c = new_connection()
    if setup != "initialized":
        c.connect(now=0)
    if setup == "disconnected":
        lost(c, now=1)
    out = c.close(now=2)
    assert states(out) == [ConnectionState.CLOSED]
    assert bool(of_type(out, CloseTransport)) == (setup == "connecting")


def test_RTN11_connect_after_close_starts_a_new_connection() -> None:
    c = up_with_rooms()
    c.enter(ROOM, now=1_000)
    c.close(now=1_001)
    out = c.connect(now=1_002)  # completes the close first
    assert states(out) == [ConnectionState.CLOSED, ConnectionState.CONNECTING]
    assert "resume" not in open_params(out)
    receive(c, connected("C2"), now=1_003)
    assert c.msg_serial == 0


# -- frame routing -------------------------------------------------------------------------


def test_frames_reach_their_room_and_events_come_out_batched_per_channel() -> None:
    c = up_with_rooms(ROOM, OTHER)
    frame = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=OTHER,
        id="C7:0",
        connection_id="C7",
        timestamp=5,
        presence=(
            PresenceMessage(action=PresenceAction.ENTER, client_id="bob"),
            PresenceMessage(action=PresenceAction.ENTER, client_id="carol"),
        ),
    )
    out = receive(c, frame, now=2_000)
    (batch,) = out.events
    assert isinstance(batch, ChannelEvents)
    assert batch.channel == OTHER
    assert [e.client_id for e in batch.events if isinstance(e, PresenceMessage)] == [
        "bob",
        "carol",
    ]
    assert {m.client_id for m in c.room(OTHER).get()} == {"bob", "carol"}
    assert c.room(ROOM).get() == []


def test_a_frame_for_an_unknown_channel_is_ignored_and_reported() -> None:
    c = up_with_rooms()
    frame = attached("nobody::$chat")
    before = c.snapshot()
    out = receive(c, frame, now=1_000)
    assert out.events == (FrameIgnored(message=frame, reason="unknown channel 'nobody::$chat'"),)
    assert attrs.evolve(c.snapshot(), now=before.now) == before


def test_unknown_actions_and_client_only_frames_are_ignored_as_events() -> None:
    c = up_with_rooms()
    for frame in (
        ProtocolMessage(action=99),
        ProtocolMessage(action=ProtocolAction.AUTH),
        ProtocolMessage(action=ProtocolAction.MESSAGE, channel="nobody"),
    ):
        out = receive(c, frame, now=1_000)
        assert [type(e) for e in out.events] == [FrameIgnored]
        assert out.commands == ()


def test_frames_without_a_transport_are_ignored() -> None:
    c = up_with_rooms()
    lost(c, now=1_000)
    c.close(now=1_001)
    for frame in (attached(), ack(0), connected(), ProtocolMessage(action=0)):
        out = receive(c, frame, now=1_002)
        assert [type(e) for e in out.events] == [FrameIgnored]


def test_route_numbers_frames_of_a_room_called_directly() -> None:
    c = up_with_rooms()
    room = c.room(ROOM)
    out = c.route(ROOM, room.enter("direct", now=1_000), now=1_000)
    assert numbered(out) == [0]
    with pytest.raises(UsageError):
        c.route("nobody", out, now=1_000)


def test_room_returns_one_presence_set_per_channel() -> None:
    c = new_connection()
    options = RoomOptions(subscribe=False)
    room = c.room(ROOM, options=options)
    assert c.room(ROOM) is room
    assert c.room(ROOM, options=options) is room
    assert dict(c.rooms) == {ROOM: room}
    with pytest.raises(UsageError):
        c.room(ROOM, options=RoomOptions())
    with pytest.raises(UsageError) as info:
        c.room("")
    assert info.value.code == 40010


def test_a_rejected_room_operation_creates_no_room() -> None:
    c = Connection(key=KEY, client_id=None)
    c.connect(now=0)
    receive(c, connected(client_id=None), now=0)
    with pytest.raises(UsageError):
        c.enter(ROOM, now=1)  # RTP8j: no clientId once connected
    assert dict(c.rooms) == {}


# -- bad input and time --------------------------------------------------------------------

MALFORMED = [
    ProtocolMessage(action=ProtocolAction.CONNECTED, connection_details=ConnectionDetails()),
    ProtocolMessage(action=ProtocolAction.CONNECTED, connection_id="C1"),
    ProtocolMessage(
        action=ProtocolAction.CONNECTED,
        connection_id="C1",
        connection_details=ConnectionDetails(max_idle_interval=-1),
    ),
    ProtocolMessage(action=ProtocolAction.ACK),
    ProtocolMessage(action=ProtocolAction.ACK, msg_serial=-1),
    ProtocolMessage(action=ProtocolAction.NACK, msg_serial=0, count=0),
    ProtocolMessage(action=ProtocolAction.ATTACHED),
    ProtocolMessage(action=99, msg_serial=-4),
]
# Frames only the room can judge: they reach it while the connection is CONNECTED.
MALFORMED_FOR_ROOM = [
    ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=ROOM,
        presence=(PresenceMessage(action=PresenceAction.ENTER, connection_id="C7"),),
    ),
    ProtocolMessage(action=ProtocolAction.SYNC, channel=ROOM, channel_serial="no-colon"),
]


@given(
    data=st.data(),
    setup=st.sampled_from(["connecting", "connected", "pending", "disconnected-pending"]),
    now=st.integers(min_value=0, max_value=10**7),
)
def test_a_malformed_frame_raises_ProtocolError_and_changes_nothing(
    data: st.DataObject, setup: str, now: int
) -> None:
    room_frames = MALFORMED_FOR_ROOM if setup in ("connected", "pending") else []
    frame = data.draw(st.sampled_from(MALFORMED + room_frames))
    c = new_connection()
    c.connect(now=500)
    if setup != "connecting":
        receive(c, connected(), now=500)
        c.attach(ROOM, now=500)
        receive(c, attached(), now=500)
    if setup.endswith("pending"):
        c.enter(ROOM, now=500)
        c.ping("p", now=500)
    if setup.startswith("disconnected"):
        lost(c, now=600)
    before = c.snapshot()
    with pytest.raises(ProtocolError):
        receive(c, frame, now=now)
    assert c.snapshot() == before


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["tick", "heartbeat", "enter", "drop"]), st.integers(0, 10**6)),
        max_size=30,
    )
)
def test_now_going_backwards_never_raises_and_time_never_goes_back(
    steps: list[tuple[str, int]],
) -> None:
    c = up_with_rooms(now=500_000)
    seen = 500_000
    for kind, now in steps:
        deadline = c.next_deadline()
        if kind == "tick":
            out = c.tick(now=now)
            if now < seen and deadline is not None and deadline > seen:
                assert out == Output()  # an older now fires nothing new
        elif c.transport_id is None and kind in ("heartbeat", "drop"):
            # Without a transport, any frame or loss is stale: it does not even carry the time.
            continue
        elif kind == "heartbeat":
            # Frames are taken in every state: ignored ones still carry the time.
            receive(c, ProtocolMessage(action=ProtocolAction.HEARTBEAT), now=now)
        elif kind == "enter":
            try:
                c.enter(ROOM, now=now)
            except UsageError:
                continue  # rejected: changes nothing, not even the clock
        else:
            lost(c, now=now)
        seen = max(seen, now)
        assert c.snapshot().now == seen


def test_RTL11_held_frames_fail_when_the_room_detaches_even_if_it_attaches_again_at_once() -> None:
    """enter, detach, attach while disconnected: on CONNECTED the detach completes and the
    waiting attach starts in one step (RTL4h); the enter issued before the detach still fails
    with the DETACHED, and is never sent."""
    c = up_with_rooms()
    lost(c, now=2_000)
    op = c.enter(ROOM, "x", now=2_001).operation
    c.detach(ROOM, now=2_002)
    c.attach(ROOM, now=2_003)
    receive(c, connected("C1"), now=2_004)
    out = receive(c, ProtocolMessage(action=ProtocolAction.DETACHED, channel=ROOM), now=2_005)
    (failed,) = of_type(out, OperationFailed)
    assert failed.operation == op
    assert failed.error.code == 90001
    out = receive(c, attached(ROOM), now=2_006)
    assert [m.action for m in sent(out)] == []
