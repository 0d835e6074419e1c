"""The simulator's fault model: one hand-written scenario per fault kind, and its recovery.

Each test runs two or three clients through one fault and checks the recovery the
convergence property expects of that fault, plus what the peers saw.
"""

from __future__ import annotations

from presence_core import ChannelState, ConnectionState
from presence_core.testing import (
    ChannelFailure,
    ClientSpec,
    ClockStep,
    Close,
    ConnectionFailure,
    DropTransport,
    Enter,
    HalfOpen,
    Lag,
    Leave,
    Restart,
    Resync,
    ScheduleEvent,
    ServerDetach,
    ServerRestart,
    Simulation,
    Update,
    replay,
)

ALICE = ClientSpec(client_id="alice", rooms=["lobby"])
BOB = ClientSpec(client_id="bob", rooms=["lobby"])


def two_clients(seed: int = 7) -> Simulation:
    return Simulation(seed=seed, clients=[ALICE, BOB])


def actions(sim: Simulation, name: str, about: str) -> list[str]:
    """The presence actions ``name`` saw about clientId ``about``, in order."""
    return [
        e.action.name for e in sim.client(name).presence_events("lobby") if e.client_id == about
    ]


def entered(at: int = 100) -> list[ScheduleEvent]:
    return [
        Enter(at=at, client="alice", room="lobby", data={"mood": "ok"}),
        Enter(at=at + 10, client="bob", room="lobby", data="hi"),
    ]


def test_half_open_link_is_found_by_the_idle_timer_and_resumed() -> None:
    """RTN23a: nothing arrives and nobody is told; the client's idle timer finds it, with an
    update's ACK outstanding, and the resume resends it (RTN19a)."""
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            Update(at=5_000, client="alice", room="lobby", data="away"),
            HalfOpen(at=5_001, client="alice", breaks_after=14_000),
        ]
    )
    assert sim.stats["half_opens"] == 1
    assert sim.stats["resumes"] == 1
    assert actions(sim, "bob", "alice") == ["ENTER", "UPDATE"]
    (alice,) = [m for m in sim.server_members("lobby") if m.client_id == "alice"]
    assert alice.data == "away"
    sim.assert_converged()


def test_half_open_link_past_the_grace_period_reenters() -> None:
    """The server's end breaks at once but the client notices only after its idle timeout,
    later than the 15 s grace period: the members leave, the resume re-enters them."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), HalfOpen(at=5_000, client="alice", breaks_after=0)])
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE", "ENTER"]
    sim.assert_converged()


def test_drop_after_sent_frames_arrive_makes_a_resend_the_server_drops() -> None:
    """The enter reaches the server but its ACK is lost: the resend is a duplicate, which the
    server acknowledges without applying again, so the peers see one enter."""
    sim = two_clients(seed=7)
    sim.run_until_quiet(
        [
            Enter(at=1_000, client="alice", room="lobby", data="x"),
            DropTransport(at=1_001, client="alice", sent_arrive=True),
        ]
    )
    assert sim.stats["drops_after_sent"] == 1
    assert sim.stats["duplicate_frames"] == 1
    assert actions(sim, "bob", "alice") == ["ENTER"]
    sim.assert_converged()


def test_close_removes_the_members_at_once_and_the_reopened_client_is_not_present() -> None:
    """RTN12, RTL3b: closing detaches the rooms and the server removes the members without
    waiting for a grace period; reopening attaches again and enters nobody."""
    sim = two_clients()
    sim.run([*entered(), Close(at=2_000, client="alice", reopen_after=5_000)], until=3_000)
    assert sim.client("alice").connection.state is ConnectionState.CLOSED
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE"]
    sim.run_until_quiet()
    assert sim.client("alice").room("lobby").state is ChannelState.ATTACHED
    assert [m.client_id for m in sim.server_members("lobby")] == ["bob"]
    assert sim.stats["closes"] == 1
    sim.assert_converged()


def test_restart_within_grace_recovers_the_connection_and_peers_see_nothing() -> None:
    """RTN16: the new process recovers the old connection, with its id and members."""
    sim = two_clients()
    sim.run([*entered()], until=2_000)
    old_id = sim.client("alice").connection_id
    sim.run_until_quiet([Restart(at=3_000, client="alice", down_for=2_000)])
    assert sim.stats["restarts"] == 1
    assert sim.client("alice").connection_id == old_id
    assert actions(sim, "bob", "alice") == ["ENTER"]
    assert {m.client_id for m in sim.client("alice").get("lobby")} == {"alice", "bob"}
    sim.assert_converged()


def test_restart_after_the_grace_period_leaves_the_members_gone() -> None:
    """The server removed the old connection's members; the new process does not know them."""
    sim = two_clients()
    sim.run_until_quiet([*entered(), Restart(at=3_000, client="alice", down_for=40_000)])
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE"]
    assert [m.client_id for m in sim.server_members("lobby")] == ["bob"]
    sim.assert_converged()


