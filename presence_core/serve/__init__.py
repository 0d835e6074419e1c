"""presence_core.serve: the reference server, as an ASGI application, and the command line.

:class:`PresenceApp` hosts the sans-IO :class:`~presence_core.server.Server` reducer behind
ASGI: WebSocket upgrades on its root speak Ably protocol v6, ``GET
/channels/{channel}/presence`` answers as Ably's REST presence endpoint (RSP3) does, and ``GET
/health`` reports counters.  Mount it in Starlette or FastAPI, or run it with ``presence-core
serve`` on Hypercorn (asyncio or trio).  ``presence-core demo`` runs an in-process server with
simulated users, and ``presence-core token`` mints an Ably JWT (as :func:`mint_jwt` does).

The app only adapts: the reducer decides everything, a
:class:`~presence_core.client.ServerHost` performs its commands and ticks it, and the app
moves frames between sockets and the host (see ``_app`` for its rules).  This package needs
the ``server`` extra (``pip install "presence-core[server]"``).
"""

from __future__ import annotations

from presence_core.serve._app import (
    OVERFLOW as OVERFLOW,
    PresenceApp as PresenceApp,
)
from presence_core.serve._tokens import mint_jwt as mint_jwt

__all__ = ["PresenceApp", "OVERFLOW", "mint_jwt"]
