"""The command line: ``presence-core`` (or ``python -m presence_core``) and its subcommands.

* ``demo``: the main job, an in-process server and simulated users with a live roster
  (``presence_core.serve``; needs the ``server`` extra).
* ``serve``: the reference server on Hypercorn; ``watch`` and ``enter``: a client from the
  shell; ``token``: an Ably JWT that ``serve`` accepts, for ``enter --token`` or ably-js.
* ``simulate``: the same story in the deterministic simulator on virtual time, with only the
  core installed: one server reducer and three clients (alice, bob and carol, an observer).
  Alice and bob enter the room ``lobby`` and update their status; bob's network then drops for
  longer than the server's grace period, so carol sees him leave, and when his network comes
  back his client re-enters him automatically.  The run is a pure function of the seed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

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


_NEEDS_SERVER_EXTRA = "this command needs the server extra: pip install 'presence-core[server]'"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="presence-core", description="Realtime presence: demo, server and clients."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
        sub.add_argument("--log-level", default="warning", help="logging level (default warning)")

    demo = commands.add_parser("demo", help="simulated users in one room, with a live roster")
    demo.add_argument("--users", type=int, default=4, help="simulated users (default 4)")
    demo.add_argument("--duration", type=float, default=None, help="seconds, then exit")
    demo.add_argument("--grace-period", type=float, default=2.0, help="seconds (default 2)")
    demo.add_argument(
        "--serve",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve the room over WebSocket on 127.0.0.1:PORT",
    )
    common(demo)

    serve = commands.add_parser("serve", help="run the presence server (Hypercorn)")
    serve.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (loopback only)")
    serve.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks one")
    serve.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="NAME:SECRET",
        help="an API key with every capability (repeatable)",
    )
    serve.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML: [[keys]], [[tokens]], [server] settings",
    )
    serve.add_argument("--grace-period", type=float, default=None, help="seconds (default 15)")
    serve.add_argument(
        "--connection-state-ttl", type=float, default=None, help="seconds (default 120)"
    )
    serve.add_argument("--sync-page-size", type=int, default=None, help="default 100")
    serve.add_argument(
        "--send-queue",
        type=int,
        default=1000,
        help="frames queued per socket before it is disconnected (default 1000)",
    )
    common(serve)

    for name, text in (
        ("watch", "print a room's events and roster"),
        ("enter", "enter a room and stay present until Ctrl-C"),
    ):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("room")
        sub.add_argument("--url", default="ws://127.0.0.1:8765/")
        sub.add_argument("--key", default=None, metavar="NAME:SECRET")
        sub.add_argument("--token", default=None)
        sub.add_argument("--client-id", default=None if name == "watch" else "cli")
        if name == "enter":
            sub.add_argument("--data", default=None, help="JSON presence data")
        common(sub)

    token = commands.add_parser("token", help="print an Ably JWT signed with a key")
    token.add_argument("--key", required=True, metavar="NAME:SECRET", help="the key signing it")
    token.add_argument("--client-id", default=None, help="the clientId it binds ('*': any)")
    token.add_argument("--ttl", type=float, default=3600.0, help="seconds (default 3600)")
    token.add_argument(
        "--capability",
        default=None,
        metavar="JSON",
        help='channel pattern to operations, such as \'{"chat:*": ["presence", "subscribe"]}\''
        " (default: the key's)",
    )

    simulate = commands.add_parser("simulate", help="the story in the simulator (core only)")
    simulate.add_argument("--seed", type=int, default=7, help="simulation seed (default 7)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``presence-core``."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "simulate":
        for line in run_demo(args.seed):
            print(line)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    try:
        from presence_core.serve import _commands, _demo  # noqa: PLC0415 - needs the extra
    except ImportError as exc:  # the core alone is installed
        print(f"presence-core {args.command}: {_NEEDS_SERVER_EXTRA} ({exc})", file=sys.stderr)
        return 2
    run = {
        "demo": _demo.demo_command,
        "serve": _commands.serve_command,
        "watch": _commands.watch_command,
        "enter": _commands.enter_command,
        "token": _commands.token_command,
    }[args.command]
    return run(args)


if __name__ == "__main__":
    raise SystemExit(main())
