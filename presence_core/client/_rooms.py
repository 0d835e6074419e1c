"""Rooms and their presence, as Ably Chat shapes them, over one client's connection reducer.

A room named R is the channel ``R::$chat``.  Its :class:`~presence_core.PresenceSet` (owned by
the connection) holds the state; :class:`Room` and :class:`RoomPresence` only make the calls
awaitable and hand events to listeners.

**Listeners (RTP6).**  ``subscribe(listener)`` gets every presence event, ``subscribe("enter",
listener)`` or ``subscribe(["update", "leave"], listener)`` only those actions.  A plain
function is called as the event is applied; a coroutine function gets the events in order from
a task of its own.  A listener that raises is logged and the others still get the event.
Unsubscribing (RTP7) never leaves presence or detaches.

**get (RTP11).**  ``get()`` attaches the room if needed (RTP11e) and waits until the sync is
complete (RTP11a).  On a SUSPENDED room it fails with 91005 (RTP11d) and on a FAILED one with
90001; a room attached without the presence-subscribe mode cannot know its members, so it
fails with 91008 (RTP11f).  ``wait_for_sync=False`` returns what is known at once, the stale
members of a SUSPENDED room included.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeAlias, overload

from presence_core._errors import PresenceError, UsageError
from presence_core._output import ChannelState, ChannelStateChanged, Output
from presence_core._presence_set import PresenceMember, PresenceSet, RoomOptions
from presence_core._wire import ChannelMode, ErrorInfo, PresenceAction, PresenceMessage
from presence_core.client._feeds import Feed, StateWatch
from presence_core.client._support import Mailbox
from presence_core.server import Server

if TYPE_CHECKING:
    from presence_core.client._client import Client

__all__ = ["Rooms", "Room", "RoomPresence", "Subscription"]

_log = logging.getLogger("presence_core.client")

#: A presence listener: a plain function or a coroutine function of the event.
Listener: TypeAlias = Callable[[PresenceMessage], Any]
#: Actions to subscribe to: a name (``"enter"``), a PresenceAction, or several of either.
Actions: TypeAlias = str | PresenceAction | Iterable[str | PresenceAction]

_CS = ChannelState
_EVENT_ACTIONS: Final = (
    PresenceAction.PRESENT,
    PresenceAction.ENTER,
    PresenceAction.UPDATE,
    PresenceAction.LEAVE,
)
_BY_NAME: Final = {action.event_name: action for action in _EVENT_ACTIONS}
#: Events a feed of presence events buffers for a slow consumer, by default.
DEFAULT_BUFFER: Final = 1_000


def _error(info: ErrorInfo | None, default: str, code: int) -> PresenceError:
    if info is None:
        return PresenceError(default, code=code, status_code=400)
    return PresenceError(info.message or default, code=info.code, status_code=info.status_code)


def _actions(actions: Actions | None) -> tuple[PresenceAction, ...]:
    if actions is None:
        return _EVENT_ACTIONS
    items = [actions] if isinstance(actions, str | PresenceAction) else list(actions)
    chosen = []
    for item in items:
        action = _BY_NAME.get(item) if isinstance(item, str) else item
        if action not in _EVENT_ACTIONS:
            names = ", ".join(repr(name) for name in _BY_NAME)
            raise UsageError(f"unknown presence action {item!r}; expected one of {names}")
        chosen.append(action)
    return tuple(dict.fromkeys(chosen))


class Subscription:
    """One listener of a room's presence; :meth:`unsubscribe` removes it (RTP7)."""

    __slots__ = ("_on_remove", "_presence", "actions", "call")

    def __init__(
        self,
        presence: RoomPresence,
        actions: tuple[PresenceAction, ...],
        call: Callable[[PresenceMessage], None],
        on_remove: Callable[[], None] | None = None,
    ) -> None:
        self._presence: RoomPresence | None = presence
        self._on_remove = on_remove
        #: The actions this listener gets.
        self.actions = actions
        #: What is called with each event (the listener, or what feeds its task or feed).
        self.call = call

    @property
    def active(self) -> bool:
        """Whether the listener still gets events."""
        return self._presence is not None

    def unsubscribe(self) -> None:
        """Stop delivering events to this listener; doing it twice is harmless."""
        presence, self._presence = self._presence, None
        if presence is not None:
            presence._remove(self)
            if self._on_remove is not None:
                self._on_remove()


