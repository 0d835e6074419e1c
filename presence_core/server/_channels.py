"""Channels: attachments, member maps, serials, and the frames fanned out to subscribers.

RULES OF THIS MODULE

* A broadcast is one ProtocolMessage in one :class:`Deliver` naming every recipient, so the
  adapter encodes it once.  Recipient tuples are cached per channel and rebuilt only after
  :meth:`Channel.invalidate`, which every change of an attachment, a transport or a held
  channel calls.  A MESSAGE goes to live subscribers, and is kept for the subscribers that
  hold the channel (``_backlog`` says when and why).
* A stored member has action PRESENT, as a SYNC lists it, and is stamped by the server: id
  ``connectionId:msgSerial:index`` and the server clock.
* Leaves the server synthesizes have ids starting with ``synth-``, never with a connectionId
  (connection ids are hex), so clients compare them by timestamp (RTP2b1).
* A channel with neither attachments nor members is dropped; its serial starts again at 0.
* An item re-entering a member unchanged, or from an older state of the member
  (:func:`is_reentry_of`), changes nothing and costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from presence_core._wire import (
    ChannelMode,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
)
from presence_core.server._backlog import release
from presence_core.server._output import Deliver, ServerCommand, TransportId
from presence_core.server._registry import Connection
from presence_core.server._sync import SyncPager

__all__: list[str] = []


def is_reentry_of(current: PresenceMessage | None, item: PresenceMessage) -> bool:
    """Whether ``item`` re-enters the stored member ``current`` with nothing newer to apply.

    That is an automatic re-entry (RTP17g) carrying the member's own id and content, or one
    carrying an id of the member's connection older than the member's (RTP2b2 order): the
    client re-entered from a state its own later update had already replaced, as ably-js does
    when a resumed channel's ATTACHED arrives before the echo of an update sent meanwhile.
    Applying it would roll the member back behind the user's latest change.  Either way it is
    ACKed, nothing is broadcast, and it is not charged against the inbound rate, so a client
    re-entering many members after a reconnect is not refused for members the server still has.
    """
    if current is None or item.id is None or item.action == PresenceAction.LEAVE:
        return False
    if item.id == current.id:
        return (
            item.data == current.data
            and item.encoding == current.encoding
            and item.extras == current.extras
        )
    older = _serial_of(item.id, current.connection_id)
    newest = _serial_of(current.id, current.connection_id)
    return older is not None and newest is not None and older < newest


def _serial_of(message_id: str | None, connection_id: str | None) -> tuple[int, int] | None:
    """(msgSerial, index) of an id ``connectionId:msgSerial:index`` of that connection."""
    if message_id is None or connection_id is None:
        return None
    prefix, _, index = message_id.rpartition(":")
    head, _, serial = prefix.rpartition(":")
    if head != connection_id or not (_is_number(serial) and _is_number(index)):
        return None
    return int(serial), int(index)


def _is_number(text: str) -> bool:
    """ASCII digits of a 64-bit count at most: a client-sent id is parsed without risk."""
    return 0 < len(text) <= 20 and text.isascii() and text.isdigit()


@attrs.define(eq=False)
class Channel:
    """One channel's state: serial, members by connection, and attached connections."""

    name: str
    serial: int = 0
    #: connectionId -> clientId -> stored member (action PRESENT, as sent in a SYNC).
    members: dict[str, dict[str, PresenceMessage]] = attrs.Factory(dict)
    member_count: int = 0
    #: connectionId -> connection, for attached connections, in attach order.
    attached: dict[str, Connection] = attrs.Factory(dict)
    presence_recipients: tuple[TransportId, ...] | None = None
    message_recipients: tuple[TransportId, ...] | None = None
    message_holders: tuple[Connection, ...] | None = None

    def invalidate(self) -> None:
        """Forget the cached recipients; the next fan-out rebuilds them."""
        self.presence_recipients = None
        self.message_recipients = None
        self.message_holders = None

    def presence_to(self) -> tuple[TransportId, ...]:
        """The live transports attached with PRESENCE_SUBSCRIBE, in attach order."""
        if self.presence_recipients is None:
            name = self.name
            self.presence_recipients = tuple(
                conn.transport
                for conn in self.attached.values()
                if conn.transport is not None
                and conn.channels[name] & ChannelMode.PRESENCE_SUBSCRIBE
            )
        return self.presence_recipients

    def messages_to(self) -> tuple[TransportId, ...]:
        """The live transports attached with SUBSCRIBE that do not hold it, in attach order."""
        recipients = self.message_recipients
        if recipients is None:
            recipients, self.message_holders = self._message_subscribers()
            self.message_recipients = recipients
        return recipients

    def held_by(self) -> tuple[Connection, ...]:
        """The connections attached with SUBSCRIBE that hold this channel's MESSAGEs."""
        holders = self.message_holders
        if holders is None:
            self.message_recipients, holders = self._message_subscribers()
            self.message_holders = holders
        return holders

    def _message_subscribers(self) -> tuple[tuple[TransportId, ...], tuple[Connection, ...]]:
        name = self.name
        live: list[TransportId] = []
        holders: list[Connection] = []
        for conn in self.attached.values():
            if not conn.channels[name] & ChannelMode.SUBSCRIBE:
                continue
            backlog = conn.backlog
            if backlog is not None and name in backlog.channels:
                holders.append(conn)
            elif conn.transport is not None:
                live.append(conn.transport)
        return tuple(live), tuple(holders)

    def present(self) -> list[PresenceMessage]:
        """Every member (action PRESENT, as a SYNC lists them), by connection then clientId."""
        return [member for by_client in self.members.values() for member in by_client.values()]

    def next_serial(self) -> str:
        """Return the next channelSerial, ``<channel>@<n>``."""
        self.serial += 1
        return f"{self.name}@{self.serial}"

    def apply_presence(
        self,
        conn_id: str,
        serial: int,
        items: Sequence[PresenceMessage],
        client_ids: Sequence[str],
        clock: int,
    ) -> ProtocolMessage | None:
        """Apply a validated PRESENCE frame; return the frame to broadcast, if any changed.

        ``client_ids`` are the items' resolved clientIds.  Nothing is checked here: the caller
        validated the whole frame, limits included, before anything is mutated.
        """
        prefix = f"{conn_id}:{serial}"
        broadcast: list[PresenceMessage] = []
        own = self.members.get(conn_id)
        if own is None:
            own = self.members[conn_id] = {}
        for index, (item, client_id) in enumerate(zip(items, client_ids, strict=True)):
            current = own.get(client_id)
            data, encoding, extras = item.data, item.encoding, item.extras
            stamped_id = f"{prefix}:{index}"
            if item.action == PresenceAction.LEAVE:
                if current is None:
                    continue  # RTP10d: a leave while absent is ACKed without a broadcast.
                del own[client_id]
                self.member_count -= 1
                action = PresenceAction.LEAVE
                # A leave without data or extras carries the member's last ones.
                if data is None:
                    data, encoding = current.data, current.encoding
                if extras is None:
                    extras = current.extras
            elif is_reentry_of(current, item):
                continue
            else:
                action = PresenceAction.ENTER if current is None else PresenceAction.UPDATE
                own[client_id] = PresenceMessage(
                    action=PresenceAction.PRESENT,
                    client_id=client_id,
                    connection_id=conn_id,
                    id=stamped_id,
                    data=data,
                    encoding=encoding,
                    extras=extras,
                    timestamp=clock,
                )
                if current is None:
                    self.member_count += 1
            broadcast.append(
                PresenceMessage(
                    action=action,
                    client_id=client_id,
                    connection_id=conn_id,
                    id=stamped_id,
                    data=data,
                    encoding=encoding,
                    extras=extras,
                    timestamp=clock,
                )
            )
        if not own:
            del self.members[conn_id]
        if not broadcast:
            return None
        return ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=self.name,
            id=prefix,
            connection_id=conn_id,
            timestamp=clock,
            channel_serial=self.next_serial(),
            presence=tuple(broadcast),
        )

    def stamp_messages(
        self,
        conn_id: str,
        serial: int,
        items: Sequence[Message],
        client_ids: Sequence[str | None],
        clock: int,
    ) -> ProtocolMessage:
        """Return the MESSAGE frame to broadcast for validated ``items``, each given a serial."""
        prefix = f"{conn_id}:{serial}"
        stamped = tuple(
            Message(
                name=item.name,
                data=item.data,
                encoding=item.encoding,
                extras=item.extras,
                id=f"{prefix}:{index}",
                client_id=client_id,
                connection_id=conn_id,
                timestamp=clock,
                serial=self.next_serial(),
                action=item.action,
            )
            for index, (item, client_id) in enumerate(zip(items, client_ids, strict=True))
        )
        return ProtocolMessage(
            action=ProtocolAction.MESSAGE,
            channel=self.name,
            id=prefix,
            connection_id=conn_id,
            timestamp=clock,
            channel_serial=stamped[-1].serial,
            messages=stamped,
        )


