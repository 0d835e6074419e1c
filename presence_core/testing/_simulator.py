"""A deterministic simulator: one Server, N Connections, a seeded network, virtual time.

RULES OF THIS FILE

* A run is a pure function of (seed, client specs, settings, schedule).  Latencies come from a
  private ``random.Random(seed)``, the server's entropy from a second private generator seeded
  from the same seed; nothing reads the wall clock or global randomness.
* Time is virtual: int epoch ms starting at :data:`EPOCH`.  Events wait in one priority queue
  ordered by ``(time, sequence number)``, so equal times keep the order they were queued in.
* Every frame crosses the network as JSON text made by :func:`~presence_core.encode_text` and
  parsed by :func:`~presence_core.decode` (a broadcast is encoded once), so the wire format is
  exercised end to end.
* Every reducer call goes through :func:`_call_server` or :func:`_call_client`, and is
  recorded (target, call, ``now``, arguments, entropy drawn, result) when recording is on.
  :func:`replay` feeds a recorded transcript through the same two functions into fresh
  reducers and checks every result is identical.

THEORY OF OPERATION

A *link* is one transport (WebSocket) between a client and the server, named by an int
transport id.  A client's ``OpenTransport`` makes a link; the upgrade reaches the server after
one latency and becomes ``Server.connect``.  Frames go each way in FIFO order, each after its own
latency (never overtaking an earlier frame on the same link).  A link ends in one of three ways:

* the client closes it (``CloseTransport``): frames it already sent still arrive, then the
  server gets ``transport_closed``;
* the server drops it (``Disconnect``): the server gets ``transport_closed`` at once, and the
  client gets ``transport_closed`` after the frames already on their way to it;
* the network cuts it (a :class:`~presence_core.testing.DropTransport` or
  :class:`~presence_core.testing.Partition` fault): frames in flight are lost, the server gets
  ``transport_closed`` at once, and so does the client unless the partition is silent.

So every ``Server.connect`` is paired with exactly one ``Server.transport_closed``, and the client
is never told about a transport it closed itself.

Both kinds of reducer are ticked at their ``next_deadline()``: each call re-arms a tick event
for its target when the deadline changed, and a popped tick fires only if the deadline is due.
"""

from __future__ import annotations

import heapq
import itertools
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from presence_core._codec import decode, encode_text
from presence_core._connection import Connection, ConnectionSettings
from presence_core._errors import PresenceError, UsageError
from presence_core._output import (
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    CloseTransport,
    ConnectionState,
    ConnectionStateChanged,
    Event,
    OpenTransport,
    Operation,
    OperationFailed,
    OperationSucceeded,
    Output,
    ReentryFailed,
    Send,
)
from presence_core._presence_set import PresenceMember, PresenceSet
from presence_core._wire import PresenceAction, PresenceMessage, ProtocolAction, ProtocolMessage
from presence_core.server import (
    Deliver,
    Disconnect,
    Server,
    ServerConfig,
    ServerConnectionState,
    ServerOutput,
)
from presence_core.testing._schedule import (
    SIMULATION_KEY,
    Attach,
    ClientSpec,
    Detach,
    DropTransport,
    Enter,
    Leave,
    Partition,
    Resync,
    ScheduleEvent,
    Update,
)

__all__ = [
    "EPOCH",
    "SERVER",
    "SIMULATION_CONFIG",
    "Refused",
    "TranscriptEntry",
    "Transcript",
    "ReplayMismatch",
    "SimulationError",
    "SimulatedClient",
    "Simulation",
    "replay",
]

#: Virtual time 0 of every simulation, in epoch ms (2023-11-14T22:13:20Z).
EPOCH: Final = 1_700_000_000_000
#: The ``target`` of transcript entries that are calls on the server.
SERVER: Final = "server"

#: The server settings a :class:`Simulation` uses by default: protocol defaults (15 s grace,
#: 120 s connectionStateTtl), the :data:`SIMULATION_KEY`, and a rate limit high enough that a
#: simulated backend can enter thousands of members from one connection.
SIMULATION_CONFIG: Final = ServerConfig(keys=(SIMULATION_KEY,), max_messages_per_second=1_000_000)


