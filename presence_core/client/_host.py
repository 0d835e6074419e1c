"""The server host: one embedded :class:`~presence_core.server.Server`, driven live.

:class:`ServerHost` is to the server reducer what the client is to the connection reducer: it
feeds the server its inputs with ``now``, performs its :class:`~presence_core.server.Deliver`
and :class:`~presence_core.server.Disconnect` commands, and ticks it at ``next_deadline()``.
It knows nothing about sockets: each transport is a :class:`ServerPeer` that queues the frames
delivered to it, so the same host serves in-process clients, a WebSocket listener, or an ASGI
application.

Every call into the server is synchronous and made from the event loop's thread, with no
await between the input and its commands, so the calls never interleave.

The in-process transport (:class:`InProcessConnector`) is a client link that is also a peer:
frames from the server are queued as values, not JSON, for the client to read; frames from the
client go through the codec, so the server sees exactly what a socket would give it and keeps
no reference to the caller's objects.  Values the server delivers are shared between its
in-process clients: event data is to be read, not mutated.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Final, Protocol
from weakref import WeakKeyDictionary

import anyio
import anyio.abc

from presence_core._codec import decode, encode_text
from presence_core._errors import UsageError
from presence_core._wire import ErrorInfo, ProtocolMessage
from presence_core.client._support import Mailbox, Timer, now_ms
from presence_core.client._transport import Deliver as Receiver
from presence_core.server import Deliver, Server, ServerOutput

__all__ = ["ServerPeer", "ServerHost", "InProcessConnector", "InProcessLink"]

_log = logging.getLogger("presence_core.client.host")

_DROPPED: Final = ErrorInfo(code=80003, status_code=503, message="in-process transport dropped")

# One host per server: two would both count transport ids from 1 and tick it twice.
_HOSTS: WeakKeyDictionary[Server, ServerHost] = WeakKeyDictionary()


class ServerPeer(Protocol):
    """The server end of one transport, as a :class:`ServerHost` sees it."""

    def deliver(self, message: ProtocolMessage) -> None:
        """Queue ``message`` for the client; never blocks."""

    def disconnect(self, reason: ErrorInfo | None) -> None:
        """Close the transport after the frames already queued (the server's Disconnect)."""

    def abort(self) -> None:
        """Break the transport at once, dropping what is queued (an abrupt loss)."""


class ServerHost:
    """Runs one :class:`~presence_core.server.Server` for in-process and socket transports.

    Use ``async with ServerHost(server) as host`` to run its timer in a task group of its
    own.  :func:`presence_core.connect` given a bare Server finds or makes its host and runs the
    timer in the clients' task groups instead (see :meth:`run_in`).  The transport hooks
    :meth:`open`, :meth:`receive` and :meth:`closed` are what a socket listener calls.

    Raises:
        UsageError: The server already has a host (:meth:`of` finds it).
    """

    def __init__(self, server: Server) -> None:
        if server in _HOSTS:
            raise UsageError("this Server already has a ServerHost; use ServerHost.of(server)")
        _HOSTS[server] = self
        self._server = server
        self._peers: dict[int, ServerPeer] = {}
        self._ids = itertools.count(1)
        self._timer = Timer(server.next_deadline, self._tick)
        self._runners: list[anyio.abc.TaskGroup] = []
        self._timer_scope: anyio.CancelScope | None = None
        self._own: anyio.abc.TaskGroup | None = None

    @classmethod
    def of(cls, server: Server) -> ServerHost:
        """The host of ``server``, made on first use."""
        host = _HOSTS.get(server)
        return host if host is not None else cls(server)

    @property
    def server(self) -> Server:
        """The server reducer (query it; its inputs go through this host)."""
        return self._server

    def connector(self) -> InProcessConnector:
        """A connector whose transports reach this host in-process."""
        return InProcessConnector(self)

    # -- transports -------------------------------------------------------------------------
    def open(self, params: Mapping[str, str], peer: ServerPeer) -> int:
        """A transport arrived with these query parameters; return its transport id."""
        tid = next(self._ids)
        self._peers[tid] = peer
        self._perform(self._server.connect(tid, params, now=now_ms()))
        return tid

    def receive(self, transport_id: int, message: ProtocolMessage) -> None:
        """A frame arrived on ``transport_id`` (ignored once that transport is closed)."""
        if transport_id in self._peers:
            self._perform(self._server.receive(transport_id, message, now=now_ms()))

    def receive_frame(self, transport_id: int, frame: str | bytes) -> None:
        """A raw frame arrived on ``transport_id``, as a socket read it (ignored once closed).

        The server decodes it, so a frame the codec refuses is answered with its NACK or ERROR.
        """
        if transport_id in self._peers:
            self._perform(self._server.receive_frame(transport_id, frame, now=now_ms()))

    def shutdown(self) -> None:
        """The server is going away: every client is told so and every transport closed.

        See :meth:`Server.shutdown <presence_core.server.Server.shutdown>`; each transport is
        still reported closed once, by its owner, as usual.
        """
        self._perform(self._server.shutdown(now=now_ms()))

    @property
    def transport_count(self) -> int:
        """How many transports are open."""
        return len(self._peers)

    def closed(self, transport_id: int) -> None:
        """``transport_id`` ended; reported to the server once, however often it is called."""
        if self._peers.pop(transport_id, None) is not None:
            self._perform(self._server.transport_closed(transport_id, now=now_ms()))

    def drop(self, transport_id: int) -> None:
        """Break ``transport_id`` abruptly, as a network failure would (for tests and demos).

        Frames queued either way are lost; the server learns at once, the client when it next
        reads.
        """
        peer = self._peers.get(transport_id)
        if peer is not None:
            peer.abort()
            self.closed(transport_id)

    def transport_of(self, connection_id: str) -> int | None:
        """The id of the transport that carries the connection ``connection_id``, if any."""
        for info in self._server.connections():
            if info.connection_id == connection_id and isinstance(info.transport_id, int):
                return info.transport_id
        return None

    # -- the timer --------------------------------------------------------------------------
    def run_in(self, task_group: anyio.abc.TaskGroup) -> None:
        """Offer ``task_group`` to run the host's timer; the first one offered runs it.

        When that group is withdrawn with :meth:`release`, the next one offered takes over, so
        clients sharing a server can close in any order.
        """
        self._runners.append(task_group)
        if len(self._runners) == 1:
            self._start_timer()

    def release(self, task_group: anyio.abc.TaskGroup) -> None:
        """Withdraw a task group offered with :meth:`run_in`."""
        if task_group not in self._runners:
            return
        was_running = self._runners[0] is task_group
        self._runners.remove(task_group)
        if was_running:
            if self._timer_scope is not None:
                self._timer_scope.cancel()
            if self._runners:
                self._start_timer()

    async def __aenter__(self) -> ServerHost:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._own = group
        self.run_in(group)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        group = self._own
        if group is None:
            return
        self._own = None
        self.release(group)
        group.cancel_scope.cancel()
        await group.__aexit__(None, None, None)

    def _start_timer(self) -> None:
        scope = self._timer_scope = anyio.CancelScope()
        self._runners[0].start_soon(self._run_timer, scope)

    async def _run_timer(self, scope: anyio.CancelScope) -> None:
        with scope:
            await self._timer.run()

    def _tick(self) -> None:
        self._perform(self._server.tick(now=now_ms()))

    def _perform(self, out: ServerOutput) -> None:
        peers = self._peers
        for command in out.commands:
            if isinstance(command, Deliver):
                message = command.message
                for tid in command.transport_ids:
                    peer = peers.get(tid)  # type: ignore[call-overload]
                    if peer is not None:
                        peer.deliver(message)
            else:
                peer = peers.get(command.transport_id)  # type: ignore[call-overload]
                if peer is not None:
                    if _log.isEnabledFor(logging.DEBUG):
                        _log.debug(
                            "server closes transport %s: %s", command.transport_id, command.reason
                        )
                    peer.disconnect(command.reason)
        self._timer.rearm()


class InProcessLink:
    """Both ends of one in-process transport: the client's :class:`Link`, the host's peer."""

    __slots__ = ("_host", "_inbox", "_reason", "transport_id")

    def __init__(self, host: ServerHost) -> None:
        self._host = host
        self._inbox: Mailbox[ProtocolMessage] = Mailbox()
        self._reason: ErrorInfo | None = None
        #: The host's id of this transport.
        self.transport_id = 0

    # -- the server's end -------------------------------------------------------------------
    def deliver(self, message: ProtocolMessage) -> None:
        """Queue a frame for the client."""
        self._inbox.put(message)

    def disconnect(self, reason: ErrorInfo | None) -> None:
        """End the transport once the client has read what is queued."""
        self._reason = reason
        self._inbox.close()

    def abort(self) -> None:
        """End the transport at once, dropping what is queued."""
        self._reason = _DROPPED
        self._inbox.abort()

    # -- the client's end -------------------------------------------------------------------
    def send(self, message: ProtocolMessage) -> None:
        """Hand a frame to the server, through the codec as a socket would."""
        if not self._inbox.closed:
            self._host.receive(self.transport_id, decode(encode_text(message)))

    def close(self) -> None:
        """End the transport from the client's side."""
        self._inbox.abort()
        self._host.closed(self.transport_id)

    async def run(self, deliver: Receiver) -> ErrorInfo | None:
        """Hand the client every frame queued for it until the transport ends."""
        inbox = self._inbox
        items = inbox.items
        pop = items.popleft
        many = getattr(deliver, "many", None)
        try:
            while await inbox.ready():
                if many is None or len(items) == 1:
                    while items:
                        deliver(pop())
                else:
                    # The frames queued while the reader waited go in one call, as the frames
                    # of one socket read do.
                    batch = list(items)
                    items.clear()
                    many(batch)
        finally:
            self._host.closed(self.transport_id)
        return self._reason if self._reason is not None else _DROPPED


class InProcessConnector:
    """Opens in-process transports to a :class:`ServerHost`."""

    def __init__(self, host: ServerHost) -> None:
        self._host = host

    @property
    def host(self) -> ServerHost:
        """The host transports reach."""
        return self._host

    async def open(self, params: Mapping[str, str]) -> InProcessLink:
        """Connect to the host; the server's answer is already queued on the returned link."""
        link = InProcessLink(self._host)
        link.transport_id = self._host.open(params, link)
        return link
