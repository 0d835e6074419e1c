"""Load, churn and a server restart: real WebSocket clients against ``presence-core serve``.

One process drives ``--clients`` clients (presence_core's async client over WebSockets on
127.0.0.1) against a ``presence-core serve`` subprocess.  Every client enters one room;
``--sample`` of them subscribe to presence, and the others open the room with
``subscribe=False``, as most members of a large room would.  The run has four phases:

1. **load**: every client connects, attaches and enters.
2. **churn**: ``--rounds`` rounds, each picking a random tenth of the clients to update, to drop
   their socket abruptly (the client resumes within the grace period), to leave, or to enter
   again after a leave.
3. **restart**: the server process is killed (SIGKILL) and started again on the same port.
   Every client reconnects, its resume fails (the new process never knew it), and it enters
   again on its own (RTP17i).
4. **leave**: every client leaves and closes.

The driver records each client's last acknowledged intent: the data of its last enter or
update whose call returned, or absent after a leave.  After each of the first three phases the
run waits until the server's member table (its REST presence route) and every subscribed
client's ``get()`` equal that record, and counts the difference: a **ghost** is a member the
server lists that no client intends, a **lost** member one that a client intends and the
server lacks (or holds with other data).  The run fails unless both are zero and, after the
last phase, the server's ``/health`` shows no connections and no members.

Run with ``python -m benchmarks.load_churn`` (``--clients 1000`` by default; ``--plot PATH``
writes a PNG of members seen over time, with matplotlib).  The figures printed are wall-clock
times of this machine and the server's resident memory from ``/proc``.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import resource
import signal
import sys
import time
import urllib.parse
import urllib.request
from typing import Any, Final

import anyio
import anyio.abc
import attrs

import presence_core
from presence_core import ConnectionSettings, RoomOptions, decode_data
from presence_core.client import Client, Room
from tests.serve.support import Breakable

KEY: Final = "load.key:s3cret"
ROOM: Final = "load"
CHANNEL: Final = f"{ROOM}::$chat"
#: Clients connect this many at a time: a burst beyond the listen backlog only adds retries.
CONNECT_BURST: Final = 50
#: A lost transport is retried quickly, so the restart phase measures the server, not backoff.
SETTINGS: Final = ConnectionSettings(
    disconnected_retry_timeout=500, realtime_request_timeout=20_000
)
#: How long any phase may take to converge before the run is declared failed.
CONVERGE_TIMEOUT: Final = 300.0


@attrs.frozen(kw_only=True)
class Plan:
    """What one run does."""

    clients: int = 1_000
    sample: int = 20
    rounds: int = 5
    restart: bool = True
    seed: int = 1
    grace_period: float = 15.0


@attrs.define
class PhaseResult:
    """One phase's convergence: how long it took, and what was still wrong when it stopped."""

    name: str
    seconds: float
    ghosts: int
    lost: int


@attrs.define
class RunResult:
    """Everything a run measured."""

    phases: list[PhaseResult] = attrs.Factory(list)
    #: Seconds since the start, server member count, first sample client's member count.
    timeline: list[tuple[float, int, int]] = attrs.Factory(list)
    #: Seconds since the start at which each phase began, and its name.
    marks: list[tuple[float, str]] = attrs.Factory(list)
    peak_rss_kib: int = 0
    rss_base_kib: int = 0
    rss_loaded_kib: int = 0
    failed_operations: int = 0
    resumes_failed_after_restart: int = 0
    final_connections: int = -1
    final_members: int = -1

    @property
    def ok(self) -> bool:
        """No ghost, no lost member, no failed operation, and empty tables at the end."""
        return (
            all(p.ghosts == 0 and p.lost == 0 for p in self.phases)
            and self.failed_operations == 0
            and self.final_connections == 0
            and self.final_members == 0
        )


class _Server:
    """The ``presence-core serve`` subprocess, restartable on the port it first got."""

    def __init__(self, grace_period: float) -> None:
        self._grace = grace_period
        self.port = 0
        self.process: anyio.abc.Process | None = None
        self.peak_rss_kib = 0

    async def start(self) -> None:
        command = [
            sys.executable, "-m", "presence_core", "serve", "--key", KEY,
            "--port", str(self.port), "--grace-period", str(self._grace),
            "--send-queue", "100000",
        ]  # fmt: skip
        self.process = await anyio.open_process(command, stderr=None)
        assert self.process.stdout is not None
        banner = b""
        with anyio.fail_after(30):
            while b"\n" not in banner:
                banner += await self.process.stdout.receive()
        self.port = int(banner.split(b"ws://127.0.0.1:", 1)[1].split(b"/", 1)[0])

    def memory(self) -> tuple[int, int]:
        """The process's resident set and its peak so far, in KiB (Linux ``/proc``)."""
        assert self.process is not None
        fields: dict[str, int] = {}
        with open(f"/proc/{self.process.pid}/status", encoding="ascii") as status:
            for line in status:
                name, _, value = line.partition(":")
                if name in ("VmRSS", "VmHWM"):
                    fields[name] = int(value.split()[0])
        self.peak_rss_kib = max(self.peak_rss_kib, fields["VmHWM"])
        return fields["VmRSS"], fields["VmHWM"]

    async def kill(self) -> None:
        assert self.process is not None
        self.memory()
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self.process.aclose()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGINT)
            with anyio.move_on_after(10):
                await self.process.wait()
            if self.process.returncode is None:
                self.process.kill()
            await self.process.aclose()

    async def get(self, path: str) -> Any:
        """GET ``path`` with the key in Basic auth; the decoded JSON body."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        token = base64.b64encode(KEY.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")

        def fetch() -> Any:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())

        return await anyio.to_thread.run_sync(fetch)

    async def members(self) -> dict[str, Any]:
        """The server's member table for the room: clientId to decoded data."""
        channel = urllib.parse.quote(CHANNEL, safe="")
        items = await self.get(f"/channels/{channel}/presence?limit=1000")
        table: dict[str, Any] = {}
        for item in items:
            table[item["clientId"]] = decode_data(item.get("data"), item.get("encoding"))[0]
        return table


