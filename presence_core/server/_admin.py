"""What the server does of its own accord: detach or fail a channel, end a connection, shut down.

These are the inputs an operator or a test gives the server, not a client; each is answered
with the frames the protocol prescribes for it, so a client recovers as it would from a real
server.  :class:`ServerInitiative` gives them to :class:`~presence_core.server.Server`, which
defines the state they act on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from presence_core._errors import UsageError
from presence_core._wire import ErrorInfo, ProtocolAction, ProtocolMessage
from presence_core.server._output import (
    EMPTY_OUTPUT,
    Deliver,
    Disconnect,
    ServerCommand,
    ServerOutput,
    TransportId,
    error,
    error_frame,
)

if TYPE_CHECKING:
    from presence_core.server._channels import Channels
    from presence_core.server._registry import Connection, Registry

__all__ = ["SHUTDOWN"]

#: What :meth:`~presence_core.server.Server.shutdown` tells every client, in a DISCONNECTED.
SHUTDOWN: Final = error(80003, 503, "Server is shutting down")


class ServerInitiative:
    """The server's own inputs; the class that mixes this in holds the state."""

    __slots__ = ()

    if TYPE_CHECKING:
        # Declared for the type checker only: the class that mixes this in defines them.
        _registry: Registry
        _channels: Channels

        def _advance(self, now: int, out: list[ServerCommand]) -> None: ...

        def _end(
            self,
            conn: Connection,
            tid: TransportId,
            reason: ErrorInfo | None,
            out: list[ServerCommand],
        ) -> None: ...

        def _lose_transport(self, conn: Connection, out: list[ServerCommand]) -> None: ...

    def detach_channel(
        self, connection_id: str, channel: str, *, error: ErrorInfo | None = None, now: int
    ) -> ServerOutput:
        """Detach connection ``connection_id`` from ``channel``: a DETACHED it did not ask for.

        Its members there leave at once.  The client attaches again (RTL13a) and re-enters
        them (RTP17i).  A connection not attached there is left alone.

        Raises:
            UsageError: No connection has that id.
        """
        return self._drop_channel(connection_id, channel, error, now, fail=False)

    def fail_channel(
        self, connection_id: str, channel: str, error: ErrorInfo, *, now: int
    ) -> ServerOutput:
        """Fail ``channel`` for connection ``connection_id`` with a channel ERROR (RTL14).

        Its members there leave at once, and the client's room fails until it attaches again.

        Raises:
            UsageError: No connection has that id.
        """
        return self._drop_channel(connection_id, channel, error, now, fail=True)

    def fail_connection(self, connection_id: str, error: ErrorInfo, *, now: int) -> ServerOutput:
        """End connection ``connection_id`` with a connection ERROR (RTN15i).

        Its members leave at once, its key resumes nothing, and its transport is closed.

        Raises:
            UsageError: No connection has that id.
        """
        conn = self._connection(connection_id)
        out: list[ServerCommand] = []
        self._advance(now, out)
        tid = conn.transport
        if tid is not None:
            out.append(Deliver(transport_ids=(tid,), message=error_frame(error)))
            self._end(conn, tid, error, out)
        else:
            self._channels.detach_all(conn, self._registry.clock, out)
            self._registry.forget(conn)
        return ServerOutput(tuple(out))

    def shutdown(self, *, now: int) -> ServerOutput:
        """Tell every client the server is going away, and close every transport.

        Each gets DISCONNECTED with :data:`SHUTDOWN` (80003), on which a client retries
        (RTN15h) where an ERROR would fail it; the server's state stays until the process
        ends.
        """
        out: list[ServerCommand] = []
        self._advance(now, out)
        reason = SHUTDOWN
        frame = ProtocolMessage(action=ProtocolAction.DISCONNECTED, error=reason)
        registry = self._registry
        live = [tid for tid, conn in registry.transports.items() if conn is not None]
        if live:
            out.append(Deliver(transport_ids=tuple(live), message=frame))
        for tid in live:
            conn = registry.transports[tid]
            if conn is not None:
                self._send_away(conn, tid, reason, out)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT

    def _send_away(
        self, conn: Connection, tid: TransportId, reason: ErrorInfo, out: list[ServerCommand]
    ) -> None:
        """Close ``tid`` after its DISCONNECTED: ``conn`` enters its grace period, resumable."""
        self._registry.release(tid)
        self._lose_transport(conn, out)
        out.append(Disconnect(transport_id=tid, reason=reason))

    def _connection(self, connection_id: str) -> Connection:
        conn = self._registry.connections.get(connection_id)
        if conn is None:
            raise UsageError(f"unknown connection {connection_id!r}")
        return conn

    def _drop_channel(
        self, connection_id: str, channel: str, reason: ErrorInfo | None, now: int, *, fail: bool
    ) -> ServerOutput:
        conn = self._connection(connection_id)
        out: list[ServerCommand] = []
        self._advance(now, out)
        if channel in conn.channels:
            tid = conn.transport
            if tid is not None:
                frame = (
                    error_frame(reason, channel)
                    if fail and reason is not None
                    else ProtocolMessage(
                        action=ProtocolAction.DETACHED, channel=channel, error=reason
                    )
                )
                out.append(Deliver(transport_ids=(tid,), message=frame))
            self._channels.detach(conn, channel, self._registry.clock, out)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT
