"""Transcripts of a simulation: every reducer call recorded, and replayed into fresh reducers.

Every call a :class:`~presence_core.testing.Simulation` makes on its server or on a client's
connection goes through :class:`Recorder`, which makes the call and, when recording is on,
keeps a :class:`TranscriptEntry`: the target, the call, ``now``, the arguments, the entropy the
server drew and the result.  The reducers are pure functions of those inputs and of their
clients' jitter sources, so a transcript alone determines a run.  :func:`replay` feeds each
entry through the same two dispatch functions (:func:`call_server`, :func:`call_client`) into
new reducers built from the transcript's settings, hands the server the entropy bytes the
entry recorded, and requires every result to be identical.

The server's entropy comes from a generator seeded by the simulation's seed alone, so a run
never reads global randomness; replay needs no generator for it.  Each client's jitter source
(RTB1b) is a generator seeded by the seed and the client's name, which the transcript keeps,
so replay rebuilds the same sources and they give the same values to the same calls.

A process restart is an entry too (call ``restart``): for a client it names the recovery key
the new process starts from, and replay builds that new connection; for the server, replay
builds a new, empty server.
"""

from __future__ import annotations

import random
from typing import Any, Final

import attrs

from presence_core._connection import Connection, ConnectionSettings
from presence_core._errors import PresenceError, UsageError
from presence_core._output import Output
from presence_core.server import Server, ServerConfig, ServerOutput
from presence_core.testing._schedule import ClientSpec

__all__ = [
    "SERVER",
    "Refused",
    "TranscriptEntry",
    "Transcript",
    "ReplayMismatch",
    "replay",
]

#: The ``target`` of transcript entries that are calls on the server.
SERVER: Final = "server"


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
    #: room with the client's options; ``restart`` replaces the reducer with a new process's).
    call: str
    now: int
    #: The positional inputs: transport ids, query parameters, decoded frames, channels, data.
    #: A client's ``receive`` has ``(frame, transport id)``, its ``transport_closed`` the id.
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
    #: The simulation's seed, from which replay rebuilds each client's jitter source.
    seed: int
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


# --- the one path every reducer call takes -------------------------------------------------

_CLIENT_OPS: Final = frozenset({"enter", "update", "leave", "attach", "detach"})
#: The call that replaces a reducer with a new process's (see the module docs).
RESTART: Final = "restart"


def new_connection(
    spec: ClientSpec,
    settings: ConnectionSettings,
    seed: int,
    *,
    recover: str | None = None,
    process: int = 0,
) -> Connection:
    """The connection reducer of ``spec``, as both a run and its replay build it.

    Its jitter source is a generator of its own, seeded by ``seed``, the client's name and
    the number of its ``process`` (0 at the start, then one more per restart), so that one
    client's retries never shift another's draws.  ``recover`` is the recovery key a
    restarted process continues from.
    """
    label = f"presence-core-simulator-jitter/{seed}/{spec.name}"
    jitter = random.Random(label if not process else f"{label}/{process}").random
    return Connection(
        key=spec.key,
        client_id=spec.client_id,
        settings=settings,
        jitter=jitter,
        recover=recover,
    )


def call_server(server: Server, call: str, args: tuple[Any, ...], now: int) -> ServerOutput:
    """Make the server call a transcript entry names."""
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
    if call == "detach_channel":
        return server.detach_channel(args[0], args[1], now=now)
    if call == "fail_channel":
        return server.fail_channel(args[0], args[1], args[2], now=now)
    if call == "fail_connection":
        return server.fail_connection(args[0], args[1], now=now)
    raise UsageError(f"unknown server call {call!r}")


def call_client(
    conn: Connection, call: str, args: tuple[Any, ...], now: int
) -> Output | Refused | None:
    """Make the connection call a transcript entry names; a refused operation is the result."""
    if call == "receive":
        return conn.receive(args[0], transport_id=args[1], now=now)
    if call == "tick":
        return conn.tick(now=now)
    if call == "connect":
        return conn.connect(now=now)
    if call == "close":
        return conn.close(now=now)
    if call == "transport_closed":
        return conn.transport_closed(transport_id=args[0], now=now)
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
        return Refused(error_type=type(exc).__name__, code=exc.code, message=str(exc))


