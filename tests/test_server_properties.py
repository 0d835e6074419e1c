"""Property tests of the server reducer: arbitrary client input, and a stateful model check."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from presence_core import (
    ErrorInfo,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server import (
    ApiKey,
    Server,
    ServerConnectionInfo,
)
from tests.server_support import KEY, T0, attach, connect, make_server, member_view, presence

A = PresenceAction
P = ProtocolAction
BOT = ApiKey(name="bot.key", secret="b", any_client_id=True)

# --- arbitrary frames ----------------------------------------------------------------------

client_ids = st.sampled_from([None, "alice", "bob", "*", ""])
payloads = st.sampled_from([None, "x", {"k": [1, 2]}, b"\x00\x01", "y" * 200])
presence_items = st.builds(
    PresenceMessage,
    action=st.sampled_from(list(PresenceAction)),
    client_id=client_ids,
    data=payloads,
    id=st.sampled_from([None, "c:0:0", "garbage"]),
)
messages = st.builds(Message, name=st.sampled_from([None, "typing.started"]), data=payloads)
frames = st.builds(
    ProtocolMessage,
    action=st.sampled_from(
        # AUTH is left out: a refused one ends the connection (test_server_protocol.py).
        [P.HEARTBEAT, P.ATTACH, P.DETACH, P.PRESENCE, P.MESSAGE, P.SYNC, P.CONNECT, 99]
    ),
    channel=st.sampled_from([None, "", "a", "b"]),
    msg_serial=st.one_of(st.none(), st.integers(-2, 6)),
    flags=st.one_of(st.none(), st.integers(0, 1 << 26)),
    id=st.one_of(st.none(), st.text(max_size=3)),
    presence=st.one_of(st.none(), st.lists(presence_items, max_size=4).map(tuple)),
    messages=st.one_of(st.none(), st.lists(messages, max_size=3).map(tuple)),
)


def snapshot(server: Server) -> tuple[object, ...]:
    return (
        member_view(server, "a"),
        member_view(server, "b"),
        server.connections(),
    )


@given(st.lists(frames, min_size=1, max_size=6))
def test_bad_client_input_is_answered_never_raised_and_changes_nothing(
    sequence: list[ProtocolMessage],
) -> None:
    """Bad client input gets an ERROR or NACK frame and leaves the state unchanged."""
    server = make_server(max_message_size=100, max_members_per_channel=3, keys=(KEY, BOT))
    alice, _ = connect(server, "ta", "alice")
    connect(server, "tb", "bob")
    attach(server, alice, "a")
    presence(server, alice, "a", A.ENTER, "present")
    for frame in sequence:
        before = snapshot(server)
        out = server.receive("ta", frame, now=T0)
        replies = out.messages_for("ta")
        refused = [m for m in replies if m.action in (P.NACK, P.ERROR)]
        if refused:
            assert snapshot(server) == before
            for reply in refused:
                assert isinstance(reply.error, ErrorInfo)
                assert reply.error.code in {40000, 40009, 40012, 40160, 90001, 90010, 91003}


# --- stateful model ----------------------------------------------------------------------

GRACE = 1_000
TTL = 3_000
CHANNELS = ("a", "b")


@attrs.define
class Slot:
    """The model of one client: its connection as the server should see it."""

    name: str
    client_id: str | None
    key: str
    state: str = "none"  # none, live, grace, suspended, gone
    tid: str = ""
    connection_id: str = ""
    connection_key: str = ""
    serial: int = 0
    attached: set[str] = attrs.Factory(set)
    grace_deadline: int = 0
    ttl_deadline: int = 0
    last_frame: ProtocolMessage | None = None
    #: Whether last_frame was ACKed, and whether it changed something (so was echoed).
    last_acked: bool = False
    last_echoed: bool = False
    #: The grace period ended since last_frame was ACKed: a resend is applied again.
    last_undone: bool = False
    transports: int = 0


class ServerMachine(RuleBasedStateMachine):
    """Drive the server with connects, resumes, drops, closes and presence; compare to a model.

    An observer connection, attached to both channels and never dropped, folds every PRESENCE
    event it receives; its view must always equal both the model and the server's member set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.server = make_server(
            seed=0, grace_period=GRACE, connection_state_ttl=TTL, keys=(KEY, BOT)
        )
        self.now = T0
        self.model: dict[str, dict[tuple[str, str], Any]] = {ch: {} for ch in CHANNELS}
        self.view: dict[str, dict[tuple[str, str], Any]] = {ch: {} for ch in CHANNELS}
        observer, _ = connect(self.server, "observer", "observer")
        for ch in CHANNELS:
            attach(self.server, observer, ch)
        self.slots = [
            Slot("alice", "alice", KEY.key),
            Slot("bob", "bob", KEY.key),
            Slot("bot", None, BOT.key),
        ]

    # --- helpers

    def fold(self, out: Any) -> None:
        for message in out.messages_for("observer"):
            if message.action == P.PRESENCE:
                for item in message.presence or ():
                    key = (item.connection_id, item.client_id)
                    if item.action == A.LEAVE:
                        assert key in self.view[message.channel], "leave for an unknown member"
                        del self.view[message.channel][key]
                    else:
                        self.view[message.channel][key] = item.data

    def remove_members(self, slot: Slot, channels: Any) -> None:
        for ch in channels:
            for key in [k for k in self.model[ch] if k[0] == slot.connection_id]:
                del self.model[ch][key]

    def open_transport(self, slot: Slot, **params: str) -> Any:
        slot.transports += 1
        tid = f"{slot.name}-{slot.transports}"
        client, out = connect(
            self.server, tid, slot.client_id, key=slot.key, now=self.now, **params
        )
        slot.tid = tid
        return client, out

    # --- rules

    @rule(index=st.integers(0, 2))
    def open_fresh(self, index: int) -> None:
        slot = self.slots[index]
        if slot.state not in ("none", "gone"):
            return
        client, out = self.open_transport(slot)
        self.fold(out)
        slot.state, slot.serial, slot.attached = "live", 0, set()
        slot.last_frame, slot.last_undone = None, False
        slot.connection_id, slot.connection_key = client.connection_id, client.connection_key

    @rule(index=st.integers(0, 2))
    def resume(self, index: int) -> None:
        slot = self.slots[index]
        if slot.state == "none":
            return
        old_tid = slot.tid if slot.state == "live" else None
        client, out = self.open_transport(slot, resume=slot.connection_key)
        self.fold(out)
        (connected,) = out.messages_for(slot.tid)
        if slot.state == "gone":
            assert connected.error is not None
            assert connected.error.code == 80008
            assert client.connection_id != slot.connection_id
            slot.serial, slot.attached, slot.last_frame = 0, set(), None
            slot.last_undone = False
        else:
            assert connected.error is None
            assert client.connection_id == slot.connection_id
            if slot.state == "suspended":
                slot.attached = set()
        if old_tid is not None:
            assert out.disconnected() == (old_tid,)
            assert not self.server.transport_closed(old_tid, now=self.now)
        slot.state = "live"
        slot.connection_id, slot.connection_key = client.connection_id, client.connection_key

    @rule(index=st.integers(0, 2), channel=st.sampled_from(CHANNELS))
    def attach_channel(self, index: int, channel: str) -> None:
        slot = self.slots[index]
        if slot.state != "live":
            return
        frame = ProtocolMessage(action=P.ATTACH, channel=channel)
        out = self.server.receive(slot.tid, frame, now=self.now)
        self.fold(out)
        attached = out.messages_for(slot.tid)[0]
        assert attached.action == P.ATTACHED
        assert attached.has_flag(4) == (channel in slot.attached)  # RESUMED
        slot.attached.add(channel)

    @rule(index=st.integers(0, 2), channel=st.sampled_from(CHANNELS))
    def detach_channel(self, index: int, channel: str) -> None:
        slot = self.slots[index]
        if slot.state != "live":
            return
        out = self.server.receive(
            slot.tid, ProtocolMessage(action=P.DETACH, channel=channel), now=self.now
        )
        self.fold(out)
        slot.attached.discard(channel)
        self.remove_members(slot, [channel])

    @rule(
        index=st.integers(0, 2),
        channel=st.sampled_from(CHANNELS),
        action=st.sampled_from([A.ENTER, A.UPDATE, A.LEAVE]),
        acting_for=st.sampled_from([None, "alice", "bob", "carol"]),
        data=st.sampled_from([None, 1, "two", {"three": 3}]),
    )
    def presence_op(
        self, index: int, channel: str, action: A, acting_for: str | None, data: Any
    ) -> None:
        slot = self.slots[index]
        if slot.state != "live":
            return
        serial = slot.serial
        slot.serial += 1
        item = PresenceMessage(action=action, client_id=acting_for, data=data)
        frame = ProtocolMessage(
            action=P.PRESENCE, channel=channel, msg_serial=serial, presence=(item,)
        )
        slot.last_frame = frame
        slot.last_undone = False
        out = self.server.receive(slot.tid, frame, now=self.now)
        self.fold(out)
        self.expect_applied(slot, frame, out)

    @staticmethod
    def effective_client_id(slot: Slot, acting_for: str | None) -> str | None:
        if slot.client_id is None:
            return acting_for
        return slot.client_id if acting_for in (None, slot.client_id) else None

    def expect_applied(self, slot: Slot, frame: ProtocolMessage, out: Any) -> None:
        """Check the reply to a frame applied as new, and apply it to the model."""
        (item,) = frame.presence or ()
        channel = frame.channel or ""
        reply = out.messages_for(slot.tid)[-1]
        effective = self.effective_client_id(slot, item.client_id)
        slot.last_acked = slot.last_echoed = False
        if channel not in slot.attached or effective is None:
            assert reply.action == P.NACK
            return
        assert reply == ProtocolMessage(action=P.ACK, msg_serial=frame.msg_serial, count=1)
        slot.last_acked = True
        key = (slot.connection_id, effective)
        if item.action == A.LEAVE:
            slot.last_echoed = key in self.model[channel]
            self.model[channel].pop(key, None)
        else:
            slot.last_echoed = True
            self.model[channel][key] = item.data

    @rule(
        index=st.integers(0, 2),
        channel=st.sampled_from(CHANNELS),
        data=st.sampled_from([None, 1, "two"]),
    )
    def attach_and_enter(self, index: int, channel: str, data: Any) -> None:
        """The common client flow, so that ACKed frames (and their resends) are frequent."""
        slot = self.slots[index]
        if slot.state != "live":
            return
        if channel not in slot.attached:
            self.attach_channel(index, channel)
        acting_for = "carol" if slot.client_id is None else None
        self.presence_op(index, channel, A.ENTER, acting_for, data)

    @precondition(lambda self: any(s.last_frame is not None for s in self.slots))
    @rule(index=st.integers(0, 2))
    def resend_duplicate(self, index: int) -> None:
        slot = self.slots[index]
        frame = slot.last_frame
        if slot.state != "live" or frame is None:
            return
        # The last frame of this connection (kept across resumes), resent.
        out = self.server.receive(slot.tid, frame, now=self.now)
        self.fold(out)
        if slot.last_undone:
            # The grace period undid it: applied again as new.
            slot.last_undone = False
            self.expect_applied(slot, frame, out)
            return
        # A duplicate: answered again, never applied again, and peers see nothing.  The
        # sender gets the echo again if the frame still determines its member (RTP17a).
        assert out.messages_for("observer") == ()
        replies = out.messages_for(slot.tid)
        if not slot.last_acked:
            assert [m.action for m in replies] == [P.NACK]
            return
        (item,) = frame.presence or ()
        channel = frame.channel or ""
        effective = self.effective_client_id(slot, item.client_id)
        assert effective is not None  # it was ACKed
        key = (slot.connection_id, effective)
        echo = slot.last_echoed and channel in slot.attached
        if echo and item.action != A.LEAVE:
            echo = key in self.model[channel]
        assert [m.action for m in replies] == ([P.PRESENCE, P.ACK] if echo else [P.ACK])
        if echo:
            (echoed,) = replies[0].presence or ()
            assert (echoed.connection_id, echoed.client_id) == key
            assert (echoed.action == A.LEAVE) == (item.action == A.LEAVE)
            if item.action != A.LEAVE:
                assert echoed.data == self.model[channel][key]

    @rule(index=st.integers(0, 2))
    def close(self, index: int) -> None:
        slot = self.slots[index]
        if slot.state != "live":
            return
        out = self.server.receive(slot.tid, ProtocolMessage(action=P.CLOSE), now=self.now)
        self.fold(out)
        assert out.disconnected() == (slot.tid,)
        assert not self.server.transport_closed(slot.tid, now=self.now)
        self.remove_members(slot, CHANNELS)
        slot.state, slot.attached = "gone", set()

    @rule(index=st.integers(0, 2), disconnect_frame=st.booleans())
    def drop(self, index: int, disconnect_frame: bool) -> None:
        slot = self.slots[index]
        if slot.state != "live":
            return
        if disconnect_frame:
            out = self.server.receive(slot.tid, ProtocolMessage(action=P.DISCONNECT), now=self.now)
            self.fold(out)
        self.fold(self.server.transport_closed(slot.tid, now=self.now))
        slot.state = "grace"
        slot.grace_deadline = self.now + GRACE
        slot.ttl_deadline = self.now + TTL
        self.expire()

    @rule(index=st.integers(0, 2), past_grace=st.booleans(), resend=st.booleans())
    def outage(self, index: int, past_grace: bool, resend: bool) -> None:
        """An outage, then a resume that re-attaches and resends the last frame (RTN19a),
        as a client that missed its ACK does; past the grace period, the resent frame
        meets members already removed by synthesized leaves."""
        slot = self.slots[index]
        if slot.state != "live":
            return
        channels = sorted(slot.attached)
        self.drop(index, disconnect_frame=False)
        self.advance(GRACE if past_grace else GRACE // 2, backwards=False)
        self.resume(index)
        for channel in channels:
            self.attach_channel(index, channel)
        if resend and slot.last_frame is not None:
            self.resend_duplicate(index)

    @rule(step=st.sampled_from([0, 1, GRACE // 2, GRACE, TTL]), backwards=st.booleans())
    def advance(self, step: int, backwards: bool) -> None:
        if backwards:
            # A clock step back: the server's time does not move, nothing fires.
            self.fold(self.server.tick(now=self.now - step))
            return
        self.now += step
        self.fold(self.server.tick(now=self.now))
        self.expire()

    def expire(self) -> None:
        for slot in self.slots:
            if slot.state == "grace" and slot.grace_deadline <= self.now:
                self.remove_members(slot, CHANNELS)
                slot.state, slot.attached = "suspended", set()
                slot.last_undone = slot.last_acked
            if slot.state == "suspended" and slot.ttl_deadline <= self.now:
                slot.state = "gone"

    # --- invariants

    @invariant()
    def members_match_model_and_observer(self) -> None:
        for ch in CHANNELS:
            server_view = member_view(self.server, ch)
            assert server_view == self.model[ch]
            assert self.view[ch] == self.model[ch]

    @invariant()
    def connections_match_model(self) -> None:
        listed: dict[str, ServerConnectionInfo] = {
            c.connection_id: c for c in self.server.connections()
        }
        for slot in self.slots:
            if slot.state in ("live", "grace", "suspended"):
                info = listed[slot.connection_id]
                expected = {"live": "connected", "grace": "disconnected"}.get(
                    slot.state, "suspended"
                )
                assert info.state.value == expected
                assert set(info.channels) == slot.attached
            elif slot.state == "gone" and slot.connection_id:
                assert slot.connection_id not in listed

    @invariant()
    def deadline_is_never_in_the_past(self) -> None:
        deadline = self.server.next_deadline()
        assert deadline is None or deadline > self.now


TestServerMachine = ServerMachine.TestCase
