"""``presence-core demo``: an in-process server, simulated users, a live roster and event stream.

The story, paced to fit ``--duration`` (users beyond the first three only enter and update):

1. every user enters the room ``lobby``; the first changes status;
2. the second user's connection drops and resumes within the grace period: peers see nothing;
3. the third user's network goes away for longer than the grace period: peers see the leave,
   and when the network comes back the client re-enters by itself;
4. the first user leaves.

The server runs with a short grace period (2 s by default) so that the whole story fits in a
few seconds.  Without ``--duration`` the users keep changing status until Ctrl-C.  An observer
client (subscribed, never entered) records what a peer sees; its events are the stream shown.
"""

from __future__ import annotations

import argparse
import itertools
import secrets
import sys
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Final

import anyio
import attrs
from rich.console import Console
from rich.live import Live
from rich.table import Table

from presence_core._channel_machine import RoomOptions
from presence_core._connection import ConnectionSettings
from presence_core._wire import PresenceMessage
from presence_core.client import (
    Client,
    InProcessConnector,
    InProcessLink,
    ServerHost,
    TransportError,
    connect,
)
from presence_core.serve._app import PresenceApp
from presence_core.serve._commands import banner, describe, until_interrupted
from presence_core.serve._run import bind, serve
from presence_core.server import ApiKey, Server, ServerConfig

__all__: list[str] = []

ROOM: Final = "lobby"
KEY: Final = ApiKey(name="demo.key", secret="demo")
NAMES: Final = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")
STATUSES: Final = ("online", "away", "busy", "online")
#: Clients retry quickly, so the user whose network returns is back within a beat.
_SETTINGS: Final = ConnectionSettings(disconnected_retry_timeout=250)
#: The hang guard of every wait for an event; never reached when the server works.
_HANG: Final = 30.0


@attrs.define
class _Network:
    """A user's network: while down, every connection attempt fails."""

    up: bool = True


class _FlakyConnector:
    """An in-process connector that refuses to open while the user's network is down."""

    def __init__(self, inner: InProcessConnector, network: _Network) -> None:
        self._inner = inner
        self._network = network

    async def open(self, params: Mapping[str, str]) -> InProcessLink:
        if not self._network.up:
            raise TransportError("network down (demo)")
        return await self._inner.open(params)


