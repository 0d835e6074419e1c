"""Minimal fault interleavings in which a client and the server could end up disagreeing.

They are the hard cases of the simulator's convergence property, each cut down to the fewest
steps.  Each test drives a :class:`~presence_core.Server` and :class:`~presence_core.Connection`
by hand (no simulator), so every step is visible, and asserts the outcome the property needs.
"""

from __future__ import annotations

import random

from presence_core import (
    Connection,
    OpenTransport,
    OperationSucceeded,
    Output,
    PresenceAction,
    ProtocolAction,
    ProtocolMessage,
    RoomOptions,
    Send,
)
from presence_core.server import (
    Server,
    ServerOutput,
)
from presence_core.testing import EPOCH, SIMULATION_CONFIG, SIMULATION_KEY
from tests.connection_support import lost, receive

CHANNEL = "lobby::$chat"
GRACE = SIMULATION_CONFIG.grace_period


def sent(out: Output) -> list[ProtocolMessage]:
    return [c.message for c in out.commands if isinstance(c, Send)]


def params(out: Output) -> dict[str, str]:
    (command,) = [c for c in out.commands if isinstance(c, OpenTransport)]
    return command.params


def deliver(conn: Connection, out: ServerOutput, tid: int, now: int) -> list[Output]:
    """Give ``conn`` every frame ``out`` sends to transport ``tid``, in order."""
    return [receive(conn, m, now=now) for m in out.messages_for(tid)]


def to_server(server: Server, tid: int, frames: list[ProtocolMessage], now: int) -> ServerOutput:
    commands: list[object] = []
    for frame in frames:
        commands.extend(server.receive(tid, frame, now=now).commands)
    return ServerOutput(tuple(commands))  # type: ignore[arg-type]


def attached_client() -> tuple[Server, Connection, int]:
    """alice connected on transport 1 with the lobby attached; returns (server, conn, now)."""
    server = Server(SIMULATION_CONFIG, random.Random(0).randbytes)
    conn = Connection(key=SIMULATION_KEY.key, client_id="alice")
    now = EPOCH
    opened = conn.connect(now=now)
    deliver(conn, server.connect(1, params(opened), now=now), 1, now)
    out = conn.attach(CHANNEL, now=now)
    deliver(conn, to_server(server, 1, sent(out), now), 1, now)
    return server, conn, now


def succeeded(outputs: list[Output]) -> list[PresenceAction | None]:
    return [
        c.operation.action
        for out in outputs
        for c in out.events
        if isinstance(c, OperationSucceeded) and not c.operation.reentry
    ]


def test_resent_enter_after_the_grace_period_is_not_lost() -> None:
    """RTN19a + RTP17i (server: dedup by msgSerial after the grace period).

    The enter reaches the server, but its echo and ACK are lost with the transport.  The client
    stays away longer than the grace period (its first retry fails, the next comes 15 s later),
    so the server synthesizes the leave.  The resume keeps the connectionId, and the client
    resends the enter with msgSerial 0.  The server ACKs it as a duplicate without applying it
    again, although its effect was undone by the grace-period leave; the client never saw its
    own echo, so it has nothing to re-enter.  The enter succeeded, yet alice is absent.
    """
    server, conn, now = attached_client()
    enter = conn.enter(CHANNEL, "hello", now=now)
    to_server(server, 1, sent(enter), now)  # applied; echo and ACK never arrive
    server.transport_closed(1, now=now + 10)
    retry = lost(conn, now=now + 10)
    lost(conn, now=now + 20)  # the immediate resume attempt fails (no network)
    server.tick(now=now + GRACE + 100)  # grace over: alice's synthesized leave
    assert server.members(CHANNEL) == ()
    later = now + 15_100
    retry = conn.tick(now=later)
    assert params(retry)["resume"]
    outputs = deliver(conn, server.connect(2, params(retry), now=later), 2, later)
    frames = [m for out in outputs for m in sent(out)]
    assert [m.action for m in frames] == [ProtocolAction.ATTACH, ProtocolAction.PRESENCE]
    replies = to_server(server, 2, frames, later)
    outputs = deliver(conn, replies, 2, later)
    followups = [m for out in outputs for m in sent(out)]
    outputs += deliver(conn, to_server(server, 2, followups, later), 2, later)
    assert succeeded(outputs) == [PresenceAction.ENTER]
    assert [m.client_id for m in server.members(CHANNEL)] == ["alice"]


