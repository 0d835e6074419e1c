"""Profile one PresenceSet workload of ``compare.py`` with cProfile and print the hot spots.

Run from the repository root::

    python -m benchmarks.profile_workload update --size 100000
    python -m benchmarks.profile_workload sync --size 100000 --limit 15

The input is built and the set prepared exactly as in ``compare.py``; only the timed part runs
under the profiler.  Shares are of the profiled run's total time (cProfile slows pure-Python
code several-fold, so compare shares, not absolute times).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
from collections.abc import Sequence

from benchmarks._inputs import make_room
from benchmarks.compare import PresenceSetPeer, build_frames

_TIMED = ("enter", "update", "leave", "sync", "resync")


def _short(filename: str) -> str:
    for marker in ("presence_core/", "benchmarks/", "site-packages/"):
        if marker in filename:
            return filename[filename.index(marker) :]
    return filename


def main(argv: Sequence[str] | None = None) -> int:
    """Profile the chosen workload and print its top functions by own and cumulative time."""
    parser = argparse.ArgumentParser(description="cProfile one PresenceSet workload")
    parser.add_argument("workload", choices=_TIMED)
    parser.add_argument("--size", type=int, default=100_000, help="room size in members")
    parser.add_argument("--limit", type=int, default=12, help="rows per listing")
    parser.add_argument(
        "--per-message", type=int, default=1, help="items per PRESENCE frame (enter/update/leave)"
    )
    args = parser.parse_args(argv)

    room = make_room(args.size)
    frames = build_frames(room)
    peer = PresenceSetPeer()
    if args.workload in ("sync", "resync"):
        state = peer.empty(syncing=True)
        if args.workload == "resync":
            peer.run_sync(state, frames.sync)
        work = frames.sync if args.workload == "sync" else frames.resync
    else:
        from benchmarks._inputs import presence_frames  # noqa: PLC0415 - only this branch
        from presence_core import PresenceAction  # noqa: PLC0415

        state = peer.empty()
        if args.workload != "enter":
            peer.run_presence(state, frames.enter)
        action = PresenceAction[args.workload.upper()]
        work = presence_frames(room, action, per_message=args.per_message)

    profiler = cProfile.Profile()
    profiler.enable()
    peer.run_presence(state, work)
    profiler.disable()

    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in rows.values())
    print(f"{args.workload} at {args.size:,} members: {total:.3f} s under cProfile")
    for title, column in (("own time", 2), ("cumulative time", 3)):
        print(f"\n| function ({title}) | calls | own s | own share | cum s | cum share |")
        print("|---|---|---|---|---|---|")
        ranked = sorted(rows.items(), key=lambda entry: entry[1][column], reverse=True)
        for (filename, line, function), (_, calls, own, cumulative, _) in ranked[: args.limit]:
            where = f"{_short(filename)}:{line}:{function}"
            print(
                f"| {where} | {calls:,} | {own:.3f} | {own / total:.0%} "
                f"| {cumulative:.3f} | {cumulative / total:.0%} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
