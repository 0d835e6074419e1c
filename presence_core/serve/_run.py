"""Running the ASGI app on Hypercorn, on asyncio or trio, with a graceful shutdown.

On SIGINT or SIGTERM the app first tells every client DISCONNECTED and closes its socket
(clients then retry, and resume against whatever server answers next), then Hypercorn stops.
Both steps are bounded, so the process exits within about two seconds whatever its clients do.
The listening socket is bound here, before Hypercorn starts, so that ``port=0`` works and the
banner names the port really bound.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable
from typing import Any, Final, cast

import anyio
import hypercorn.asyncio
from hypercorn.config import Config

from presence_core.serve._app import PresenceApp

__all__: list[str] = []

#: How long the app waits for clients to take their DISCONNECTED and close, then Hypercorn for
#: its connections to end (seconds).  Together they stay well under two seconds.
CLOSE_WAIT: Final = 0.5
GRACEFUL_TIMEOUT: Final = 0.5


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(1024)
    except BaseException:
        sock.close()
        raise
    return sock


def hypercorn_config(sock: socket.socket, log_level: str) -> Config:
    """Hypercorn's settings for serving on ``sock``, which Hypercorn then owns (and closes)."""
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACEFUL_TIMEOUT
    config.loglevel = log_level.upper()
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.backlog = 1024
    # The reducer's HEARTBEATs keep every client's idle timer satisfied; pings would be noise.
    config.websocket_ping_interval = None
    return config


async def serve(
    app: PresenceApp,
    sock: socket.socket,
    *,
    backend: str = "asyncio",
    log_level: str = "info",
    stop: anyio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT, SIGTERM or ``stop``; then shut down gracefully.

    ``sock`` is handed over: Hypercorn closes it.

    ``backend`` names the event loop it is called from: ``asyncio`` or ``trio``.
    """
    config = hypercorn_config(sock, log_level)
    stop = stop if stop is not None else anyio.Event()

    async def shutdown_trigger() -> None:
        await stop.wait()
        app.shutdown()
        with anyio.move_on_after(CLOSE_WAIT):
            await app.closed()

    async def watch_signals() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                stop.set()
                return

    framework = cast(Any, app)  # Hypercorn's ASGI types are TypedDicts; the app reads Mappings.
    async with anyio.create_task_group() as group:
        group.start_soon(watch_signals)
        if on_ready is not None:
            on_ready()
        if backend == "trio":
            # trio is optional: only a server started on it imports Hypercorn's trio worker.
            from hypercorn.trio import serve as trio_serve  # noqa: PLC0415

            await trio_serve(framework, config, shutdown_trigger=shutdown_trigger)
        else:
            await hypercorn.asyncio.serve(framework, config, shutdown_trigger=shutdown_trigger)
        group.cancel_scope.cancel()
