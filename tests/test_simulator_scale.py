"""Large rooms in the simulator, under the server's default limits (50 messages a second).

A 10,000-member room: 100 backend connections enter 100 clientIds each (``enter_client`` with
a key that may act for any clientId), watched by 5 subscribed observers.  And one backend with
500 own members, whose re-entries must fit the server's limits (D10).
"""

from __future__ import annotations

import pytest

from presence_core import (
    RoomOptions,
)
from presence_core.server import ServerConfig
from presence_core.testing import (
    SIMULATION_KEY,
    Attach,
    ClientSpec,
    DropTransport,
    Enter,
    FaultEvent,
    Partition,
    Resync,
    ScheduleEvent,
    Simulation,
)

BACKENDS = 100
PER_BACKEND = 100
OBSERVERS = 5


def build() -> tuple[Simulation, list[ScheduleEvent]]:
    backends = [
        # Entering only: without subscribe a backend is not sent the other 9,900 members.
        ClientSpec(name=f"backend{b}", rooms=["big"], room_options=RoomOptions(subscribe=False))
        for b in range(BACKENDS)
    ]
    # The last observer attaches once the room is full, so it gets the paged SYNC.
    observers = [
        ClientSpec(client_id=f"observer{o}", rooms=["big"] if o < OBSERVERS - 1 else [])
        for o in range(OBSERVERS)
    ]
    schedule: list[ScheduleEvent] = [
        Enter(
            at=1_000 + k * 100 + b,
            client=f"backend{b}",
            room="big",
            data={"n": k},
            client_id=f"user{b}-{k}",
        )
        for b in range(BACKENDS)
        for k in range(PER_BACKEND)
    ]
    schedule += [
        Attach(at=20_000, client=f"observer{OBSERVERS - 1}", room="big"),
        DropTransport(at=21_000, client="observer0"),
        Resync(at=25_000, room="big"),
    ]
    sim = Simulation(seed=10_000, clients=[*backends, *observers], record=False)
    return sim, schedule


@pytest.mark.slow
def test_a_room_of_10000_members_converges() -> None:
    """10,000 members entered from 100 connections; 5 observers see exactly the server's set
    (paged SYNC for the late observer, a resume within grace, and a server re-sync)."""
    sim, schedule = build()
    sim.run_until_quiet(schedule)
    assert len(sim.server_members("big")) == BACKENDS * PER_BACKEND
    for o in range(OBSERVERS):
        assert len(sim.client(f"observer{o}").get("big")) == BACKENDS * PER_BACKEND
    assert sim.stats["resumes"] == 1
    sim.assert_converged()


OWN_MEMBERS = 500


def one_backend_with_500_members(fault: FaultEvent) -> Simulation:
    """A backend enters 500 clientIds, 25 a second (within the limit), then ``fault`` at 30 s."""
    clients = [
        ClientSpec(name="backend", rooms=["r"], room_options=RoomOptions(subscribe=False)),
        ClientSpec(client_id="watcher", rooms=["r"]),
    ]
    schedule: list[ScheduleEvent] = [
        Enter(at=1_000 + 40 * k, client="backend", room="r", data={"n": k}, client_id=f"u{k}")
        for k in range(OWN_MEMBERS)
    ]
    # The server's defaults, limits included, named here so the test does not lean on the
    # simulator's default configuration.
    config = ServerConfig(keys=(SIMULATION_KEY,))
    sim = Simulation(seed=500, clients=clients, server_config=config, record=False)
    sim.run_until_quiet([*schedule, fault])
    return sim


def test_D10_500_own_members_come_back_after_a_partition_past_the_grace_period() -> None:
    """The server removed all 500 at the end of the grace period; the resume keeps the id, the
    room re-attaches without RESUMED, and the re-entries, split and paced to the server's
    limits, all succeed."""
    sim = one_backend_with_500_members(Partition(at=30_000, client="backend", duration=30_000))
    stats = sim.stats
    assert stats["rooms_reattached"] == 1
    assert "reentries_failed" not in stats
    assert len(sim.server_members("r")) == OWN_MEMBERS
    assert len(sim.client("watcher").get("r")) == OWN_MEMBERS
    sim.assert_converged()


def test_D10_a_plain_resume_with_500_own_members_gives_no_91004() -> None:
    """A resume within the grace period: the re-entries are idempotent, so the server neither
    broadcasts nor charges them, and none fails."""
    sim = one_backend_with_500_members(DropTransport(at=30_000, client="backend"))
    stats = sim.stats
    assert stats["resumes"] == 1
    assert "reentries_failed" not in stats
    assert len(sim.server_members("r")) == OWN_MEMBERS
    sim.assert_converged()
