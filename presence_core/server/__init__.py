"""The server reducer: a sans-IO presence server speaking Ably protocol v6.

This is a separate product from the client core in :mod:`presence_core`: the reference server's
state machine, which an adapter (or the simulator in :mod:`presence_core.testing`) drives with
decoded frames, transport events and ``now``.  It shares the wire values and the codec with the
client core and imports no I/O.

RULES OF THIS PACKAGE

* Frames come in decoded (:class:`~presence_core.ProtocolMessage`, ``receive``) or raw, as the
  WebSocket delivered them (``receive_frame``, decoded with ``codec_limits``), and go out as
  :class:`Deliver` commands carrying ProtocolMessages; the adapter encodes them and owns the
  sockets.
* Time comes in as ``now`` (int epoch ms); the server keeps its own clock (see ``_registry``).
* Entropy is injected: connection ids, connection keys (resume credentials), sync ids and
  synthesized-leave ids are all derived from it, so a seeded run is reproducible.
* Bad client input never raises.  It is answered with the ERROR or NACK frame the protocol
  prescribes, and changes nothing else: a PRESENCE or MESSAGE frame is validated whole before
  anything is applied.  Misuse of this API (an unknown transport id, a transport id connected
  twice) raises :class:`~presence_core.UsageError`.

THEORY OF OPERATION

A *transport* is one WebSocket; the adapter names it with any hashable id.  ``connect`` turns a
transport into a *connection* (or resumes one), ``receive`` feeds it frames, and
``transport_closed`` reports that it is gone.  Every ``connect`` is paired with exactly one
``transport_closed``, including transports that the server itself told the adapter to drop with
a :class:`Disconnect` command.  A connection outlives its transport for a grace period and a
resume window.

:class:`Server` (``_server``) is the facade: it takes each call, moves the clock, dispatches
frames by action and composes its collaborators, each stating its own rules:

* ``_auth``: credentials, capabilities and the modes a connection gets on a channel;
* ``_jwt``: reading and checking an Ably JWT (signature, claims, expiry against ``now``);
* ``_registry``: transports, connections, resume keys, the clock, heartbeats and deadlines
  (grace period, ttl, and a token's expiry), and the bound on connections held for a resume;
* ``_channels``: attachments, member maps, serials, SYNC pages and the fan-out of broadcasts;
* ``_inbound``: msgSerial dedup of resent frames, re-echo of duplicate PRESENCE, message size
  and the inbound rate limit;
* ``_backlog``: the MESSAGE frames held for a connection until it resumes and re-attaches
  (RTN15c6);
* ``_frames``: decoding raw frames, and the NACK or ERROR answering one the codec refuses;
* ``_sync``: the pages of each SYNC, sent at once or over time (``sync_page_interval``);
* ``_admin``: what the server does of its own accord: detach or fail a channel, end a
  connection, shut down.

``_config`` holds the settings and ``_output`` the commands and snapshots the server returns.
"""

from __future__ import annotations

from presence_core.server._admin import SHUTDOWN as SHUTDOWN
from presence_core.server._auth import AccessToken as AccessToken, ApiKey as ApiKey
from presence_core.server._config import ServerConfig as ServerConfig
from presence_core.server._output import (
    Deliver as Deliver,
    Disconnect as Disconnect,
    ServerCommand as ServerCommand,
    ServerConnectionInfo as ServerConnectionInfo,
    ServerConnectionState as ServerConnectionState,
    ServerOutput as ServerOutput,
)
from presence_core.server._server import Server as Server

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
    "SHUTDOWN",
]
