"""The client: one :class:`~presence_core.Connection` driven live on asyncio or trio.

The adapter does three things and nothing else: it feeds the reducer its inputs with ``now``
(wall-clock epoch ms), performs the commands each input returns, and keeps one timer armed at
the reducer's ``next_deadline()``.  Every decision (when to retry, with what backoff, whether
to resume, what to resend) is the reducer's; the jitter of its retries is ``random.random``
passed into it.

**One caller at a time.**  Every reducer call goes through :meth:`Client._call` (or the frame
receiver, its copy for the hot path, which folds frames read together into one call), which
makes the call and performs its whole Output with no await in between.  On an event loop
nothing else runs meanwhile, so the inputs are serialized without a lock, and each Output's
commands run in order before the next input.

**Performing the Output.**  Events first, then commands.  Presence events go to the room's
listeners and feeds; state changes wake whoever waits for them; operation results settle the
awaiting ``enter``/``update``/``leave``.  ``OpenTransport`` starts a task that opens a link
and reads it, reporting its end with ``transport_closed``; ``CloseTransport`` closes the
current link; ``RenewToken`` starts the auth callback, whose token goes to ``authorize``;
every other command sends its frame on the current link.
"""

from __future__ import annotations

import inspect
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Final, TypeAlias

import anyio
import anyio.abc

from presence_core._backoff import Jitter
from presence_core._connection import Connection, ConnectionSettings
from presence_core._errors import PresenceError, ProtocolError, UsageError
from presence_core._output import (
    ChannelEvents,
    CloseTransport,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    FrameIgnored,
    OpenTransport,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    ReentryFailed,
    RenewToken,
)
from presence_core._wire import ErrorInfo, ProtocolMessage
from presence_core.client._feeds import Feed, StateWatch
from presence_core.client._host import ServerHost
from presence_core.client._rooms import AsyncListener, Room, Rooms
from presence_core.client._support import Mailbox, Timer, now_ms, redacted, token_expires_at
from presence_core.client._transport import Connector, Link, TransportError, WebSocketConnector
from presence_core.server import Server

__all__ = ["ConnectionHandle", "Client", "connect"]

_log = logging.getLogger("presence_core.client")

_CS = ConnectionState
#: Where a connection stays until the application acts.
_ENDED: Final = (_CS.CLOSED, _CS.FAILED)
#: How long ``close()`` lets the transports finish their closing handshakes (seconds).
_LINGER: Final = 2.0

#: States in which a token from the auth callback is dropped, not given to the reducer.
_NOT_RENEWED: Final = (_CS.CLOSING, _CS.CLOSED, _CS.FAILED)

#: Gives a new token: a plain function or a coroutine function, called with no arguments.
AuthCallback: TypeAlias = Callable[[], "str | Awaitable[str]"]

#: What :func:`connect` connects to.
Target: TypeAlias = "str | Server | ServerHost | Connector"