def test_reentry_does_not_undo_a_leave_resent_after_reconnect() -> None:
    """RTP17i/D10 + RTN19a (PresenceSet: re-entry ignores operations in flight).

    alice entered (echo and ACK received), then left; the LEAVE frame is lost with the
    transport.  The resume within the grace period succeeds: the client sends ATTACH and
    resends the LEAVE.  The channel goes ATTACHING -> ATTACHED, so RTP17i re-enters alice from
    the own-member map, which still holds her because the leave's echo is not back yet.  That
    re-entry reaches the server after the resent leave and enters alice again: the leave
    succeeded, yet alice is present (a zombie re-entry).
    """
    server, conn, now = attached_client()
    enter = conn.enter(CHANNEL, "hello", now=now)
    deliver(conn, to_server(server, 1, sent(enter), now), 1, now)
    leave = conn.leave(CHANNEL, now=now + 5)
    assert sent(leave)  # the frame is lost with the transport
    server.transport_closed(1, now=now + 10)
    retry = lost(conn, now=now + 10)
    outputs = deliver(conn, server.connect(2, params(retry), now=now + 20), 2, now + 20)
    frames = [m for out in outputs for m in sent(out)]
    outputs = deliver(conn, to_server(server, 2, frames, now + 30), 2, now + 30)
    reentry = [m for out in outputs for m in sent(out)]
    outputs += deliver(conn, to_server(server, 2, reentry, now + 40), 2, now + 40)
    assert PresenceAction.LEAVE in succeeded(outputs)
    assert server.members(CHANNEL) == ()


def test_reentry_does_not_restore_data_older_than_a_resent_update() -> None:
    """RTP17i/D10 + RTN19a (PresenceSet: re-entry ignores operations in flight).

    alice entered with data 1 (echo and ACK received) and updated to data 2; the UPDATE frame
    is lost with the transport.  The client is away past the grace period, then resumes the
    same connection: it resends the UPDATE (applied: data 2), and on the ATTACHED without
    RESUMED it re-enters alice from the own-member map with the older data 1.  The update
    succeeded, yet the server ends with data 1.
    """
    server, conn, now = attached_client()
    enter = conn.enter(CHANNEL, 1, now=now)
    deliver(conn, to_server(server, 1, sent(enter), now), 1, now)
    update = conn.update(CHANNEL, 2, now=now + 5)
    assert sent(update)  # lost with the transport
    server.transport_closed(1, now=now + 10)
    lost(conn, now=now + 10)
    lost(conn, now=now + 20)  # the immediate resume attempt fails
    server.tick(now=now + GRACE + 100)
    later = now + 15_100
    retry = conn.tick(now=later)
    outputs = deliver(conn, server.connect(2, params(retry), now=later), 2, later)
    frames = [m for out in outputs for m in sent(out)]
    outputs = deliver(conn, to_server(server, 2, frames, later), 2, later)
    reentry = [m for out in outputs for m in sent(out)]
    outputs += deliver(conn, to_server(server, 2, reentry, later), 2, later)
    assert PresenceAction.UPDATE in succeeded(outputs)
    assert [(m.client_id, m.data) for m in server.members(CHANNEL)] == [("alice", 2)]