@attrs.define(eq=False)
class _Member:
    client_id: str
    subscribed: bool
    connector: Breakable
    client: Client | None = None
    room: Room | None = None
    #: The data of the last acknowledged enter or update; None once left.
    intent: dict[str, int] | None = None
    version: int = 0


class _Driver:
    def __init__(self, plan: Plan, server: _Server, result: RunResult) -> None:
        self.plan = plan
        self.server = server
        self.result = result
        self.members: list[_Member] = []
        self.random = random.Random(plan.seed)
        self.start = time.monotonic()

    def mark(self, name: str) -> float:
        """Note that phase ``name`` begins; its start time (monotonic seconds)."""
        now = time.monotonic()
        self.result.marks.append((now - self.start, name))
        return now

    def intents(self) -> dict[str, Any]:
        return {m.client_id: m.intent for m in self.members if m.intent is not None}

    async def run_member(self, member: _Member, ready: anyio.Event, done: anyio.Event) -> None:
        async with presence_core.connect(
            member.connector, key=KEY, client_id=member.client_id, settings=SETTINGS
        ) as client:
            room = await client.rooms.get(ROOM, options=RoomOptions(subscribe=member.subscribed))
            await room.attach()
            member.client, member.room = client, room
            ready.set()
            await done.wait()
            if member.intent is not None:
                await room.presence.leave()
                member.intent = None

    async def operate(self, member: _Member, action: str) -> None:
        room = member.room
        assert room is not None
        try:
            if action == "cut":
                member.connector.break_links()
                return
            if action == "leave":
                await room.presence.leave()
                member.intent = None
                return
            member.version += 1
            data = {"v": member.version}
            await (room.presence.enter(data) if action == "enter" else room.presence.update(data))
            member.intent = data
        except presence_core.PresenceError:
            self.result.failed_operations += 1

    async def converge(self, name: str, since: float) -> None:
        """Wait until the server and every subscriber hold exactly the intents."""
        ghosts = lost = -1
        with anyio.move_on_after(CONVERGE_TIMEOUT):
            while True:
                intents = self.intents()
                table = await self.server.members()
                ghosts = len(table.keys() - intents.keys())
                lost = sum(1 for cid, data in intents.items() if table.get(cid) != data)
                if ghosts == 0 and lost == 0 and await self._subscribers_agree(intents):
                    break
                await anyio.sleep(0.1)
        seconds = time.monotonic() - since
        self.result.phases.append(PhaseResult(name=name, seconds=seconds, ghosts=ghosts, lost=lost))

    async def _subscribers_agree(self, intents: dict[str, Any]) -> bool:
        for member in self.members:
            if member.subscribed and member.room is not None:
                seen = await member.room.presence.get(wait_for_sync=False)
                if {m.client_id: m.data for m in seen} != intents:
                    return False
        return True

    async def sample(self) -> None:
        """Record members seen over time: the server's count and one subscriber's."""
        watcher = next((m for m in self.members if m.subscribed), self.members[0])
        while True:
            try:
                health = await self.server.get("/health")
                server_count = int(health["members"])
            except OSError:  # the server is down during the restart
                server_count = 0
            room = watcher.room
            seen = len(await room.presence.get(wait_for_sync=False)) if room is not None else 0
            self.result.timeline.append((time.monotonic() - self.start, server_count, seen))
            await anyio.sleep(0.2)

    async def churn_round(self) -> None:
        count = max(4, len(self.members) // 10)
        picked = self.random.sample(self.members, min(count, len(self.members)))
        async with anyio.create_task_group() as group:
            for member in picked:
                if member.intent is None:
                    action = "enter"
                else:
                    action = self.random.choice(("update", "update", "cut", "leave"))
                group.start_soon(self.operate, member, action)


async def run(plan: Plan) -> RunResult:
    """Run ``plan`` against a fresh ``presence-core serve`` subprocess; return its figures."""
    result = RunResult()
    server = _Server(plan.grace_period)
    try:
        await server.start()
        url = f"ws://127.0.0.1:{server.port}/"
        driver = _Driver(plan, server, result)
        driver.members = [
            _Member(client_id=f"u{i:04d}", subscribed=i < plan.sample, connector=Breakable(url))
            for i in range(plan.clients)
        ]
        done = anyio.Event()
        await anyio.sleep(0.5)
        result.rss_base_kib = server.memory()[0]
        async with anyio.create_task_group() as outer:
            async with anyio.create_task_group() as clients:
                await _phases(driver, clients, outer, done)
            # Every client has left and closed (its task ended); the sampler stops too.
            outer.cancel_scope.cancel()
        with anyio.move_on_after(CONVERGE_TIMEOUT):
            while True:
                health = await server.get("/health")
                result.final_connections = int(health["connections"])
                result.final_members = int(health["members"])
                if result.final_connections == 0 and result.final_members == 0:
                    break
                await anyio.sleep(0.1)
        server.memory()
        result.peak_rss_kib = server.peak_rss_kib
    finally:
        await server.stop()
    return result


async def _phases(
    driver: _Driver, clients: anyio.abc.TaskGroup, outer: anyio.abc.TaskGroup, done: anyio.Event
) -> None:
    plan, server, result = driver.plan, driver.server, driver.result
    outer.start_soon(driver.sample)
    since = driver.mark("load")
    for first in range(0, plan.clients, CONNECT_BURST):
        batch = driver.members[first : first + CONNECT_BURST]
        events = [anyio.Event() for _ in batch]
        for member, ready in zip(batch, events, strict=True):
            clients.start_soon(driver.run_member, member, ready, done)
        for ready in events:
            await ready.wait()
    async with anyio.create_task_group() as entering:
        for member in driver.members:
            entering.start_soon(driver.operate, member, "enter")
    await driver.converge("load", since)
    result.rss_loaded_kib = server.memory()[0]

    since = driver.mark("churn")
    for _ in range(plan.rounds):
        await driver.churn_round()
        # A pause between rounds lets the timeline show each one.
        await anyio.sleep(0.5)
    await driver.converge("churn", since)

    if plan.restart:
        before = {m.client_id: m.client.connection.id for m in driver.members if m.client}
        since = driver.mark("restart")
        await server.kill()
        await server.start()
        await driver.converge("restart", since)
        result.resumes_failed_after_restart = sum(
            1
            for m in driver.members
            if m.client is not None and m.client.connection.id != before[m.client_id]
        )
    driver.mark("leave")
    done.set()


def _raise_file_limit(clients: int) -> None:
    # Each client holds one socket here and one in the server; leave room for both.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max(soft, min(hard, 4 * clients + 256))
    if wanted > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _plot(result: RunResult, path: str) -> None:
    import matplotlib  # noqa: PLC0415 - only this option needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    times = [t for t, _, _ in result.timeline]
    figure, axes = plt.subplots(figsize=(8, 4))
    axes.plot(times, [s for _, s, _ in result.timeline], label="server's member table")
    axes.plot(times, [c for _, _, c in result.timeline], label="a subscribed client's get()")
    for at, name in result.marks:
        axes.axvline(at, color="grey", linestyle=":")
        axes.annotate(name, (at, 0), textcoords="offset points", xytext=(3, 3), color="grey")
    axes.set_xlabel("seconds since the first connect")
    axes.set_ylabel("members")
    axes.set_title("Members seen during load, churn and a server restart")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


_DEFAULTS: Final = Plan()


def main() -> None:
    """Parse the command line, run, print the figures; exit 1 unless the run converged."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=_DEFAULTS.clients)
    parser.add_argument("--sample", type=int, default=_DEFAULTS.sample)
    parser.add_argument("--rounds", type=int, default=_DEFAULTS.rounds)
    parser.add_argument("--no-restart", action="store_true")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    parser.add_argument("--plot", metavar="PATH", help="write a PNG of members over time")
    args = parser.parse_args()
    plan = Plan(
        clients=args.clients,
        sample=args.sample,
        rounds=args.rounds,
        restart=not args.no_restart,
        seed=args.seed,
    )
    _raise_file_limit(plan.clients)
    result = anyio.run(run, plan, backend=args.backend)
    for phase in result.phases:
        print(
            f"{phase.name:8} converged in {phase.seconds:7.2f} s"
            f"  ghosts={phase.ghosts} lost={phase.lost}"
        )
    print(f"failed operations: {result.failed_operations}")
    if plan.restart:
        print(f"resumes failed after the restart: {result.resumes_failed_after_restart}")
    print(f"after everyone left: connections={result.final_connections}"
          f" members={result.final_members}")  # fmt: skip
    per_connection = (result.rss_loaded_kib - result.rss_base_kib) / plan.clients
    print(f"server RSS: idle {result.rss_base_kib / 1024:.1f} MiB, loaded "
          f"{result.rss_loaded_kib / 1024:.1f} MiB, peak {result.peak_rss_kib / 1024:.1f} MiB, "
          f"{per_connection:.1f} KiB per connection")  # fmt: skip
    if args.plot:
        _plot(result, args.plot)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