def test_server_restart_fails_every_resume_and_everyone_reenters() -> None:
    """Every transport breaks, every resume fails with 80008, and each client re-enters on
    its new connection (RTN15c7, RTP17i)."""
    sim = two_clients()
    sim.run([*entered()], until=2_000)
    ids = {name: sim.client(name).connection_id for name in ("alice", "bob")}
    sim.run_until_quiet([ServerRestart(at=3_000)])
    assert sim.stats["server_restarts"] == 1
    assert sim.stats["failed_resumes"] == 2
    for name in ("alice", "bob"):
        assert sim.client(name).connection_id != ids[name]
    assert sorted(m.client_id or "" for m in sim.server_members("lobby")) == ["alice", "bob"]
    sim.assert_converged()


def test_server_restart_with_an_operation_in_flight_applies_it_once() -> None:
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            Update(at=3_000, client="alice", room="lobby", data=2),
            ServerRestart(at=3_002),
        ]
    )
    (alice,) = [m for m in sim.server_members("lobby") if m.client_id == "alice"]
    assert alice.data == 2
    sim.assert_converged()


def test_heavy_tailed_lag_converges() -> None:
    """Frames up to a minute late: timeouts and reconnects, then the same world."""
    sim = two_clients(seed=11)
    sim.run_until_quiet(
        [
            *entered(),
            Lag(at=500, client="alice", duration=20_000, scale=3_000),
            Update(at=1_000, client="alice", room="lobby", data="slow"),
            Update(at=1_500, client="bob", room="lobby", data="fast"),
        ]
    )
    assert sim.stats["lags"] == 1
    sim.assert_converged()


def test_a_clock_stepping_backwards_stalls_the_clients_timers_and_converges() -> None:
    """Time stands still for the client until real time catches up; nothing is lost."""
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            ClockStep(at=1_000, client="alice", step=-60_000),
            Update(at=2_000, client="alice", room="lobby", data="later"),
            DropTransport(at=3_000, client="alice"),
        ]
    )
    assert sim.stats["clock_steps"] == 1
    (alice,) = [m for m in sim.server_members("lobby") if m.client_id == "alice"]
    assert alice.data == "later"
    sim.assert_converged()


def test_a_clock_stepping_forwards_may_fire_timers_early_and_converges() -> None:
    sim = two_clients()
    sim.run_until_quiet([*entered(), ClockStep(at=1_000, client="alice", step=30_000)])
    sim.assert_converged()


def test_runs_with_every_new_fault_replay_identically() -> None:
    """Restarts are transcript entries too: a replay rebuilds the new processes."""
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            HalfOpen(at=1_000, client="bob", breaks_after=1_000),
            Restart(at=2_000, client="alice", down_for=1_000),
            Close(at=40_000, client="bob", reopen_after=1_000),
            ServerRestart(at=50_000),
            ClockStep(at=60_000, client="alice", step=-5_000),
            Lag(at=61_000, client="bob", duration=5_000, scale=500),
            DropTransport(at=62_000, client="alice", sent_arrive=True),
        ]
    )
    sim.assert_converged()
    replay(sim.transcript)


# --- the server's side: paged syncs, and what it does of its own accord --------------------

FOUR = [ClientSpec(client_id=name, rooms=["lobby"]) for name in ("alice", "bob", "carol", "dave")]