class RoomPresence:
    """The presence of one room: its members, its operations and its listeners."""

    def __init__(self, room: Room) -> None:
        self._room = room
        self._client = room._client
        self._set = room._set
        self._subscriptions: list[Subscription] = []
        # What each action's events are handed to, rebuilt on every (un)subscribe so that
        # delivery reads one tuple per event.  Updated in place: a room's delivery loop holds
        # this dict, so a listener that subscribes or unsubscribes counts from the next event.
        self._by_action: dict[PresenceAction, tuple[Callable[[PresenceMessage], None], ...]] = (
            dict.fromkeys(PresenceAction, ())
        )

    # -- listeners --------------------------------------------------------------------------
    @overload
    def subscribe(self, listener: Listener, /) -> Subscription: ...
    @overload
    def subscribe(self, actions: Actions, listener: Listener, /) -> Subscription: ...

    def subscribe(self, *args: Any) -> Subscription:
        """Call ``listener`` with the room's presence events, or only ``actions``' (RTP6).

        ``subscribe(listener)``, ``subscribe("enter", listener)`` or
        ``subscribe(["update", "leave"], listener)``.  Synchronous; it does not attach.

        Raises:
            UsageError: The room was opened with ``subscribe=False`` (102108), an unknown
                action, or a listener that is not callable.
        """
        if len(args) == 1:
            actions, listener = None, args[0]
        elif len(args) == 2:
            actions, listener = args
        else:
            raise TypeError("subscribe([actions,] listener)")
        if not callable(listener):
            raise UsageError(f"a listener must be callable, not {listener!r}")
        chosen = self._check_subscribe(actions)
        if inspect.iscoroutinefunction(listener):
            runner = self._client._spawn_listener(listener)
            return self._add(chosen, runner, runner.close)
        return self._add(chosen, listener)

    def unsubscribe_all(self) -> None:
        """Remove every listener and feed of this room (RTP7c)."""
        for subscription in tuple(self._subscriptions):
            subscription.unsubscribe()

    def events(
        self, actions: Actions | None = None, *, buffer: int = DEFAULT_BUFFER
    ) -> Feed[PresenceMessage]:
        """An async iterator of the room's presence events (or only ``actions``').

        It holds at most ``buffer`` events for a slow consumer; past that it raises
        :class:`~presence_core.client.FeedOverflow` (the overflow policy of
        :class:`~presence_core.client.Feed`).

        Raises:
            UsageError: As :meth:`subscribe`.
        """
        chosen = self._check_subscribe(actions)
        feed: Feed[PresenceMessage] = Feed(buffer)
        subscription = self._add(chosen, feed.push, feed.close)
        feed._on_close = subscription.unsubscribe
        return feed

    # -- operations -------------------------------------------------------------------------
    async def enter(self, data: Any = None, *, extras: dict[str, Any] | None = None) -> None:
        """Enter the room's presence (RTP8); returns once the server has acknowledged it.

        Raises:
            UsageError: Refused before anything was sent: the room option ``enter`` is false,
                no clientId, unencodable data, or a connection or room state that refuses it.
            PresenceError: The server refused it (its NACK's code) or it failed later.
        """
        channel = self._room.channel
        await self._client._operate(
            lambda t: self._client._conn.enter(channel, data, extras=extras, now=t)
        )

    async def update(self, data: Any = None, *, extras: dict[str, Any] | None = None) -> None:
        """Update own presence data (RTP9); errors as :meth:`enter`."""
        channel = self._room.channel
        await self._client._operate(
            lambda t: self._client._conn.update(channel, data, extras=extras, now=t)
        )

    async def leave(self, data: Any = None, *, extras: dict[str, Any] | None = None) -> None:
        """Leave the room's presence (RTP10); errors as :meth:`enter`."""
        channel = self._room.channel
        await self._client._operate(
            lambda t: self._client._conn.leave(channel, data, extras=extras, now=t)
        )

    # -- queries ----------------------------------------------------------------------------
    async def get(
        self,
        *,
        client_id: str | None = None,
        connection_id: str | None = None,
        wait_for_sync: bool = True,
    ) -> list[PresenceMember]:
        """The room's members, optionally only one clientId's or connectionId's (RTP11).

        Raises:
            PresenceError: 91005 on a SUSPENDED room (unless ``wait_for_sync`` is false),
                90001 on a FAILED one, 91008 without the presence-subscribe mode, or the
                error that stopped the attach.
        """
        ps = self._set
        state = ps.state
        if state is _CS.FAILED:
            raise _error(self._room.error_reason, "the room is failed", 90001)
        if wait_for_sync:
            if state is _CS.SUSPENDED:
                raise _out_of_sync()
            if state is not _CS.ATTACHED:
                await self._room.attach()
            self._check_modes()
            if not ps.sync_complete:
                await self._client._until(lambda: ps.sync_complete or ps.state is not _CS.ATTACHED)
                if ps.state is _CS.SUSPENDED:
                    raise _out_of_sync()
                if ps.state is not _CS.ATTACHED:
                    raise _error(
                        self._room.error_reason, f"the room became {ps.state.value}", 90001
                    )
        else:
            self._check_modes()
        return ps.get(client_id=client_id, connection_id=connection_id)

    async def is_user_present(self, client_id: str) -> bool:
        """Whether ``client_id`` is present in the room; waits as :meth:`get` does."""
        return bool(await self.get(client_id=client_id))

    # -- internals --------------------------------------------------------------------------
    def _check_subscribe(self, actions: Actions | None) -> tuple[PresenceAction, ...]:
        if not self._room.options.subscribe:
            raise UsageError(
                f"presence events are not enabled in room {self._room.name!r} "
                "(opened with RoomOptions(subscribe=False))",
                code=102108,
            )
        return _actions(actions)

    def _check_modes(self) -> None:
        modes = self._set.granted_modes
        if modes is not None and not modes & ChannelMode.PRESENCE_SUBSCRIBE:
            raise PresenceError(
                f"room {self._room.name!r} is attached without the presence-subscribe mode, "
                "so its members are not known (RTP11f)",
                code=91008,
                status_code=400,
            )

    def _add(
        self,
        actions: tuple[PresenceAction, ...],
        call: Callable[[PresenceMessage], None],
        on_remove: Callable[[], None] | None = None,
    ) -> Subscription:
        subscription = Subscription(self, actions, call, on_remove)
        self._subscriptions.append(subscription)
        self._rebuild()
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        self._subscriptions.remove(subscription)
        self._rebuild()

    def _rebuild(self) -> None:
        self._by_action.update(
            (action, tuple(s.call for s in self._subscriptions if action in s.actions))
            for action in _EVENT_ACTIONS
        )


