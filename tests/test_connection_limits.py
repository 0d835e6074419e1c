"""The connection within the server's limits and its ttl: D10, RTN15g, RTP17g1, by rule.

The test plays the server, as in ``tests/test_connection.py``; the last section drives the
:class:`~presence_core.server.Server` reducer itself for its side of D10.
"""

from __future__ import annotations

from typing import Any

from presence_core import (
    DEFAULT_MODES,
    ChannelState,
    CloseTransport,
    Connection,
    ConnectionDetails,
    ConnectionState,
    ConnectionStateChanged,
    ErrorInfo,
    OpenTransport,
    OperationFailed,
    OperationSucceeded,
    Output,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    ReentryFailed,
    Send,
    encode_text,
)
from presence_core.server import ApiKey
from tests.connection_support import lost, receive
from tests.server_support import attach, connect, make_server

ROOM = "room1::$chat"
TTL = 60_000

P = ProtocolAction
A = PresenceAction
MAX_ITEMS = 1000  # presence items per frame, the codec's limit and Ably's
ANY_CLIENT = ApiKey(name="app.any", secret="s3cret", any_client_id=True)


def connected(
    cid: str = "C1",
    *,
    ttl: int = TTL,
    size: int | None = None,
    rate: int | None = None,
    error: ErrorInfo | None = None,
) -> ProtocolMessage:
    return ProtocolMessage(
        action=P.CONNECTED,
        connection_id=cid,
        connection_details=ConnectionDetails(
            connection_key=f"key-{cid}",
            max_message_size=size,
            max_idle_interval=15_000,
            connection_state_ttl=ttl,
            max_inbound_rate=rate,
        ),
        error=error,
    )


def attached(*, resumed: bool = False) -> ProtocolMessage:
    flags = int(DEFAULT_MODES) | (4 if resumed else 0)  # RESUMED
    return ProtocolMessage(action=P.ATTACHED, channel=ROOM, flags=flags)


def ack(serial: int, count: int = 1) -> ProtocolMessage:
    return ProtocolMessage(action=P.ACK, msg_serial=serial, count=count)


def presence_sent(out: Output) -> list[ProtocolMessage]:
    return [
        c.message for c in out.commands if isinstance(c, Send) and c.message.action == P.PRESENCE
    ]


def of_type(out: Output, kind: type[Any]) -> list[Any]:
    return [c for c in (*out.events, *out.commands) if isinstance(c, kind)]


def states(out: Output) -> list[ConnectionState]:
    return [e.current for e in out.events if isinstance(e, ConnectionStateChanged)]


def clients(frames: list[ProtocolMessage]) -> list[str | None]:
    return [item.client_id for frame in frames for item in frame.presence or ()]


def with_own_members(
    n: int, data: Any = None, **details: Any
) -> tuple[Connection, list[PresenceMessage]]:
    """A connection (unidentified, acting for others) whose room holds ``n`` own members.

    Each was entered with ``enter_client``, echoed with the id ``C1:<k>:0`` and ACKed; with a
    rate, 40 a second, so that none waits.
    """
    step = 25 if details.get("rate") else 0
    c = Connection(key="app.key:secret")
    c.connect(now=0)
    receive(c, connected(**details), now=0)
    c.attach(ROOM, now=0)
    receive(c, attached(), now=0)
    echoes = []
    for k in range(n):
        out = c.enter_client(ROOM, f"u{k}", data, now=k * step)
        (frame,) = presence_sent(out)
        echo = PresenceMessage(
            action=A.ENTER, client_id=f"u{k}", connection_id="C1", id=f"C1:{k}:0", data=data
        )
        echoes.append(echo)
        receive(c, ProtocolMessage(action=P.PRESENCE, channel=ROOM, presence=(echo,)), now=0)
        receive(c, ack(frame.msg_serial or 0), now=0)
    return c, echoes


def reentries_after_a_kept_resume(c: Connection, now: int = 100) -> Output:
    """Lose the transport, resume keeping the id, and get a non-RESUMED ATTACHED (D9)."""
    lost(c, now=now)
    assert receive(c, connected("C1", **_details(c)), now=now).commands  # the ATTACH
    return receive(c, attached(), now=now)