def four_entered() -> list[ScheduleEvent]:
    return [
        Enter(at=100 + 10 * k, client=name, room="lobby", data=k)
        for k, name in enumerate(("alice", "bob", "carol", "dave"))
    ]


def test_D1_a_leave_between_sync_pages_gives_exactly_one_leave() -> None:
    """The server pages its SYNC two members at a time, 100 ms apart; a member leaving between
    the pages is left once, and the later page (made at the sync's start) does not bring it
    back (D1, D2)."""
    seen_during = 0
    for delay in range(0, 200, 10):
        sim = Simulation(seed=5, clients=FOUR)
        sim.run_until_quiet(
            [
                *four_entered(),
                Resync(at=5_000, room="lobby"),
                Leave(at=5_000 + delay, client="dave", room="lobby"),
            ]
        )
        seen_during += sim.stats.get("presence_during_sync", 0)
        for name in ("alice", "bob", "carol"):
            assert actions(sim, name, "dave") == ["ENTER", "LEAVE"], (delay, name)
        sim.assert_converged()
    assert seen_during > 0


def test_RTP18a_D3_a_sync_restarted_midway_rebuilds_its_residuals() -> None:
    """A second sync starts before the first one's last page: the clients restart on the new
    sync id, and nobody present is left."""
    sim = Simulation(seed=5, clients=FOUR)
    sim.run_until_quiet([*four_entered(), Resync(at=5_000, room="lobby", restart_after=50)])
    assert sim.stats["syncs_restarted"] >= 1
    for name in ("alice", "bob", "carol", "dave"):
        assert "LEAVE" not in [e.action.name for e in sim.client(name).presence_events("lobby")]
    sim.assert_converged()


def test_RTL13a_a_server_detach_reattaches_and_reenters() -> None:
    sim = two_clients()
    sim.run_until_quiet([*entered(), ServerDetach(at=2_000, client="alice", room="lobby")])
    assert sim.stats["server_detaches"] == 1
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE", "ENTER"]
    (alice,) = [m for m in sim.server_members("lobby") if m.client_id == "alice"]
    assert alice.data == {"mood": "ok"}
    sim.assert_converged()


def test_RTL13a_a_restart_owing_the_reentry_after_a_server_detach_loses_the_member() -> None:
    """The process dies after its room attached again but before it re-entered: the server
    removed the member at the detach, and the new process, whose ATTACHED is RESUMED (the old
    one had attached again), does not know it.  The intent model counts it uncertain."""
    sim = two_clients()
    sim.run_until_quiet(
        [
            *entered(),
            ServerDetach(at=2_000, client="alice", room="lobby"),
            Restart(at=2_055, client="alice", down_for=100),
        ]
    )
    assert [m.client_id for m in sim.server_members("lobby")] == ["bob"]
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE"]
    sim.assert_converged()


def test_RTL14_a_channel_failure_drops_the_members_until_the_room_is_attached_again() -> None:
    sim = two_clients()
    sim.run(
        [*entered(), ChannelFailure(at=2_000, client="alice", room="lobby", reattach_after=3_000)],
        until=3_000,
    )
    assert sim.client("alice").room("lobby").state is ChannelState.FAILED
    assert sim.client("alice").get("lobby") == []
    sim.run_until_quiet()
    assert sim.client("alice").room("lobby").state is ChannelState.ATTACHED
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE"]
    sim.assert_converged()


def test_RTN15i_a_connection_failure_ends_it_and_the_client_connects_afresh() -> None:
    sim = two_clients()
    sim.run([*entered()], until=2_000)
    old = sim.client("alice").connection_id
    sim.run([ConnectionFailure(at=2_000, client="alice", reconnect_after=1_000)], until=2_500)
    assert sim.client("alice").connection.state is ConnectionState.FAILED
    sim.run_until_quiet()
    assert sim.client("alice").connection_id not in (None, old)
    assert actions(sim, "bob", "alice") == ["ENTER", "LEAVE"]
    assert [m.client_id for m in sim.server_members("lobby")] == ["bob"]
    sim.assert_converged()
