"""The main job: ``python -m presence_core`` runs a presence demo and prints what happens.

One reference server reducer and three clients (alice, bob and carol, an observer) run in the
deterministic simulator on virtual time; every frame crosses the simulated network as protocol
v6 JSON.  Alice and bob enter the room ``lobby`` and update their status; bob's network then
drops for longer than the server's grace period, so carol sees him leave, and when his network
comes back his client re-enters him automatically.  The run is a pure function of the seed:
running it twice prints the same lines.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from presence_core._output import ChannelEvents, ChannelStateChanged, ConnectionStateChanged
from presence_core._wire import PresenceMessage
from presence_core.testing import (
    EPOCH,
    ClientSpec,
    Enter,
    Leave,
    Partition,
    Simulation,
    Update,
    replay,
)

ROOM = "lobby"
OBSERVER = "carol"


def _describe(event: object) -> str | None:
    if isinstance(event, PresenceMessage):
        return (
            f"{event.action.event_name:<7} {event.client_id} on {event.connection_id}"
            f" data={event.data!r}"
        )
    if isinstance(event, ChannelStateChanged) and event.previous is not event.current:
        return f"room    {event.previous.value} -> {event.current.value}"
    if isinstance(event, ConnectionStateChanged):
        return f"conn    {event.previous.value} -> {event.current.value}"
    return None


def run_demo(seed: int = 7) -> list[str]:
    """Run the demo simulation and return the lines it prints.

    Args:
        seed: Seeds the simulated network's latencies and the server's entropy.

    Returns:
        The narrated timeline, one line per event carol saw, then a summary.
    """
    sim = Simulation(
        seed=seed,
        clients=[
            ClientSpec(client_id="alice", rooms=[ROOM]),
            ClientSpec(client_id="bob", rooms=[ROOM]),
            ClientSpec(client_id=OBSERVER, rooms=[ROOM]),
        ],
    )
    grace = sim.server.config.grace_period
    sim.run_until_quiet(
        [
            Enter(at=1_000, client="alice", room=ROOM, data={"status": "online"}),
            Enter(at=1_500, client="bob", room=ROOM, data={"status": "online"}),
            Update(at=3_000, client="alice", room=ROOM, data={"status": "away"}),
            # Longer than the grace period: the server synthesizes bob's leave.
            Partition(at=5_000, client="bob", duration=grace + 10_000),
            Leave(at=60_000, client="alice", room=ROOM),
        ]
    )
    lines = [
        f"presence_core demo: room {ROOM!r} (virtual time, seed {seed})",
        "  alice and bob enter at 1 s and 1.5 s; alice goes away at 3 s;",
        f"  bob's network drops at 5 s for {(grace + 10_000) // 1000} s"
        f" (the server's grace period is {grace // 1000} s); alice leaves at 60 s.",
        f"events {OBSERVER} saw:",
    ]
    for at, event in sim.client(OBSERVER).events:
        inner = event.events if isinstance(event, ChannelEvents) else (event,)
        for item in inner:
            text = _describe(item)
            if text is not None:
                lines.append(f"  t={(at - EPOCH) / 1000:>7.3f}s  {text}")
    members = sorted((m.client_id, repr(m.data)) for m in sim.client(OBSERVER).get(ROOM))
    server = sorted((m.client_id, repr(m.data)) for m in sim.server_members(ROOM))
    lines.append(f"carol's get(): {members}")
    lines.append(f"server's members: {server}")
    problems = sim.check_convergence()
    lines.append("converged: yes" if not problems else f"converged: NO {problems}")
    replay(sim.transcript)
    lines.append(f"transcript: {len(sim.transcript.entries)} reducer calls, replayed identically")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: print the demo's timeline."""
    parser = argparse.ArgumentParser(prog="python -m presence_core", description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    args = parser.parse_args(argv)
    for line in run_demo(args.seed):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