class ConnectionHandle:
    """``client.connection``: the connection's state and its changes (RTN4)."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._watch: StateWatch[ConnectionState, ConnectionStateChanged] = StateWatch()

    @property
    def state(self) -> ConnectionState:
        """The connection state."""
        return self._conn.state

    @property
    def id(self) -> str | None:
        """The connectionId of the latest CONNECTED."""
        return self._conn.connection_id

    @property
    def error_reason(self) -> ErrorInfo | None:
        """Why the connection last changed state, if an error caused it (RTN25)."""
        return self._conn.error_reason

    async def wait_for(self, *states: ConnectionState) -> None:
        """Return once the connection is in one of ``states`` (at once if it already is)."""
        if self._conn.state not in states:
            await self._watch.after(lambda: None, states, lambda change: True)

    def changes(self, *, buffer: int = 100) -> Feed[ConnectionStateChanged]:
        """An async iterator of the state changes from now on (a bounded :class:`Feed`)."""
        return self._watch.feed(buffer)


class Client:
    """A realtime presence client; made by :func:`connect` and used with ``async with``.

    Leaving the ``async with`` block closes the connection (:meth:`close`).
    """

    def __init__(
        self,
        connector: Connector,
        connection: Connection,
        host: ServerHost | None = None,
        auth_callback: AuthCallback | None = None,
    ) -> None:
        self._connector = connector
        self._auth_callback = auth_callback
        self._renewing = False
        self._conn = connection
        self._host = host
        self._rooms: dict[str, Room] = {}
        self._links: dict[int, Link] = {}
        # The cancel scope of every transport task still running, by transport id.
        self._transports: dict[int, anyio.CancelScope] = {}
        self._current: int | None = None
        # The operations awaited by enter/update/leave; each gets its result (None: success).
        self._settling: dict[Operation, Mailbox[ErrorInfo | None]] = {}
        self._conditions: list[tuple[Callable[[], bool], anyio.Event]] = []
        # The caller's task group, and the shielded one the client's tasks run in.
        self._outer: anyio.abc.TaskGroup | None = None
        self._group: anyio.abc.TaskGroup | None = None
        self._stop = anyio.Event()
        self._timer = Timer(connection.next_deadline, self._tick)
        self._idle = anyio.Event()
        self._idle.set()
        #: The connection's state and changes.
        self.connection = ConnectionHandle(connection)
        #: The client's rooms.
        self.rooms = Rooms(self)

    # -- public -----------------------------------------------------------------------------
    @property
    def client_id(self) -> str | None:
        """The clientId: the one given, or the one the server assigned."""
        return self._conn.client_id

    @property
    def recovery_key(self) -> str | None:
        """A key for ``connect(..., recover=key)`` to carry this connection on (RTN16).

        ``None`` when there is nothing to recover.
        """
        return self._conn.recovery_key

    async def __aenter__(self) -> Client:
        if self._outer is not None:
            raise UsageError("this client is already open")
        outer = anyio.create_task_group()
        await outer.__aenter__()
        self._outer = outer
        self._stop = anyio.Event()
        self._group = await outer.start(self._supervise)
        self._group.start_soon(self._timer.run)
        if self._host is not None:
            self._host.run_in(self._group)
        self._call(lambda t: self._conn.connect(now=t))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        outer, group = self._outer, self._group
        if outer is None or group is None:
            return None
        try:
            # Shielded, as the client's own tasks are: a cancelled caller still leaves the
            # server cleanly, within the reducer's close timeout.
            with anyio.CancelScope(shield=True):
                await self.close()
        finally:
            if self._host is not None:
                self._host.release(group)
            self._stop.set()
            self._outer = self._group = None
        return await outer.__aexit__(exc_type, exc, tb)

    async def _supervise(self, *, task_status: anyio.abc.TaskStatus[anyio.abc.TaskGroup]) -> None:
        """Run the client's tasks in a shielded group until the client is closed.

        The caller's code runs inside the outer group, so a cancellation meant for it (a
        timeout, say) would otherwise also stop the transports and the timer that
        :meth:`close` needs to leave cleanly; the client ends its tasks itself.
        """
        async with anyio.create_task_group() as tasks:
            tasks.cancel_scope.shield = True
            task_status.started(tasks)
            await self._stop.wait()
            tasks.cancel_scope.cancel()

    async def close(self) -> None:
        """Close the connection (RTN12): leave every room, end every feed.

        Returns once CLOSED (or FAILED), within the reducer's ``realtime_request_timeout``.
        """
        if self._conn.state not in _ENDED:
            await self.connection._watch.after(
                lambda: self._call(lambda t: self._conn.close(now=t)), _ENDED, lambda c: True
            )
        with anyio.move_on_after(_LINGER):
            await self._idle.wait()
        self.rooms._close()
        self.connection._watch.close()

    # -- the reducer's one caller -----------------------------------------------------------
    def _require_open(self) -> None:
        if self._group is None:
            raise UsageError("the client is not open: use 'async with presence_core.connect(...)'")

    def _call(self, call: Callable[[int], Output]) -> Output:
        """Make one reducer call and perform its Output (a UsageError changes nothing)."""
        out = call(now_ms())
        self._perform(out)
        return out

    async def _operate(self, call: Callable[[int], Output]) -> None:
        """A presence operation: returns on its ACK, raises PresenceError on its failure."""
        self._require_open()
        out = call(now_ms())
        operation = out.operation
        result: Mailbox[ErrorInfo | None] = Mailbox()
        if operation is not None:
            # In place before the Output is performed: it may settle the operation itself.
            self._settling[operation] = result
        self._perform(out)
        if operation is None:
            return
        await result.ready()
        error = result.items[0]
        if error is not None:
            raise PresenceError(
                error.message or "presence operation failed",
                code=error.code,
                status_code=error.status_code,
            )

    async def _until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds after some reducer call."""
        event = anyio.Event()
        entry = (condition, event)
        self._conditions.append(entry)
        try:
            await event.wait()
        finally:
            if entry in self._conditions:
                self._conditions.remove(entry)

    def _receiver(self, tid: int) -> _Receiver:
        """The frame handler of transport ``tid``: ``_call`` specialised for frames."""
        return _Receiver(self, tid)

    def _tick(self) -> None:
        self._call(lambda t: self._conn.tick(now=t))

    def _perform(self, out: Output) -> None:
        # The timer is re-armed only when the deadline may have moved earlier.  An Output of
        # presence events alone (the hot path) cannot have done that: applying PRESENCE and
        # SYNC frames starts no timer, and the activity they show moves the idle deadline
        # later, which the timer handles when it fires.
        quiet = True
        rooms = self._rooms
        for event in out.events:
            if type(event) is ChannelEvents:
                room = rooms.get(event.channel)
                if room is None or room._dispatch(event.events):
                    quiet = False
            else:
                quiet = False
                self._on_event(event)
        if out.commands:
            quiet = False
            self._run_commands(out)
        if not quiet:
            self._timer.rearm()
        if self._conditions:
            for entry in tuple(self._conditions):
                if entry[0]():
                    self._conditions.remove(entry)
                    entry[1].set()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, OperationSucceeded | OperationFailed):
            result = self._settling.pop(event.operation, None)
            if result is not None:
                result.put(event.error if isinstance(event, OperationFailed) else None)
        elif isinstance(event, ConnectionStateChanged):
            # A failed connection stays so until the application acts: say it louder.
            level = logging.WARNING if event.current is _CS.FAILED else logging.INFO
            if _log.isEnabledFor(level):
                _log.log(
                    level,
                    "connection: %s -> %s (%s)",
                    event.previous.value,
                    event.current.value,
                    event.reason,
                )
            self.connection._watch.changed(event.current, event)
        elif isinstance(event, ReentryFailed):
            _log.warning(
                "automatic re-entry of %r in %s failed: %s",
                event.client_id,
                event.channel,
                event.error,
            )
        elif isinstance(event, FrameIgnored):
            if _log.isEnabledFor(logging.DEBUG):
                _log.debug("frame ignored (%s): %r", event.reason, redacted(event.message))
        elif _log.isEnabledFor(logging.DEBUG):
            _log.debug("event: %r", event)

    def _run_commands(self, out: Output) -> None:
        for command in out.commands:
            if isinstance(command, OpenTransport):
                self._open(command)
            elif isinstance(command, CloseTransport):
                self._close_current(command.reason)
            elif isinstance(command, RenewToken):
                self._renew(command.reason)
            else:
                link = self._links.get(self._current) if self._current is not None else None
                if link is not None:
                    link.send(command.message)
                elif _log.isEnabledFor(logging.DEBUG):
                    _log.debug("no transport for %r", redacted(command.message))

    # -- tokens -----------------------------------------------------------------------------
    def _renew(self, reason: ErrorInfo | None) -> None:
        """Start the auth callback for the reducer's RenewToken, unless it is running already."""
        if self._renewing or self._auth_callback is None or self._group is None:
            return
        self._renewing = True
        if reason is not None:
            _log.info("token refused (%s): renewing it", reason)
        self._group.start_soon(self._renewal)

    async def _renewal(self) -> None:
        """Get a token from the auth callback and hand it to the reducer (``authorize``).

        A callback that fails, answers late or gives no token is logged; the reducer asks
        again at its next retry, and an expiring token is still refused by the server then.
        """
        callback = self._auth_callback
        assert callback is not None
        token: object = None
        try:
            with anyio.fail_after(self._conn.settings.realtime_request_timeout / 1000):
                token = callback()
                if inspect.isawaitable(token):
                    token = await token
        except Exception as exc:
            _log.warning("auth_callback failed: %r", exc)
        finally:
            self._renewing = False
        if type(token) is not str or not token:
            if token is not None:
                _log.warning("auth_callback gave %r, not a token string", type(token).__name__)
            return
        if self._conn.state in _NOT_RENEWED:
            return  # closed meanwhile: a token must not open it again
        self._call(lambda t: self._conn.authorize(token, expires_at=token_expires_at(token), now=t))

    # -- transports -------------------------------------------------------------------------
    def _open(self, command: OpenTransport) -> None:
        group = self._group
        if group is None:  # pragma: no cover - connect() runs only once the group exists
            raise UsageError("the client is not open")
        tid = self._current = command.transport_id
        scope = self._transports[tid] = anyio.CancelScope()
        self._idle = anyio.Event()
        group.start_soon(self._transport, tid, command.params, scope)

    def _close_current(self, reason: ErrorInfo | None) -> None:
        tid, self._current = self._current, None
        if tid is None:
            return
        if _log.isEnabledFor(logging.INFO):
            _log.info("closing transport %s (%s)", tid, reason)
        link = self._links.get(tid)
        if link is not None:
            link.close()
        else:
            scope = self._transports.get(tid)
            if scope is not None:
                scope.cancel()

    async def _transport(self, tid: int, params: dict[str, str], scope: anyio.CancelScope) -> None:
        error: ErrorInfo | None = None
        link: Link | None = None
        try:
            with scope:
                try:
                    link = await self._connector.open(params)
                except TransportError as exc:
                    _log.info("transport %s could not open: %s", tid, exc)
                    error = exc.to_error_info()
            if link is not None:
                self._links[tid] = link
                if scope.cancel_called:  # closed by the reducer while it was opening
                    link.close()
                try:
                    error = await link.run(self._receiver(tid))
                finally:
                    del self._links[tid]
        finally:
            del self._transports[tid]
            if not self._transports:
                self._idle.set()
        # Reported whatever the reason: for a transport the reducer closed itself, or one
        # that is no longer current, this changes nothing.
        self._call(lambda t: self._conn.transport_closed(transport_id=tid, now=t, error=error))

    def _spawn_listener(self, listener: Callable[..., Any]) -> AsyncListener:
        self._require_open()
        runner = AsyncListener(listener)
        assert self._group is not None
        self._group.start_soon(runner.run)
        return runner


