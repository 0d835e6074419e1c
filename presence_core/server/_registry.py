"""The connection registry: transports, connections, resume keys, the clock and deadlines.

RULES OF THIS MODULE

* The clock is the largest ``now`` seen, so a clock stepping back means time does not advance;
  every stamp and deadline in the server reads :attr:`Registry.clock`.
* Every transport the adapter connected stays in :attr:`Registry.transports` until it reports
  the transport closed.  A transport the server let go (refused, closed, or replaced by a
  resume) maps to ``None``, so its late frames are ignored rather than misattributed.
* A connection without a transport has a deadline (its grace period, then its ttl), and so
  does a recovered one until its hold on unattached channels ends (``end_hold``, see
  :meth:`Registry.hold_until`).  A connection whose credential expires (a JWT) also has an
  expiry, kept apart from that deadline: when it comes while the connection has a transport,
  ``end_token`` sends the client away (RTN15h), and a new credential first (an AUTH or a
  resume) replaces it.  Deadlines and expiries sit in one heap ordered by
  (deadline, creation order), so a call costs the same whether none or 10,000 connections are
  waiting.  An entry is deleted lazily: it is skipped when it comes up if its connection has
  since resumed, been forgotten or been given a later deadline or credential (its stamp
  matches neither ``stamp`` nor ``expiry_stamp``), and the heap is rebuilt when stale entries
  outnumber the current ones.
* At most ``max_held_connections`` connections are without a transport.  One more forgets the
  connection held longest: if its grace period is still running, ``end_grace`` makes its
  members leave first, so none stays as a ghost; its key then resumes nothing (80008).  The
  held ones are kept in the order they lost their transport, so finding it costs O(1).

THEORY OF OPERATION

A connection outlives its transport.  When the transport is lost abruptly (or the client sends
DISCONNECT) the connection enters the grace period: its members stay present, and a resume
within the grace period loses nothing.  When the grace period ends the server broadcasts
synthesized leaves and drops the connection's attachments (the ``end_grace`` callback), but the
connection stays resumable until ``connection_state_ttl`` ends: the client then re-attaches
without RESUMED and re-enters.  After the ttl the key is forgotten, and a resume gets a new
connection with error 80008.  Due deadlines fire in deadline order, ties in creation order.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from presence_core._wire import ErrorInfo, ProtocolAction, ProtocolMessage
from presence_core.server._auth import Grant
from presence_core.server._config import ServerConfig
from presence_core.server._output import (
    Deliver,
    Disconnect,
    ServerCommand,
    ServerConnectionInfo,
    ServerConnectionState,
    TransportId,
    error,
)

if TYPE_CHECKING:
    from presence_core.server._backlog import Backlog
    from presence_core.server._inbound import InboundState

__all__: list[str] = []

HEARTBEAT: Final = ProtocolMessage(action=ProtocolAction.HEARTBEAT)

# A heap with fewer stale entries than this is never rebuilt: rebuilding costs more than them.
_MIN_REBUILD: Final = 64


@attrs.define(eq=False)
class Connection:
    """One connection: its identity, its transport (if any), deadlines and attachments."""

    id: str
    #: The resume credential, sent as ``connectionKey``.
    key: str
    #: Creation order, which breaks ties between equal deadlines.
    seq: int
    client_id: str | None
    grant: Grant
    echo: bool
    #: The ``format`` query parameter of the transport it is on: how its raw frames decode.
    format: str
    transport: TransportId | None
    #: The msgSerial and rate-limit record, kept by the inbound checks.
    inbound: InboundState
    state: ServerConnectionState = ServerConnectionState.CONNECTED
    #: Grace deadline while DISCONNECTED, ttl deadline while SUSPENDED.
    deadline: int | None = None
    ttl_deadline: int | None = None
    #: Which heap entry holds the current deadline; an entry of this connection matching
    #: neither this nor ``expiry_stamp`` is stale.
    stamp: int = 0
    #: When its credential expires (epoch ms, a JWT's ``exp``), and which heap entry holds it.
    expiry: int | None = None
    expiry_stamp: int = 0
    #: channel name -> granted modes, in attach order.
    channels: dict[str, int] = attrs.Factory(dict)
    #: MESSAGE frames held while the transport is gone or the channels are not yet re-attached.
    backlog: Backlog | None = None

    def info(self) -> ServerConnectionInfo:
        """A snapshot of this connection for the public API."""
        return ServerConnectionInfo(
            connection_id=self.id,
            client_id=self.client_id,
            state=self.state,
            transport_id=self.transport,
            channels=tuple(self.channels),
            holding_until=self.deadline if self.state is ServerConnectionState.CONNECTED else None,
        )


#: (deadline, creation order, stamp, connection); the stamp is unique, so the connection is never
#: compared.
_Entry: TypeAlias = tuple[int, int, int, Connection]


def _current(entry: _Entry) -> bool:
    """Whether ``entry`` is its connection's deadline or expiry, not a stale one."""
    stamp, conn = entry[2], entry[3]
    return stamp in (conn.stamp, conn.expiry_stamp)