class Channels:
    """Every channel with an attachment or a member, and the attach/leave/sync operations.

    Args:
        random_hex: The server's entropy, as ``n`` random bytes in hex (sync and leave ids).
        sync_page_size: Members per SYNC frame.
        pager: Sends the pages of each sync, at once or over time.
    """

    __slots__ = ("_page_size", "_pager", "_random_hex", "by_name")

    def __init__(
        self, random_hex: Callable[[int], str], sync_page_size: int, pager: SyncPager
    ) -> None:
        self._random_hex = random_hex
        self._page_size = sync_page_size
        self._pager = pager
        #: channel name -> channel, for channels with an attachment or a member.
        self.by_name: dict[str, Channel] = {}

    def members(self, name: str) -> tuple[PresenceMessage, ...]:
        """Return the members present on channel ``name``, or none if it is unknown."""
        chan = self.by_name.get(name)
        if chan is None:
            return ()
        return tuple(chan.present())

    def attach(self, conn: Connection, name: str, modes: int) -> Channel:
        """Attach ``conn`` to channel ``name`` (made if new) with ``modes``; return it."""
        chan = self.by_name.get(name)
        if chan is None:
            chan = self.by_name[name] = Channel(name)
        conn.channels[name] = modes
        chan.attached[conn.id] = conn
        chan.invalidate()
        return chan

    def detach(self, conn: Connection, name: str, clock: int, out: list[ServerCommand]) -> None:
        """Detach ``conn`` from channel ``name``, if attached; its members there leave."""
        if name in conn.channels:
            del conn.channels[name]
            release(conn, name)  # Its held MESSAGEs are for an attachment that ended.
            self._drop_attachment(self.by_name[name], conn, clock, out)

    def detach_all(self, conn: Connection, clock: int, out: list[ServerCommand]) -> None:
        """Detach ``conn`` from every channel; its members leave everywhere."""
        for name in conn.channels:
            self._drop_attachment(self.by_name[name], conn, clock, out)
        conn.channels.clear()
        conn.backlog = None

    def invalidate(self, conn: Connection) -> None:
        """Forget the cached recipients of every channel ``conn`` is attached to."""
        for name in conn.channels:
            self.by_name[name].invalidate()

    def _drop_attachment(
        self, chan: Channel, conn: Connection, clock: int, out: list[ServerCommand]
    ) -> None:
        del chan.attached[conn.id]
        chan.invalidate()
        self._leave_all(chan, conn, clock, out)
        if not chan.attached and not chan.member_count:
            del self.by_name[chan.name]

    def _leave_all(
        self, chan: Channel, conn: Connection, clock: int, out: list[ServerCommand]
    ) -> None:
        """Remove ``conn``'s members from ``chan`` and broadcast synthesized leaves."""
        by_client = chan.members.pop(conn.id, None)
        if not by_client:
            return
        chan.member_count -= len(by_client)
        recipients = chan.presence_to()
        if not recipients:
            return
        synth = f"synth-{self._random_hex(4)}:0"
        items = tuple(
            PresenceMessage(
                action=PresenceAction.LEAVE,
                client_id=member.client_id,
                connection_id=conn.id,
                id=f"{synth}:{index}",
                data=member.data,
                encoding=member.encoding,
                extras=member.extras,
                timestamp=clock,
            )
            for index, member in enumerate(by_client.values())
        )
        frame = ProtocolMessage(
            action=ProtocolAction.PRESENCE,
            channel=chan.name,
            id=synth,
            connection_id=conn.id,
            timestamp=clock,
            channel_serial=chan.next_serial(),
            presence=items,
        )
        out.append(Deliver(transport_ids=recipients, message=frame))

    def sync(
        self,
        chan: Channel,
        recipients: tuple[TransportId, ...],
        clock: int,
        out: list[ServerCommand],
        *,
        empty_page: bool = False,
    ) -> None:
        """Send the member set as SYNC pages ``<syncId>:<cursor>``, the last with no cursor.

        An empty member set sends nothing, or one empty final page with ``empty_page``.  The
        pages are made now and sent by the pager (:mod:`presence_core.server._sync`).
        """
        members = chan.present()
        if not members and not empty_page:
            return
        sync_id = self._random_hex(4)
        size = self._page_size
        starts = range(0, len(members), size) if members else range(1)
        last = starts[-1]
        pages = [
            ProtocolMessage(
                action=ProtocolAction.SYNC,
                channel=chan.name,
                channel_serial=f"{sync_id}:{'' if start == last else page}",
                presence=tuple(members[start : start + size]),
            )
            for page, start in enumerate(starts, start=1)
        ]
        self._pager.start(chan.name, recipients, pages, clock, out)
