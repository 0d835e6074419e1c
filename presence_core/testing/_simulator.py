"""A deterministic simulator: one Server, N Connections, a seeded network, virtual time.

A run is a pure function of (seed, client specs, settings, schedule).  Nothing reads the wall
clock or global randomness: time is virtual, int epoch ms starting at :data:`EPOCH`, and the
seed feeds the network's latencies and, through generators of their own, the server's entropy
and each client's jitter source (RTB1b).

:class:`Simulation` wires three parts and the reducers between them:

* the network (:mod:`presence_core.testing._network`): the transports, their latencies and
  faults, and the one event queue of the run.  It decides what each end learns and when;
* the intent model (:mod:`presence_core.testing._intent`): what each client asked for and
  what it must see once the network is quiet, and :meth:`Simulation.check_convergence`;
* the recorder (:mod:`presence_core.testing._transcript`): every reducer call goes through
  it, so a run can keep a :class:`~presence_core.testing.Transcript` to replay.

Both kinds of reducer are ticked at their ``next_deadline()``: each call re-arms a tick event
for its target when the deadline changed, and a popped tick fires only if the deadline is due.
A client's clock may be stepped (:class:`~presence_core.testing.ClockStep`): it is given
virtual time plus its offset, and its deadlines are armed at the virtual time they stand for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Final

from presence_core._connection import ConnectionSettings
from presence_core._errors import UsageError
from presence_core._output import (
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    CloseTransport,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    OpenTransport,
    OperationFailed,
    OperationSucceeded,
    Output,
    ReentryFailed,
    Send,
)
from presence_core._presence_set import PresenceMember, PresenceSet
from presence_core._wire import ErrorInfo, PresenceMessage, ProtocolAction, ProtocolMessage
from presence_core.server import (
    Deliver,
    Disconnect,
    Server,
    ServerConfig,
    ServerConnectionState,
)
from presence_core.testing._intent import IntentModel
from presence_core.testing._network import (
    ACCEPT,
    CLIENT_LOST,
    DOWN,
    SCHEDULED,
    SERVER_LOST,
    START,
    TICK,
    UP,
    EventQueue,
    Link,
    Network,
)
from presence_core.testing._schedule import (
    SIMULATION_KEY,
    Attach,
    ChannelFailure,
    ClientSpec,
    ClockStep,
    Close,
    ConnectionFailure,
    Detach,
    DropTransport,
    Enter,
    HalfOpen,
    Lag,
    Leave,
    Partition,
    Restart,
    Resync,
    ScheduleEvent,
    ServerDetach,
    ServerRestart,
    Update,
)
from presence_core.testing._transcript import (
    SERVER,
    Recorder,
    Refused,
    Transcript,
    new_connection,
)

__all__ = [
    "EPOCH",
    "SIMULATION_CONFIG",
    "SimulationError",
    "SimulatedClient",
    "Simulation",
]

#: Virtual time 0 of every simulation, in epoch ms (2023-11-14T22:13:20Z).
EPOCH: Final = 1_700_000_000_000

#: The server settings a :class:`Simulation` uses by default: the server's defaults, limits
#: included (15 s grace, 120 s connectionStateTtl, 50 messages per second per connection, 64 KiB
#: messages), and the :data:`SIMULATION_KEY`.  Clients must live within those limits (D10).
#: Only its SYNCs differ: one member a page, 250 ms apart, so that live PRESENCE comes
#: between the pages of a sync and a new sync can restart one midway (D1-D3 end to end).
SIMULATION_CONFIG: Final = ServerConfig(
    keys=(SIMULATION_KEY,), sync_page_size=1, sync_page_interval=250
)


class SimulationError(Exception):
    """The simulation could not proceed: it did not go quiet in time, or a reducer misbehaved."""


_STABLE_CONNECTION: Final = frozenset(
    {ConnectionState.CONNECTED, ConnectionState.CLOSED, ConnectionState.FAILED}
)
_STABLE_ROOM: Final = frozenset(
    {ChannelState.ATTACHED, ChannelState.DETACHED, ChannelState.INITIALIZED, ChannelState.FAILED}
)

_OPERATION_CALLS: Final = {Enter: "enter", Update: "update", Leave: "leave"}
_SYNC_ACTIONS: Final = (ProtocolAction.PRESENCE, ProtocolAction.SYNC)
# Rooms a client attaches again when it reopens or restarts: those it meant to have attached.
_WANTED_ROOM: Final = frozenset({ChannelState.ATTACHED, ChannelState.ATTACHING})
_CHAT_SUFFIX: Final = Server.channel_for_room("")
# The error of the channel and connection failures the server is made to cause.
_SERVER_FAILURE: Final = ErrorInfo(code=50000, status_code=500, message="simulated server failure")


class _Reattach:
    """The application attaches ``room`` again after the server failed it (internal event)."""

    __slots__ = ("client", "process", "room")

    def __init__(self, client: SimulatedClient, room: str) -> None:
        self.client = client
        self.room = room
        self.process = client._process


class SimulatedClient:
    """One simulated client: its :class:`~presence_core.Connection` and what it observed.

    Obtained from :meth:`Simulation.client`; read-only.
    """

    __slots__ = (
        "_after_failure",
        "_awaiting_attach",
        "_down",
        "_events",
        "_offset",
        "_process",
        "_spec",
        "connection",
    )

    def __init__(self, spec: ClientSpec, settings: ConnectionSettings, seed: int) -> None:
        self._spec = spec
        #: The client's connection reducer (query it; do not call its inputs directly).  A
        #: restart replaces it with the new process's.
        self.connection = new_connection(spec, settings, seed)
        self._events: list[tuple[int, Event]] = []
        #: A resume kept the connectionId, so the next ATTACHED tells whether the room resumed.
        self._awaiting_attach = False
        #: How far the client's clock is from virtual time, in ms.
        self._offset = 0
        #: The number of the client's process: 0, then one more per restart.
        self._process = 0
        #: Between a restart and the new process's start there is no process to act.
        self._down = False
        #: What the application does once it sees a failure the server was made to cause:
        #: channel (``None`` for the connection) -> (after how many ms, the rooms to attach).
        self._after_failure: dict[str | None, tuple[int, tuple[str, ...]]] = {}

    @property
    def name(self) -> str:
        """The client's name in schedules."""
        return self._spec.name

    @property
    def spec(self) -> ClientSpec:
        """The specification the client was built from."""
        return self._spec

    @property
    def connection_id(self) -> str | None:
        """The current connectionId (``None`` before the first CONNECTED)."""
        return self.connection.connection_id

    def room(self, room: str) -> PresenceSet:
        """The PresenceSet of ``room`` (a room name, not a channel).

        Raises:
            UsageError: The client never used this room.
        """
        channel = Server.channel_for_room(room)
        presence = self.connection.rooms.get(channel)
        if presence is None:
            raise UsageError(f"client {self.name!r} has no room {room!r}")
        return presence

    def get(self, room: str) -> list[PresenceMember]:
        """The members the client sees in ``room`` (``PresenceSet.get()``)."""
        return self.room(room).get()

    @property
    def events(self) -> tuple[tuple[int, Event], ...]:
        """Every event the connection emitted, with the virtual ``now`` it happened at."""
        return tuple(self._events)

    def presence_events(self, room: str) -> tuple[PresenceMessage, ...]:
        """The presence events the client saw in ``room``, in order."""
        channel = Server.channel_for_room(room)
        return tuple(
            event
            for _, batch in self._events
            if isinstance(batch, ChannelEvents) and batch.channel == channel
            for event in batch.events
            if isinstance(event, PresenceMessage)
        )


