"""presence_core.client: the async client, on asyncio or trio (through anyio).

``async with presence_core.connect(url_or_server, key=..., client_id=...) as client`` gives a
:class:`Client`: ``await client.rooms.get("room1")`` a :class:`Room`, and ``room.presence``
its :class:`RoomPresence` (subscribe, enter, update, leave, get, events), mirroring Ably
Chat's room presence with Python names.

The client drives the sans-IO :class:`~presence_core.Connection` and nothing more: it feeds it
frames and time, performs its commands and keeps its one timer (see
:mod:`presence_core.client._client`).  Transports: WebSocket (``ws://``, ``wss://``; wsproto
over anyio streams) and in-process to an embedded :class:`~presence_core.server.Server`
through its :class:`ServerHost`.

Logging goes to the stdlib loggers ``presence_core.client`` (connection and room states,
listener errors), ``presence_core.client.websocket`` (frames, at DEBUG) and
``presence_core.client.host``.  This package needs the ``client`` extra
(``pip install "presence-core[client]"``: anyio and wsproto).
"""

from __future__ import annotations

from presence_core.client._client import (
    Client as Client,
    ConnectionHandle as ConnectionHandle,
    connect as connect,
)
from presence_core.client._feeds import Feed as Feed, FeedOverflow as FeedOverflow
from presence_core.client._host import (
    InProcessConnector as InProcessConnector,
    InProcessLink as InProcessLink,
    ServerHost as ServerHost,
    ServerPeer as ServerPeer,
)
from presence_core.client._rooms import (
    Room as Room,
    RoomPresence as RoomPresence,
    Rooms as Rooms,
    Subscription as Subscription,
)
from presence_core.client._transport import (
    Connector as Connector,
    Link as Link,
    TransportError as TransportError,
    WebSocketConnector as WebSocketConnector,
    WebSocketLink as WebSocketLink,
)

__all__ = [
    "connect",
    "Client",
    "ConnectionHandle",
    "Rooms",
    "Room",
    "RoomPresence",
    "Subscription",
    "Feed",
    "FeedOverflow",
    "TransportError",
    "Connector",
    "Link",
    "WebSocketConnector",
    "WebSocketLink",
    "ServerHost",
    "ServerPeer",
    "InProcessConnector",
    "InProcessLink",
]