# --- recording --------------------------------------------------------------------------------


class RecordingEntropy:
    """Seeded entropy for the server that remembers what each call drew."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"presence-core-simulator-entropy/{seed}")
        self.drawn: list[bytes] = []

    def __call__(self, size: int) -> bytes:
        value = self._rng.randbytes(size)
        self.drawn.append(value)
        return value


class Recorder:
    """Makes every reducer call of a run and, when recording, keeps its transcript entry."""

    def __init__(self, seed: int, *, record: bool) -> None:
        #: The entropy source to build the run's server with.
        self.entropy = RecordingEntropy(seed)
        self._seed = seed
        self._entries: list[TranscriptEntry] | None = [] if record else None

    def server(self, server: Server, call: str, args: tuple[Any, ...], now: int) -> ServerOutput:
        """Call ``server`` and record the call with the entropy it drew."""
        drawn = self.entropy.drawn
        drawn.clear()
        out = call_server(server, call, args, now)
        if self._entries is not None:
            self._entries.append(
                TranscriptEntry(
                    target=SERVER, call=call, now=now, args=args, entropy=tuple(drawn), result=out
                )
            )
        return out

    def client(
        self, name: str, conn: Connection, call: str, args: tuple[Any, ...], now: int
    ) -> Output | Refused | None:
        """Call the connection of client ``name`` and record the call."""
        out = call_client(conn, call, args, now)
        if self._entries is not None:
            self._entries.append(
                TranscriptEntry(target=name, call=call, now=now, args=args, result=out)
            )
        return out

    def restart_server(self, config: ServerConfig, now: int) -> Server:
        """A new, empty server after a restart, recorded."""
        if self._entries is not None:
            self._entries.append(TranscriptEntry(target=SERVER, call=RESTART, now=now, args=()))
        return Server(config, self.entropy)

    def restart_client(
        self,
        spec: ClientSpec,
        settings: ConnectionSettings,
        recover: str | None,
        process: int,
        now: int,
    ) -> Connection:
        """The connection of ``spec``'s new ``process``, recovering ``recover``, recorded."""
        if self._entries is not None:
            self._entries.append(
                TranscriptEntry(target=spec.name, call=RESTART, now=now, args=(recover, process))
            )
        return new_connection(spec, settings, self._seed, recover=recover, process=process)

    def transcript(
        self,
        server_config: ServerConfig,
        clients: tuple[ClientSpec, ...],
        settings: ConnectionSettings,
    ) -> Transcript:
        """The calls recorded so far, with what is needed to rebuild the reducers.

        Raises:
            UsageError: Recording is off.
        """
        if self._entries is None:
            raise UsageError("this simulation does not record a transcript (record=False)")
        return Transcript(
            server_config=server_config,
            clients=clients,
            settings=settings,
            seed=self._seed,
            entries=tuple(self._entries),
        )


# --- replay ---------------------------------------------------------------------------------


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
    seed = transcript.seed
    specs = {spec.name: spec for spec in transcript.clients}
    conns = {name: new_connection(spec, settings, seed) for name, spec in specs.items()}
    for index, entry in enumerate(transcript.entries):
        actual: Output | ServerOutput | Refused | None
        conn = conns.get(entry.target)
        if entry.target != SERVER and conn is None:
            raise ReplayMismatch(index, entry, None, "unknown client")
        if entry.call == RESTART:
            if conn is None:
                server = Server(transcript.server_config, entropy)
            else:
                recover, process = entry.args
                spec = specs[entry.target]
                conns[entry.target] = new_connection(
                    spec, settings, seed, recover=recover, process=process
                )
            continue
        entropy.queue = list(entry.entropy)
        try:
            if conn is None:
                actual = call_server(server, entry.call, entry.args, entry.now)
            else:
                actual = call_client(conn, entry.call, entry.args, entry.now)
        except Exception as exc:
            # A recorded call returned; one that raises now cannot be the same call.
            raise ReplayMismatch(index, entry, exc, f"raised {exc!r}") from exc
        if entropy.queue:
            raise ReplayMismatch(index, entry, actual, "recorded entropy was not drawn")
        if actual != entry.result:
            raise ReplayMismatch(
                index, entry, actual, f"recorded {entry.result!r}, replay gave {actual!r}"
            )