class Simulation:
    """One :class:`~presence_core.Server` and N clients on a seeded network, in virtual time.

    Every client connects and attaches its rooms at time 0.  Add operations and faults with
    :meth:`schedule`, then advance with :meth:`run` or :meth:`run_until_quiet`.

    Args:
        seed: Seeds the network latencies, the server's entropy and the clients' jitter.
        clients: One spec per client; names must be distinct.
        server_config: Defaults to :data:`SIMULATION_CONFIG`.
        settings: Connection settings of every client; ably-js defaults otherwise.
        latency: ``(min_ms, max_ms)`` of the one-way latency of each frame, drawn uniformly.
        record: Keep a transcript of every reducer call (see :attr:`transcript`).

    Raises:
        UsageError: Duplicate client names, a client named ``"server"``, or an invalid
            latency range.
    """

    def __init__(
        self,
        *,
        seed: int,
        clients: Sequence[ClientSpec],
        server_config: ServerConfig = SIMULATION_CONFIG,
        settings: ConnectionSettings | None = None,
        latency: tuple[int, int] = (5, 50),
        record: bool = True,
    ) -> None:
        low, high = latency
        if type(low) is not int or type(high) is not int or not 0 <= low <= high:
            raise UsageError(f"latency must be (min_ms, max_ms) with 0 <= min <= max: {latency}")
        names = [spec.name for spec in clients]
        if len(names) != len(set(names)):
            raise UsageError("client names must be distinct")
        if SERVER in names:
            raise UsageError(f"{SERVER!r} names the server in transcripts; pick another name")
        self._settings = settings if settings is not None else ConnectionSettings()
        self._config = server_config
        self._specs = tuple(clients)
        self._stats: Counter[str] = Counter()
        self._queue = EventQueue()
        self._network = Network(seed, (low, high), self._queue, self._stats)
        self._recorder = Recorder(seed, record=record)
        self._server = Server(server_config, self._recorder.entropy)
        self._clients = {spec.name: SimulatedClient(spec, self._settings, seed) for spec in clients}
        self._intents = IntentModel(self._clients)
        self._now = EPOCH
        self._armed: dict[SimulatedClient | None, int] = {}
        # (connectionId, msgSerial) of every numbered frame the server received.
        self._numbered: set[tuple[str, int]] = set()
        # (client, channel) -> the id of the latest SYNC it was sent there.
        self._sync_ids: dict[tuple[str, str], str] = {}
        for client in self._clients.values():
            self._queue.push(EPOCH, START, (client, client.spec.rooms, 0))

    # --- public API ------------------------------------------------------------------------

    @property
    def now(self) -> int:
        """The virtual clock, in epoch ms."""
        return self._now

    @property
    def elapsed(self) -> int:
        """Virtual milliseconds since the start (the time base of schedule events)."""
        return self._now - EPOCH

    @property
    def server(self) -> Server:
        """The server reducer (query it; do not call its inputs directly)."""
        return self._server

    @property
    def clients(self) -> tuple[SimulatedClient, ...]:
        """Every client, in the order of the specs."""
        return tuple(self._clients.values())

    def client(self, name: str) -> SimulatedClient:
        """The client called ``name``.

        Raises:
            UsageError: No such client.
        """
        client = self._clients.get(name)
        if client is None:
            raise UsageError(f"no client named {name!r}")
        return client

    def server_members(self, room: str) -> tuple[PresenceMessage, ...]:
        """The members the server holds in ``room`` (a room name)."""
        return self._server.members(Server.channel_for_room(room))

    @property
    def stats(self) -> Mapping[str, int]:
        """Counters of what happened: faults applied, frames, resumes, failed resumes, resends."""
        return dict(self._stats)

    @property
    def violations(self) -> tuple[str, ...]:
        """Invariant breaches seen while running (a leave for a member a client did not have)."""
        return self._intents.violations

    @property
    def transcript(self) -> Transcript:
        """Every reducer call so far, for :func:`~presence_core.testing.replay`.

        Raises:
            UsageError: The simulation was built with ``record=False``.
        """
        return self._recorder.transcript(self._config, self._specs, self._settings)

    def schedule(self, events: Iterable[ScheduleEvent]) -> None:
        """Queue operations and faults; each happens ``at`` ms after the start.

        An event whose time has passed happens next.  Events with equal times keep their order.

        Raises:
            UsageError: An event names an unknown client.
        """
        batch = list(events)
        for event in batch:
            if not isinstance(event, Resync | ServerRestart) and event.client not in self._clients:
                raise UsageError(f"{event!r} names an unknown client")
        for event in sorted(batch, key=lambda e: e.at):
            self._queue.push(EPOCH + event.at, SCHEDULED, event)

    def run(self, schedule: Iterable[ScheduleEvent] = (), *, until: int) -> None:
        """Schedule ``schedule``, then process everything due up to ``until`` ms after start."""
        self.schedule(schedule)
        limit = EPOCH + until
        queue = self._queue
        while (at := queue.next_time()) is not None and at <= limit:
            self._step()
        self._now = max(self._now, limit)

    def run_until_quiet(
        self, schedule: Iterable[ScheduleEvent] = (), *, limit: int = 3_600_000
    ) -> None:
        """Schedule ``schedule``, then run until everything scheduled happened and all is settled.

        Settled means: no frame, connection attempt or schedule event is in flight; every
        client is CONNECTED on a working transport (or CLOSED/FAILED) with no presence
        operation awaiting an answer; every room is ATTACHED with its sync complete, DETACHED,
        INITIALIZED or FAILED; and no server connection is in its grace period.  Only
        heartbeats would follow.

        Raises:
            SimulationError: Not settled ``limit`` ms of virtual time after the start.
        """
        self.schedule(schedule)
        end = EPOCH + limit
        queue = self._queue
        while not (queue.activity == 0 and not self._unsettled()):
            at = queue.next_time()
            if at is None or at > end:
                raise SimulationError(
                    f"not settled after {limit} ms of virtual time: {self._unsettled()}"
                )
            self._step()

    def check_convergence(self) -> list[str]:
        """Check the end-to-end invariants; return one line per problem (empty when fine).

        Meant for a settled simulation (:meth:`run_until_quiet`).  Every client must be
        CONNECTED, and:

        * its presence events, applied in order, give exactly what ``get()`` returns, with no
          leave for a member it did not have (:attr:`violations`);
        * in every ATTACHED room with ``subscribe``, ``get()`` equals the server's member set,
          compared as (clientId, connectionId, data);
        * for every clientId it acted for, the latest operation whose result it learnt decides:
          a successful enter or update must be on the server, on the client's current
          connection, with that data; a successful leave or a DETACHED of the room must not
          be; a failed one is not checked (the server may or may not have applied it).
        """
        return self._intents.check(
            self._server, ((client.name, client.connection) for client in self._clients.values())
        )

    def assert_converged(self) -> None:
        """Raise AssertionError listing every problem :meth:`check_convergence` finds."""
        problems = self.check_convergence()
        if problems:
            raise AssertionError("\n".join(problems))

    # --- the event loop --------------------------------------------------------------------

    def _step(self) -> None:
        at, kind, payload = self._queue.pop()
        self._now = max(self._now, at)
        if kind == TICK:
            self._on_tick(payload, at)
        elif kind == DOWN:
            self._on_down(*payload)
        elif kind == UP:
            self._on_up(*payload)
        elif kind == SCHEDULED:
            self._on_scheduled(payload)
        elif kind == ACCEPT:
            self._on_accept(*payload)
        elif kind == CLIENT_LOST:
            self._on_client_lost(payload)
        elif kind == SERVER_LOST:
            self._on_server_lost(payload)
        else:
            self._on_start(*payload)

    def _unsettled(self) -> str:
        """Why the run is not settled yet (see :meth:`run_until_quiet`); empty when it is."""
        network = self._network
        for client in self._clients.values():
            conn = client.connection
            if conn.state not in _STABLE_CONNECTION:
                return f"{client.name} is {conn.state.value}"
            if conn.state is ConnectionState.CONNECTED and not network.working(client.name):
                return f"{client.name} has not noticed that its transport is gone"
            for channel, presence in conn.rooms.items():
                state = presence.state
                if state not in _STABLE_ROOM:
                    return f"{client.name}: {channel} is {state.value}"
                if presence.pending:
                    return f"{client.name}: {channel} has operations awaiting an answer"
                if state is ChannelState.ATTACHED and not presence.sync_complete:
                    return f"{client.name}: {channel} is syncing"
        for info in self._server.connections():
            if info.state is ServerConnectionState.DISCONNECTED:
                return f"server connection {info.connection_id} is in its grace period"
        return ""

    # --- reducer calls ---------------------------------------------------------------------

    def _server_call(self, call: str, *args: Any) -> None:
        now = self._now
        out = self._recorder.server(self._server, call, args, now)
        self._arm(None, self._server.next_deadline())
        for command in out.commands:
            if isinstance(command, Deliver):
                self._network.deliver(command.transport_ids, command.message, now)
            elif isinstance(command, Disconnect):
                self._server_dropped(command.transport_id)

    def _client_call(
        self, client: SimulatedClient, call: str, *args: Any
    ) -> Output | Refused | None:
        now = self._now + client._offset
        out = self._recorder.client(client.name, client.connection, call, args, now)
        self._arm(client, client.connection.next_deadline())
        return out

    def _arm(self, target: SimulatedClient | None, deadline: int | None) -> None:
        if deadline is None:
            return
        if target is not None:
            deadline -= target._offset  # the virtual time the client's deadline stands for
        if self._armed.get(target) != deadline:
            self._armed[target] = deadline
            self._queue.push(deadline, TICK, target)

    def _on_tick(self, target: SimulatedClient | None, at: int) -> None:
        if self._armed.get(target) == at:
            del self._armed[target]
        now = self._now
        if target is None:
            deadline = self._server.next_deadline()
            if deadline is None or deadline > now:
                return
            self._server_call("tick")
            after = self._server.next_deadline()
        else:
            now += target._offset
            deadline = target.connection.next_deadline()
            if deadline is None or deadline > now:
                return
            self._client_output(target, self._client_call(target, "tick"))
            after = target.connection.next_deadline()
        if after is not None and after <= now:
            who = "server" if target is None else target.name
            raise SimulationError(f"{who}: next_deadline() {after} still due after tick({now})")

    # --- client side -----------------------------------------------------------------------

    def _on_start(self, client: SimulatedClient, rooms: Iterable[str], process: int) -> None:
        if process != client._process:
            return  # a reopen the process that asked for it did not live to see
        client._down = False
        self._client_output(client, self._client_call(client, "connect"))
        for room in rooms:
            self._attach(client, room)

    def _wanted_rooms(self, client: SimulatedClient) -> tuple[str, ...]:
        """The rooms (by room name) ``client`` has attached or attaching now."""
        return tuple(
            channel.removesuffix(_CHAT_SUFFIX)
            for channel, presence in client.connection.rooms.items()
            if presence.state in _WANTED_ROOM
        )

    def _ensure_room(self, client: SimulatedClient, room: str) -> str:
        channel = Server.channel_for_room(room)
        if channel not in client.connection.rooms:
            self._client_call(client, "room", channel, client.spec.room_options)
        return channel

    def _client_output(self, client: SimulatedClient, out: Output | Refused | None) -> None:
        """Record the events of one client call and carry out its commands."""
        if not isinstance(out, Output):
            return
        now = self._now
        name = client.name
        for event in out.events:
            client._events.append((now, event))
            if client._after_failure and (
                isinstance(event, ChannelEvents)
                or (
                    isinstance(event, ConnectionStateChanged)
                    and event.current is ConnectionState.FAILED
                )
            ):
                _recover_from_failure(self._queue, self._now, client, event)
            if isinstance(event, ChannelEvents):
                self._intents.observe(name, event, elapsed=now - EPOCH)
                if client._awaiting_attach:
                    self._count_attached(event)
            elif isinstance(event, OperationSucceeded | OperationFailed):
                ok = isinstance(event, OperationSucceeded)
                if self._intents.settle(name, event.operation, ok=ok):
                    self._stats["operations_succeeded" if ok else "operations_failed"] += 1
            elif isinstance(event, ReentryFailed):
                self._stats["reentries_failed"] += 1
            elif (
                isinstance(event, ConnectionStateChanged)
                and event.current is ConnectionState.CONNECTED
                and event.reason is not None
                and event.reason.code == 80008
            ):
                self._stats["failed_resumes"] += 1
        network = self._network
        for command in out.commands:
            if isinstance(command, Send):
                network.send(name, command.message, now)
            elif isinstance(command, OpenTransport):
                network.open(name, command.transport_id, command.params, now)
            elif isinstance(command, CloseTransport):
                network.close_by_client(name, now)

    def _count_attached(self, batch: ChannelEvents) -> None:
        """Count the rooms that came back after a resume, with or without continuity."""
        for event in batch.events:
            if isinstance(event, ChannelStateChanged) and event.current is ChannelState.ATTACHED:
                self._stats["rooms_resumed" if event.resumed else "rooms_reattached"] += 1

    def _on_down(self, link: Link, text: str) -> None:
        message = self._network.arrive_down(link, text)
        if message is None:
            return
        client = self._clients[link.client]
        if message.action in _SYNC_ACTIONS:
            _count_sync_overlap(self._stats, self._sync_ids, client, message)
        was = client.connection.connection_id
        out = self._client_call(client, "receive", message, link.client_tid)
        if message.action == ProtocolAction.CONNECTED and isinstance(out, Output):
            now_id = client.connection.connection_id
            if was is not None and now_id == was:
                self._stats["resumes"] += 1
                client._awaiting_attach = True
            else:
                client._awaiting_attach = False
            resent = sum(
                1
                for c in out.commands
                if isinstance(c, Send) and c.message.action == ProtocolAction.PRESENCE
            )
            self._stats["resends"] += resent
        self._client_output(client, out)

    def _on_client_lost(self, link: Link) -> None:
        if self._network.client_lost(link):
            client = self._clients[link.client]
            out = self._client_call(client, "transport_closed", link.client_tid)
            self._client_output(client, out)

    # --- server side -----------------------------------------------------------------------

    def _on_accept(self, link: Link, params: dict[str, str]) -> None:
        if self._network.accept(link):
            self._server_call("connect", link.tid, params)

    def _on_up(self, link: Link, text: str) -> None:
        message = self._network.arrive_up(link, text)
        if message is None:
            return
        if message.msg_serial is not None:
            info = self._server.connection_for(link.tid)
            if info is not None:
                key = (info.connection_id, message.msg_serial)
                if key in self._numbered:
                    self._stats["duplicate_frames"] += 1  # a resend the server must drop
                self._numbered.add(key)
        self._server_call("receive", link.tid, message)

    def _on_server_lost(self, link: Link) -> None:
        if self._network.close_at_server(link):
            self._server_call("transport_closed", link.tid)

    def _server_dropped(self, tid: Hashable) -> None:
        """The server told us to close ``tid``: close it, the client learns after its frames."""
        link = self._network.link(tid)
        self._on_server_lost(link)
        self._network.notify_client_after_frames(link, self._now)

    # --- schedule events -------------------------------------------------------------------

    def _on_scheduled(self, event: ScheduleEvent | _Reattach) -> None:
        if isinstance(event, _Reattach):
            if event.client._process == event.process and not event.client._down:
                self._attach(event.client, event.room)
            return
        if isinstance(event, Resync):
            self._stats["resyncs"] += 1
            self._server_call("resync", Server.channel_for_room(event.room))
            if event.restart_after is not None:
                again = Resync(at=event.at + event.restart_after, room=event.room)
                self._queue.push(self._now + event.restart_after, SCHEDULED, again)
            return
        if isinstance(event, ServerRestart):
            self._restart_server()
            return
        client = self._clients[event.client]
        network = self._network
        if client._down and not isinstance(event, Lag):
            self._stats["events_while_down"] += 1  # its process is not running: nothing to do
            return
        if isinstance(event, DropTransport):
            if network.current(client.name) is None:
                return
            self._stats["transport_drops"] += 1
            if event.sent_arrive:
                self._stats["drops_after_sent"] += 1
                link = network.drop_after_sent(client.name, self._now)
                if link is not None:
                    self._on_client_lost(link)
            else:
                self._cut(client, notify_client=True)
        elif isinstance(event, HalfOpen):
            if network.working(client.name):
                self._stats["half_opens"] += 1
                network.half_open(client.name, self._now + event.breaks_after)
        elif isinstance(event, Lag):
            self._stats["lags"] += 1
            network.lag(client.name, self._now + event.duration, event.scale)
        elif isinstance(event, ClockStep):
            self._stats["clock_steps"] += 1
            client._offset += event.step
            self._arm(client, client.connection.next_deadline())
        elif isinstance(event, Close):
            self._close(client, event.reopen_after)
        elif isinstance(event, Restart):
            self._restart(client, event.down_for)
        elif isinstance(event, Partition):
            self._stats["partitions"] += 1
            self._network.partition(client.name, self._now + event.duration)
            self._cut(client, notify_client=not event.silent)
        elif isinstance(event, (Enter, Update, Leave)):
            self._operation(client, event)
        elif isinstance(event, Attach):
            self._attach(client, event.room)
        elif isinstance(event, Detach):
            self._detach(client, event)
        else:
            self._server_initiative(client, event)

    def _server_initiative(
        self, client: SimulatedClient, event: ServerDetach | ChannelFailure | ConnectionFailure
    ) -> None:
        """The server detaches or fails a channel, or fails the connection, of ``client``.

        Only a connection the server still has, on a working transport, is hit.  After a
        failure the application attaches (or connects) again, as an application would.
        """
        link = self._network.current(client.name)
        if link is None or not self._network.working(client.name):
            return
        info = self._server.connection_for(link.tid)
        if info is None:
            return
        conn_id = info.connection_id
        if isinstance(event, ConnectionFailure):
            self._stats["connection_failures"] += 1
            client._after_failure[None] = (event.reconnect_after, self._wanted_rooms(client))
            self._server_call("fail_connection", conn_id, _SERVER_FAILURE)
            return
        channel = Server.channel_for_room(event.room)
        if channel not in client.connection.rooms:
            return
        if isinstance(event, ServerDetach):
            self._stats["server_detaches"] += 1
            self._server_call("detach_channel", conn_id, channel)
        else:
            self._stats["channel_failures"] += 1
            client._after_failure[channel] = (event.reattach_after, (event.room,))
            self._server_call("fail_channel", conn_id, channel, _SERVER_FAILURE)

    def _cut(self, client: SimulatedClient, *, notify_client: bool) -> None:
        link = self._network.cut(client.name)
        if link is None:
            return
        self._on_server_lost(link)
        if notify_client:
            self._on_client_lost(link)

    def _close(self, client: SimulatedClient, reopen_after: int) -> None:
        """The application closes the connection, and connects again later (RTN12, RTN11)."""
        self._stats["closes"] += 1
        rooms = self._wanted_rooms(client)
        self._client_output(client, self._client_call(client, "close"))
        self._queue.push(self._now + reopen_after, START, (client, rooms, client._process))

    def _restart(self, client: SimulatedClient, down_for: int) -> None:
        """The client's process dies; a new one recovers its connection ``down_for`` ms later.

        The intent model learns that the new process has the old one's recovery key, if any,
        and which rooms were detaching (see :meth:`IntentModel.restarted`).
        """
        self._stats["restarts"] += 1
        old = client.connection
        rooms = self._wanted_rooms(client)
        key = old.recovery_key
        link = self._network.abandon(client.name)
        if link is not None:
            self._on_server_lost(link)
        detaching = [
            channel
            for channel, presence in old.rooms.items()
            if presence.state is ChannelState.DETACHING
        ]
        self._intents.restarted(
            client.name,
            recovering=key is not None,
            subscribed=client.spec.room_options.subscribe,
            detaching=detaching,
        )
        client._process += 1
        client._awaiting_attach = False
        client._down = True
        now = self._now + client._offset
        client.connection = self._recorder.restart_client(
            client.spec, self._settings, key, client._process, now
        )
        self._queue.push(self._now + down_for, START, (client, rooms, client._process))

    def _restart_server(self) -> None:
        """The server restarts empty; every client is told its transport is gone."""
        self._stats["server_restarts"] += 1
        links = self._network.server_restart()
        self._server = self._recorder.restart_server(self._config, self._now)
        self._numbered.clear()
        for link in links:
            self._on_client_lost(link)

    def _attach(self, client: SimulatedClient, room: str) -> None:
        channel = self._ensure_room(client, room)
        self._client_output(client, self._client_call(client, "attach", channel))

    def _operation(self, client: SimulatedClient, event: Enter | Update | Leave) -> None:
        call = _OPERATION_CALLS[type(event)]
        channel = self._ensure_room(client, event.room)
        out = self._client_call(client, call, channel, event.data, event.client_id)
        if isinstance(out, Output) and out.operation is not None:
            self._intents.issue(
                client.name, out.operation, event.data, own_client_id=client.connection.client_id
            )
        elif isinstance(out, Refused):
            self._stats["operations_refused"] += 1
        self._client_output(client, out)

    def _detach(self, client: SimulatedClient, event: Detach) -> None:
        channel = self._ensure_room(client, event.room)
        out = self._client_call(client, "detach", channel)
        if isinstance(out, Refused):
            self._stats["operations_refused"] += 1
        else:
            self._intents.detach_requested(client.name, channel)
        self._client_output(client, out)