def _details(c: Connection) -> dict[str, Any]:
    d = c.details
    assert d is not None
    return {"size": d.max_message_size, "rate": d.max_inbound_rate}


# -- RTN15g: the ttl is checked before every attempt ----------------------------------------


def _disconnected_long_ago() -> tuple[Connection, Any]:
    c = Connection(key="app.key:secret", client_id="alice")
    c.connect(now=0)
    receive(c, connected(), now=0)
    c.attach(ROOM, now=0)
    receive(c, attached(), now=0)
    op = c.enter(ROOM, {"i": 1}, now=500).operation  # pending: never ACKed
    lost(c, now=1_000)  # the immediate resume ...
    lost(c, now=1_001)  # ... fails: DISCONNECTED, suspend at 61_000
    return c, op


def test_RTN15g_connect_after_the_ttl_suspends_first_then_connects_fresh() -> None:
    """connect() long after connectionStateTtl: SUSPENDED (RTN14e) fails the pending work
    (RTN7e) and suspends the room (RTL3c), then a fresh connection, no resume."""
    c, op = _disconnected_long_ago()
    assert c.snapshot().state is ConnectionState.DISCONNECTED
    out = c.connect(now=181_000)
    assert states(out) == [ConnectionState.SUSPENDED, ConnectionState.CONNECTING]
    (open_,) = of_type(out, OpenTransport)
    assert "resume" not in open_.params
    assert [(f.operation, f.error.code) for f in of_type(out, OperationFailed)] == [(op, 80002)]
    assert c.room(ROOM).state is ChannelState.SUSPENDED
    # The embedder ticking next does not close the new transport.
    assert of_type(c.tick(now=181_000), CloseTransport) == []
    assert c.state is ConnectionState.CONNECTING


def test_RTN15g_CONNECTED_after_a_late_connect_resends_nothing_failed() -> None:
    """The CONNECTED answering that connect re-attaches the room; the failed enter is not
    resent, and numbering starts from 0 on the new connection."""
    c, _ = _disconnected_long_ago()
    c.connect(now=181_000)
    out = receive(c, connected("C2"), now=181_010)
    assert [s.message.action for s in of_type(out, Send)] == [P.ATTACH]
    assert c.msg_serial == 0
    assert c.snapshot().pending == ()


def test_RTN15g_a_retry_from_tick_after_the_ttl_never_resumes() -> None:
    """A late tick in DISCONNECTED suspends first and waits suspended_retry_timeout."""
    c, op = _disconnected_long_ago()
    out = c.tick(now=181_000)
    assert states(out) == [ConnectionState.SUSPENDED]
    assert [f.operation for f in of_type(out, OperationFailed)] == [op]
    retry = c.tick(now=c.next_deadline() or 0)
    (open_,) = of_type(retry, OpenTransport)
    assert "resume" not in open_.params


# -- D10: split by maxMessageSize and 1,000 items -------------------------------------------


def test_D10_reentries_are_split_by_max_message_size() -> None:
    """Each frame, numbered as sent, encodes within maxMessageSize; together they carry every
    re-entry once, in order, and each ACK settles its own frame's operations."""
    c, _ = with_own_members(60, {"pad": "x" * 100}, size=2_000)
    out = reentries_after_a_kept_resume(c)
    frames = presence_sent(out)
    assert len(frames) > 3
    assert all(len(encode_text(f)) <= 2_000 for f in frames)
    assert clients(frames) == [f"u{k}" for k in range(60)]
    assert [f.msg_serial for f in frames] == list(range(60, 60 + len(frames)))
    first = frames[0]
    done = receive(c, ack(first.msg_serial or 0), now=101)
    settled = [e.operation.client_id for e in of_type(done, OperationSucceeded)]
    assert settled == [item.client_id for item in first.presence or ()]
    nack = ProtocolMessage(
        action=P.NACK,
        msg_serial=frames[1].msg_serial,
        error=ErrorInfo(code=40009, status_code=413, message="too big"),
    )
    failed = receive(c, nack, now=102)
    assert [e.client_id for e in of_type(failed, ReentryFailed)] == [
        item.client_id for item in frames[1].presence or ()
    ]
    assert len(c.snapshot().pending) == len(frames) - 2