@attrs.frozen(kw_only=True)
class Refused:
    """A reducer call that raised a :class:`~presence_core.PresenceError` (a refused operation)."""

    #: The exception class name (``UsageError``, ``ProtocolError``).
    error_type: str
    code: int
    message: str


@attrs.frozen(kw_only=True)
class TranscriptEntry:
    """One reducer call: who, what, when, with which inputs, and what it returned."""

    #: :data:`SERVER`, or the name of a client.
    target: str
    #: The method called (``receive``, ``connect``, ``tick``, ``enter`` ...; ``room`` creates a
    #: room with the client's options).
    call: str
    now: int
    #: The positional inputs: transport ids, query parameters, decoded frames, channels, data.
    args: tuple[Any, ...]
    #: The bytes the server's entropy source returned during the call, in order.
    entropy: tuple[bytes, ...] = ()
    #: The Output (client), ServerOutput (server), :class:`Refused`, or ``None`` for ``room``.
    result: Output | ServerOutput | Refused | None = None


@attrs.frozen(kw_only=True)
class Transcript:
    """Everything needed to rebuild the reducers of a run and replay every call to them."""

    server_config: ServerConfig
    clients: tuple[ClientSpec, ...]
    settings: ConnectionSettings
    entries: tuple[TranscriptEntry, ...]


class ReplayMismatch(AssertionError):
    """Replaying a transcript gave a different result than the one recorded."""

    def __init__(self, index: int, entry: TranscriptEntry, actual: object, detail: str) -> None:
        super().__init__(
            f"transcript entry {index} ({entry.target}.{entry.call} at {entry.now}): {detail}"
        )
        #: Position of the first entry that did not replay identically.
        self.index = index
        self.entry = entry
        #: What the replayed call returned.
        self.actual = actual


class SimulationError(Exception):
    """The simulation could not proceed: it did not go quiet in time, or a reducer misbehaved."""


# --- the one path every reducer call takes -------------------------------------------------

_CLIENT_OPS: Final = frozenset({"enter", "update", "leave", "attach", "detach"})


def _refused(exc: PresenceError) -> Refused:
    return Refused(error_type=type(exc).__name__, code=exc.code, message=str(exc))


def _call_server(server: Server, call: str, args: tuple[Any, ...], now: int) -> ServerOutput:
    if call == "receive":
        return server.receive(args[0], args[1], now=now)
    if call == "tick":
        return server.tick(now=now)
    if call == "connect":
        return server.connect(args[0], args[1], now=now)
    if call == "transport_closed":
        return server.transport_closed(args[0], now=now)
    if call == "resync":
        return server.resync(args[0], now=now)
    raise UsageError(f"unknown server call {call!r}")


def _call_client(
    conn: Connection, call: str, args: tuple[Any, ...], now: int
) -> Output | Refused | None:
    if call == "receive":
        return conn.receive(args[0], now=now)
    if call == "tick":
        return conn.tick(now=now)
    if call == "connect":
        return conn.connect(now=now)
    if call == "transport_closed":
        return conn.transport_closed(now=now)
    if call == "room":
        conn.room(args[0], options=args[1])
        return None
    if call not in _CLIENT_OPS:
        raise UsageError(f"unknown client call {call!r}")
    # User operations may be refused (a suspended connection, a detaching room): the refusal
    # is the result, as an application would see it.
    try:
        if call == "attach":
            return conn.attach(args[0], now=now)
        if call == "detach":
            return conn.detach(args[0], now=now)
        channel, data, client_id = args
        if call == "enter":
            if client_id is None:
                return conn.enter(channel, data, now=now)
            return conn.enter_client(channel, client_id, data, now=now)
        if call == "update":
            if client_id is None:
                return conn.update(channel, data, now=now)
            return conn.update_client(channel, client_id, data, now=now)
        if client_id is None:
            return conn.leave(channel, data, now=now)
        return conn.leave_client(channel, client_id, data, now=now)
    except PresenceError as exc:
        return _refused(exc)


