"""The command-line programs: ``serve``, ``watch``, ``enter`` and ``token`` (``demo``: ``_demo``).

Each but ``token`` runs on anyio (``--backend asyncio`` or ``trio``) and ends on SIGINT or
SIGTERM by cancelling its work, so clients close (their members leave at once) and the process
exits 0.  ``token`` prints a JWT and exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import anyio
import attrs

from presence_core._channel_machine import RoomOptions
from presence_core._errors import UsageError
from presence_core._wire import PresenceMessage
from presence_core.client import Client, FeedOverflow, Room, connect
from presence_core.serve._app import PresenceApp
from presence_core.serve._run import bind, serve
from presence_core.serve._settings import load_config, parse_key
from presence_core.serve._tokens import mint_jwt
from presence_core.server import ApiKey, Server

__all__: list[str] = []


async def until_interrupted(work: Callable[[], Awaitable[Any]]) -> None:
    """Run ``work`` until it returns or SIGINT/SIGTERM arrives, which cancels it."""
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch)
        await work()
        group.cancel_scope.cancel()


def _overrides(args: argparse.Namespace) -> dict[str, int]:
    """The ServerConfig settings given as flags (durations in seconds on the command line)."""
    found: dict[str, int] = {}
    for name in ("grace_period", "connection_state_ttl"):
        value = getattr(args, name, None)
        if value is not None:
            found[name] = round(value * 1000)
    if getattr(args, "sync_page_size", None) is not None:
        found["sync_page_size"] = args.sync_page_size
    return found


def banner(url: str, key: str) -> str:
    """The one line ``serve`` prints at startup: where it listens and how clients connect."""
    parts = url.split(":")
    port = parts[-1].rstrip("/")
    host = ":".join(parts[1:-1]).lstrip("/")
    return (
        f"presence-core serving {url} (key {key}) -- ably-js: {{endpoint: '{host}', port: {port},"
        f" tls: false, useBinaryProtocol: false, key: '{key}'}}; Ctrl-C stops"
    )


def serve_command(args: argparse.Namespace) -> int:
    """``presence-core serve``: run the ASGI app on Hypercorn until SIGINT or SIGTERM."""
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        keys = [parse_key(text) for text in args.key]
        config = load_config(args.config, keys=keys, overrides=_overrides(args))
    except UsageError as exc:
        print(f"presence-core serve: {exc}", file=sys.stderr)
        return 2
    shown = f"{config.keys[0].name}:<secret>" if config.keys else "<token>"
    if args.key:
        shown = args.key[0]
    elif not config.keys and not config.tokens:
        # Never a fixed default secret: a fresh one per run, shown once in the banner.  32 bytes,
        # as long as an Ably key's, and the least PyJWT accepts for HS256 without a warning.
        generated = ApiKey(name="local.dev", secret=secrets.token_urlsafe(32))
        config = attrs.evolve(config, keys=(generated,))
        shown = generated.key
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    app = PresenceApp(Server(config, secrets.token_bytes), send_queue=args.send_queue)
    url = f"ws://{host}:{port}/"
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(
            partial(
                serve,
                app,
                sock,
                backend=args.backend,
                log_level=args.log_level,
                on_ready=lambda: print(banner(url, shown), flush=True),
            ),
            backend=args.backend,
        )
    return 0


def token_command(args: argparse.Namespace) -> int:
    """``presence-core token``: print an Ably JWT signed with ``--key``, on the last line."""
    try:
        capability = None if args.capability is None else json.loads(args.capability)
        if args.ttl <= 0:
            raise UsageError("--ttl must be a positive number of seconds")
        ttl = max(1, round(args.ttl * 1000))
        key = parse_key(args.key)
        token = mint_jwt(key, client_id=args.client_id, ttl=ttl, capability=capability)
    except (json.JSONDecodeError, UsageError) as exc:
        print(f"presence-core token: {exc}", file=sys.stderr)
        return 2
    who = "no clientId" if args.client_id is None else f"clientId {args.client_id!r}"
    print(f"JWT for {who}, signed by key {key.name!r}, valid for {ttl / 1000:g} s:")
    print(token)
    return 0


def describe(event: PresenceMessage) -> str:
    """One event as a line: action, clientId, connection and data."""
    return (
        f"{event.action.event_name:<7} {event.client_id} on {event.connection_id}"
        f" {json.dumps(event.data, default=repr)}"
    )


async def _roster(room: Room) -> str:
    members = await room.presence.get()
    listed = ", ".join(
        f"{m.client_id}={json.dumps(m.data, default=repr)}"
        for m in sorted(members, key=lambda m: m.client_id or "")
    )
    return f"roster ({len(members)}): {listed}"


def _client(args: argparse.Namespace, client_id: str | None) -> Client:
    return connect(args.url, key=args.key, token=args.token, client_id=client_id)


def watch_command(args: argparse.Namespace) -> int:
    """``presence-core watch ROOM``: print the roster, then every event and the new roster."""

    async def watch() -> None:
        async with _client(args, args.client_id) as client:
            room = await client.rooms.get(args.room, options=RoomOptions(enter=False))
            await room.attach()
            print(await _roster(room), flush=True)
            while True:
                feed = room.presence.events()
                try:
                    async for event in feed:
                        print(describe(event), flush=True)
                        print(await _roster(room), flush=True)
                except FeedOverflow:
                    print(await _roster(room), flush=True)

    return _run_client(args, watch)


def enter_command(args: argparse.Namespace) -> int:
    """``presence-core enter ROOM``: enter with ``--data`` and stay present until Ctrl-C."""
    try:
        data = json.loads(args.data) if args.data is not None else None
    except json.JSONDecodeError as exc:
        print(f"presence-core enter: --data is not JSON: {exc}", file=sys.stderr)
        return 2

    async def enter() -> None:
        async with _client(args, args.client_id) as client:
            room = await client.rooms.get(args.room)
            await room.attach()
            await room.presence.enter(data)
            print(f"entered {args.room} as {args.client_id}; Ctrl-C leaves", flush=True)
            await anyio.sleep_forever()

    return _run_client(args, enter)


def _run_client(args: argparse.Namespace, work: Callable[[], Awaitable[None]]) -> int:
    logging.basicConfig(level=args.log_level.upper())
    if (args.key is None) == (args.token is None):
        print("presence-core: give exactly one of --key and --token", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(until_interrupted, work, backend=args.backend)
    return 0