def test_D10_reentries_are_split_at_1000_items() -> None:
    c, _ = with_own_members(MAX_ITEMS * 2 + 5)
    frames = presence_sent(reentries_after_a_kept_resume(c))
    assert [len(f.presence or ()) for f in frames] == [MAX_ITEMS, MAX_ITEMS, 5]


def test_D10_one_item_larger_than_max_message_size_still_goes_in_its_own_frame() -> None:
    c, _ = with_own_members(3, "y" * 500, size=600)
    frames = presence_sent(reentries_after_a_kept_resume(c))
    assert [len(f.presence or ()) for f in frames] == [1, 1, 1]


# -- D10: paced by maxInboundRate -----------------------------------------------------------


def test_D10_frames_beyond_max_inbound_rate_wait_in_order_for_the_deadline() -> None:
    """Rate 50/s: frames of at most 25 items (half a second's allowance, the margin for
    latency), the first at once, each next one when the budget has refilled; a user operation
    made meanwhile waits behind them."""
    c, _ = with_own_members(100, rate=50)
    lost(c, now=10_000)
    receive(c, connected("C1", rate=50), now=10_000)
    out = receive(c, attached(), now=10_000)
    frames = presence_sent(out)
    assert [len(f.presence or ()) for f in frames] == [25]
    assert c.next_deadline() == 10_500
    assert len(c.snapshot().waiting) == 3
    update = c.update_client(ROOM, "u0", {"late": True}, now=10_100)
    assert presence_sent(update) == []
    assert c.tick(now=10_499) == Output()
    sent = []
    now = 10_500
    while (deadline := c.next_deadline()) is not None and deadline <= 20_000:
        now = deadline
        sent += presence_sent(c.tick(now=now))
    assert now == 11_520  # 25 items each half second, then one item 20 ms later
    assert [len(f.presence or ()) for f in sent] == [25, 25, 25, 1]
    assert clients(frames + sent) == [*(f"u{k}" for k in range(100)), "u0"]
    serials = [f.msg_serial or 0 for f in frames + sent]
    assert serials == sorted(serials)
    assert c.snapshot().waiting == ()


def test_D10_RTN7e_frames_waiting_for_the_rate_fail_when_the_connection_suspends() -> None:
    c, _ = with_own_members(60, rate=50)
    reentries_after_a_kept_resume(c, now=10_000)
    waiting = c.snapshot().waiting
    assert waiting
    lost(c, now=10_001)
    lost(c, now=10_002)
    out = c.tick(now=10_001 + TTL)
    assert c.state is ConnectionState.SUSPENDED
    failed = {e.operation.id for e in of_type(out, OperationFailed)}
    assert {op for _, ops in waiting for op in ops} <= failed
    assert c.snapshot().waiting == ()


def test_D10_RTN19a_resends_are_paced_before_frames_not_sent_yet() -> None:
    """After a resume the pending frames go again first, with their serials, as the budget
    allows; then the frame that was still waiting."""
    c, _ = with_own_members(75, rate=50)
    first = presence_sent(reentries_after_a_kept_resume(c, now=10_000))
    assert len(first) == 1
    out = c.tick(now=10_500)  # the second frame of 25; one more waits
    second = presence_sent(out)
    lost(c, now=10_600)
    resumed = receive(c, connected("C1", rate=50), now=10_600)
    # The budget spent at 10_500 has refilled by 5 items only: the resends wait for it.
    assert presence_sent(resumed) == []
    assert c.next_deadline() == 11_000
    later = []
    while (deadline := c.next_deadline()) is not None and deadline < 20_000:
        later += presence_sent(c.tick(now=deadline))
    assert [f.msg_serial for f in later] == [first[0].msg_serial, second[0].msg_serial, 77]
    assert clients(later) == [f"u{k}" for k in range(75)]


