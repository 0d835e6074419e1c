"""The server reducer: a sans-IO presence server speaking Ably protocol v6.

This is a separate product from the client core in :mod:`presence_core`: the reference server's
state machine, which an adapter (or the simulator in :mod:`presence_core.testing`) drives with
decoded frames, transport events and ``now``.  It shares the wire values and the codec with the
client core and imports no I/O.
"""

from __future__ import annotations

from presence_core.server._server import (
    AccessToken as AccessToken,
    ApiKey as ApiKey,
    Deliver as Deliver,
    Disconnect as Disconnect,
    Server as Server,
    ServerCommand as ServerCommand,
    ServerConfig as ServerConfig,
    ServerConnectionInfo as ServerConnectionInfo,
    ServerConnectionState as ServerConnectionState,
    ServerOutput as ServerOutput,
)

__all__ = [
    "ApiKey",
    "AccessToken",
    "ServerConfig",
    "Deliver",
    "Disconnect",
    "ServerCommand",
    "ServerOutput",
    "ServerConnectionState",
    "ServerConnectionInfo",
    "Server",
]