def _out_of_sync() -> PresenceError:
    return PresenceError(
        "the room is suspended: its members may be out of date (RTP11d); "
        "get(wait_for_sync=False) returns them anyway",
        code=91005,
        status_code=400,
    )


class AsyncListener:
    """A coroutine-function listener: its events, in order, for its own task."""

    __slots__ = ("listener", "mailbox")

    def __init__(self, listener: Callable[[PresenceMessage], Awaitable[Any]]) -> None:
        self.listener = listener
        self.mailbox: Mailbox[PresenceMessage] = Mailbox()

    def __call__(self, event: PresenceMessage) -> None:
        self.mailbox.put(event)

    def close(self) -> None:
        """Stop: events not yet handled are dropped."""
        self.mailbox.abort()

    async def run(self) -> None:
        """Await the listener for each event; one that raises is logged."""
        mailbox = self.mailbox
        while await mailbox.ready():
            event = mailbox.items.popleft()
            try:
                await self.listener(event)
            except Exception:
                _log.exception("presence listener %r raised", self.listener)


class Room:
    """A chat room: the channel ``<name>::$chat``, its state and its :attr:`presence`."""

    def __init__(self, client: Client, name: str, presence_set: PresenceSet) -> None:
        self._client = client
        self._name = name
        self._set = presence_set
        self._reason: ErrorInfo | None = None
        self._watch: StateWatch[ChannelState, ChannelStateChanged] = StateWatch()
        self._presence = RoomPresence(self)

    @property
    def name(self) -> str:
        """The room's name."""
        return self._name

    @property
    def channel(self) -> str:
        """The room's channel, ``<name>::$chat``."""
        return self._set.channel

    @property
    def options(self) -> RoomOptions:
        """The options the room was opened with."""
        return self._set.options

    @property
    def state(self) -> ChannelState:
        """The room's state (RTL2)."""
        return self._set.state

    @property
    def error_reason(self) -> ErrorInfo | None:
        """Why the room last changed state, if an error caused it."""
        return self._reason

    @property
    def presence(self) -> RoomPresence:
        """The room's presence."""
        return self._presence

    async def attach(self) -> None:
        """Attach the room; returns once it is ATTACHED.

        Raises:
            UsageError: The connection refuses it (SUSPENDED, CLOSED, FAILED ...).
            PresenceError: The room became SUSPENDED, FAILED or DETACHED instead.
        """
        if self.state is not _CS.ATTACHED:
            conn = self._client._conn
            await self._request(
                lambda t: conn.attach(self.channel, now=t),
                (_CS.ATTACHED, _CS.FAILED, _CS.SUSPENDED, _CS.DETACHED),
                self._attached,
            )

    async def detach(self) -> None:
        """Detach the room; returns once it is DETACHED.

        Raises:
            PresenceError: The room is FAILED (90001), or the detach failed.
        """
        if self.state not in (_CS.INITIALIZED, _CS.DETACHED):
            conn = self._client._conn
            await self._request(
                lambda t: conn.detach(self.channel, now=t),
                (_CS.DETACHED, _CS.FAILED, _CS.ATTACHED, _CS.SUSPENDED),
                self._detached,
            )

    async def _request(
        self,
        call: Callable[[int], Output],
        states: tuple[ChannelState, ...],
        done: Callable[[ChannelStateChanged], bool],
    ) -> None:
        """Make ``call`` and wait for a change into ``states`` that ``done`` accepts."""
        client = self._client
        await self._watch.after(lambda: client._call(call), states, done)

    def _attached(self, change: ChannelStateChanged) -> bool:
        """Whether the attach is done; raises if it failed."""
        if change.current is _CS.ATTACHED:
            return True
        if change.current is _CS.DETACHED and self.state is _CS.ATTACHING:
            return False  # RTL4h: the detach in progress finished, the attach goes on
        raise _error(change.reason, f"the room became {change.current.value}", 90000)

    def _detached(self, change: ChannelStateChanged) -> bool:
        if change.current is _CS.DETACHED:
            return True
        raise _error(change.reason, f"the room became {change.current.value}", 90000)

    def _dispatch(self, events: Sequence[object]) -> bool:
        """Deliver one batch of the room's events; return whether its state changed.

        A listener that raises is logged, and the others still get the event.
        """
        changed = False
        listeners = self._presence._by_action
        for event in events:
            if event.__class__ is PresenceMessage:
                for call in listeners[event.action]:
                    try:
                        call(event)
                    except Exception:
                        _log.exception("presence listener %r raised", call)
            elif isinstance(event, ChannelStateChanged):
                changed = True
                self._reason = event.reason
                if _log.isEnabledFor(logging.INFO):
                    _log.info(
                        "room %s: %s -> %s (%s)",
                        self._name,
                        event.previous.value,
                        event.current.value,
                        event.reason,
                    )
                self._watch.changed(event.current, event)
        return changed

    def _close(self) -> None:
        self._presence.unsubscribe_all()
        self._watch.close()


class Rooms:
    """The rooms of one client, by name."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._rooms: dict[str, Room] = {}

    async def get(self, name: str, *, options: RoomOptions | None = None) -> Room:
        """The room ``name``, opened with ``options`` on first use (``RoomOptions()`` by default).

        Raises:
            UsageError: Options that differ from those the room was opened with, an empty
                name, or a client that is not open.
        """
        room = self._rooms.get(name)
        if room is not None:
            if options is not None and options != room.options:
                raise UsageError(f"room {name!r} is already open with {room.options!r}")
            return room
        client = self._client
        client._require_open()
        presence_set = client._conn.room(Server.channel_for_room(name), options=options)
        room = self._rooms[name] = Room(client, name, presence_set)
        client._rooms[presence_set.channel] = room
        return room

    def __iter__(self) -> Iterator[Room]:
        return iter(tuple(self._rooms.values()))

    def _close(self) -> None:
        for room in self._rooms.values():
            room._close()