def _count_sync_overlap(
    stats: Counter[str],
    sync_ids: dict[tuple[str, str], str],
    client: SimulatedClient,
    message: ProtocolMessage,
) -> None:
    """Count live PRESENCE in the middle of a sync, and syncs restarted midway (RTP18a).

    ``sync_ids`` holds, per (client, channel), the id of the latest SYNC sent there.
    """
    channel = message.channel
    presence = client.connection.rooms.get(channel) if channel is not None else None
    if presence is None or presence.state is not ChannelState.ATTACHED:
        return
    syncing = not presence.sync_complete
    if message.action == ProtocolAction.PRESENCE:
        if syncing:
            stats["presence_during_sync"] += 1
        return
    key = (client.name, channel or "")
    sync_id = (message.channel_serial or "").partition(":")[0]
    if syncing and sync_ids.get(key) not in (None, sync_id):
        stats["syncs_restarted"] += 1
    sync_ids[key] = sync_id


def _recover_from_failure(
    queue: EventQueue, now: int, client: SimulatedClient, event: Event
) -> None:
    """The application saw a failure the server caused: it attaches or connects again."""
    if isinstance(event, ConnectionStateChanged):
        after = client._after_failure.pop(None, None)
        if after is not None:
            queue.push(now + after[0], START, (client, after[1], client._process))
        return
    assert isinstance(event, ChannelEvents)
    for change in event.events:
        if isinstance(change, ChannelStateChanged) and change.current is ChannelState.FAILED:
            after = client._after_failure.pop(event.channel, None)
            if after is not None:
                (room,) = after[1]
                queue.push(now + after[0], SCHEDULED, _Reattach(client, room))
