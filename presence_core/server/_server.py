"""The facade: :class:`Server` takes each call, dispatches frames, and composes the pieces.

The package docstring states the server's rules and how its parts fit.  This module holds
what spans them: the public calls, one handler per protocol action, and the whole-frame
validation of PRESENCE and MESSAGE frames, which consults the credential (clientIds), the
channel (member limit) and the inbound checks (size, rate) before anything is mutated.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Final, TypeAlias

from presence_core._errors import ProtocolError, UsageError
from presence_core._wire import (
    ChannelMode,
    ConnectionDetails,
    ErrorInfo,
    Flag,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server._admin import ServerInitiative
from presence_core.server._auth import (
    Authenticator,
    acting_client_id,
    capability_modes,
    granted_modes,
)
from presence_core.server._backlog import hold, hold_all, release
from presence_core.server._channels import Channel, Channels, is_reentry_of
from presence_core.server._config import ServerConfig
from presence_core.server._frames import RawFrame, decode_frame, refusal
from presence_core.server._inbound import (
    Inbound,
    message_size,
    nack,
    payload_size,
    remember,
    remember_echo,
    undo_presence,
)
from presence_core.server._jwt import TOKEN_EXPIRED
from presence_core.server._output import (
    EMPTY_OUTPUT,
    Deliver,
    Disconnect,
    Reject,
    ServerCommand,
    ServerConnectionInfo,
    ServerOutput,
    TransportId,
    error,
    error_frame,
    no_channel,
)
from presence_core.server._registry import HEARTBEAT, Connection, Registry
from presence_core.server._sync import SyncPager

__all__ = ["Server"]

_CLIENT_ACTIONS: Final = frozenset(
    {PresenceAction.ENTER, PresenceAction.UPDATE, PresenceAction.LEAVE}
)


class Server(ServerInitiative):
    """A sans-IO presence server for Ably protocol v6 clients (ably-js, @ably/chat, ours).

    Drive it from one thread (or task): ``connect`` when a WebSocket upgrade arrives,
    ``receive_frame`` for each frame read (or ``receive`` for each frame the adapter decoded),
    ``transport_closed`` when a socket ends, and ``tick`` at :meth:`next_deadline`.  Run the
    commands of every returned :class:`ServerOutput` in order.

    Args:
        config: Settings and credentials.
        entropy: Returns ``n`` random bytes; ``secrets.token_bytes`` in production (connection
            keys are resume credentials), a seeded source in simulations.
    """

    def __init__(self, config: ServerConfig, entropy: Callable[[int], bytes]) -> None:
        self._config = config
        self._entropy = entropy
        self._auth = Authenticator(config.keys, config.tokens, config.formats)
        self._registry = Registry(
            config, self._random_hex, self._end_grace, self._end_hold, self._end_token
        )
        self._pager = SyncPager(config.sync_page_interval)
        self._channels = Channels(self._random_hex, config.sync_page_size, self._pager)
        self._inbound = Inbound(
            config.max_messages_per_second, config.max_remembered_results, self._channels
        )

    # --- public API ---------------------------------------------------------------------

    @property
    def config(self) -> ServerConfig:
        """The settings this server was built with."""
        return self._config

    @staticmethod
    def channel_for_room(room: str) -> str:
        """Return the channel of the @ably/chat room ``room``: ``<room>::$chat``."""
        return f"{room}::$chat"

    def connect(
        self, transport_id: TransportId, params: Mapping[str, str], *, now: int
    ) -> ServerOutput:
        """Accept a WebSocket upgrade whose query parameters are ``params``.

        Reads ``key`` or ``access_token`` (an opaque token or an Ably JWT), ``clientId``,
        ``resume`` or ``recover``, ``echo`` and ``format`` (``v``, ``heartbeats`` and ``agent``
        are accepted and ignored: the server always sends HEARTBEAT frames, which every
        platform understands).  Replies CONNECTED, or ERROR plus :class:`Disconnect` when the
        credentials are refused.

        ``recover`` (RTN16) carries the connectionKey of a client's recovery key and is
        treated as ``resume`` is: the same connection while it is still remembered (its id,
        members and msgSerial continuity), otherwise a new one with error 80008.

        Raises:
            UsageError: ``transport_id`` is already in use (not yet reported closed).
        """
        registry = self._registry
        if transport_id in registry.transports:
            raise UsageError(f"transport {transport_id!r} is already connected")
        out: list[ServerCommand] = []
        self._advance(now, out)
        auth = self._auth.authenticate(params, now=registry.clock)
        if isinstance(auth, ErrorInfo):
            registry.refuse(transport_id)
            out.append(Deliver(transport_ids=(transport_id,), message=error_frame(auth)))
            out.append(Disconnect(transport_id=transport_id, reason=auth))
            return ServerOutput(tuple(out))
        grant, client_id = auth
        echo = params.get("echo", "true") != "false"
        fmt = params.get("format", "json")
        resume_error: ErrorInfo | None = None
        conn: Connection | None = None
        key = params.get("resume", params.get("recover"))
        if key is not None:
            found = registry.resumable(key, client_id)
            if isinstance(found, ErrorInfo):
                resume_error = found
            else:
                conn = found
        if conn is not None:
            registry.resume(conn, transport_id, grant, echo, out, fmt=fmt)
            hold_all(conn)
            self._channels.invalidate(conn)
            if "resume" not in params and conn.backlog is not None:
                # A recovering process knows only the channels its recovery key names; one it
                # does not attach again is one it will never detach.  Give it a grace period.
                registry.hold_until(conn, registry.clock + self._config.grace_period)
        else:
            inbound = self._inbound.new_state(registry.clock)
            conn = registry.new_connection(transport_id, grant, client_id, echo, inbound, fmt=fmt)
        out.append(
            Deliver(transport_ids=(transport_id,), message=self._connected(conn, resume_error))
        )
        self._advance(now, out)
        return ServerOutput(tuple(out))

    def _connected(self, conn: Connection, reason: ErrorInfo | None) -> ProtocolMessage:
        """The CONNECTED frame of ``conn``; ``reason`` says why continuity was lost."""
        config = self._config
        details = ConnectionDetails(
            client_id=conn.client_id,
            connection_key=conn.key,
            max_message_size=config.max_message_size,
            max_idle_interval=config.max_idle_interval,
            connection_state_ttl=config.connection_state_ttl,
            server_id=config.server_id,
            max_inbound_rate=config.max_messages_per_second,
        )
        return ProtocolMessage(
            action=ProtocolAction.CONNECTED,
            connection_id=conn.id,
            connection_key=conn.key,
            connection_details=details,
            error=reason,
        )

    def receive(
        self, transport_id: TransportId, message: ProtocolMessage, *, now: int
    ) -> ServerOutput:
        """Handle one decoded frame from ``transport_id``.

        Frames from a transport the server already released (after a :class:`Disconnect`
        or a resume on a newer transport) are ignored, as are unknown actions.

        Raises:
            UsageError: ``transport_id`` was never connected, or was reported closed.
        """
        registry = self._registry
        transports = registry.transports
        if transport_id not in transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = transports[transport_id]
        out: list[ServerCommand] = []
        self._advance(now, out)
        if conn is not None:
            handler = _HANDLERS.get(message.action)
            if handler is not None:
                handler(self, conn, transport_id, message, out)
            self._advance(now, out)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT

    def receive_frame(
        self, transport_id: TransportId, frame: RawFrame, *, now: int
    ) -> ServerOutput:
        """Handle one raw frame from ``transport_id``, as the WebSocket delivered it.

        The frame is decoded by the connection's ``format`` with
        :attr:`ServerConfig.codec_limits`, then handled as :meth:`receive` handles it.  A frame
        the codec refuses is answered with a NACK or an ERROR and changes nothing (``_frames``
        states which and why).

        Raises:
            UsageError: ``transport_id`` was never connected or was reported closed, or its
                format has no decoder here (the adapter then decodes and calls ``receive``).
        """
        conn = self._registry.transports.get(transport_id)
        if conn is None:
            if transport_id not in self._registry.transports:
                raise UsageError(f"unknown transport {transport_id!r}")
            return self.tick(now=now)  # A released transport: its frames are ignored.
        limits = self._config.codec_limits
        try:
            message = decode_frame(conn.format, frame, limits)
        except ProtocolError as problem:
            out: list[ServerCommand] = []
            self._advance(now, out)
            answer = refusal(frame, problem, limits)
            out.append(Deliver(transport_ids=(transport_id,), message=answer))
            return ServerOutput(tuple(out))
        return self.receive(transport_id, message, now=now)

    def transport_closed(self, transport_id: TransportId, *, now: int) -> ServerOutput:
        """Report that ``transport_id`` ended (abruptly, or after a :class:`Disconnect`).

        A live connection enters its grace period; its members stay present until it ends.

        Raises:
            UsageError: ``transport_id`` is unknown or was already reported closed.
        """
        registry = self._registry
        if transport_id not in registry.transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = registry.transports.pop(transport_id)
        out: list[ServerCommand] = []
        self._advance(now, out)
        if conn is not None:
            self._lose_transport(conn, out)
            self._advance(now, out)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT

    def tick(self, *, now: int) -> ServerOutput:
        """Fire every deadline up to ``now``: heartbeats, grace periods, ttls, SYNC pages."""
        out: list[ServerCommand] = []
        self._advance(now, out)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT

    def next_deadline(self) -> int | None:
        """Return the earliest time :meth:`tick` has work to do, or ``None``."""
        first = self._registry.next_deadline()
        page = self._pager.next_deadline()
        if page is None:
            return first
        return page if first is None or page < first else first

    def resync(self, channel: str, *, now: int) -> ServerOutput:
        """Send a fresh SYNC of ``channel`` to every attached presence subscriber (RTP18).

        An empty member set still gets one (empty, final) page, so clients drop stale members.
        """
        out: list[ServerCommand] = []
        self._advance(now, out)
        chan = self._channels.by_name.get(channel)
        if chan is not None:
            recipients = chan.presence_to()
            if recipients:
                self._channels.sync(chan, recipients, self._registry.clock, out, empty_page=True)
        return ServerOutput(tuple(out)) if out else EMPTY_OUTPUT

    def members(self, channel: str) -> tuple[PresenceMessage, ...]:
        """Return the members present on ``channel`` (action PRESENT, as a SYNC lists them)."""
        return self._channels.members(channel)

    def connections(self) -> tuple[ServerConnectionInfo, ...]:
        """Return every connection the server remembers, in creation order."""
        return tuple(conn.info() for conn in self._registry.connections.values())

    def connection_for(self, transport_id: TransportId) -> ServerConnectionInfo | None:
        """Return the connection ``transport_id`` carries, or ``None`` if it was released.

        Raises:
            UsageError: ``transport_id`` is unknown.
        """
        transports = self._registry.transports
        if transport_id not in transports:
            raise UsageError(f"unknown transport {transport_id!r}")
        conn = transports[transport_id]
        return None if conn is None else conn.info()

    # --- composition --------------------------------------------------------------------

    def _advance(self, now: int, out: list[ServerCommand]) -> None:
        """Move the clock to ``now`` and do what is due: deadlines, then SYNC pages."""
        registry = self._registry
        registry.advance(now, out)
        if self._pager.paced:
            self._pager.due(registry.clock, self._syncing, out)

    def _syncing(self, channel: str, transport_id: TransportId) -> bool:
        """Whether ``transport_id`` still carries a connection attached to ``channel``."""
        conn = self._registry.transports.get(transport_id)
        return conn is not None and conn.transport == transport_id and channel in conn.channels

    def _random_hex(self, size: int) -> str:
        """The one entropy stream every id comes from, so a seeded run is reproducible."""
        raw = self._entropy(size)
        if not isinstance(raw, bytes) or len(raw) != size:
            raise UsageError(f"entropy({size}) must return {size} bytes")
        return raw.hex()

    def _end_grace(self, conn: Connection, out: list[ServerCommand]) -> None:
        """The grace period is over: members leave, attachments drop, PRESENCE is undone."""
        self._channels.detach_all(conn, self._registry.clock, out)
        undo_presence(conn.inbound)

    def _end_hold(self, conn: Connection, out: list[ServerCommand]) -> None:
        """A recovered connection's channels not attached again since are detached (RTN16)."""
        backlog = conn.backlog
        for name in sorted(backlog.channels) if backlog is not None else ():
            self._channels.detach(conn, name, self._registry.clock, out)

    def _end_token(self, conn: Connection, out: list[ServerCommand]) -> None:
        """The connection's token expired: DISCONNECTED 40142, and its grace period starts.

        As Ably does (RTN15h): a client that can renew its token resumes with a new one and
        keeps its connection; an AUTH with a valid token before the expiry avoids this.
        """
        tid = conn.transport
        if tid is not None:
            frame = ProtocolMessage(action=ProtocolAction.DISCONNECTED, error=TOKEN_EXPIRED)
            out.append(Deliver(transport_ids=(tid,), message=frame))
            self._send_away(conn, tid, TOKEN_EXPIRED, out)

    def _lose_transport(self, conn: Connection, out: list[ServerCommand]) -> None:
        self._registry.lose_transport(conn, out)
        hold_all(conn)
        self._channels.invalidate(conn)

    # --- frame handlers -------------------------------------------------------------------

    def _on_heartbeat(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        reply = (
            HEARTBEAT
            if msg.id is None
            else ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=msg.id)
        )
        out.append(Deliver(transport_ids=(tid,), message=reply))

    def _on_close(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        closed = ProtocolMessage(action=ProtocolAction.CLOSED)
        out.append(Deliver(transport_ids=(tid,), message=closed))
        self._end(conn, tid, None, out)

    def _end(
        self,
        conn: Connection,
        tid: TransportId,
        reason: ErrorInfo | None,
        out: list[ServerCommand],
    ) -> None:
        """Drop ``conn`` and its transport for good, its members leaving at once."""
        registry = self._registry
        registry.close(conn, tid)
        out.append(Disconnect(transport_id=tid, reason=reason))
        self._channels.detach_all(conn, registry.clock, out)
        registry.forget(conn)

    def _on_disconnect(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        # The client gave up on this transport and will resume on a new one: same as a loss.
        self._registry.release(tid)
        self._lose_transport(conn, out)
        out.append(Disconnect(transport_id=tid))

    def _on_auth(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        # RTC8a: a new token on a live connection.  Accepted, it replaces the grant, narrows
        # the modes of existing attachments to its capability, and is answered with CONNECTED
        # (the same id and key).  Refused, the client's connection fails (RTC8a2), so the
        # server ends it at once, as a CLOSE does, rather than keep its members as ghosts.
        grant = self._auth.reauthorize(msg.auth, conn.client_id, now=self._registry.clock)
        if isinstance(grant, ErrorInfo):
            out.append(Deliver(transport_ids=(tid,), message=error_frame(grant)))
            self._end(conn, tid, grant, out)
            return
        self._registry.set_grant(conn, grant)
        for name, modes in conn.channels.items():
            conn.channels[name] = modes & capability_modes(grant.capability, name)
        self._channels.invalidate(conn)
        out.append(Deliver(transport_ids=(tid,), message=self._connected(conn, None)))

    def _on_attach(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        if not name:
            out.append(no_channel(tid, "ATTACH"))
            return
        if len(name) > self._config.max_channel_name_length:
            reason = error(40010, 400, "Invalid channel name: too long")
            out.append(Deliver(transport_ids=(tid,), message=error_frame(reason, name)))
            return
        allowed = capability_modes(conn.grant.capability, name)
        if not allowed:
            reason = error(40160, 401, f"Channel denied access based on capability: {name}")
            out.append(Deliver(transport_ids=(tid,), message=error_frame(reason, name)))
            return
        resumed = name in conn.channels
        if not resumed and len(conn.channels) >= self._config.max_channels_per_connection:
            reason = error(90010, 400, "Maximum number of channels per connection exceeded")
            out.append(Deliver(transport_ids=(tid,), message=error_frame(reason, name)))
            return
        modes = granted_modes(allowed, msg.flags)
        held, lost = release(conn, name)
        if conn.backlog is None and conn.deadline is not None:
            self._registry.hold_until(conn, None)  # Every recovered channel is attached again.
        chan = self._channels.attach(conn, name, modes)
        subscribed = bool(modes & ChannelMode.PRESENCE_SUBSCRIBE)
        flags = modes
        if resumed and lost is None:
            flags |= Flag.RESUMED
        if subscribed and chan.member_count:
            flags |= Flag.HAS_PRESENCE
        params = None
        if msg.params:
            params = {k: v for k, v in msg.params.items() if k != "agent"} or None
        attached = ProtocolMessage(
            action=ProtocolAction.ATTACHED,
            channel=name,
            flags=int(flags),
            channel_serial=f"{name}@{chan.serial}",
            params=params,
            error=lost,
        )
        out.append(Deliver(transport_ids=(tid,), message=attached))
        # RTN15c6: what was published while the connection was away, now that it can be taken.
        out.extend(Deliver(transport_ids=(tid,), message=frame) for frame in held)
        if flags & Flag.HAS_PRESENCE:
            self._channels.sync(chan, (tid,), self._registry.clock, out)

    def _on_detach(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        if not name:
            out.append(no_channel(tid, "DETACH"))
            return
        detached = ProtocolMessage(action=ProtocolAction.DETACHED, channel=name)
        out.append(Deliver(transport_ids=(tid,), message=detached))
        self._channels.detach(conn, name, self._registry.clock, out)

    def _on_sync(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        name = msg.channel
        modes = conn.channels.get(name) if name else None
        if name and modes is not None and modes & ChannelMode.PRESENCE_SUBSCRIBE:
            channels = self._channels
            channels.sync(
                channels.by_name[name], (tid,), self._registry.clock, out, empty_page=True
            )

    def _on_presence(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        serial = self._inbound.check_serial(conn, tid, msg, out)
        if serial is None:
            return
        clock = self._registry.clock
        try:
            chan, items, client_ids = self._check_presence(conn, msg, clock)
        except Reject as reject:
            remember(conn.inbound, tid, serial, nack(serial, reject.error), out)
            return
        frame = chan.apply_presence(conn.id, serial, items, client_ids, clock)
        if frame is not None:
            recipients = chan.presence_to()
            if not conn.channels[chan.name] & ChannelMode.PRESENCE_SUBSCRIBE:
                # RTP17a: a connection always sees its own presence, subscribed or not.
                recipients = (*recipients, tid)
            out.append(Deliver(transport_ids=recipients, message=frame))
        # The echo goes out before the ACK, so get() after enter() already shows the member.
        remember_echo(conn.inbound, tid, serial, frame, out)

    def _check_presence(
        self, conn: Connection, msg: ProtocolMessage, clock: int
    ) -> tuple[Channel, tuple[PresenceMessage, ...], list[str]]:
        """Validate a whole PRESENCE frame; return its channel, items and their clientIds."""
        name = _attached_channel(conn, msg, "PRESENCE", ChannelMode.PRESENCE, "presence")
        items = msg.presence
        if not items:
            raise Reject(error(40000, 400, "PRESENCE without presence items"))
        chan = self._channels.by_name[name]
        own = chan.members.get(conn.id, {})
        limit = self._config.max_message_size
        # Simulate presence within the frame, so the member limit sees the net effect.
        resolved: list[str] = []
        present: dict[str, bool] = {}
        added = 0
        charged = 0
        for item in items:
            if item.action not in _CLIENT_ACTIONS:
                raise Reject(error(40000, 400, f"Invalid presence action {item.action!r}"))
            client_id = acting_client_id(conn.client_id, conn.grant, item.client_id)
            if client_id is None:
                raise Reject(error(40012, 400, "Presence requires a clientId"))
            if message_size(item.data, item.extras, client_id) > limit:
                raise Reject(error(40009, 413, f"Message exceeds {limit} bytes"))
            # An item for a clientId this frame already changed is judged by that change.
            if client_id in present or not is_reentry_of(own.get(client_id), item):
                charged += 1
            was = present.get(client_id, client_id in own)
            now_present = item.action != PresenceAction.LEAVE
            added += now_present - was
            present[client_id] = now_present
            resolved.append(client_id)
        if added > 0 and chan.member_count + added > self._config.max_members_per_channel:
            raise Reject(error(91003, 400, "Maximum number of members exceeded"))
        self._inbound.take_allowance(conn.inbound, charged, clock)
        return chan, items, resolved

    def _on_message(
        self, conn: Connection, tid: TransportId, msg: ProtocolMessage, out: list[ServerCommand]
    ) -> None:
        serial = self._inbound.check_serial(conn, tid, msg, out)
        if serial is None:
            return
        clock = self._registry.clock
        try:
            chan, client_ids, size = self._check_messages(conn, msg, clock)
        except Reject as reject:
            remember(conn.inbound, tid, serial, nack(serial, reject.error), out)
            return
        frame = chan.stamp_messages(conn.id, serial, msg.messages or (), client_ids, clock)
        recipients = chan.messages_to()
        if not conn.echo and tid in recipients:
            recipients = tuple(t for t in recipients if t != tid)
        if recipients:
            out.append(Deliver(transport_ids=recipients, message=frame))
        holders = chan.held_by()
        if holders:
            config = self._config
            if not conn.echo:
                holders = tuple(c for c in holders if c is not conn)
            max_frames, max_bytes = config.resume_backlog_messages, config.resume_backlog_bytes
            hold(holders, chan.name, frame, size, max_frames=max_frames, max_bytes=max_bytes)
        serials = [m.serial for m in frame.messages or ()]
        result = ProtocolMessage(
            action=ProtocolAction.ACK, msg_serial=serial, count=1, res=({"serials": serials},)
        )
        remember(conn.inbound, tid, serial, result, out)

    def _check_messages(
        self, conn: Connection, msg: ProtocolMessage, clock: int
    ) -> tuple[Channel, list[str | None], int]:
        """Validate a whole MESSAGE frame; return its channel, the items' clientIds and size."""
        name = _attached_channel(conn, msg, "MESSAGE", ChannelMode.PUBLISH, "publish")
        items = msg.messages
        if not items:
            raise Reject(error(40000, 400, "MESSAGE without messages"))
        limit = self._config.max_message_size
        resolved: list[str | None] = []
        total = 0
        for item in items:
            client_id = acting_client_id(conn.client_id, conn.grant, item.client_id)
            size = message_size(item.data, item.extras, client_id) + payload_size(item.name)
            if size > limit:
                raise Reject(error(40009, 413, f"Message exceeds {limit} bytes"))
            resolved.append(client_id)
            total += size
        self._inbound.take_allowance(conn.inbound, len(items), clock)
        return self._channels.by_name[name], resolved, total


_Handler: TypeAlias = Callable[
    [Server, Connection, TransportId, ProtocolMessage, list[ServerCommand]], None
]

#: Dispatch by protocol action; anything else (CONNECT, unknown actions) is ignored.
_HANDLERS: Final[Mapping[int, _Handler]] = types.MappingProxyType(
    {
        ProtocolAction.HEARTBEAT: Server._on_heartbeat,
        ProtocolAction.CLOSE: Server._on_close,
        ProtocolAction.DISCONNECT: Server._on_disconnect,
        ProtocolAction.ATTACH: Server._on_attach,
        ProtocolAction.DETACH: Server._on_detach,
        ProtocolAction.SYNC: Server._on_sync,
        ProtocolAction.AUTH: Server._on_auth,
        ProtocolAction.PRESENCE: Server._on_presence,
        ProtocolAction.MESSAGE: Server._on_message,
    }
)


def _attached_channel(
    conn: Connection, msg: ProtocolMessage, kind: str, mode: ChannelMode, permission: str
) -> str:
    """The channel a numbered frame names, if attached with ``mode``; else Reject (the NACK)."""
    name = msg.channel
    if not name:
        raise Reject(error(40000, 400, f"{kind} without a channel"))
    modes = conn.channels.get(name)
    if modes is None:
        raise Reject(error(90001, 400, f"Channel {name!r} is not attached"))
    if not modes & mode:
        raise Reject(error(40160, 401, f"No {permission} permission on {name!r}"))
    return name
