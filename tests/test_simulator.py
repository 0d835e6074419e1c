"""The deterministic simulator (presence_core.testing): scenarios, determinism, replay, checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from presence_core import (
    ChannelEvents,
    ChannelState,
    ConnectionState,
    ConnectionStateChanged,
    Output,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    RoomOptions,
    UsageError,
)
from presence_core._channel_state import TRANSITIONS, ChannelInput, Transition
from presence_core.testing import (
    EPOCH,
    SERVER,
    Attach,
    ClientSpec,
    Detach,
    DropTransport,
    Enter,
    Leave,
    Partition,
    Refused,
    ReplayMismatch,
    Resync,
    ScheduleEvent,
    Simulation,
    SimulationError,
    Update,
    replay,
)
from tests.connection_support import receive

ALICE = ClientSpec(client_id="alice", rooms=["lobby"])
BOB = ClientSpec(client_id="bob", rooms=["lobby"])
CHANNEL = "lobby::$chat"


def two_clients(seed: int = 7, **kwargs: object) -> Simulation:
    return Simulation(seed=seed, clients=[ALICE, BOB], **kwargs)  # type: ignore[arg-type]


def actions(sim: Simulation, name: str, about: str) -> list[tuple[str, str | None]]:
    """(action, connectionId) of every presence event ``name`` saw about clientId ``about``."""
    return [
        (e.action.name, e.connection_id)
        for e in sim.client(name).presence_events("lobby")
        if e.client_id == about
    ]


def entered(at: int = 100) -> list[ScheduleEvent]:
    return [
        Enter(at=at, client="alice", room="lobby", data={"mood": "ok"}),
        Enter(at=at + 10, client="bob", room="lobby", data="hi"),
    ]


# --- the basics ---------------------------------------------------------------------------


def test_two_clients_see_each_other_and_match_the_server() -> None:
    sim = two_clients()
    sim.run_until_quiet([*entered(), Update(at=500, client="alice", room="lobby", data=2)])
    alice_id = sim.client("alice").connection_id
    assert {(m.client_id, m.connection_id, m.data) for m in sim.client("bob").get("lobby")} == {
        ("alice", alice_id, 2),
        ("bob", sim.client("bob").connection_id, "hi"),
    }
    assert len(sim.server_members("lobby")) == 2
    assert sim.check_convergence() == []
    assert sim.elapsed < 2_000


def test_frames_cross_the_network_encoded_so_bytes_arrive_as_bytes() -> None:
    """RSL4/RSL6: binary data goes out base64-encoded and is decoded back by every peer."""
    sim = two_clients()
    sim.run_until_quiet([Enter(at=10, client="alice", room="lobby", data=b"\x00\xff")])
    (member,) = sim.client("bob").get("lobby")
    assert member.data == b"\x00\xff"
    # The server saw the frame after a real decode, not the object the client built.
    received = [
        e.args[1]
        for e in sim.transcript.entries
        if e.target == SERVER
        and e.call == "receive"
        and e.args[1].action == ProtocolAction.PRESENCE
    ]
    assert received[0].presence[0].data == b"\x00\xff"


def test_every_connect_is_paired_with_one_transport_closed() -> None:
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            DropTransport(at=300, client="alice"),
            Partition(at=5_000, client="bob", duration=20_000, silent=True),
            Partition(at=40_000, client="alice", duration=130_000),
        ]
    )
    calls = [
        (e.call, e.args[0])
        for e in sim.transcript.entries
        if e.target == SERVER and e.call in ("connect", "transport_closed")
    ]
    connected = {tid for call, tid in calls if call == "connect"}
    closed = [tid for call, tid in calls if call == "transport_closed"]
    assert len(closed) == len(set(closed))
    # Only the transports still in use are open.
    live = {info.transport_id for info in sim.server.connections() if info.transport_id}
    assert set(closed) | live == connected
    assert not set(closed) & live


# --- faults -------------------------------------------------------------------------------


def test_drop_transport_resume_within_grace_is_invisible_to_peers() -> None:
    """A resume within the grace period loses nothing: peers see no events."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), DropTransport(at=1_000, client="alice")])
    alice_id = sim.client("alice").connection_id
    assert sim.stats["transport_drops"] == 1
    assert sim.stats["resumes"] == 1
    assert sim.stats["rooms_resumed"] == 1
    assert actions(sim, "bob", "alice") == [("ENTER", alice_id)]
    assert sim.check_convergence() == []