def test_member_entered_without_presence_subscribe_is_reentered_after_a_lost_echo() -> None:
    """RTP17a + RTN19a + RTP17i (server: a deduplicated resend is ACKed without its echo).

    A backend attached without presence subscribe enters ``x``; the enter is applied but its
    echo and ACK are lost with the transport.  The resume within the grace period succeeds:
    ATTACHED with RESUMED and no SYNC (not a presence subscriber), and the resent enter is
    ACKed as a duplicate without an echo.  So the own-member map never holds ``x``, and when a
    later outage outlasts the grace period, the ATTACHED without RESUMED re-enters nothing:
    ``x``'s enter succeeded, yet ``x`` is gone for good.
    """
    server = Server(SIMULATION_CONFIG, random.Random(0).randbytes)
    conn = Connection(key=SIMULATION_KEY.key)
    now = EPOCH
    deliver(conn, server.connect(1, params(conn.connect(now=now)), now=now), 1, now)
    conn.room(CHANNEL, options=RoomOptions(subscribe=False))
    deliver(conn, to_server(server, 1, sent(conn.attach(CHANNEL, now=now)), now), 1, now)
    enter = conn.enter_client(CHANNEL, "x", "hello", now=now)
    to_server(server, 1, sent(enter), now)  # applied; echo and ACK lost
    server.transport_closed(1, now=now + 10)
    retry = lost(conn, now=now + 10)
    outputs = deliver(conn, server.connect(2, params(retry), now=now + 20), 2, now + 20)
    frames = [m for out in outputs for m in sent(out)]
    outputs = deliver(conn, to_server(server, 2, frames, now + 30), 2, now + 30)
    assert succeeded(outputs) == [PresenceAction.ENTER]
    # A second outage, longer than the grace period.
    server.transport_closed(2, now=now + 1_000)
    lost(conn, now=now + 1_000)
    lost(conn, now=now + 1_010)  # the immediate resume attempt fails
    server.tick(now=now + 1_000 + GRACE + 100)
    later = now + 16_100
    retry = conn.tick(now=later)
    outputs = deliver(conn, server.connect(3, params(retry), now=later), 3, later)
    frames = [m for out in outputs for m in sent(out)]
    outputs = deliver(conn, to_server(server, 3, frames, later), 3, later)
    reentry = [m for out in outputs for m in sent(out)]
    deliver(conn, to_server(server, 3, reentry, later), 3, later)
    assert [m.client_id for m in server.members(CHANNEL)] == ["x"]


def test_resume_within_grace_with_an_enter_in_flight_gives_peers_no_extra_event() -> None:
    """RTP17i + RTN19a + D12 (a resume within the grace period loses nothing: peers see no
    events) (PresenceSet: re-entry for an operation in flight after a RESUMED attach).

    alice's ENTER frame is lost with the transport; the resume within the grace period
    succeeds.  The client resends the ENTER (msgSerial 0) and, on the ATTACHED (RESUMED, after
    ATTACHING), also re-enters alice from that in-flight ENTER, without an id.  The server
    applies the resent ENTER, then the id-less re-entry as a change: peers see ENTER and a
    spurious UPDATE with the same data.  The resend alone restores everything here.
    """
    server, conn, now = attached_client()
    bob = Connection(key=SIMULATION_KEY.key, client_id="bob")
    deliver(bob, server.connect(9, params(bob.connect(now=now)), now=now), 9, now)
    deliver(bob, to_server(server, 9, sent(bob.attach(CHANNEL, now=now)), now), 9, now)
    enter = conn.enter(CHANNEL, "x", now=now)
    assert sent(enter)  # lost with the transport
    server.transport_closed(1, now=now + 10)
    retry = lost(conn, now=now + 10)
    outputs = deliver(conn, server.connect(2, params(retry), now=now + 20), 2, now + 20)
    frames = [m for out in outputs for m in sent(out)]
    replies = to_server(server, 2, frames, now + 30)
    to_bob = list(replies.messages_for(9))
    outputs = deliver(conn, replies, 2, now + 30)
    reentry = [m for out in outputs for m in sent(out)]
    to_bob += to_server(server, 2, reentry, now + 40).messages_for(9)
    seen = [
        p.action for m in to_bob if m.action == ProtocolAction.PRESENCE for p in m.presence or ()
    ]
    assert seen == [PresenceAction.ENTER]