class _RecordingEntropy:
    """Seeded entropy for the server that remembers what each call drew."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"presence-core-simulator-entropy/{seed}")
        self.drawn: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        value = self._rng.randbytes(size)
        self.drawn.append(value)
        return value


class _ReplayEntropy:
    """Feeds the server the bytes a transcript entry recorded, and nothing else."""

    def __init__(self) -> None:
        self.queue: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        if not self.queue or len(self.queue[0]) != size:
            raise _EntropyMismatch(size)
        return self.queue.pop(0)


class _EntropyMismatch(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"the server drew {size} bytes of entropy that were not recorded")


def _new_connection(spec: ClientSpec, settings: ConnectionSettings) -> Connection:
    return Connection(key=spec.key, client_id=spec.client_id, settings=settings)


def replay(transcript: Transcript) -> None:
    """Feed every recorded call into fresh reducers and check each result is identical.

    The server gets the entropy bytes each call recorded, so the transcript alone determines
    the replay.

    Raises:
        ReplayMismatch: At the first call whose result or entropy use differs, or that raises.
    """
    entropy = _ReplayEntropy()
    server = Server(transcript.server_config, entropy)
    settings = transcript.settings
    conns = {spec.name: _new_connection(spec, settings) for spec in transcript.clients}
    for index, entry in enumerate(transcript.entries):
        actual: Output | ServerOutput | Refused | None
        conn = conns.get(entry.target)
        if entry.target != SERVER and conn is None:
            raise ReplayMismatch(index, entry, None, "unknown client")
        entropy.queue = list(entry.entropy)
        try:
            if conn is None:
                actual = _call_server(server, entry.call, entry.args, entry.now)
            else:
                actual = _call_client(conn, entry.call, entry.args, entry.now)
        except Exception as exc:
            # A recorded call returned; one that raises now cannot be the same call.
            raise ReplayMismatch(index, entry, exc, f"raised {exc!r}") from exc
        if entropy.queue:
            raise ReplayMismatch(index, entry, actual, "recorded entropy was not drawn")
        if actual != entry.result:
            raise ReplayMismatch(
                index, entry, actual, f"recorded {entry.result!r}, replay gave {actual!r}"
            )


# --- network --------------------------------------------------------------------------------

_PENDING: Final = 0  # the upgrade is on its way to the server
_OPEN: Final = 1  # Server.connect was called
_CLOSED: Final = 2  # Server.transport_closed was called, or connect never will be


class _Link:
    """One transport between a client and the server."""

    __slots__ = ("client", "client_current", "cut", "last_down", "last_up", "server_state", "tid")

    def __init__(self, tid: int, client: SimulatedClient, now: int) -> None:
        self.tid = tid
        self.client = client
        #: The network broke it: everything in flight and everything later is lost.
        self.cut = False
        self.server_state = _PENDING
        #: The client still treats this as its transport (it was neither told of its loss nor
        #: closed it).
        self.client_current = True
        #: Arrival time of the latest frame each way, so frames never overtake each other.
        self.last_up = now
        self.last_down = now


# Event kinds in the queue.
_TICK: Final = 0
_UP: Final = 1  # a frame arrives at the server
_DOWN: Final = 2  # a frame arrives at the client
_ACCEPT: Final = 3  # an upgrade request arrives at the server
_CLIENT_LOST: Final = 4  # the client learns its transport is gone
_SERVER_LOST: Final = 5  # the server learns a transport is gone
_SCHEDULED: Final = 6  # a schedule event (operation or fault)
_START: Final = 7  # a client connects and attaches its rooms

_STABLE_CONNECTION: Final = frozenset(
    {ConnectionState.CONNECTED, ConnectionState.CLOSED, ConnectionState.FAILED}
)
_STABLE_ROOM: Final = frozenset(
    {ChannelState.ATTACHED, ChannelState.DETACHED, ChannelState.INITIALIZED, ChannelState.FAILED}
)
_CLEARED: Final = frozenset({ChannelState.DETACHED, ChannelState.FAILED})
_LEAVE: Final = PresenceAction.LEAVE
_ABSENT: Final = PresenceAction.ABSENT

_OPERATION_CALLS: Final = {Enter: "enter", Update: "update", Leave: "leave"}

# Expected presence of one (channel, clientId) of a client, from its settled operations.
_PRESENT: Final = "present"
_GONE: Final = "absent"
_UNKNOWN: Final = "uncertain"


def _freeze(data: Any) -> str:
    """A canonical, hashable form of a payload, for comparing member sets."""
    return json.dumps(data, sort_keys=True, default=repr)


def _member_key(m: PresenceMessage | PresenceMember) -> tuple[str, str, str]:
    return (m.client_id or "", m.connection_id or "", _freeze(m.data))


class SimulatedClient:
    """One simulated client: its :class:`~presence_core.Connection` and what it observed.

    Obtained from :meth:`Simulation.client`; read-only.
    """

    __slots__ = (
        "_awaiting_attach",
        "_barriers",
        "_channels",
        "_events",
        "_expected",
        "_issued",
        "_link",
        "_partitioned_until",
        "_spec",
        "_view",
        "connection",
    )

    def __init__(self, spec: ClientSpec, settings: ConnectionSettings) -> None:
        self._spec = spec
        #: The client's connection reducer (query it; do not call its inputs directly).
        self.connection = _new_connection(spec, settings)
        self._link: _Link | None = None
        self._partitioned_until = 0
        self._events: list[tuple[int, Event]] = []
        #: channel -> (connectionId, clientId) -> data, built from the client's own events.
        self._view: dict[str, dict[tuple[str | None, str | None], Any]] = {}
        #: (channel, op id) -> (acting clientId, action, data) of operations not yet settled.
        self._issued: dict[tuple[str, int], tuple[str | None, PresenceAction, Any]] = {}
        #: (channel, acting clientId) -> (state, data), in the order the client learnt of the
        #: effects: ACKs and DETACHED arrive in the order the server applied them.
        self._expected: dict[tuple[str, str | None], tuple[str, Any]] = {}
        #: channel -> [latest op id issued, op id issued before the latest detach() call,
        #: op id before the detach a DETACHED confirmed].  The server applies a detach after
        #: every frame sent before it, but a resent frame's ACK can arrive after the DETACHED;
        #: such late results must not undo the detach.
        self._barriers: dict[str, list[int]] = {}
        self._channels: set[str] = set()
        self._awaiting_attach = False

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


_QueueItem: TypeAlias = tuple[int, int, int, Any]


class Simulation:
    """One :class:`~presence_core.Server` and N clients on a seeded network, in virtual time.

    Every client connects and attaches its rooms at time 0.  Add operations and faults with
    :meth:`schedule`, then advance with :meth:`run` or :meth:`run_until_quiet`.

    Args:
        seed: Seeds the network latencies and the server's entropy.
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
        self._rng = random.Random(seed)
        self._latency = (low, high)
        self._entropy = _RecordingEntropy(seed)
        self._server = Server(server_config, self._entropy)
        self._clients = {spec.name: SimulatedClient(spec, self._settings) for spec in clients}
        self._entries: list[TranscriptEntry] | None = [] if record else None
        self._now = EPOCH
        self._queue: list[_QueueItem] = []
        self._seq = itertools.count()
        #: Queued events other than ticks; the network is quiet when it is 0.
        self._activity = 0
        self._armed: dict[SimulatedClient | None, int] = {}
        self._links: dict[int, _Link] = {}
        self._tids = itertools.count(1)
        self._violations: list[str] = []
        self._stats: Counter[str] = Counter()
        for client in self._clients.values():
            self._push(EPOCH, _START, client)

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
        return tuple(self._violations)

    @property
    def transcript(self) -> Transcript:
        """Every reducer call so far, for :func:`replay`.

        Raises:
            UsageError: The simulation was built with ``record=False``.
        """
        if self._entries is None:
            raise UsageError("this simulation does not record a transcript (record=False)")
        return Transcript(
            server_config=self._config,
            clients=self._specs,
            settings=self._settings,
            entries=tuple(self._entries),
        )

    def schedule(self, events: Iterable[ScheduleEvent]) -> None:
        """Queue operations and faults; each happens ``at`` ms after the start.

        An event whose time has passed happens next.  Events with equal times keep their order.

        Raises:
            UsageError: An event names an unknown client.
        """
        batch = list(events)
        for event in batch:
            if not isinstance(event, Resync) and event.client not in self._clients:
                raise UsageError(f"{event!r} names an unknown client")
        for event in sorted(batch, key=lambda e: e.at):
            self._push(EPOCH + event.at, _SCHEDULED, event)

    def run(self, schedule: Iterable[ScheduleEvent] = (), *, until: int) -> None:
        """Schedule ``schedule``, then process everything due up to ``until`` ms after start."""
        self.schedule(schedule)
        limit = EPOCH + until
        queue = self._queue
        while queue and queue[0][0] <= limit:
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
        while not (self._activity == 0 and self._settled()):
            if not queue or queue[0][0] > end:
                raise SimulationError(
                    f"not settled after {limit} ms of virtual time: {self._unsettled()}"
                )
            self._step()

    def check_convergence(self) -> list[str]:
        """Check the end-to-end invariants; return one line per problem (empty when fine).

        Meant for a settled simulation (:meth:`run_until_quiet`).  For every client:

        * its presence events, applied in order, give exactly what ``get()`` returns (and it
          never saw a leave for a member it did not have: :attr:`violations`);
        * in every ATTACHED room with ``subscribe``, ``get()`` equals the server's member set,
          compared as (clientId, connectionId, data);
        * every clientId whose latest settled operation was a successful enter or update (and
          no DETACHED came after it) is present on the server, on the client's current
          connection, with the data of that operation; one whose latest was a successful
          leave, or a DETACHED, is absent.  Settled means the order in which the client got the
          ACKs and the DETACHED, which is the order the server applied them; a result arriving
          after a DETACHED for an operation issued before that detach does not count.  A
          clientId whose latest operation failed is not checked: the server may or may not
          have applied it.
        """
        problems = list(self._violations)
        server = self._server
        # channel -> (clientId, connectionId) -> data, so each lookup below is O(1).
        index: dict[str, dict[tuple[str | None, str | None], str]] = {}
        for client in self._clients.values():
            conn = client.connection
            name = client.name
            if conn.state is not ConnectionState.CONNECTED:
                problems.append(f"{name}: connection is {conn.state.value}")
                continue
            conn_id = conn.connection_id
            for channel, presence in conn.rooms.items():
                members = presence.get()
                seen = {key: _freeze(data) for key, data in client._view.get(channel, {}).items()}
                got = {(m.connection_id, m.client_id): _freeze(m.data) for m in members}
                if seen != got:
                    problems.append(
                        f"{name}: events in {channel} add up to {sorted(seen.items())}, "
                        f"get() is {sorted(got.items())}"
                    )
                if presence.state is ChannelState.ATTACHED and presence.options.subscribe:
                    mine = sorted(map(_member_key, members))
                    theirs = sorted(map(_member_key, server.members(channel)))
                    if mine != theirs:
                        problems.append(
                            f"{name}: get() in {channel} is {mine}, the server has {theirs}"
                        )
            for (channel, client_id), (state, data) in client._expected.items():
                if state not in (_PRESENT, _GONE):
                    continue
                by_key = index.get(channel)
                if by_key is None:
                    by_key = index[channel] = {
                        (m.client_id, m.connection_id): _freeze(m.data)
                        for m in server.members(channel)
                    }
                on_server = by_key.get((client_id, conn_id))
                if state == _PRESENT and on_server != _freeze(data):
                    problems.append(
                        f"{name}: {client_id!r} entered {channel} with {data!r} and never left, "
                        f"but the server has {on_server} for connection {conn_id}"
                    )
                elif state == _GONE and on_server is not None:
                    problems.append(
                        f"{name}: {client_id!r} left {channel}, but the server has {on_server} "
                        f"for connection {conn_id}"
                    )
        return problems

    def assert_converged(self) -> None:
        """Raise AssertionError listing every problem :meth:`check_convergence` finds."""
        problems = self.check_convergence()
        if problems:
            raise AssertionError("\n".join(problems))

    # --- the event loop --------------------------------------------------------------------

    def _push(self, at: int, kind: int, payload: Any) -> None:
        if kind != _TICK:
            self._activity += 1
        heapq.heappush(self._queue, (at, next(self._seq), kind, payload))

    def _step(self) -> None:
        at, _, kind, payload = heapq.heappop(self._queue)
        self._now = max(self._now, at)
        if kind == _TICK:
            self._on_tick(payload, at)
            return
        self._activity -= 1
        if kind == _DOWN:
            self._on_down(*payload)
        elif kind == _UP:
            self._on_up(*payload)
        elif kind == _SCHEDULED:
            self._on_scheduled(payload)
        elif kind == _ACCEPT:
            self._on_accept(*payload)
        elif kind == _CLIENT_LOST:
            self._on_client_lost(payload)
        elif kind == _SERVER_LOST:
            self._on_server_lost(payload)
        else:
            self._on_start(payload)

    def _latency_draw(self) -> int:
        low, high = self._latency
        return self._rng.randint(low, high)

    def _settled(self) -> bool:
        return not self._unsettled()

    def _unsettled(self) -> str:
        for client in self._clients.values():
            conn = client.connection
            if conn.state not in _STABLE_CONNECTION:
                return f"{client.name} is {conn.state.value}"
            link = client._link
            if conn.state is ConnectionState.CONNECTED and (
                link is None or link.cut or link.server_state != _OPEN
            ):
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
        drawn = self._entropy.drawn
        drawn.clear()
        out = _call_server(self._server, call, args, now)
        if self._entries is not None:
            self._entries.append(
                TranscriptEntry(
                    target=SERVER, call=call, now=now, args=args, entropy=tuple(drawn), result=out
                )
            )
        self._arm(None, self._server.next_deadline())
        for command in out.commands:
            if isinstance(command, Deliver):
                self._deliver(command)
            elif isinstance(command, Disconnect):
                self._server_dropped(command.transport_id)

    def _client_call(
        self, client: SimulatedClient, call: str, *args: Any
    ) -> Output | Refused | None:
        now = self._now
        out = _call_client(client.connection, call, args, now)
        if self._entries is not None:
            self._entries.append(
                TranscriptEntry(target=client.name, call=call, now=now, args=args, result=out)
            )
        self._arm(client, client.connection.next_deadline())
        return out

    def _arm(self, target: SimulatedClient | None, deadline: int | None) -> None:
        if deadline is not None and self._armed.get(target) != deadline:
            self._armed[target] = deadline
            self._push(deadline, _TICK, target)

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
            deadline = target.connection.next_deadline()
            if deadline is None or deadline > now:
                return
            self._client_output(target, self._client_call(target, "tick"))
            after = target.connection.next_deadline()
        if after is not None and after <= now:
            who = "server" if target is None else target.name
            raise SimulationError(f"{who}: next_deadline() {after} still due after tick({now})")

    # --- client side -----------------------------------------------------------------------

    def _on_start(self, client: SimulatedClient) -> None:
        self._client_output(client, self._client_call(client, "connect"))
        for room in client.spec.rooms:
            channel = self._ensure_room(client, room)
            self._client_output(client, self._client_call(client, "attach", channel))

    def _ensure_room(self, client: SimulatedClient, room: str) -> str:
        channel = Server.channel_for_room(room)
        if channel not in client._channels:
            client._channels.add(channel)
            if channel not in client.connection.rooms:
                self._client_call(client, "room", channel, client.spec.room_options)
        return channel

    def _client_output(self, client: SimulatedClient, out: Output | Refused | None) -> None:
        if not isinstance(out, Output):
            return
        now = self._now
        for event in out.events:
            client._events.append((now, event))
            if isinstance(event, ChannelEvents):
                self._track(client, event)
            elif isinstance(event, OperationSucceeded):
                self._settle(client, event.operation, ok=True)
            elif isinstance(event, OperationFailed):
                self._settle(client, event.operation, ok=False)
            elif isinstance(event, ReentryFailed):
                self._stats["reentries_failed"] += 1
            elif (
                isinstance(event, ConnectionStateChanged)
                and event.current is ConnectionState.CONNECTED
                and event.reason is not None
                and event.reason.code == 80008
            ):
                self._stats["failed_resumes"] += 1
        for command in out.commands:
            if isinstance(command, Send):
                self._send(client, command.message)
            elif isinstance(command, OpenTransport):
                self._open(client, command.params)
            elif isinstance(command, CloseTransport):
                self._client_closed(client)

    def _track(self, client: SimulatedClient, batch: ChannelEvents) -> None:
        """Apply a batch of events to the client's event-built view; flag impossible leaves."""
        view = client._view.setdefault(batch.channel, {})
        for event in batch.events:
            if isinstance(event, ChannelStateChanged):
                if event.current in _CLEARED:
                    view.clear()  # RTP5a: the members are dropped without events
                    if event.current is ChannelState.DETACHED:
                        # Detached: the server removed this connection's members there.
                        barrier = client._barriers.setdefault(batch.channel, [0, 0, 0])
                        barrier[2] = max(barrier[2], barrier[1])
                        expected = client._expected
                        for member in expected:
                            if member[0] == batch.channel:
                                expected[member] = (_GONE, None)
                elif event.current is ChannelState.ATTACHED and client._awaiting_attach:
                    self._stats["rooms_resumed" if event.resumed else "rooms_reattached"] += 1
                continue
            key = (event.connection_id, event.client_id)
            if event.action is _LEAVE:
                if key in view:
                    del view[key]
                else:
                    self._violations.append(
                        f"{client.name} at {self._now - EPOCH} ms: a leave in {batch.channel} "
                        f"for {key}, a member it did not have"
                    )
            elif event.action is _ABSENT:
                self._violations.append(f"{client.name}: an ABSENT event in {batch.channel}")
            else:
                view[key] = event.data

    def _send(self, client: SimulatedClient, message: ProtocolMessage) -> None:
        link = client._link
        if link is None:
            self._stats["frames_without_transport"] += 1
            return
        text = encode_text(message)
        at = max(self._now + self._latency_draw(), link.last_up)
        link.last_up = at
        self._stats["frames_up"] += 1
        self._push(at, _UP, (link, text))

    def _open(self, client: SimulatedClient, params: dict[str, str]) -> None:
        old = client._link
        if old is not None:
            self._client_closed(client)
        link = _Link(next(self._tids), client, self._now)
        self._links[link.tid] = link
        client._link = link
        delay = self._latency_draw()
        if self._now < client._partitioned_until:
            link.cut = True
            link.server_state = _CLOSED
            self._stats["connects_failed"] += 1
            self._push(self._now + delay, _CLIENT_LOST, link)
            return
        link.last_up = self._now + delay
        self._push(link.last_up, _ACCEPT, (link, dict(params)))

    def _client_closed(self, client: SimulatedClient) -> None:
        """The client closed its transport: the server learns after the frames already sent."""
        link = client._link
        if link is None:
            return
        client._link = None
        link.client_current = False
        self._push(max(self._now, link.last_up), _SERVER_LOST, link)

    def _on_down(self, link: _Link, text: str) -> None:
        if link.cut or not link.client_current:
            self._stats["frames_lost"] += 1
            return
        client = link.client
        message = decode(text)
        was = client.connection.connection_id
        out = self._client_call(client, "receive", message)
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

    def _on_client_lost(self, link: _Link) -> None:
        if not link.client_current:
            return
        client = link.client
        link.client_current = False
        client._link = None
        self._client_output(client, self._client_call(client, "transport_closed"))

    # --- server side -----------------------------------------------------------------------

    def _on_accept(self, link: _Link, params: dict[str, str]) -> None:
        if link.cut or link.server_state != _PENDING:
            return
        link.server_state = _OPEN
        self._server_call("connect", link.tid, params)

    def _on_up(self, link: _Link, text: str) -> None:
        if link.cut or link.server_state != _OPEN:
            self._stats["frames_lost"] += 1
            return
        self._server_call("receive", link.tid, decode(text))

    def _on_server_lost(self, link: _Link) -> None:
        if link.server_state == _OPEN:
            link.server_state = _CLOSED
            self._server_call("transport_closed", link.tid)
        else:
            link.server_state = _CLOSED  # an upgrade still on its way is abandoned

    def _deliver(self, command: Deliver) -> None:
        text = encode_text(command.message)
        now = self._now
        for tid in command.transport_ids:
            link = self._links[tid]  # type: ignore[index]
            at = max(now + self._latency_draw(), link.last_down)
            link.last_down = at
            self._stats["frames_down"] += 1
            self._push(at, _DOWN, (link, text))

    def _server_dropped(self, tid: object) -> None:
        """The server told us to close ``tid``: close it, the client learns after its frames."""
        link = self._links[tid]  # type: ignore[index]
        if link.server_state == _OPEN:
            link.server_state = _CLOSED
            self._server_call("transport_closed", link.tid)
        if link.client_current:
            self._push(max(self._now, link.last_down), _CLIENT_LOST, link)

    # --- schedule events -------------------------------------------------------------------

    def _on_scheduled(self, event: ScheduleEvent) -> None:
        if isinstance(event, Resync):
            self._stats["resyncs"] += 1
            self._server_call("resync", Server.channel_for_room(event.room))
            return
        client = self._clients[event.client]
        if isinstance(event, DropTransport):
            if client._link is not None:
                self._stats["transport_drops"] += 1
                self._cut(client._link, notify_client=True)
        elif isinstance(event, Partition):
            self._stats["partitions"] += 1
            until = self._now + event.duration
            client._partitioned_until = max(client._partitioned_until, until)
            if client._link is not None:
                self._cut(client._link, notify_client=not event.silent)
        elif isinstance(event, (Enter, Update, Leave)):
            self._operation(client, event)
        elif isinstance(event, Attach):
            channel = self._ensure_room(client, event.room)
            self._client_output(client, self._client_call(client, "attach", channel))
        else:
            self._detach(client, event)

    def _cut(self, link: _Link, *, notify_client: bool) -> None:
        link.cut = True
        if link.server_state == _OPEN:
            link.server_state = _CLOSED
            self._server_call("transport_closed", link.tid)
        link.server_state = _CLOSED
        if notify_client and link.client_current:
            self._on_client_lost(link)

    def _operation(self, client: SimulatedClient, event: Enter | Update | Leave) -> None:
        call = _OPERATION_CALLS[type(event)]
        channel = self._ensure_room(client, event.room)
        out = self._client_call(client, call, channel, event.data, event.client_id)
        if isinstance(out, Output) and out.operation is not None:
            op = out.operation
            acting = op.client_id if op.client_id is not None else client.connection.client_id
            client._issued[(channel, op.id)] = (acting, op.action, event.data)
            barrier = client._barriers.setdefault(channel, [0, 0, 0])
            barrier[0] = max(barrier[0], op.id)
        elif isinstance(out, Refused):
            self._stats["operations_refused"] += 1
        self._client_output(client, out)

    def _detach(self, client: SimulatedClient, event: Detach) -> None:
        channel = self._ensure_room(client, event.room)
        out = self._client_call(client, "detach", channel)
        if isinstance(out, Refused):
            self._stats["operations_refused"] += 1
        else:
            barrier = client._barriers.setdefault(channel, [0, 0, 0])
            barrier[1] = barrier[0]
        self._client_output(client, out)

    def _settle(self, client: SimulatedClient, op: Operation, *, ok: bool) -> None:
        issued = client._issued.pop((op.channel, op.id), None)
        if issued is None:
            return  # an automatic re-entry: not an application intent
        self._stats["operations_succeeded" if ok else "operations_failed"] += 1
        acting, action, data = issued
        barrier = client._barriers.get(op.channel)
        if barrier is not None and op.id <= barrier[2]:
            return  # issued before a detach the server confirmed: the detach decides
        key = (op.channel, acting)
        if not ok:
            client._expected[key] = (_UNKNOWN, None)
        elif action is _LEAVE:
            client._expected[key] = (_GONE, None)
        else:
            client._expected[key] = (_PRESENT, data)