def test_partition_longer_than_grace_resumes_and_reenters() -> None:
    """After the grace period the members leave; the resume keeps the connectionId (no
    RESUMED on the re-ATTACHED) and the client re-enters (RTP17i)."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), Partition(at=1_000, client="alice", duration=40_000)])
    alice_id = sim.client("alice").connection_id
    assert sim.stats["resumes"] == 1
    assert sim.stats["rooms_reattached"] == 1
    assert actions(sim, "bob", "alice") == [
        ("ENTER", alice_id),
        ("LEAVE", alice_id),
        ("ENTER", alice_id),
    ]
    (alice,) = [m for m in sim.client("bob").get("lobby") if m.client_id == "alice"]
    assert alice.data == {"mood": "ok"}
    assert sim.check_convergence() == []


def test_silent_partition_ending_past_the_server_ttl_fails_the_resume_with_80008() -> None:
    """The server forgot the connection: CONNECTED carries 80008 and a new connectionId, and
    the client re-enters on it (RTN15c7)."""
    sim = two_clients()
    sim.run_until_quiet(
        [*entered(), Partition(at=2_000, client="alice", duration=125_000, silent=True)]
    )
    first_id = actions(sim, "bob", "alice")[0][1]
    new_id = sim.client("alice").connection_id
    assert new_id != first_id
    assert sim.stats["failed_resumes"] == 1
    reasons = [
        e.reason.code
        for _, e in sim.client("alice").events
        if isinstance(e, ConnectionStateChanged)
        and e.current is ConnectionState.CONNECTED
        and e.reason is not None
    ]
    assert reasons == [80008]
    assert actions(sim, "bob", "alice") == [
        ("ENTER", first_id),
        ("LEAVE", first_id),
        ("ENTER", new_id),
    ]
    assert sim.check_convergence() == []


def test_partition_longer_than_ttl_suspends_then_starts_afresh() -> None:
    """RTN14e: past the ttl the client suspends and later connects without resuming."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), Partition(at=2_000, client="alice", duration=200_000)])
    states = [
        e.current for _, e in sim.client("alice").events if isinstance(e, ConnectionStateChanged)
    ]
    assert ConnectionState.SUSPENDED in states
    assert sim.stats.get("failed_resumes", 0) == 0
    first_id, _ = actions(sim, "bob", "alice")[0]
    assert actions(sim, "bob", "alice")[-1] == ("ENTER", sim.client("alice").connection_id)
    assert sim.client("alice").connection_id != first_id
    assert sim.check_convergence() == []


def test_operation_during_a_partition_fails_when_the_connection_suspends() -> None:
    """RTN7e: frames queued across a suspension fail, and the checker does not count them."""
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            Partition(at=2_000, client="alice", duration=200_000),
            Update(at=3_000, client="alice", room="lobby", data="queued"),
        ]
    )
    assert sim.stats["operations_failed"] >= 1
    # alice is still present (re-entered) with the data the server acknowledged.
    (alice,) = [m for m in sim.client("bob").get("lobby") if m.client_id == "alice"]
    assert alice.data == {"mood": "ok"}
    assert sim.check_convergence() == []


