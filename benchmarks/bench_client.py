"""The async client's own cost: server-made PRESENCE frames, from the transport to a listener.

:data:`FRAMES` PRESENCE frames (one ENTER each, for distinct members) are made by a
:class:`~presence_core.server.Server` in an untimed setup, exactly as it delivers them to an
attached subscriber.  Each round then times each path once, in turn, on a fresh room (and, for
the client, a fresh in-process server and client):

* **client**: the frames put into the client end of the in-process transport (the link's
  inbox, where the server's frames arrive), until a subscribed listener has seen every event.
  No server reducer runs in the timed path, and the in-process transport passes frames as
  values, so no codec either: what is timed is the client's reader, the
  :class:`~presence_core.Connection` it drives and the delivery to listeners.  Frames that
  are waiting when the reader runs reach the reducer in one ``receive_many`` call if the link
  hands them over together, and one ``receive`` each otherwise;
* **Connection.receive**: the same frames fed to a bare connection reducer, one call each;
* **Connection.receive_many**: the same frames in one call of the bare connection reducer;
* **PresenceSet.receive**: the same frames fed to a bare PresenceSet, one call each (the
  floor).

The report is the median ns per frame of each and the ratios; the target is client at most
1.5 times PresenceSet.receive.  Run with::

    python -m benchmarks.bench_client            # both event loops, 5 rounds
    python -m benchmarks.bench_client --rounds 9 --backends trio
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import anyio
import attrs

from benchmarks._inputs import CHANNEL, SEED, T0
from benchmarks.test_bench_connection import connected
from presence_core import (
    DEFAULT_MODES,
    PresenceAction,
    PresenceMessage,
    PresenceSet,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.client import InProcessLink, connect
from presence_core.server import ApiKey, Server, ServerConfig

FRAMES: Final = 10_000
_KEY: Final = ApiKey(name="bench.app", secret="secret", any_client_id=True)
_CONFIG: Final = ServerConfig(keys=(_KEY,), max_messages_per_second=1_000_000_000)


def server_frames() -> list[ProtocolMessage]:
    """The PRESENCE frames a server delivers to a subscriber while a peer enters FRAMES members."""
    server = Server(_CONFIG, random.Random(SEED).randbytes)
    attach = ProtocolMessage(action=ProtocolAction.ATTACH, channel=CHANNEL)
    for tid, client_id in (("sub", "sub"), ("pub", None)):
        params = {"key": _KEY.key, "format": "json"}
        if client_id is not None:
            params["clientId"] = client_id
        server.connect(tid, params, now=T0)
        server.receive(tid, attach, now=T0)
    frames: list[ProtocolMessage] = []
    for serial in range(FRAMES):
        item = PresenceMessage(
            action=PresenceAction.ENTER, client_id=f"user-{serial}", data={"n": serial}
        )
        frame = ProtocolMessage(
            action=ProtocolAction.PRESENCE, channel=CHANNEL, msg_serial=serial, presence=(item,)
        )
        out = server.receive("pub", frame, now=T0)
        frames += [m for m in out.messages_for("sub") if m.action == ProtocolAction.PRESENCE]
    assert len(frames) == FRAMES
    return frames


def _timed(run: Callable[[], object]) -> int:
    gc.collect()
    start = time.perf_counter_ns()
    run()
    return time.perf_counter_ns() - start


def presence_set_round(frames: list[ProtocolMessage]) -> int:
    room = PresenceSet(CHANNEL, client_id="sub")
    room.set_connection("own", now=T0)
    room.attach(now=T0)
    room.receive(
        ProtocolMessage(action=ProtocolAction.ATTACHED, channel=CHANNEL, flags=int(DEFAULT_MODES)),
        now=T0,
    )
    receive = room.receive

    def run() -> None:
        for frame in frames:
            receive(frame, now=T0)

    elapsed = _timed(run)
    assert len(room.get()) == FRAMES
    return elapsed


def connection_round(frames: list[ProtocolMessage]) -> int:
    conn = connected()
    receive = conn.receive

    def run() -> None:
        for frame in frames:
            receive(frame, transport_id=1, now=T0)

    elapsed = _timed(run)
    assert len(conn.room(CHANNEL).get()) == FRAMES
    return elapsed


def connection_many_round(frames: list[ProtocolMessage]) -> int:
    conn = connected()

    def run() -> None:
        _, refused = conn.receive_many(frames, transport_id=1, now=T0)
        assert not refused

    elapsed = _timed(run)
    assert len(conn.room(CHANNEL).get()) == FRAMES
    return elapsed


def _counter(done: anyio.Event) -> Callable[[PresenceMessage], None]:
    """A listener that sets ``done`` at the FRAMES-th event."""
    seen = 0

    def listener(event: PresenceMessage) -> None:
        nonlocal seen
        seen += 1
        if seen == FRAMES:
            done.set()

    return listener


async def client_round(frames: list[ProtocolMessage]) -> int:
    """One round: a fresh server and client, one room subscribed and attached, then timed."""
    server = Server(_CONFIG, random.Random(SEED).randbytes)
    async with connect(server, key=_KEY.key, client_id="sub") as client:
        room = await client.rooms.get("bench")
        retargeted = [attrs.evolve(frame, channel=room.channel) for frame in frames]
        done = anyio.Event()
        room.presence.subscribe(_counter(done))
        await room.attach()
        current = client._current
        assert current is not None
        link = client._links[current]
        assert isinstance(link, InProcessLink)
        gc.collect()
        start = time.perf_counter_ns()
        for frame in retargeted:
            link.deliver(frame)
        await done.wait()
        elapsed = time.perf_counter_ns() - start
        assert len(await room.presence.get()) == FRAMES
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backends", default="asyncio,trio")
    args = parser.parse_args()
    frames = server_frames()
    rounds = args.rounds
    own_channel = [attrs.evolve(f, channel=CHANNEL) for f in frames]
    paths: dict[str, Callable[[], int]] = {
        "PresenceSet.receive": lambda: presence_set_round(frames),
        "Connection.receive": lambda: connection_round(own_channel),
        "Connection.receive_many": lambda: connection_many_round(own_channel),
    }
    for backend in args.backends.split(","):
        paths[f"client ({backend})"] = partial(anyio.run, client_round, frames, backend=backend)
    # Round by round, every path once, so that a change in the machine's load between rounds
    # weighs on all of them alike.
    per_frame: dict[str, list[int]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, run in paths.items():
            per_frame[name].append(run())
    medians = {name: statistics.median(t) / FRAMES for name, t in per_frame.items()}
    floor = medians["PresenceSet.receive"]
    reducer = medians["Connection.receive"]
    print(f"{FRAMES} server-made PRESENCE frames, one ENTER each; median of {rounds} rounds")
    print(f"{'path':<24}{'ns/frame':>10}{'x PresenceSet':>15}{'x Connection':>14}")
    for name, ns in medians.items():
        print(f"{name:<24}{ns:>10.0f}{ns / floor:>15.2f}{ns / reducer:>14.2f}")
    worst = max(v for k, v in medians.items() if k.startswith("client"))
    verdict = "meets" if worst <= 1.5 * floor else "misses"
    print(f"target client <= 1.5x PresenceSet.receive: {verdict} ({worst / floor:.2f}x)")


if __name__ == "__main__":
    main()