class _Receiver:
    """What a link hands the frames of transport ``tid`` to: one reducer call per read.

    Frames read together go to :meth:`Connection.receive_many`, so a burst costs one reducer
    call and one Output, with the events of one room in one batch for its listeners.
    """

    __slots__ = ("_perform", "_receive", "_receive_many", "_tid")

    def __init__(self, client: Client, tid: int) -> None:
        self._tid = tid
        self._receive = client._conn.receive
        self._receive_many = client._conn.receive_many
        self._perform = client._perform

    def __call__(self, message: ProtocolMessage) -> None:
        try:
            out = self._receive(message, transport_id=self._tid, now=now_ms())
        except ProtocolError as exc:
            # The reducer refused the frame and changed nothing; its timers judge the
            # connection, so the transport stays.
            _log.warning("frame refused: %s", exc)
            return
        self._perform(out)

    def many(self, messages: list[ProtocolMessage]) -> None:
        out, refused = self._receive_many(messages, transport_id=self._tid, now=now_ms())
        self._perform(out)
        for _, exc in refused:
            _log.warning("frame refused: %s", exc)


def _connector(
    target: Target, ssl_context: ssl.SSLContext | None
) -> tuple[Connector, ServerHost | None]:
    if isinstance(target, str):
        return WebSocketConnector(target, ssl_context=ssl_context), None
    if isinstance(target, Server):
        target = ServerHost.of(target)
    if isinstance(target, ServerHost):
        return target.connector(), target
    if callable(getattr(target, "open", None)):
        return target, None
    raise UsageError(f"cannot connect to {target!r}: give a ws:// or wss:// URL or a Server")


