"""End-to-end convergence of server and clients under generated fault schedules.

The property: once the faults stop and the network goes quiet, every client agrees with the
server and with what it asked for, as :meth:`presence_core.testing.Simulation.check_convergence`
defines it.  The server runs with its default limits, the rate limit included (D10).  The
module documentation of :mod:`presence_core.testing._intent` explains why a client may expect
exactly that.
"""

from __future__ import annotations

from hypothesis import event, example, find, given, settings, strategies as st

from presence_core import (
    RoomOptions,
)
from presence_core.server import ServerConfig
from presence_core.testing import (
    SIMULATION_CONFIG,
    Attach,
    ClientSpec,
    Detach,
    DropTransport,
    Enter,
    Leave,
    Partition,
    Resync,
    ScheduleEvent,
    Simulation,
    Update,
    strategies,
)

CLIENTS = (
    ClientSpec(client_id="ann", rooms=["r1"]),
    ClientSpec(client_id="ben", rooms=["r1", "r2"]),
    ClientSpec(client_id="cat", rooms=["r2"]),
    # An unidentified backend that enters for others and does not subscribe (RTP14, RTP17a).
    ClientSpec(name="bot", rooms=["r2"], room_options=RoomOptions(subscribe=False)),
)
NAMES = [spec.name for spec in CLIENTS]
ROOMS = ["r1", "r2"]
ACTING_FOR = {"bot": ["x", "y"]}

SCHEDULES = strategies.schedules(
    clients=NAMES, rooms=ROOMS, acting_for=ACTING_FOR, max_operations=12, max_faults=5
)

# The CI profile runs 100 examples by default; this property always runs at least 500, and as
# many as the profile asks for beyond that (5000 under ``thorough``).
EXAMPLES = max(500, settings().max_examples)


#: Always part of the property: the bot has 500 own members when its network goes away for
#: longer than the grace period, so the server removes them all and every one must come back
#: through re-entries split and paced to the server's default limits (D10).
BIG_REENTRY: tuple[ScheduleEvent, ...] = (
    *(Enter(at=100 + i, client="bot", room="r2", data=i, client_id=f"m{i}") for i in range(500)),
    Partition(at=40_000, client="bot", duration=30_000),
)


def _label(stats: dict[str, int]) -> None:
    for name in ("resumes", "failed_resumes", "rooms_reattached", "resends", "resyncs"):
        if stats.get(name):
            event(f"had {name}")


@settings(max_examples=EXAMPLES)
@given(schedule=SCHEDULES, seed=st.integers(min_value=0, max_value=2**32 - 1))
@example(schedule=BIG_REENTRY, seed=7)
def test_convergence_under_generated_fault_schedules(
    schedule: tuple[ScheduleEvent, ...], seed: int
) -> None:
    """Convergence after faults: client views equal the server's, no impossible leave, and
    entered members are present again with their latest data (RTP17, RTP19, RTN15, RTN19a)."""
    sim = Simulation(seed=seed, clients=CLIENTS, record=False)
    sim.run_until_quiet(schedule)
    _label(dict(sim.stats))
    sim.assert_converged()


def test_D10_simulations_run_under_the_servers_default_limits() -> None:
    """The property above runs under the limits a real deployment has, so that a client that
    overruns them fails it."""
    defaults = ServerConfig()
    for name in (
        "max_messages_per_second",
        "max_message_size",
        "max_members_per_channel",
        "max_channels_per_connection",
    ):
        assert getattr(SIMULATION_CONFIG, name) == getattr(defaults, name), name


# --- the strategies -------------------------------------------------------------------------


@settings(max_examples=50)
@given(schedule=SCHEDULES)
def test_schedules_are_sorted_bounded_and_name_known_clients(
    schedule: tuple[ScheduleEvent, ...],
) -> None:
    assert [e.at for e in schedule] == sorted(e.at for e in schedule)
    ops = [e for e in schedule if isinstance(e, Enter | Update | Leave | Attach | Detach)]
    faults = [e for e in schedule if isinstance(e, DropTransport | Partition | Resync)]
    assert len(ops) <= 12
    assert len(faults) <= 5
    assert len(ops) + len(faults) == len(schedule)
    for e in schedule:
        if isinstance(e, Resync):
            assert e.room in ROOMS
        else:
            assert e.client in NAMES
        if isinstance(e, Enter | Update | Leave):
            assert (e.client_id is not None) == (e.client == "bot")


@settings(max_examples=200)
@given(duration=strategies.partition_durations(grace_period=10_000, connection_state_ttl=60_000))
def test_partition_durations_follow_the_given_grace_and_ttl(duration: int) -> None:
    assert 1_000 <= duration <= 120_000


def test_operation_sequences_shrink_towards_the_empty_schedule() -> None:
    found = find(
        strategies.operation_sequences(clients=["a"], rooms=["r"]),
        lambda ops: any(isinstance(op, Leave) for op in ops),
    )
    # Shrinking is heuristic, so check the shape it reaches, not one exact example.
    assert len(found) == 1
    assert isinstance(found[0], Leave)
    assert (found[0].client, found[0].room) == ("a", "r")


def test_fault_schedules_cover_every_fault_kind() -> None:
    strategy = strategies.fault_schedules(clients=["a"], rooms=["r"])
    for kind in (DropTransport, Partition, Resync):
        found = find(strategy, lambda faults, kind=kind: any(isinstance(f, kind) for f in faults))  # type: ignore[misc]
        assert len(found) == 1
        assert isinstance(found[0], kind)
    silent = find(
        strategy, lambda faults: any(isinstance(f, Partition) and f.silent for f in faults)
    )
    assert len(silent) == 1
    assert isinstance(silent[0], Partition)
    assert silent[0].silent
    assert silent[0].client == "a"