# -- RTP17g1: a renumbered frame loses the old connection's ids -----------------------------


def _fail_the_resume(c: Connection, now: int, **details: Any) -> Output:
    lost(c, now=now)
    error = ErrorInfo(code=80008, status_code=400, message="unable to recover connection")
    return receive(c, connected("C2", error=error, **details), now=now)


def test_RTP17g1_RTN15c7_renumbered_reentries_lose_the_old_connections_ids() -> None:
    """A re-entry carries its member's id (C1:<k>:0) only on that connection; resent on a new
    connection after a failed resume, it carries no id."""
    c, echoes = with_own_members(3)
    (frame,) = presence_sent(reentries_after_a_kept_resume(c, now=10_000))
    assert [item.id for item in frame.presence or ()] == [e.id for e in echoes]
    (resent,) = presence_sent(_fail_the_resume(c, 10_001))
    assert resent.msg_serial == 0
    assert clients([resent]) == ["u0", "u1", "u2"]
    assert [item.id for item in resent.presence or ()] == [None, None, None]


def test_RTP17g1_D10_reentries_waiting_for_the_rate_lose_them_too() -> None:
    c, _ = with_own_members(40, rate=50)
    reentries_after_a_kept_resume(c, now=10_000)  # 25 sent, 15 waiting
    resent = presence_sent(_fail_the_resume(c, 10_001, rate=50))
    receive(c, attached(), now=10_003)
    while (deadline := c.next_deadline()) is not None and deadline < 20_000:
        resent += presence_sent(c.tick(now=deadline))
    assert clients(resent) == [f"u{k}" for k in range(40)]
    assert [item.id for f in resent for item in f.presence or ()] == [None] * 40
    assert [f.msg_serial for f in resent] == list(range(len(resent)))


def test_RTP17g1_ids_of_the_current_connection_are_kept_on_a_kept_resume() -> None:
    c, echoes = with_own_members(3)
    reentries_after_a_kept_resume(c, now=10_000)
    lost(c, now=10_001)
    out = receive(c, connected("C1"), now=10_002)
    (frame,) = presence_sent(out)
    assert [item.id for item in frame.presence or ()] == [e.id for e in echoes]


# -- D10, the server's side ------------------------------------------------------------------


def test_D10_server_does_not_charge_an_idempotent_reentry() -> None:
    """Same id, same content, nothing broadcast: no cost; anything else costs one each."""
    server = make_server(keys=(ANY_CLIENT,), max_messages_per_second=3)
    alice, _ = connect(server, "ta", client_id=None, key=ANY_CLIENT.key)
    attach(server, alice, ROOM)
    items = tuple(PresenceMessage(action=A.ENTER, client_id=f"u{k}", data=k) for k in range(3))
    frame = ProtocolMessage(action=P.PRESENCE, channel=ROOM, msg_serial=0, presence=items)
    out = server.receive("ta", frame, now=0)
    assert [m.action for m in out.messages_for("ta")][-1] == P.ACK
    stored = {m.client_id: m.id for m in server.members(ROOM)}
    again = tuple(
        PresenceMessage(action=A.ENTER, client_id=f"u{k}", data=k, id=stored[f"u{k}"])
        for k in range(3)
    )
    for serial in (1, 2):  # the budget is spent, yet both re-entries of all three pass
        frame = ProtocolMessage(action=P.PRESENCE, channel=ROOM, msg_serial=serial, presence=again)
        assert [m.action for m in server.receive("ta", frame, now=0).messages_for("ta")] == [P.ACK]
    changed = (PresenceMessage(action=A.ENTER, client_id="u0", data="new", id=stored["u0"]),)
    frame = ProtocolMessage(action=P.PRESENCE, channel=ROOM, msg_serial=3, presence=changed)
    refused = server.receive("ta", frame, now=0).messages_for("ta")
    assert refused[-1].action == P.NACK
    assert refused[-1].error is not None
    assert refused[-1].error.code == 42910