class _View:
    """What the observer saw: the event stream and the roster, rendered with rich."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.events: list[PresenceMessage] = []
        self.roster: dict[str, object] = {}
        self._changed = anyio.Event()
        self._start = anyio.current_time()

    def note(self, text: str) -> None:
        self.console.print(f"[dim]{self._clock()}[/dim]  [bold]{text}[/bold]")

    def __call__(self, event: PresenceMessage) -> None:
        self.events.append(event)
        if event.client_id is not None:
            if event.action.event_name == "leave":
                self.roster.pop(event.client_id, None)
            else:
                self.roster[event.client_id] = event.data
        self.console.print(f"[dim]{self._clock()}[/dim]  {describe(event)}")
        self._changed.set()
        self._changed = anyio.Event()

    def table(self) -> Table:
        table = Table(title=f"room {ROOM!r}: {len(self.roster)} present", expand=False)
        table.add_column("user")
        table.add_column("data")
        for client_id, data in sorted(self.roster.items()):
            table.add_row(client_id, repr(data))
        return table

    async def wait_seen(self, action: str, client_id: str, count: int = 1) -> None:
        with anyio.fail_after(_HANG):
            while (
                sum(e.action.event_name == action and e.client_id == client_id for e in self.events)
                < count
            ):
                await self._changed.wait()

    def _clock(self) -> str:
        return f"t={anyio.current_time() - self._start:6.2f}s"


async def run_demo(
    *,
    users: int = 4,
    duration: float | None = 10.0,
    grace_period: float = 2.0,
    serve_port: int | None = None,
    console: Console | None = None,
    backend: str = "asyncio",
) -> list[tuple[str, str | None]]:
    """Run the demo; return the (action, clientId) of every event the observer saw.

    Raises:
        ValueError: ``users`` is not 1 to 9, or ``grace_period`` is negative.
    """
    if not 1 <= users <= len(NAMES):
        raise ValueError(f"users must be 1 to {len(NAMES)}")
    if grace_period < 0:
        raise ValueError("grace_period must not be negative")
    console = console if console is not None else Console()
    grace_ms = round(grace_period * 1000)
    config = ServerConfig(keys=(KEY,), grace_period=grace_ms)
    server = Server(config, secrets.token_bytes)
    app = PresenceApp(server)
    view = _View(console)
    names = NAMES[:users]
    networks = {name: _Network() for name in names}
    console.print(
        f"presence-core demo: {users} users in room {ROOM!r}; the server's grace period is"
        f" {grace_period:g} s (--grace-period), so a drop shorter than that is invisible to"
        " peers and a longer one is a leave."
    )
    async with anyio.create_task_group() as group, app.running():
        if serve_port is not None:
            sock = bind("127.0.0.1", serve_port)
            url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
            group.start_soon(lambda: serve(app, sock, backend=backend))
            console.print(banner(url, KEY.key))
            console.print(f"join: presence-core watch {ROOM} --url {url} --key {KEY.key}")
        connector = app.host.connector()
        async with connect(server, key=KEY.key, client_id="observer") as observer:
            room = await observer.rooms.get(ROOM, options=RoomOptions(enter=False))
            room.presence.subscribe(view)
            await room.attach()
            clients: dict[str, Client] = {}
            live = Live(view.table(), console=console, auto_refresh=False, transient=False)
            with live:
                async with AsyncExitStack() as stack:
                    for name in names:
                        client = connect(
                            _FlakyConnector(connector, networks[name]),
                            key=KEY.key,
                            client_id=name,
                            settings=_SETTINGS,
                        )
                        clients[name] = await stack.enter_async_context(client)
                    await _story(
                        app.host,
                        clients=clients,
                        networks=networks,
                        view=view,
                        live=live,
                        duration=duration,
                        grace=grace_period,
                    )
                live.update(view.table(), refresh=True)
        group.cancel_scope.cancel()
    return [(e.action.event_name, e.client_id) for e in view.events]


async def _story(
    host: ServerHost,
    *,
    clients: dict[str, Client],
    networks: dict[str, _Network],
    view: _View,
    live: Live,
    duration: float | None,
    grace: float,
) -> None:
    names = list(clients)
    started = anyio.current_time()
    # The story needs about grace + 1 s of waiting beyond its seven beats.
    beat = 0.6 if duration is None else max(0.05, (duration - grace - 1.0) / 7)

    async def pause() -> None:
        live.update(view.table(), refresh=True)
        await anyio.sleep(beat)
        live.update(view.table(), refresh=True)

    rooms = {name: await clients[name].rooms.get(ROOM) for name in names}
    for name in names:
        await rooms[name].attach()
        await rooms[name].presence.enter({"status": "online"})
        await view.wait_seen("enter", name)
    await pause()
    await rooms[names[0]].presence.update({"status": "away"})
    await view.wait_seen("update", names[0])
    await pause()
    if len(names) > 1:
        bob = clients[names[1]]
        view.note(f"{names[1]}'s connection drops; it resumes within the grace period")
        tid = host.transport_of(bob.connection.id or "")
        if tid is not None:
            host.drop(tid)
        await bob.connection.wait_for(bob.connection.state.CONNECTED)
        await pause()
        view.note(f"{names[1]} is back on the same connection: peers saw nothing")
        await pause()
    if len(names) > 2:
        carol = clients[names[2]]
        view.note(f"{names[2]}'s network goes away for longer than the grace period ({grace:g} s)")
        networks[names[2]].up = False
        tid = host.transport_of(carol.connection.id or "")
        if tid is not None:
            host.drop(tid)
        await view.wait_seen("leave", names[2])
        view.note(f"{names[2]}'s network is back: the client re-enters by itself")
        networks[names[2]].up = True
        await view.wait_seen("enter", names[2], count=2)
        await pause()
    for name in names[3:]:
        await rooms[name].presence.update({"status": "busy"})
    await pause()
    await rooms[names[0]].presence.leave()
    await view.wait_seen("leave", names[0])
    live.update(view.table(), refresh=True)
    if duration is not None:
        await anyio.sleep(max(0.0, started + duration - anyio.current_time()))
        return
    view.note("the story is over; users keep changing status until Ctrl-C")
    for step in itertools.count():
        name = names[1 + step % (len(names) - 1)] if len(names) > 1 else names[0]
        status = STATUSES[step % len(STATUSES)]
        await rooms[name].presence.enter({"status": status})
        await pause()


def demo_command(args: argparse.Namespace) -> int:
    """``presence-core demo``: run the demo until its duration ends or Ctrl-C."""
    try:
        anyio.run(
            until_interrupted,
            lambda: run_demo(
                users=args.users,
                duration=args.duration,
                grace_period=args.grace_period,
                serve_port=args.serve,
                backend=args.backend,
            ),
            backend=args.backend,
        )
    except ValueError as exc:
        print(f"presence-core demo: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0
