"""A hypothesis RuleBasedStateMachine driving PresenceSet against a small reference model.

Inputs: PRESENCE frames and SYNC pages with out-of-order, synthesized and missing ids;
ATTACHED with and without HAS_PRESENCE/RESUMED; server DETACHED and ERROR; connection-caused
channel states (SUSPENDED, ATTACHING, DETACHED, FAILED); new connection ids; own operations
settled by a server that echoes then ACKs, or NACKs.

After every step: the same member set (and data) as the model; every leave event refers to a
member that was present; nobody listed twice; ABSENT never visible; the own-member map equals
the model's; every own member entered and not left is re-entered after a non-resumed ATTACHED
(or covered by a queued user operation in the same frame); no operation settles twice.

Re-entry follows the user's intent (the rule in presence_core._own_members): a clientId with an
operation in flight is not re-entered by the ATTACHED; an own operation ACKed without an echo
updates the own map; the latest ENTER/UPDATE sent before a non-resumed ATTACHED and ACKed with
no echo since is re-entered by the ACK.  The server here may ACK with or without an echo.

The model is written plainly (one dict with an ``absent`` flag, a set of residual keys, an id
parser based on ``split``, and for the intent a flat log of sends, own-map changes, clears and
re-attaches searched by position) so it shares no code with the reducer.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import event, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from presence_core import (
    ChannelState,
    ErrorInfo,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    PresenceAction,
    PresenceMessage,
    PresenceSet,
    ProtocolAction,
    ProtocolMessage,
    ReentryFailed,
    SendPresence,
    UsageError,
)
from tests.presence_set_support import CH, attached, detached, presence, sync

S = ChannelState
ME = "me"
LEAVE = PresenceAction.LEAVE
NOW = 10_000


def _pos(m: PresenceMessage) -> tuple[int, int] | None:
    if m.id is None or m.connection_id is None:
        return None
    prefix = m.connection_id + ":"
    if not m.id.startswith(prefix):
        return None
    parts = m.id[len(prefix) :].split(":")
    if len(parts) != 2 or not all(p.isascii() and p.isdecimal() for p in parts):
        return None
    return int(parts[0]), int(parts[1])


def _newer(new: PresenceMessage, old: PresenceMessage) -> bool:
    a, b = _pos(new), _pos(old)
    if a is None or b is None:
        if new.timestamp is None or old.timestamp is None:
            return True
        return new.timestamp >= old.timestamp
    return a > b


class Model:
    """The reference: entries[key] = (message, absent)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[PresenceMessage, bool]] = {}
        self.syncing = False
        self.sync_id: str | None = None
        self.residual: set[tuple[str, str]] = set()
        self.own: dict[str, PresenceMessage] = {}
        # clientId -> the own LEAVE that removed it: an older PRESENT (a stale SYNC entry) of
        # the same connection does not bring it back.
        self.own_left: dict[str, PresenceMessage] = {}
        # ("send", client, op id, action, data) | ("echo", client) | ("record", client)
        # | ("clear",) | ("reattach",), in the order they happened.
        self.log: list[tuple[Any, ...]] = []

    def clear_own(self) -> None:
        """RTP5a: the own map is cleared and operations in flight lose their intent."""
        self.own.clear()
        self.own_left.clear()
        self.log.append(("clear",))

    def _sent_at(self, op_id: int) -> int:
        return next(i for i, e in enumerate(self.log) if e[0] == "send" and e[2] == op_id)

    def stale(self, op_id: int) -> bool:
        """Whether the operation was sent before an RTP5a clear."""
        return any(e[0] == "clear" for e in self.log[self._sent_at(op_id) + 1 :])

    def intent(self, client: str, in_flight: set[int]) -> bool:
        """Present by intent: the last live operation in flight decides, else the own map."""
        live = [e for e in self.log if e[0] == "send" and e[2] in in_flight and e[1] == client]
        live = [e for e in live if not self.stale(e[2])]
        if live:
            return live[-1][3] is not LEAVE
        return client in self.own

    def ack(self, op_id: int, conn: str | None, attached: bool) -> list[Any]:
        """An own operation was ACKed: update the own map; return the re-entry data due."""
        i = self._sent_at(op_id)
        _, client, _, action, data = self.log[i]
        later = self.log[i + 1 :]
        if any(e[0] == "clear" for e in later):
            return []
        latest = not any(e[0] == "send" and e[1] == client for e in later)
        unchanged = not any(e[0] in ("echo", "record") and e[1] == client for e in later)
        if action is LEAVE:
            if (latest or unchanged) and self.own.pop(client, None) is not None:
                self.log.append(("record", client))
            return []
        reattaches = [j for j, e in enumerate(self.log) if e[0] == "reattach"]
        due = (
            latest
            and bool(reattaches)
            and reattaches[-1] > i
            and not any(e[0] == "echo" and e[1] == client for e in self.log[reattaches[-1] :])
        )
        if latest or unchanged:
            old = self.own.get(client)
            if old is None or old.data != data or type(old.data) is not type(data):
                event("intent: own map recorded from an ACK without echo")
                self.own[client] = PresenceMessage(
                    action=action, client_id=client, connection_id=conn, data=data
                )
                self.log.append(("record", client))
        if due and attached:
            event("intent: deduplicated operation re-entered by its ACK")
            return [data]
        return []

    def visible(self) -> dict[tuple[str, str], PresenceMessage]:
        return {k: m for k, (m, absent) in self.entries.items() if not absent}

    def start(self, sync_id: str | None) -> None:
        self.syncing = True
        self.sync_id = sync_id
        self.residual = set(self.visible())

    def end(self) -> list[tuple[str, str]]:
        gone = sorted(self.residual)
        for key in gone:
            del self.entries[key]
        self.entries = {k: v for k, v in self.entries.items() if not v[1]}
        self.syncing = False
        self.sync_id = None
        self.residual = set()
        return gone

    def clear(self) -> list[tuple[str, str]]:
        gone = sorted(self.visible())
        self.entries = {}
        self.syncing = False
        self.sync_id = None
        self.residual = set()
        return gone

    def apply(self, m: PresenceMessage, own_conn: str | None) -> bool:
        """Apply one item; return whether it is emitted as an event."""
        key = (m.connection_id or "", m.client_id or "")
        cur = self.entries.get(key)
        emitted = False
        if m.action is LEAVE:
            if cur is not None and not cur[1]:
                if _newer(m, cur[0]):
                    emitted = True
                    if self.syncing:
                        event("D1: leave of a known member during a sync")
                        self.entries[key] = (m, True)
                        self.residual.discard(key)
                    else:
                        del self.entries[key]
            elif self.syncing and (cur is None or _newer(m, cur[0])):
                event("D2: tombstone for an unknown member")
                self.entries[key] = (m, True)
        else:
            if self.syncing:
                self.residual.discard(key)
            if cur is None or _newer(m, cur[0]):
                self.entries[key] = (m, False)
                emitted = True
        if m.connection_id == own_conn:
            self._apply_own(m)
        return emitted

    def _apply_own(self, m: PresenceMessage) -> None:
        client = m.client_id or ""
        old = self.own.get(client)
        left = self.own_left.get(client)
        if m.action is LEAVE:
            if _pos(m) is None:
                return
            if old is None or old.connection_id != m.connection_id or _newer(m, old):
                if old is not None:
                    del self.own[client]
                    self.log.append(("echo", client))
                if left is None or left.connection_id != m.connection_id or _newer(m, left):
                    self.own_left[client] = m
        elif (
            m.action is PresenceAction.PRESENT
            and left is not None
            and left.connection_id == m.connection_id
            and not _newer(m, left)
        ):
            event("own map: a PRESENT older than the leave does not bring it back")
        elif old is None or old.connection_id != m.connection_id or _newer(m, old):
            if old is not None and old.connection_id != m.connection_id:
                event("D4: own member replaced from a new connection")
            self.own[client] = m
            self.own_left.pop(client, None)
            self.log.append(("echo", client))