def test_server_resync_sends_a_sync_and_changes_nothing() -> None:
    """RTP18: a re-sync of an unchanged set gives no presence events; the simulator's server
    pages it one member at a time, so two members take two SYNC frames."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), Resync(at=1_000, room="lobby")])
    syncs = [
        e
        for e in sim.transcript.entries
        if e.target == "bob"
        and e.call == "receive"
        and e.args[0].action == ProtocolAction.SYNC
        and e.now > EPOCH + 1_000
    ]
    assert len(syncs) == 2
    assert len(sim.client("bob").presence_events("lobby")) == 2
    assert sim.stats["resyncs"] == 1
    assert sim.check_convergence() == []


def test_resend_after_reconnect_is_applied_once() -> None:
    """RTN19a: an unacknowledged frame is resent on the new transport; the server
    deduplicates it by msgSerial, so peers see a single enter."""
    resent = 0
    for delay in range(0, 120, 4):
        sim = two_clients(seed=3)
        sim.run_until_quiet(
            [
                Enter(at=100, client="alice", room="lobby", data="x"),
                DropTransport(at=100 + delay, client="alice"),
            ]
        )
        resent += sim.stats.get("resends", 0)
        assert [a for a, _ in actions(sim, "bob", "alice")] == ["ENTER"], delay
        assert sim.check_convergence() == [], delay
    assert resent > 0


def test_detach_removes_the_clients_members() -> None:
    sim = two_clients()
    sim.run_until_quiet([*entered(), Detach(at=1_000, client="alice", room="lobby")])
    assert [m.client_id for m in sim.server_members("lobby")] == ["bob"]
    assert sim.check_convergence() == []


def test_refused_operation_is_recorded_and_not_expected() -> None:
    """An enter on a suspended connection is refused (80002) and changes nothing."""
    sim = two_clients()
    sim.run(entered(), until=1_000)
    sim.run([Partition(at=1_000, client="alice", duration=300_000)], until=150_000)
    assert sim.client("alice").connection.state is ConnectionState.SUSPENDED
    sim.run([Enter(at=150_000, client="alice", room="lobby", data="late")], until=150_001)
    refused = [e.result for e in sim.transcript.entries if isinstance(e.result, Refused)]
    assert [r.code for r in refused] == [80002]
    assert sim.stats["operations_refused"] == 1
    sim.run_until_quiet()
    assert sim.check_convergence() == []


def test_enter_client_from_an_unidentified_backend_without_subscribe() -> None:
    """RTP14/RTP17a: a backend enters for others; it sees its own members though it does
    not subscribe to presence."""
    bot = ClientSpec(name="bot", rooms=["lobby"], room_options=RoomOptions(subscribe=False))
    sim = Simulation(seed=1, clients=[bot, BOB])
    sim.run_until_quiet(
        [
            Enter(at=10, client="bot", room="lobby", data=1, client_id="x"),
            Enter(at=10, client="bot", room="lobby", data=2, client_id="y"),
            Leave(at=500, client="bot", room="lobby", client_id="x"),
        ]
    )
    assert [(m.client_id, m.data) for m in sim.client("bob").get("lobby")] == [("y", 2)]
    assert [m.client_id for m in sim.client("bot").get("lobby")] == ["y"]
    assert sim.check_convergence() == []


# --- determinism, transcripts, replay -----------------------------------------------------

FAULTY: list[ScheduleEvent] = [
    *entered(),
    DropTransport(at=130, client="alice"),
    Update(at=2_000, client="bob", room="lobby", data=None),
    Partition(at=3_000, client="bob", duration=50_000, silent=True),
    Resync(at=4_000, room="lobby"),
    Partition(at=60_000, client="alice", duration=125_000, silent=True),
    Leave(at=70_000, client="bob", room="lobby"),
]


def test_a_run_is_a_pure_function_of_seed_and_schedule() -> None:
    first = two_clients(seed=11)
    first.run_until_quiet(FAULTY)
    second = two_clients(seed=11)
    second.run_until_quiet(FAULTY)
    assert first.transcript == second.transcript
    other = two_clients(seed=12)
    other.run_until_quiet(FAULTY)
    assert other.transcript != first.transcript


_DIGEST = """
import hashlib
from presence_core.testing import ClientSpec, Simulation
from tests.test_simulator import FAULTY
specs = [ClientSpec(client_id=n, rooms=["lobby"]) for n in ("alice", "bob")]
sim = Simulation(seed=11, clients=specs)
sim.run_until_quiet(FAULTY)
print(hashlib.sha256(repr(sim.transcript).encode()).hexdigest())
"""


def test_a_run_does_not_depend_on_the_process_hash_seed() -> None:
    """Nothing in a run depends on set or str-hash order: two processes with different
    PYTHONHASHSEED record the same transcript."""
    digests = set()
    for hash_seed in ("1", "2"):
        result = subprocess.run(
            [sys.executable, "-c", _DIGEST],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            cwd=Path(__file__).parent.parent,
        )
        digests.add(result.stdout.strip())
    assert len(digests) == 1


def test_a_recorded_transcript_replays_to_identical_outputs() -> None:
    sim = two_clients(seed=5)
    sim.run_until_quiet(FAULTY)
    transcript = sim.transcript
    assert len(transcript.entries) > 100
    assert {e.call for e in transcript.entries} >= {
        "connect",
        "receive",
        "transport_closed",
        "tick",
        "resync",
        "enter",
        "update",
        "leave",
        "attach",
    }
    replay(transcript)


def _tamper(sim: Simulation, pick: str) -> tuple[int, object]:
    """Return (index, tampered transcript) for one kind of tampering."""
    transcript = sim.transcript
    entries = list(transcript.entries)
    for index, entry in enumerate(entries):
        if pick == "output" and entry.target == "bob" and entry.call == "receive":
            message = entry.args[0]
            if message.action == ProtocolAction.PRESENCE:
                assert isinstance(entry.result, Output)
                entries[index] = attrs.evolve(entry, result=attrs.evolve(entry.result, events=()))
                break
        elif pick == "input" and entry.target == SERVER and entry.call == "receive":
            message = entry.args[1]
            if message.action == ProtocolAction.PRESENCE:
                item = attrs.evolve(message.presence[0], data="forged")
                forged = attrs.evolve(message, presence=(item,))
                entries[index] = attrs.evolve(entry, args=(entry.args[0], forged))
                break
        elif pick == "entropy" and entry.entropy:
            entries[index] = attrs.evolve(entry, entropy=(b"\x00" * len(entry.entropy[0]),))
            break
        elif pick == "raises" and entry.target == "alice" and entry.call == "receive":
            # A CONNECTED without connectionDetails: the connection refuses it (ProtocolError).
            bad = ProtocolMessage(action=ProtocolAction.CONNECTED, connection_id="forged")
            entries[index] = attrs.evolve(entry, args=(bad,))
            break
        elif pick == "now" and entry.target == "alice" and entry.call == "tick":
            entries[index] = attrs.evolve(entry, now=entry.now - 5_000)
            break
    else:  # pragma: no cover - the schedule guarantees a match
        raise AssertionError(f"nothing to tamper with for {pick}")
    return index, attrs.evolve(transcript, entries=tuple(entries))


@pytest.mark.parametrize("pick", ["output", "input", "entropy", "now", "raises"])
def test_a_tampered_transcript_is_detected(pick: str) -> None:
    sim = two_clients(seed=5)
    sim.run_until_quiet(FAULTY)
    index, tampered = _tamper(sim, pick)
    with pytest.raises(ReplayMismatch) as info:
        replay(tampered)  # type: ignore[arg-type]
    assert info.value.index >= index


def test_transcript_needs_recording() -> None:
    sim = two_clients(record=False)
    sim.run_until_quiet(entered())
    with pytest.raises(UsageError):
        _ = sim.transcript
    assert sim.check_convergence() == []


# --- the checker can fail -------------------------------------------------------------------


def test_convergence_check_reports_a_client_that_disagrees_with_the_server() -> None:
    sim = two_clients()
    sim.run_until_quiet(entered())
    bob = sim.client("bob")
    alice_id = sim.client("alice").connection_id
    # A forged leave delivered straight to bob's connection: bob loses alice, the server not.
    forged = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=CHANNEL,
        presence=(
            PresenceMessage(
                action=PresenceAction.LEAVE,
                client_id="alice",
                connection_id=alice_id,
                id=f"{alice_id}:99:0",
                timestamp=sim.now,
            ),
        ),
    )
    receive(bob.connection, forged, now=sim.now)
    problems = sim.check_convergence()
    assert any("bob: get() in lobby::$chat" in p for p in problems)
    # The forged events never reached the simulator's event log either.
    assert any("events in lobby::$chat add up to" in p for p in problems)


def test_convergence_check_reports_a_member_that_should_be_present() -> None:
    sim = two_clients()
    sim.run_until_quiet(entered())
    alice = sim.client("alice")
    # Leave behind the simulator's back: the server drops alice, the checker still expects her.
    out = alice.connection.leave(CHANNEL, now=sim.now)
    assert out.commands or out.events
    sim._client_output(alice, out)  # the frame goes out over the network as usual
    sim.run_until_quiet()
    problems = sim.check_convergence()
    assert any("'alice' entered lobby::$chat" in p for p in problems)


def test_a_leave_for_an_unknown_member_is_a_violation() -> None:
    sim = two_clients()
    sim.run_until_quiet(entered())
    bogus = PresenceMessage(action=PresenceAction.LEAVE, client_id="zed", connection_id="nope")
    sim._intents.observe("bob", ChannelEvents(channel=CHANNEL, events=(bogus,)), elapsed=0)
    assert len(sim.violations) == 1
    assert sim.violations[0] in sim.check_convergence()


# --- API misuse -----------------------------------------------------------------------------


def test_bad_arguments_raise_usage_errors() -> None:
    with pytest.raises(UsageError):
        Simulation(seed=1, clients=[ALICE, ALICE])
    with pytest.raises(UsageError):
        Simulation(seed=1, clients=[ALICE], latency=(10, 5))
    with pytest.raises(UsageError):
        Simulation(seed=1, clients=[ClientSpec(client_id="server")])
    with pytest.raises(UsageError):
        ClientSpec(rooms=["x"])  # neither client_id nor name
    with pytest.raises(UsageError):
        ClientSpec(client_id="a", rooms="lobby")
    with pytest.raises(UsageError):
        Enter(at=-1, client="alice", room="lobby")
    with pytest.raises(UsageError):
        Partition(at=0, client="alice", duration=0)
    sim = two_clients()
    with pytest.raises(UsageError):
        sim.schedule([Enter(at=0, client="carol", room="lobby")])
    with pytest.raises(UsageError):
        sim.client("carol")
    with pytest.raises(UsageError):
        sim.client("alice").room("nowhere")


def test_run_until_quiet_gives_up_at_its_limit() -> None:
    sim = two_clients()
    with pytest.raises(SimulationError):
        sim.run_until_quiet(
            [*entered(), Partition(at=100, client="alice", duration=500_000)], limit=100_000
        )


def _detach_then_attach() -> Simulation:
    sim = Simulation(
        seed=1,
        clients=[
            ClientSpec(client_id="alice", rooms=["r"]),
            ClientSpec(client_id="bob", rooms=["r"]),
        ],
    )
    sim.run_until_quiet(
        [
            Enter(at=100, client="alice", room="r", data="a"),
            Detach(at=1000, client="alice", room="r"),
            Attach(at=1000, client="alice", room="r"),
        ]
    )
    return sim


def test_RTL4h_detach_then_attach_does_not_reenter() -> None:
    """RTL4h: an attach() right after detach() waits for the DETACHED, which clears both maps
    (RTP5a), so nobody is re-entered: the server has no alice and bob saw her leave once."""
    sim = _detach_then_attach()
    assert sim.server_members("r") == ()
    bob = sim.client("bob")
    assert [(e.action, e.client_id) for e in bob.presence_events("r")] == [
        (PresenceAction.ENTER, "alice"),
        (PresenceAction.LEAVE, "alice"),
    ]
    assert sim.client("alice").room("r").state is ChannelState.ATTACHED
    sim.assert_converged()


def test_RTL4h_convergence_check_catches_an_attach_that_overtakes_the_detach(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The intent model holds a detached member absent: a reducer whose attach() overtakes
    the pending detach (and so re-enters alice) fails the convergence check."""
    cell = (ChannelState.DETACHING, ChannelInput.ATTACH)
    broken = Transition("_h_send_attach", ChannelState.ATTACHING, "attach at once")
    monkeypatch.setitem(TRANSITIONS, cell, broken)
    sim = _detach_then_attach()
    assert [m.client_id for m in sim.server_members("r")] == ["alice"]
    assert any("'alice' left" in problem for problem in sim.check_convergence())


def test_RTP17a_client_without_presence_subscribe_stays_present_across_a_resume() -> None:
    """RTP17a + D13: a client without presence-subscribe sees its own member; after a resume
    within the grace period it must not report itself absent while the server and its peers
    still have it (the convergence check compares its own connection's members)."""
    sim = Simulation(
        seed=3,
        clients=[
            ClientSpec(client_id="alice", rooms=["r"], room_options=RoomOptions(subscribe=False)),
            ClientSpec(client_id="bob", rooms=["r"]),
        ],
    )
    sim.run_until_quiet(
        [Enter(at=100, client="alice", room="r", data="a"), DropTransport(at=1000, client="alice")]
    )
    alice = sim.client("alice")
    assert [m.client_id for m in alice.get("r")] == ["alice"]
    assert [(e.action, e.client_id) for e in alice.presence_events("r")] == [
        (PresenceAction.ENTER, "alice")
    ]
    assert [m.client_id for m in sim.server_members("r")] == ["alice"]
    sim.assert_converged()
