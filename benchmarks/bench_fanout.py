"""Fan-out benchmark: one presence update to 1,000 WebSocket clients on loopback.

The reference server (``PresenceApp`` on Hypercorn, asyncio) has :data:`CLIENTS` WebSocket
clients attached to one room; one of them sends a PRESENCE update, and the time is taken from
its send until the last client has decoded the broadcast.  The floor is the same frame
broadcast to the same number of clients by a bare ASGI app on the same Hypercorn, with no
presence logic, in the same run: the WebSocket stack's own cost.  The ratio of the two is the
cost of the presence layer (target: at most 1.5).

The clients are raw WebSockets (presence_core.client's transport, wsproto over anyio) in the
same process, and both runs pay the same client-side decoding.  Each run is repeated
:data:`ROUNDS` times and the median is reported.

Run with ``python -m benchmarks.bench_fanout`` (add ``--clients N`` to scale).
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import anyio.abc

from presence_core import (
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    encode_text,
)
from presence_core.client import WebSocketConnector, WebSocketLink
from presence_core.serve import PresenceApp
from presence_core.serve._run import bind, serve
from presence_core.server import ApiKey, Server, ServerConfig

CLIENTS: Final = 1_000
ROUNDS: Final = 5
KEY: Final = ApiKey(name="bench.key", secret="s3cret")
CHANNEL: Final = "room1::$chat"


class _Counter:
    """Counts clients that received a PRESENCE frame; sets ``done`` at the target."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = anyio.Event()
        self.attached = 0
        self.all_attached = anyio.Event()

    def deliver(self, message: ProtocolMessage) -> None:
        if message.action == ProtocolAction.PRESENCE:
            self.count += 1
            if self.count >= self.target:
                self.done.set()
        elif message.action == ProtocolAction.ATTACHED:
            self.attached += 1
            if self.attached >= self.target:
                self.all_attached.set()


async def _open_clients(
    url: str, n: int, counter: _Counter, group: anyio.abc.TaskGroup
) -> list[WebSocketLink]:
    connector = WebSocketConnector(url)
    links = []
    for i in range(n):
        link = await connector.open({"key": KEY.key, "clientId": f"c{i}", "format": "json"})
        group.start_soon(link.run, counter.deliver)
        links.append(link)
    return links


async def _measure(
    url: str, n: int, rounds: int, trigger: Callable[[WebSocketLink, int], Awaitable[None]]
) -> list[float]:
    times = []
    async with anyio.create_task_group() as group:
        counter = _Counter(n)
        links = await _open_clients(url, n, counter, group)
        for link in links:
            link.send(ProtocolMessage(action=ProtocolAction.ATTACH, channel=CHANNEL))
        with anyio.fail_after(60):
            await counter.all_attached.wait()
        await anyio.sleep(0.2)
        for round_ in range(rounds):
            counter.count = 0
            counter.done = anyio.Event()
            start = time.perf_counter()
            await trigger(links[0], round_)
            with anyio.fail_after(60):
                await counter.done.wait()
            times.append(time.perf_counter() - start)
            await anyio.sleep(0.2)
        for link in links:
            link.close()
        group.cancel_scope.cancel()
    return times


async def _presence_run(n: int, rounds: int) -> tuple[list[float], str]:
    server = Server(ServerConfig(keys=(KEY,), max_messages_per_second=1_000), secrets.token_bytes)
    app = PresenceApp(server, send_queue=10_000)
    sock = bind("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    stop = anyio.Event()

    async def trigger(link: WebSocketLink, round_: int) -> None:
        update = PresenceMessage(action=PresenceAction.UPDATE, data={"status": f"s{round_}"})
        link.send(
            ProtocolMessage(
                action=ProtocolAction.PRESENCE,
                channel=CHANNEL,
                msg_serial=round_,
                presence=(update,),
            )
        )

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve(app, sock, stop=stop))
        await anyio.sleep(0.3)
        times = await _measure(url, n, rounds, trigger)
        stop.set()
    frame = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel=CHANNEL,
        presence=tuple(server.members(CHANNEL)) or None,
    )
    return times, encode_text(frame)


class _FloorApp:
    """A bare ASGI app: any text frame received is broadcast to every open WebSocket."""

    def __init__(self, frame: str) -> None:
        self.frame = frame
        self.sends: list[Callable[[dict[str, Any]], Awaitable[None]]] = []

    def shutdown(self) -> None:
        """Nothing to tell clients: the runner's shutdown hook."""

    async def closed(self) -> None:
        """The runner waits for this before stopping Hypercorn."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        self.sends.append(send)
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text") or ""
            if '"action":10' in text:  # ATTACH: answer so the client counts itself attached
                await send({"type": "websocket.send", "text": '{"action":11,"channel":"x"}'})
            else:
                for other in list(self.sends):
                    await other({"type": "websocket.send", "text": self.frame})


async def _floor_run(n: int, rounds: int, frame: str) -> list[float]:
    app = _FloorApp(frame)
    sock = bind("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    stop = anyio.Event()

    async def trigger(link: WebSocketLink, round_: int) -> None:
        link.send(ProtocolMessage(action=ProtocolAction.HEARTBEAT))

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: serve(app, sock, stop=stop))  # type: ignore[arg-type]
        await anyio.sleep(0.3)
        times = await _measure(url, n, rounds, trigger)
        stop.set()
    return times


async def main(n: int, rounds: int) -> None:
    presence, frame = await _presence_run(n, rounds)
    floor = await _floor_run(n, rounds, frame)
    p, f = statistics.median(presence), statistics.median(floor)
    print(f"fan-out to {n} WebSocket clients, median of {rounds}:")
    print(f"  presence server: {p * 1000:8.1f} ms")
    print(f"  floor (bare ASGI broadcast, same Hypercorn): {f * 1000:8.1f} ms")
    print(f"  ratio: {p / f:.2f}x (target <= 1.5x)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    anyio.run(main, args.clients, args.rounds)