class Registry:
    """Owns every transport and connection, the server clock, heartbeats and deadlines.

    Args:
        config: The server settings (grace period, ttl, heartbeat interval).
        random_hex: The server's entropy, as ``n`` random bytes in hex.
        end_grace: Called when a connection's grace period ends, before it is SUSPENDED:
            it makes the connection's members leave and drops its attachments.
        end_hold: Called when the deadline :meth:`hold_until` set for a live connection comes.
        end_token: Called when the credential of a connection with a transport expires: it
            sends the client away, the connection staying resumable.
    """

    __slots__ = (
        "_armed",
        "_by_key",
        "_config",
        "_deadlines",
        "_end_grace",
        "_end_hold",
        "_end_token",
        "_live",
        "_next_heartbeat",
        "_random_hex",
        "_seq",
        "_stamps",
        "_waiting",
        "clock",
        "connections",
        "transports",
    )

    def __init__(
        self,
        config: ServerConfig,
        random_hex: Callable[[int], str],
        end_grace: Callable[[Connection, list[ServerCommand]], None],
        end_hold: Callable[[Connection, list[ServerCommand]], None],
        end_token: Callable[[Connection, list[ServerCommand]], None],
    ) -> None:
        self._config = config
        self._random_hex = random_hex
        self._end_grace = end_grace
        self._end_hold = end_hold
        self._end_token = end_token
        self.clock = 0
        self._seq = 0
        #: transport id -> its connection, or None once released (awaiting transport_closed).
        self.transports: dict[TransportId, Connection | None] = {}
        #: connection id -> connection, in creation order.
        self.connections: dict[str, Connection] = {}
        self._by_key: dict[str, Connection] = {}
        #: Connections without a transport, by id, held longest first: the ones with a deadline.
        self._waiting: OrderedDict[str, Connection] = OrderedDict()
        #: Their deadlines, with stale entries deleted lazily (see the module rules).
        self._deadlines: list[_Entry] = []
        self._stamps = 0
        #: Deadlines and expiries set: the heap's current entries.
        self._armed = 0
        #: Transports that get heartbeats, in the order they were bound.
        self._live: dict[TransportId, Connection] = {}
        self._next_heartbeat: int | None = None

    def advance(self, now: int, out: list[ServerCommand]) -> None:
        """Move the clock forward to ``now`` (never back) and fire due deadlines."""
        self.clock = clock = max(self.clock, now)
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= clock:
            _, _, stamp, conn = heapq.heappop(deadlines)
            if stamp == conn.expiry_stamp:
                self._set_expiry(conn, None)
                if conn.transport is not None:
                    self._end_token(conn, out)
                continue
            if stamp != conn.stamp:
                continue
            if conn.state is ServerConnectionState.CONNECTED:
                self._set_deadline(conn, None)
                self._end_hold(conn, out)
            elif conn.state is ServerConnectionState.DISCONNECTED:
                self._end_grace(conn, out)
                conn.state = ServerConnectionState.SUSPENDED
                ttl = conn.ttl_deadline
                if ttl is not None and ttl <= clock:
                    self.forget(conn)
                else:
                    self._set_deadline(conn, ttl)
            else:
                self.forget(conn)
        if self._next_heartbeat is not None and self._next_heartbeat <= clock:
            if self._live:
                out.append(Deliver(transport_ids=tuple(self._live), message=HEARTBEAT))
                self._next_heartbeat = clock + self._config.heartbeat_interval
            else:
                self._next_heartbeat = None

    def next_deadline(self) -> int | None:
        """Return the earliest deadline or heartbeat, or ``None``."""
        heartbeat = self._next_heartbeat
        deadlines = self._deadlines
        if not deadlines:
            return heartbeat
        entry = deadlines[0]
        while not _current(entry):
            heapq.heappop(deadlines)  # Stale: dropping it changes no answer.
            if not deadlines:
                return heartbeat
            entry = deadlines[0]
        first = entry[0]
        return first if heartbeat is None or first < heartbeat else heartbeat

    def _set_deadline(self, conn: Connection, deadline: int | None) -> None:
        """Make ``deadline`` the connection's only live heap entry (``None``: no entry).

        Every change of a connection's deadline goes through here, so a new stamp makes each
        older entry of the connection stale.
        """
        self._stamps += 1
        conn.stamp = self._stamps
        self._armed += (deadline is not None) - (conn.deadline is not None)
        conn.deadline = deadline
        if deadline is not None:
            self._push(deadline, conn)

    def _set_expiry(self, conn: Connection, expiry: int | None) -> None:
        """Make ``expiry`` the connection's only live expiry entry, as :meth:`_set_deadline`."""
        self._stamps += 1
        conn.expiry_stamp = self._stamps
        self._armed += (expiry is not None) - (conn.expiry is not None)
        conn.expiry = expiry
        if expiry is not None:
            self._push(expiry, conn)

    def _push(self, when: int, conn: Connection) -> None:
        """Add the entry of ``conn`` at ``when``, whose stamp was just made."""
        deadlines = self._deadlines
        heapq.heappush(deadlines, (when, conn.seq, self._stamps, conn))
        if len(deadlines) > max(_MIN_REBUILD, 2 * self._armed):
            deadlines[:] = [entry for entry in deadlines if _current(entry)]
            heapq.heapify(deadlines)

    def set_grant(self, conn: Connection, grant: Grant) -> None:
        """Give ``conn`` the credential ``grant``; its expiry, if any, replaces the last one."""
        conn.grant = grant
        self._set_expiry(conn, grant.expires)

    def resumable(self, key: str, client_id: str | None) -> Connection | ErrorInfo:
        """Return the connection ``key`` resumes, or why it cannot be resumed (80008)."""
        conn = self._by_key.get(key)
        if conn is None:
            return error(80008, 400, "Unable to recover connection: not found")
        if conn.client_id != client_id:
            return error(80008, 400, "Unable to recover connection: clientId")
        return conn

    def new_connection(
        self,
        transport_id: TransportId,
        grant: Grant,
        client_id: str | None,
        echo: bool,
        inbound: InboundState,
        *,
        fmt: str,
    ) -> Connection:
        """Create a connection on ``transport_id``, with fresh unique id and key."""
        conn_id = self._random_hex(6)
        while conn_id in self.connections:
            conn_id = self._random_hex(6)
        key = self._random_hex(16)
        while key in self._by_key:
            key = self._random_hex(16)
        self._seq += 1
        conn = Connection(
            id=conn_id,
            key=key,
            seq=self._seq,
            client_id=client_id,
            grant=grant,
            echo=echo,
            format=fmt,
            transport=transport_id,
            inbound=inbound,
        )
        self.connections[conn_id] = conn
        self._by_key[key] = conn
        self.set_grant(conn, grant)
        self._bind(transport_id, conn)
        return conn

    def resume(
        self,
        conn: Connection,
        transport_id: TransportId,
        grant: Grant,
        echo: bool,
        out: list[ServerCommand],
        *,
        fmt: str,
    ) -> None:
        """Move ``conn`` onto ``transport_id``, ending its grace period or ttl."""
        old = conn.transport
        if old is not None:
            # The resume beat the old socket's close: release it without any leave.
            self.transports[old] = None
            del self._live[old]
            out.append(Disconnect(transport_id=old))
        self._waiting.pop(conn.id, None)
        conn.transport = transport_id
        conn.state = ServerConnectionState.CONNECTED
        conn.ttl_deadline = None
        self._set_deadline(conn, None)
        self.set_grant(conn, grant)
        conn.echo = echo
        conn.format = fmt
        self._bind(transport_id, conn)

    def hold_until(self, conn: Connection, deadline: int | None) -> None:
        """Call ``end_hold`` for the live ``conn`` at ``deadline`` (``None``: not at all).

        Losing its transport first replaces this deadline with the grace period's.
        """
        self._set_deadline(conn, deadline)

    def _bind(self, transport_id: TransportId, conn: Connection) -> None:
        self.transports[transport_id] = conn
        self._live[transport_id] = conn
        if self._next_heartbeat is None:
            self._next_heartbeat = self.clock + self._config.heartbeat_interval

    def refuse(self, transport_id: TransportId) -> None:
        """Record a transport whose connect was refused: it carries no connection."""
        self.transports[transport_id] = None

    def lose_transport(self, conn: Connection, out: list[ServerCommand]) -> None:
        """Start the grace period of a connection whose transport went away.

        Beyond ``max_held_connections`` the connection held longest is forgotten (see the
        module rules).
        """
        if conn.transport is not None:
            self._live.pop(conn.transport, None)
        conn.transport = None
        conn.state = ServerConnectionState.DISCONNECTED
        config = self._config
        conn.ttl_deadline = self.clock + config.connection_state_ttl
        waiting = self._waiting
        waiting[conn.id] = conn
        self._set_deadline(conn, self.clock + config.grace_period)
        if len(waiting) > config.max_held_connections:
            _, oldest = waiting.popitem(last=False)
            if oldest.state is ServerConnectionState.DISCONNECTED:
                self._end_grace(oldest, out)
            self.forget(oldest)

    def release(self, transport_id: TransportId) -> None:
        """Let go of ``transport_id``: its later frames are ignored."""
        self.transports[transport_id] = None
        self._live.pop(transport_id, None)

    def close(self, conn: Connection, transport_id: TransportId) -> None:
        """Let go of the transport of a connection its client closed; :meth:`forget` follows."""
        self.release(transport_id)
        conn.transport = None

    def forget(self, conn: Connection) -> None:
        """Drop ``conn`` for good: its key no longer resumes anything."""
        self.connections.pop(conn.id, None)
        self._by_key.pop(conn.key, None)
        self._waiting.pop(conn.id, None)
        self._set_deadline(conn, None)
        self._set_expiry(conn, None)