_ids = st.sampled_from(["ok", "ok", "ok", "srv", "none", "junk"])


@st.composite
def _item(draw: Any, conns: list[str]) -> PresenceMessage:
    conn = draw(st.sampled_from(conns))
    kind = draw(_ids)
    serial, index = draw(st.integers(0, 4)), draw(st.integers(0, 1))
    mid = {
        "ok": f"{conn}:{serial}:{index}",
        "srv": f"srv{serial}:{serial}:0",
        "none": None,
        "junk": f"{conn}:x{serial}",
    }[kind]
    return PresenceMessage(
        action=draw(
            st.sampled_from(
                [
                    PresenceAction.ENTER,
                    PresenceAction.UPDATE,
                    PresenceAction.PRESENT,
                    PresenceAction.LEAVE,
                ]
            )
        ),
        client_id=draw(st.sampled_from(["a", ME])),
        connection_id=conn,
        id=mid,
        timestamp=draw(st.one_of(st.none(), st.integers(0, 5))),
        data=draw(st.integers(0, 3)),
    )


class PresenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ps = PresenceSet(CH, client_id=ME)
        self.model = Model()
        self.conn: str | None = None
        self.now = NOW
        self.sent: list[SendPresence] = []  # frames awaiting the server's answer, in order
        self.queued: list[Operation] = []  # model of the attach queue
        self.settled: set[int] = set()
        self.in_flight: set[int] = set()  # ids of operations sent and not yet settled
        self.msg_serial: dict[str, int] = {}

    # -- helpers --------------------------------------------------------------------------
    def _tick(self) -> int:
        self.now += 1
        return self.now

    def _conns(self) -> list[str]:
        return ["c1"] + ([self.conn] if self.conn else [])

    def _record(self, out: Output) -> None:
        for command in out.commands:
            if isinstance(command, SendPresence):
                self.sent.append(command)
                items = command.message.presence or ()
                for p, op in zip(items, command.operations, strict=True):
                    self.in_flight.add(op.id)
                    self.model.log.append(("send", op.client_id or ME, op.id, p.action, p.data))
        for outcome in out.events:
            if isinstance(outcome, OperationSucceeded | OperationFailed):
                op_id = outcome.operation.id
                assert op_id not in self.settled, "an operation settled twice"
                self.settled.add(op_id)
                self.in_flight.discard(op_id)
                self.queued = [q for q in self.queued if q.id != op_id]

    def _check_events(
        self,
        out: Output,
        expected: list[PresenceMessage],
        synthesized: list[tuple[str, str]],
        before: set[tuple[str, str]],
    ) -> None:
        events = [e for e in out.events if isinstance(e, PresenceMessage)]
        live = [
            e
            for e in events
            if not (e.action is LEAVE and e.id is None and e.timestamp == self.now)
        ]
        synth = [e for e in events if e not in live]
        assert live == expected
        assert sorted((e.connection_id, e.client_id) for e in synth) == synthesized
        seen = set(before)
        for e in events:
            key = (e.connection_id or "", e.client_id or "")
            if e.action is LEAVE:
                assert key in seen, f"leave for a member that was not present: {key}"
                seen.discard(key)
            else:
                seen.add(key)

    def _apply_frame(self, items: list[PresenceMessage]) -> list[PresenceMessage]:
        return [m for m in items if self.model.apply(m, self.conn)]

    # -- rules: connection and channel ------------------------------------------------------
    @initialize(conn=st.sampled_from(["k1", "k2"]), attach=st.booleans())
    def start(self, conn: str, attach: bool) -> None:
        """Most runs start connected and attached, where the interesting traffic applies."""
        self.conn = conn
        self.ps.set_connection(conn, now=self._tick())
        if attach:
            self.ps.attach(now=self._tick())
            self.ps.receive(attached(), now=self._tick())

    @rule(conn=st.sampled_from(["k1", "k2", "k3"]))
    def connected(self, conn: str) -> None:
        self.conn = conn
        self._record(self.ps.set_connection(conn, now=self._tick()))

    @rule()
    def attach(self) -> None:
        self._record(self.ps.attach(now=self._tick()))

    def detach(self) -> None:
        state = self.ps.state
        try:
            out = self.ps.detach(now=self._tick())
        except UsageError:
            assert state is S.FAILED
            return
        if self.ps.state is S.DETACHED and state is not S.DETACHED:
            self.model.clear()
            self.model.clear_own()
            assert self.queued == [] or all(
                any(isinstance(c, OperationFailed) and c.operation == q for c in out.events)
                for q in self.queued
            )
        self._record(out)

    @rule(has_presence=st.booleans(), resumed=st.booleans())
    def server_attached(self, has_presence: bool, resumed: bool) -> None:
        state = self.ps.state
        now = self._tick()
        before = set(self.model.visible())
        own_before = dict(self.model.own)
        queued_clients = {q.client_id or ME for q in self.queued}
        in_flight_clients = {
            e[1]
            for e in self.model.log
            if e[0] == "send" and e[2] in self.in_flight and not self.model.stale(e[2])
        }
        out = self.ps.receive(attached(has_presence=has_presence, resumed=resumed), now=now)
        if state in (S.DETACHING, S.DETACHED, S.FAILED) or (state is S.ATTACHED and resumed):
            self._check_events(out, [], [], before)
            assert not [c for c in out.commands if isinstance(c, SendPresence)]
            self._record(out)
            return
        assert self.ps.state is S.ATTACHED
        if has_presence:
            self.model.start(None)
            synthesized: list[tuple[str, str]] = []
        else:
            synthesized = self.model.clear()
        self._check_events(out, [], synthesized, before)
        frames = [c for c in out.commands if isinstance(c, SendPresence)]
        assert len(frames) <= 1, "re-entries and queued ops go out in ONE frame"
        reentered = {
            p.client_id
            for f in frames
            for p, op in zip(f.message.presence or (), f.operations, strict=True)
            if op.reentry
        }
        if reentered:
            event("RTP17i: re-entry sent")
        # Every own member entered and not left is re-entered, unless a queued operation or
        # one in flight decides its presence (an in-flight one is checked at its ACK).
        if in_flight_clients & set(own_before):
            event("intent: re-entry left to an operation in flight")
        assert reentered == set(own_before) - queued_clients - in_flight_clients
        if not resumed:
            self.model.log.append(("reattach",))
        for f in frames:
            for p, op in zip(f.message.presence or (), f.operations, strict=True):
                if op.reentry:
                    stored = own_before[p.client_id or ""]
                    assert p.action is PresenceAction.ENTER
                    assert p.data == stored.data
                    assert p.id == (stored.id if stored.connection_id == self.conn else None)
        self.queued = []
        self._record(out)

    def server_detached(self) -> None:
        state = self.ps.state
        out = self.ps.receive(detached(), now=self._tick())
        if state is S.DETACHING:
            self.model.clear()
            self.model.clear_own()
        elif state is S.ATTACHING:
            assert self.ps.state is S.SUSPENDED
            self.queued = []
        assert not [e for e in out.events if isinstance(e, PresenceMessage)]
        self._record(out)

    def server_error(self) -> None:
        state = self.ps.state
        err = ErrorInfo(code=90000, status_code=400)
        out = self.ps.receive(
            ProtocolMessage(action=ProtocolAction.ERROR, channel=CH, error=err), now=self._tick()
        )
        if state is not S.FAILED:
            assert self.ps.state is S.FAILED
            self.model.clear()
            self.model.clear_own()
            self.queued = []
        assert not [e for e in out.events if isinstance(e, PresenceMessage)]
        self._record(out)

    def connection_state(self, goal: ChannelState) -> None:
        state = self.ps.state
        out = self.ps.set_channel_state(goal, now=self._tick())
        if goal in (S.DETACHED, S.FAILED) and state in (
            S.ATTACHING,
            S.ATTACHED,
            S.SUSPENDED,
            S.DETACHING,
        ):
            self.model.clear()
            self.model.clear_own()
            self.queued = []
        if goal is S.SUSPENDED and state in (S.ATTACHING, S.ATTACHED):
            self.queued = []
        assert not [e for e in out.events if isinstance(e, PresenceMessage)]
        self._record(out)

    @rule(
        kind=st.sampled_from(
            [
                "detach",
                "server_detached",
                "server_error",
                "suspended",
                "attaching",
                "closed",
                "failed",
            ]
        )
    )
    def disruption(self, kind: str) -> None:
        """Channel and connection trouble, one rule so it does not crowd out the traffic."""
        if kind == "detach":
            self.detach()
        elif kind == "server_detached":
            self.server_detached()
        elif kind == "server_error":
            self.server_error()
        else:
            goal = {
                "suspended": S.SUSPENDED,
                "attaching": S.ATTACHING,
                "closed": S.DETACHED,
                "failed": S.FAILED,
            }[kind]
            self.connection_state(goal)

    # -- rules: presence traffic -------------------------------------------------------------
    @rule(data=st.data())
    def presence_frame(self, data: st.DataObject) -> None:
        items = data.draw(st.lists(_item(self._conns()), min_size=1, max_size=4))
        before = set(self.model.visible())
        attached_now = self.ps.state is S.ATTACHED
        out = self.ps.receive(presence(*items), now=self._tick())
        expected = self._apply_frame(items) if attached_now else []
        self._check_events(out, expected, [], before)
        self._record(out)

    @precondition(
        lambda self: (
            self.ps.state is S.ATTACHED
            and ME in self.model.own
            and self.model.own[ME].connection_id == self.conn
            and _pos(self.model.own[ME]) is not None
        )
    )
    @rule()
    def own_leave_then_stale_sync_entry(self) -> None:
        """A sync page made before our leave, delivered after its echo, still lists us."""
        stored = self.model.own[ME]
        serial, index = _pos(stored) or (0, 0)
        leave = attrs.evolve(
            stored, action=PresenceAction.LEAVE, id=f"{self.conn}:{serial + 1}:{index}"
        )
        stale = attrs.evolve(stored, action=PresenceAction.PRESENT)
        for frame, items in ((presence(leave), [leave]), (sync("s9:more:x", stale), [stale])):
            before = set(self.model.visible())
            out = self.ps.receive(frame, now=self._tick())
            m = self.model
            if frame.action == ProtocolAction.SYNC and (not m.syncing or m.sync_id != "s9"):
                m.start("s9")
            self._check_events(out, self._apply_frame(items), [], before)
            self._record(out)

    @rule(
        data=st.data(),
        sync_id=st.sampled_from(["s1", "s2", None]),
        last=st.booleans(),
        empty=st.booleans(),
    )
    def sync_page(self, data: st.DataObject, sync_id: str | None, last: bool, empty: bool) -> None:
        items = [] if empty else data.draw(st.lists(_item(self._conns()), max_size=4))
        cursor = None if sync_id is None else f"{sync_id}:{'' if last else 'more:x'}"
        before = set(self.model.visible())
        attached_now = self.ps.state is S.ATTACHED
        frame = sync(cursor, *items)
        if empty:
            frame = ProtocolMessage(action=ProtocolAction.SYNC, channel=CH, channel_serial=cursor)
        out = self.ps.receive(frame, now=self._tick())
        if not attached_now:
            self._check_events(out, [], [], before)
            return
        m = self.model
        if not m.syncing:
            m.start(sync_id)
        elif m.sync_id is None:
            m.sync_id = sync_id
        elif sync_id is None or sync_id != m.sync_id:
            m.start(sync_id)
        expected = self._apply_frame(items)
        synthesized = m.end() if sync_id is None or last else []
        if synthesized:
            event("RTP19: residual leaves")
        self._check_events(out, expected, synthesized, before)
        self._record(out)

    # -- rules: own operations ----------------------------------------------------------------
    @rule(kind=st.sampled_from(["enter", "update", "leave"]), value=st.integers(0, 3))
    def own_operation(self, kind: str, value: int) -> None:
        state = self.ps.state
        present = self.model.intent(ME, self.in_flight)
        try:
            out = getattr(self.ps, kind)(value, now=self._tick())
        except UsageError:
            assert state in (S.SUSPENDED, S.DETACHING, S.FAILED)
            assert kind != "leave" or present
            return
        op = out.operation
        assert op is not None
        if kind == "leave" and (
            state in (S.INITIALIZED, S.DETACHED)
            or (state in (S.SUSPENDED, S.DETACHING, S.FAILED) and not present)
        ):
            assert out.events == (OperationSucceeded(operation=op),)
        elif state is S.ATTACHED:
            assert len([c for c in out.commands if isinstance(c, SendPresence)]) == 1
        else:
            assert state in (S.INITIALIZED, S.DETACHED, S.ATTACHING)
            assert self.ps.state is S.ATTACHING
            self.queued.append(op)
        self._record(out)

    @precondition(lambda self: bool(self.sent))
    @rule(nack=st.booleans(), echoed=st.sampled_from([True, True, False]))
    def server_answers_oldest_frame(self, nack: bool, echoed: bool) -> None:
        """NACK, or ACK after an echo (when attached), or ACK alone (a deduplicated resend)."""
        frame = self.sent.pop(0)
        if nack:
            out = self.ps.reject(
                frame.operations, ErrorInfo(code=40160, status_code=401), now=self._tick()
            )
            failed_reentries = {op.client_id for op in frame.operations if op.reentry}
            got = {c.client_id for c in out.events if isinstance(c, ReentryFailed)}
            assert got == failed_reentries
            assert all(c.error.code == 91004 for c in out.events if isinstance(c, ReentryFailed))
            self._record(out)
            return
        if echoed and self.ps.state is S.ATTACHED and self.conn is not None:
            serial = self.msg_serial.get(self.conn, 0)
            self.msg_serial[self.conn] = serial + 1
            items = [
                PresenceMessage(
                    action=p.action,
                    client_id=p.client_id or ME,
                    connection_id=self.conn,
                    id=f"{self.conn}:{serial}:{i}",
                    timestamp=self.now,
                    data=p.data,
                )
                for i, p in enumerate(frame.message.presence or ())
            ]
            before = set(self.model.visible())
            out = self.ps.receive(presence(*items), now=self._tick())
            self._check_events(out, self._apply_frame(items), [], before)
        attached_now = self.ps.state is S.ATTACHED
        out = self.ps.acknowledge(frame.operations, now=self._tick())
        expected: list[Any] = []
        for op in frame.operations:
            expected += self.model.ack(op.id, self.conn, attached_now)
        settled = [c for c in out.events if isinstance(c, OperationSucceeded)]
        assert [c.operation for c in settled] == list(frame.operations)
        reentries = [c for c in out.commands if isinstance(c, SendPresence)]
        assert len(reentries) <= 1
        items = [p for f in reentries for p in f.message.presence or ()]
        assert [p.data for p in items] == expected
        assert all(p.action is PresenceAction.ENTER and p.id is None for p in items)
        assert all(op.reentry for f in reentries for op in f.operations)
        self._record(out)

    # -- invariants --------------------------------------------------------------------------
    @invariant()
    def same_members(self) -> None:
        listed = [(m.connection_id, m.client_id) for m in self.ps.get()]
        assert len(listed) == len(set(listed)), "a member is listed twice"
        visible = self.model.visible()
        assert set(listed) == set(visible)
        for member in self.ps.get():
            assert member.action is PresenceAction.PRESENT  # ABSENT never visible
            assert member.data == visible[(member.connection_id, member.client_id)].data
        for client in ("a", ME):
            expected = sorted(k for k in visible if k[1] == client)
            assert (
                sorted((m.connection_id, m.client_id) for m in self.ps.get(client_id=client))
                == expected
            )
            assert self.ps.is_user_present(client) == bool(expected)

    @invariant()
    def same_own_members_and_sync_flag(self) -> None:
        assert {c: m.data for c, m in self.ps.own_members.items()} == {
            c: m.data for c, m in self.model.own.items()
        }
        assert self.ps.sync_complete == (not self.model.syncing)
        absent = {k for k, (_, gone) in self.model.entries.items() if gone}
        snap_absent = {
            (pic[0], pic[1]) for flag, pic in self.ps.snapshot().members if flag == "absent"
        }
        assert snap_absent == absent


PresenceMachine.TestCase.settings = settings(stateful_step_count=50, max_examples=200)
TestPresenceMachine = PresenceMachine.TestCase
