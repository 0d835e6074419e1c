"""Stateful test of the connection reducer against a scripted server.

A hypothesis RuleBasedStateMachine drives a Connection with two rooms, presence operations and
published messages through transport drops, kept and failed resumes, ACKs, NACKs, duplicate
ACKs, idle timeouts and suspension, with the test playing a small server.  After every step it
checks that:

* every operation completes or fails exactly once (RTN7a, RTN7e, RTN19a);
* the msgSerials seen on each connection id are contiguous from 0, and a serial is only ever
  reused for a resend of the same frame (RTN7b, RTN15c6, RTN15c7);
* the server applies each (connection id, msgSerial) at most once (RTN19a dedupe), so no
  operation is applied twice on a connection;
* when the server announces a ``maxInboundRate``, every numbered frame it receives, resends
  included, fits a token bucket of one second's allowance, as the server's does (D10);
* transports are numbered 1, 2, 3 ... and the connection's current one is the one the server
  plays; frames and closes from older transports, arriving in any order and at any time,
  never change the snapshot: a frame gives exactly one FrameIgnored, a close an empty Output.

At teardown the connection is closed; then every operation must have been settled.
"""

from __future__ import annotations

import attrs
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from presence_core import (
    DEFAULT_MODES,
    CloseTransport,
    Connection,
    ConnectionDetails,
    ConnectionState,
    ErrorInfo,
    Flag,
    FrameIgnored,
    OpenTransport,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    ProtocolAction,
    ProtocolMessage,
    Send,
    UsageError,
)

ROOMS = ("a::$chat", "b::$chat")
MAX_IDLE = 15_000
TTL = 120_000
_INACTIVE = (ConnectionState.SUSPENDED, ConnectionState.CLOSED, ConnectionState.FAILED)


class ConnectionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000
        self.conn = Connection(key="app.key:secret", client_id="alice")
        # -- the scripted server --
        self.server_ids = 0
        self.known_keys: dict[str, str] = {}  # connectionKey -> connectionId (resumable)
        self.transport = False  # a transport is open (or opening)
        self.tid = 0  # the id of the latest OpenTransport
        self.old_tids: list[int] = []  # transports closed or lost, which may still speak
        self.awaiting_connected = False
        self.resume_key: str | None = None
        self.server_conn: str | None = None  # the connection id the transport carries
        self.unanswered: list[int] = []  # msgSerials received on this transport, in order
        self.frames: dict[tuple[str, int], ProtocolMessage] = {}  # per (conn id, serial)
        self.applied: set[tuple[str, int]] = set()
        self.attach_requested: set[str] = set()
        self.close_requested = False
        # -- bookkeeping of operations --
        self.user_ops: set[tuple[str, int]] = set()
        self.settled: dict[tuple[str, int], str] = {}
        # -- the rate limit (None: none announced) and the server's bucket per connection --
        self.rate: int | None = None
        self.allowance: dict[str, tuple[int, int]] = {}  # conn id -> (thousandths, as of)
        for room in ROOMS:
            self.conn.room(room)
        self.feed(self.conn.connect(now=self.now))

    # -- plumbing ------------------------------------------------------------------------------
    def tick_clock(self, step: int = 1) -> int:
        self.now += step
        return self.now

    def feed(self, out: Output) -> None:
        """Play the server's side of everything the client asked for."""
        if out.operation is not None:
            self.user_ops.add((out.operation.channel, out.operation.id))
        for event in out.events:
            if isinstance(event, OperationSucceeded | OperationFailed):
                self.settle(event.operation, type(event).__name__)
        for command in out.commands:
            if isinstance(command, OpenTransport):
                assert not self.transport, "a second transport while one is open"
                assert command.transport_id == self.tid + 1, "transport ids count from 1"
                self.tid = command.transport_id
                self.transport = True
                self.awaiting_connected = True
                self.resume_key = command.params.get("resume")
                self.unanswered = []
                self.attach_requested = set()
                self.close_requested = False
            elif isinstance(command, CloseTransport):
                self.lose_transport()
                self.awaiting_connected = False
            elif isinstance(command, Send):
                self.server_receive(command.message)

    def settle(self, op: Operation, how: str) -> None:
        key = (op.channel, op.id)
        assert key not in self.settled, f"{op} settled twice ({self.settled[key]}, {how})"
        self.settled[key] = how

    def server_receive(self, message: ProtocolMessage) -> None:
        assert self.transport, f"sent without a transport: {message}"
        assert not self.awaiting_connected, f"sent before CONNECTED: {message}"
        assert self.server_conn is not None
        if message.action == ProtocolAction.ATTACH:
            assert message.channel is not None
            self.attach_requested.add(message.channel)
        elif message.action == ProtocolAction.CLOSE:
            self.close_requested = True
        elif message.msg_serial is not None:
            serial = message.msg_serial
            self.charge(len(message.presence or message.messages or ()))
            key = (self.server_conn, serial)
            body = attrs.evolve(message, msg_serial=None)
            if key in self.frames:
                # Only a resend may reuse a serial, and it must be the same frame.
                assert self.frames[key] == body, f"serial {key} reused for another frame"
            else:
                expected = sum(1 for cid, _ in self.frames if cid == self.server_conn)
                assert serial == expected, f"serial {serial} on {self.server_conn}, not {expected}"
                self.frames[key] = body
            assert serial not in self.unanswered, "the same serial twice on one transport"
            self.unanswered.append(serial)

    def charge(self, items: int) -> None:
        """The server's token bucket: the frame must be affordable when it arrives."""
        if self.rate is None or self.server_conn is None:
            return
        full = self.rate * 1000
        level, at = self.allowance.get(self.server_conn, (full, self.now))
        level = min(full, level + (self.now - at) * self.rate) - items * 1000
        assert level >= 0, f"{items} items sent beyond the rate of {self.rate}/s"
        self.allowance[self.server_conn] = (level, self.now)

    def deliver(self, message: ProtocolMessage) -> None:
        self.feed(self.conn.receive(message, transport_id=self.tid, now=self.tick_clock()))

    def lose_transport(self) -> None:
        """The current transport is gone; it stays around to send stale input."""
        if self.transport:
            self.old_tids.append(self.tid)
        self.transport = False

    def connected_frame(self, cid: str, error: ErrorInfo | None = None) -> ProtocolMessage:
        key = f"key-{cid}"
        self.known_keys[key] = cid
        return ProtocolMessage(
            action=ProtocolAction.CONNECTED,
            connection_id=cid,
            connection_details=ConnectionDetails(
                client_id="alice",
                connection_key=key,
                max_idle_interval=MAX_IDLE,
                connection_state_ttl=TTL,
                max_inbound_rate=self.rate,
            ),
            error=error,
        )

    def live(self) -> bool:
        return self.transport and not self.awaiting_connected

    # -- server rules ----------------------------------------------------------------------
    @initialize(attach=st.booleans(), rate=st.sampled_from([None, None, 4]))
    def start(self, attach: bool, rate: int | None) -> None:
        """Most runs start CONNECTED with both rooms ATTACHED, where the interesting work is.

        A rate of 4 a second makes frames wait for their turn (two at a time at most).
        """
        self.rate = rate
        if not attach:
            return
        self.accept_transport(keep=False)
        for room in ROOMS:
            self.feed(self.conn.attach(room, now=self.tick_clock()))
        for room in ROOMS:
            self.attach_requested.discard(room)
            self.deliver(
                ProtocolMessage(
                    action=ProtocolAction.ATTACHED, channel=room, flags=int(DEFAULT_MODES)
                )
            )

    @precondition(lambda self: self.awaiting_connected)
    @rule(keep=st.booleans())
    def accept_transport(self, keep: bool) -> None:
        """CONNECTED: resume kept (same id) when asked and allowed, else a new id (80008)."""
        self.awaiting_connected = False
        if keep and self.resume_key in self.known_keys:
            cid = self.known_keys[self.resume_key]
            error = None
        else:
            self.server_ids += 1
            cid = f"C{self.server_ids}"
            error = (
                ErrorInfo(code=80008, status_code=400, message="unable to resume")
                if self.resume_key is not None
                else None
            )
        self.server_conn = cid
        self.deliver(self.connected_frame(cid, error))

    @precondition(lambda self: self.awaiting_connected)
    @rule()
    def refuse_transport(self) -> None:
        self.lose_transport()
        self.awaiting_connected = False
        self.feed(self.conn.transport_closed(transport_id=self.tid, now=self.tick_clock()))

    @precondition(lambda self: self.live())
    @rule(apply_first=st.booleans())
    def drop_transport(self, apply_first: bool) -> None:
        """The transport dies; optionally the server had applied what it got (ACKs lost)."""
        if apply_first:
            assert self.server_conn is not None
            self.applied.update((self.server_conn, s) for s in self.unanswered)
        self.lose_transport()
        self.feed(self.conn.transport_closed(transport_id=self.tid, now=self.tick_clock()))

    @precondition(lambda self: self.live())
    @rule(keep=st.booleans(), apply_first=st.booleans())
    def blip(self, keep: bool, apply_first: bool) -> None:
        """A transport drop immediately followed by a kept or failed resume."""
        self.drop_transport(apply_first)
        if self.awaiting_connected:
            self.accept_transport(keep)

    @precondition(lambda self: self.live() and bool(self.attach_requested))
    @rule(data=st.data())
    def answer_attach(self, data: st.DataObject) -> None:
        channel = data.draw(st.sampled_from(sorted(self.attach_requested)))
        self.attach_requested.discard(channel)
        resumed = data.draw(st.booleans())
        flags = int(DEFAULT_MODES | (Flag.RESUMED if resumed else 0))
        self.deliver(ProtocolMessage(action=ProtocolAction.ATTACHED, channel=channel, flags=flags))

    @precondition(lambda self: self.live() and bool(self.unanswered))
    @rule(data=st.data(), negative=st.sampled_from([False, False, True]), repeat=st.booleans())
    def ack_or_nack(self, data: st.DataObject, negative: bool, repeat: bool) -> None:
        """ACK or NACK the oldest unanswered frames (count >= 1), echoing acked presence.

        With ``repeat`` the same ACK/NACK arrives twice; the duplicate must settle nothing.
        """
        count = data.draw(st.integers(min_value=1, max_value=len(self.unanswered)))
        first = self.unanswered[0]
        self.answer(count, negative)
        if repeat and self.live():
            self.stray_ack(first, count, negative=negative)

    def answer(self, count: int, negative: bool) -> None:
        assert self.server_conn is not None
        covered, self.unanswered = self.unanswered[:count], self.unanswered[count:]
        for serial in covered:
            key = (self.server_conn, serial)
            if negative or key in self.applied:
                continue
            self.applied.add(key)
            body = self.frames[key]
            if body.channel is not None and body.presence:
                # The echo comes before the ACK, as a real server sends it.
                self.deliver(
                    attrs.evolve(
                        body,
                        id=f"{self.server_conn}:{serial}",
                        connection_id=self.server_conn,
                        timestamp=self.now,
                        presence=tuple(
                            attrs.evolve(p, client_id=p.client_id or "alice") for p in body.presence
                        ),
                    )
                )
        if not self.live():
            return
        error = ErrorInfo(code=40160, status_code=401, message="denied") if negative else None
        action = ProtocolAction.NACK if negative else ProtocolAction.ACK
        before = {serial: (ch, ops) for serial, ch, ops in self.conn.snapshot().pending}
        self.deliver(
            ProtocolMessage(action=action, msg_serial=covered[0], count=count, error=error)
        )
        # Exactly the covered frames were settled, each as the server said.
        after = {serial for serial, _, _ in self.conn.snapshot().pending}
        assert set(before) - after == set(before) & set(covered)
        expected = "OperationFailed" if negative else "OperationSucceeded"
        for serial in set(before) & set(covered):
            channel, ops = before[serial]
            for op_id in ops:
                assert self.settled.get((channel, op_id)) == expected

    @precondition(lambda self: self.live())
    @rule(serial=st.integers(min_value=0, max_value=6), count=st.integers(1, 3))
    def heartbeat_or_stray_ack(self, serial: int, count: int) -> None:
        """A HEARTBEAT, then an ACK for frames already settled or never sent."""
        self.deliver(ProtocolMessage(action=ProtocolAction.HEARTBEAT))
        self.stray_ack(serial, count, negative=False)

    def stray_ack(self, serial: int, count: int, *, negative: bool) -> None:
        """An ACK/NACK that covers no pending frame must settle nothing."""
        pending = {p[0] for p in self.conn.snapshot().pending}
        if pending & set(range(serial, serial + count)):
            return
        before = dict(self.settled)
        action = ProtocolAction.NACK if negative else ProtocolAction.ACK
        self.deliver(ProtocolMessage(action=action, msg_serial=serial, count=count))
        assert self.settled == before

    @precondition(lambda self: self.live() and self.close_requested)
    @rule()
    def answer_close(self) -> None:
        self.deliver(ProtocolMessage(action=ProtocolAction.CLOSED))

    # -- stale transports --------------------------------------------------------------------
    @precondition(lambda self: bool(self.old_tids))
    @rule(data=st.data(), frame=st.sampled_from(sorted(ProtocolAction, key=int)))
    def stale_frame(self, data: st.DataObject, frame: ProtocolAction) -> None:
        """An old transport delivers a frame late: one FrameIgnored, and nothing changes."""
        self.check_stale_frame(data.draw(st.sampled_from(self.old_tids)), frame)

    def check_stale_frame(self, tid: int, frame: ProtocolAction) -> None:
        message = (
            self.connected_frame("C99")
            if frame == ProtocolAction.CONNECTED
            else ProtocolMessage(action=frame, channel=ROOMS[0], msg_serial=0)
        )
        before = self.conn.snapshot()
        out = self.conn.receive(message, transport_id=tid, now=self.now + 1_000_000)
        assert out.commands == ()
        assert out.operation is None
        assert [type(e) for e in out.events] == [FrameIgnored]
        assert self.conn.snapshot() == before

    @precondition(lambda self: bool(self.old_tids))
    @rule(data=st.data(), late=st.sampled_from([0, 1, TTL]))
    def stale_close(self, data: st.DataObject, late: int) -> None:
        """An old transport's close arrives, out of order with the newer ones'."""
        self.check_stale_close(data.draw(st.sampled_from(self.old_tids)), late)

    def check_stale_close(self, tid: int, late: int) -> None:
        before = self.conn.snapshot()
        assert self.conn.transport_closed(transport_id=tid, now=self.now + late) == Output()
        assert self.conn.snapshot() == before

    # -- client rules ----------------------------------------------------------------------
    @rule(
        room=st.sampled_from(ROOMS),
        kind=st.sampled_from(["enter", "update", "leave", "publish"]),
        value=st.integers(0, 3),
    )
    def presence_op(self, room: str, kind: str, value: int) -> None:
        self.op(room, kind, value)

    @rule(value=st.integers(0, 3))
    def burst(self, value: int) -> None:
        """Several operations in a row, so that ACKs and resends cover many frames."""
        for room in ROOMS:
            self.op(room, "update", value)
            self.op(room, "enter", value + 1)

    def op(self, room: str, kind: str, value: int) -> None:
        try:
            if kind == "publish":
                out = self.conn.publish(room, "typing", {"v": value}, now=self.tick_clock())
            else:
                out = getattr(self.conn, kind)(room, {"v": value}, now=self.tick_clock())
        except UsageError:
            return
        self.feed(out)

    @rule(room=st.sampled_from(ROOMS), attach=st.booleans())
    def attach_or_detach(self, room: str, attach: bool) -> None:
        call = self.conn.attach if attach else self.conn.detach
        try:
            out = call(room, now=self.tick_clock())
        except UsageError:
            return
        self.feed(out)

    @rule(step=st.sampled_from([1_000, 1_000, 5_000, 16_000, 30_000, TTL]))
    def time_passes(self, step: int) -> None:
        """Deadlines fire: idle timeouts, retries, suspension and close timeouts."""
        self.tick_clock(step)
        self.feed(self.conn.tick(now=self.now))

    @precondition(lambda self: self.conn.state in _INACTIVE)
    @rule()
    def reconnect(self) -> None:
        self.feed(self.conn.connect(now=self.tick_clock()))

    @precondition(lambda self: self.conn.state is ConnectionState.CONNECTED)
    @rule()
    def close(self) -> None:
        self.feed(self.conn.close(now=self.tick_clock()))

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def pending_frames_are_unsettled_and_ordered(self) -> None:
        snap = self.conn.snapshot()
        serials = [p[0] for p in snap.pending]
        assert serials == sorted(serials)
        assert all(s < snap.msg_serial for s in serials)
        for _, channel, ops in snap.pending:
            for op_id in ops:
                assert (channel, op_id) not in self.settled
        for channel, ops in (*snap.queued, *snap.waiting):
            for op_id in ops:
                assert (channel, op_id) not in self.settled

    @invariant()
    def current_transport_is_the_one_the_server_plays(self) -> None:
        assert self.conn.transport_id == (self.tid if self.transport else None)

    @invariant()
    def inactive_connection_holds_no_work(self) -> None:
        """RTN7e: SUSPENDED, CLOSED and FAILED leave nothing pending or queued."""
        if self.conn.state in _INACTIVE:
            snap = self.conn.snapshot()
            assert snap.pending == ()
            assert snap.queued == ()
            assert snap.waiting == ()

    def teardown(self) -> None:
        # Close (answering CLOSE if one is sent), then every operation must be settled.
        self.feed(self.conn.close(now=self.tick_clock()))
        if self.conn.state is ConnectionState.CLOSING:
            self.deliver(ProtocolMessage(action=ProtocolAction.CLOSED))
        assert self.conn.state in (ConnectionState.CLOSED, ConnectionState.FAILED)
        snap = self.conn.snapshot()
        assert snap.pending == ()
        assert snap.queued == ()
        assert snap.waiting == ()
        for _, room in snap.rooms:
            assert room.pending == (), room
        missing = self.user_ops - set(self.settled)
        assert not missing, f"operations never settled: {missing}"


ConnectionMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_connection_machine = ConnectionMachine.TestCase


def test_machine_smoke_resume_cycle() -> None:
    """A fixed walk through the machine, so a regression shows up without hypothesis."""
    m = ConnectionMachine()
    m.accept_transport(keep=False)
    for room in ROOMS:
        m.presence_op(room, "enter", 1)

    def attach_all() -> None:
        for channel in sorted(m.attach_requested):
            m.attach_requested.discard(channel)
            m.deliver(
                ProtocolMessage(
                    action=ProtocolAction.ATTACHED, channel=channel, flags=int(DEFAULT_MODES)
                )
            )

    attach_all()
    assert len(m.unanswered) == 2
    m.drop_transport(apply_first=True)
    m.accept_transport(keep=True)
    attach_all()
    assert m.conn.connection_id == "C1"
    m.answer(len(m.unanswered), negative=False)
    m.drop_transport(apply_first=False)
    m.presence_op(ROOMS[0], "update", 2)
    m.accept_transport(keep=False)
    attach_all()
    m.answer(len(m.unanswered), negative=True)
    m.teardown()
    assert all(how == "OperationSucceeded" for how in list(m.settled.values())[:2])


def test_machine_smoke_paced_burst_and_resume() -> None:
    """A fixed walk with a rate: a burst waits for its turn, then a kept resume resends."""
    m = ConnectionMachine()
    m.start(attach=True, rate=4)
    m.burst(1)  # four frames; the budget of two items lets two out
    assert len(m.unanswered) == 2
    assert len(m.conn.snapshot().waiting) == 2
    m.time_passes(1_000)
    assert len(m.unanswered) == 4
    m.drop_transport(apply_first=False)
    m.accept_transport(keep=True)
    m.time_passes(1_000)
    m.time_passes(1_000)
    m.answer(len(m.unanswered), negative=False)
    m.teardown()
    assert list(m.settled.values()) == ["OperationSucceeded"] * 4


def test_machine_smoke_transports_closing_out_of_order() -> None:
    """A fixed walk: three transports, whose late frames and closes arrive in any order."""
    m = ConnectionMachine()
    m.start(attach=True, rate=None)
    m.presence_op(ROOMS[0], "enter", 1)
    m.drop_transport(apply_first=False)  # transport 1 lost; 2 opening
    m.refuse_transport()  # 2 fails: DISCONNECTED
    m.time_passes(16_000)  # the retry opens 3
    assert m.old_tids == [1, 2]
    assert m.conn.transport_id == 3
    for tid, late in ((2, 0), (1, TTL), (2, 1)):
        m.check_stale_close(tid, late)
    for frame in (ProtocolAction.CONNECTED, ProtocolAction.ACK, ProtocolAction.DISCONNECTED):
        m.check_stale_frame(1, frame)
        m.check_stale_frame(2, frame)
    m.accept_transport(keep=True)
    m.check_stale_frame(2, ProtocolAction.CLOSED)
    m.teardown()
