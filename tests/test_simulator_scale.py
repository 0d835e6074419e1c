"""A 10,000-member room in the simulator: 100 backend connections enter 100 clientIds each
(``enter_client`` with a wildcard key), watched by 5 subscribed observers."""

from __future__ import annotations

import pytest

from presence_core import (
    RoomOptions,
)
from presence_core.testing import (
    Attach,
    ClientSpec,
    DropTransport,
    Enter,
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