def connect(
    target: Target,
    *,
    key: str | None = None,
    token: str | None = None,
    auth_callback: AuthCallback | None = None,
    client_id: str | None = None,
    recover: str | None = None,
    settings: ConnectionSettings | None = None,
    jitter: Jitter = random.random,
    ssl_context: ssl.SSLContext | None = None,
) -> Client:
    """A client of ``target``, to use as ``async with presence_core.connect(...) as client``.

    Args:
        target: A ``ws://`` or ``wss://`` URL; a :class:`~presence_core.server.Server` in this
            process (its :class:`ServerHost` is found or made); a ServerHost; or any
            :class:`Connector`.
        key: An API key ``name:secret``.  Give a key, or a token and/or an ``auth_callback``.
        token: A token string (an Ably JWT or an opaque token).  Without ``auth_callback`` it
            cannot be renewed: once the server refuses it (40142 when it expires), the
            connection fails with 40171.
        auth_callback: Gives a new token when the connection needs one: before connecting
            if no ``token`` was given, when the server refuses the token, and ahead of a
            JWT's ``exp`` (``ConnectionSettings.token_renewal_margin`` before it, or halfway
            through its life if that is later).  A plain function or a coroutine function
            with no arguments, returning the token string; it is awaited for at most
            ``realtime_request_timeout``, and one that fails is asked again at the next retry.
        client_id: The clientId to connect as (adopted from the server when ``None``).
        recover: A :attr:`Client.recovery_key` from another process (RTN16).
        settings: The connection's timeouts (:class:`~presence_core.ConnectionSettings`).
        jitter: The retries' jitter source (RTB1b), handed to the reducer.
        ssl_context: TLS settings for ``wss://``.

    Raises:
        UsageError: No credential, a key with a token or an ``auth_callback``, an invalid
            ``client_id``, or a target that is none of the above.
    """
    if auth_callback is not None and not callable(auth_callback):
        raise UsageError(f"auth_callback must be callable, not {auth_callback!r}")
    connector, host = _connector(target, ssl_context)
    connection = Connection(
        key=key,
        token=token,
        client_id=client_id,
        settings=settings,
        jitter=jitter,
        recover=recover,
        renewable=auth_callback is not None,
        token_expires_at=None if token is None else token_expires_at(token),
    )
    return Client(connector, connection, host, auth_callback)
