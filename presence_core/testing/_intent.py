"""What each simulated client intends, and the check that the quiet network honoured it.

A simulation drives every client with operations and breaks its network with faults.  Once
the faults have stopped and the network has gone quiet (no frame in flight, every connection
settled: :meth:`~presence_core.testing.Simulation.run_until_quiet`), each client must see a
world that follows from what it asked for.  Three things are checked, for every client.

1. Its own events add up.  Applying the presence events the client emitted, in order, to an
   empty set gives exactly what ``get()`` returns, and no event ever was a leave for a member
   the client did not have.  Events are how an application follows the set; if they drift
   from ``get()``, or remove a member it never saw, the application is misled even when the
   final set is right.  A DETACHED or FAILED room drops its members without events (RTP5a),
   so the tracked set is emptied there too.

2. Its view equals the server's.  In every ATTACHED room with ``subscribe``, ``get()`` equals
   the members the server holds, compared as (clientId, connectionId, data).  Once quiet, the
   server's latest PRESENCE frames and SYNC have reached the client, so any difference is a
   lost or misapplied change.  A room without ``subscribe`` receives only its own
   connection's presence (RTP17a), so there ``get()`` equals the members the server holds
   for the client's current connection: a client must not report itself absent while the
   server and its peers still have it, nor present when they do not.  After a process
   restart, or once the room has failed, such a room only has to hold a subset of them: the
   server may hold members the client no longer knows of (ones the old process entered, or
   a resend applied after a re-attach that crossed the failure), and tells it nothing about
   them (RTP17a echoes only new presence).

3. Its intents hold on the server.  For every (room, clientId) the client acted for, the
   latest *settled* operation decides what the server must hold on the client's current
   connection:

   * a successful enter or update: present, with the data of that operation.  Faults do not
     excuse an absence: the client re-enters its own members after it re-attaches without
     continuity (RTP17i), on whatever connection it has by then;
   * a successful leave, or a ``detach()`` of the room that was not refused: absent.  A
     detach always completes before a later ``attach()`` takes effect (RTL4h), and the server
     removes a detached connection's members; an ``attach()`` alone enters nobody.  A detach
     that times out instead (RTL5f: DETACHING back to where it started) leaves the room as the
     server has it, so the room's members are not checked until a later operation settles;
   * a failed operation: not checked.  A failure only says the operation was not confirmed
     (a NACK, or a frame that could not be sent across a suspension, RTN7e); the server may
     have applied it or not.

   *Latest* is the order of the client's calls for a ``detach()``, and otherwise the order in
   which the client learnt the results (ACKs and NACKs come back on one connection in the
   order the server applied the frames).  A result for an operation issued before a
   ``detach()`` does not count, whenever it arrives: the detach came later and decides.  A
   DETACHED or FAILED the client did not ask for (its connection closed or failed, or the
   server failed the channel) also makes its members absent: the server removed them.  A
   result for an operation issued before the room failed is uncertain: the server removed
   the members at the failure, but a resend may be applied again once the room is attached.
   Automatic re-entries are the library's doing, not an intent, and are not tracked.

   A client whose process restarts (:class:`~presence_core.testing.Restart`) loses what the
   old process had not settled: those operations, and the members of a room it was
   detaching, are uncertain.  What it had settled is absent if it had no connection to
   recover.  Otherwise the new process learns from each room's first ATTACHED: with RESUMED
   the server kept the attachment and its members, so the settled intents hold; without it
   the server had removed them, and the new process, which does not know them, cannot enter
   them again, so they are absent.  A re-entry the old process still owed is lost with it:
   once a room left ATTACHED for ATTACHING (the server may have detached it and removed its
   members), or attached again without RESUMED, a member is back on the server only when an
   ATTACHED with RESUMED follows, the client sees its presence, or a new operation for it
   succeeds.  One the process died owing is uncertain, even if the new process's ATTACHED is
   RESUMED: the old process may have attached again before the re-entry went out.  For a
   client without ``subscribe``, which never sees its own members again and so could not
   re-enter them after a later loss, they are uncertain instead of holding.  The new process
   starts with no events, so its event-built view starts empty.

A client whose connection is not CONNECTED once quiet fails the check outright.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from presence_core._connection import Connection
from presence_core._output import (
    ChannelEvents,
    ChannelState,
    ChannelStateChanged,
    ConnectionState,
    Operation,
)
from presence_core._presence_set import PresenceMember
from presence_core._wire import PresenceAction, PresenceMessage
from presence_core.server import Server

__all__: list[str] = []

_LEAVE: Final = PresenceAction.LEAVE
_ABSENT: Final = PresenceAction.ABSENT
_CLEARED: Final = frozenset({ChannelState.DETACHED, ChannelState.FAILED})
# The error code of a channel request that timed out (RTL4f, RTL5f).
_TIMED_OUT: Final = 90007

# What the server must hold for one (channel, clientId) of a client (point 3 above).
_PRESENT: Final = "present"
_GONE: Final = "absent"
_UNKNOWN: Final = "uncertain"

_MemberId = tuple[str | None, str | None]


def _freeze(data: Any) -> str:
    """A canonical, hashable form of a payload, for comparing member sets."""
    return json.dumps(data, sort_keys=True, default=repr)


def _member_key(m: PresenceMessage | PresenceMember) -> tuple[str, str, str]:
    return (m.client_id or "", m.connection_id or "", _freeze(m.data))


class _Barrier:
    """Operation ids of one channel that decide which results a detach overrides."""

    __slots__ = ("detached_upto", "latest")

    def __init__(self) -> None:
        #: The latest operation id issued.
        self.latest = 0
        #: The latest id issued before the latest ``detach()`` call; results of operations up
        #: to it no longer count.
        self.detached_upto = 0


class _ClientIntent:
    """One client's intents and its event-built view."""

    __slots__ = (
        "barriers",
        "blind",
        "expected",
        "failed_upto",
        "issued",
        "recovering",
        "reentering",
        "restarted",
        "subscribed",
        "view",
    )

    def __init__(self) -> None:
        #: channel -> (connectionId, clientId) -> data, built from the client's own events.
        self.view: dict[str, dict[_MemberId, Any]] = {}
        #: (channel, op id) -> (acting clientId, action, data) of operations not yet settled.
        self.issued: dict[tuple[str, int], tuple[str | None, PresenceAction, Any]] = {}
        #: (channel, acting clientId) -> (what the server must hold, data).
        self.expected: dict[tuple[str, str | None], tuple[str, Any]] = {}
        self.barriers: dict[str, _Barrier] = {}
        #: The client's process was restarted at least once.
        self.restarted = False
        #: Channels whose room has failed at least once (point 2).
        self.blind: set[str] = set()
        #: channel -> the latest operation id issued before its room last failed (point 3).
        self.failed_upto: dict[str, int] = {}
        #: channel -> what the old process had settled there, decided by the new process's
        #: first ATTACHED of the channel (point 3); with ``subscribed`` false it is uncertain.
        self.recovering: dict[str, dict[str | None, tuple[str, Any]]] = {}
        #: channel -> the clientIds present by intent whose re-entry the library owes: the
        #: room attached again without RESUMED, and no presence of theirs was seen since.
        self.reentering: dict[str, set[str | None]] = {}
        self.subscribed = True

    def barrier(self, channel: str) -> _Barrier:
        barrier = self.barriers.get(channel)
        if barrier is None:
            barrier = self.barriers[channel] = _Barrier()
        return barrier


class IntentModel:
    """The intents of every client of a simulation and the convergence check against them.

    The simulation reports what each client asked for and what its connection told it; the
    model keeps the expectations described in the module documentation.
    """

    def __init__(self, clients: Iterable[str]) -> None:
        self._clients = {name: _ClientIntent() for name in clients}
        self._violations: list[str] = []

    @property
    def violations(self) -> tuple[str, ...]:
        """Breaches of point 1 seen while running, in the order they happened."""
        return tuple(self._violations)

    # --- what clients ask for -------------------------------------------------------------

    def issue(self, client: str, op: Operation, data: Any, *, own_client_id: str | None) -> None:
        """``client`` issued ``op`` with ``data`` (``own_client_id``: its connection's)."""
        if op.action is None:
            return  # a published message says nothing about presence
        intent = self._clients[client]
        acting = op.client_id if op.client_id is not None else own_client_id
        intent.issued[(op.channel, op.id)] = (acting, op.action, data)
        barrier = intent.barrier(op.channel)
        barrier.latest = max(barrier.latest, op.id)

    def detach_requested(self, client: str, channel: str) -> None:
        """``client`` called ``detach()`` on ``channel`` (and it was not refused)."""
        intent = self._clients[client]
        barrier = intent.barrier(channel)
        barrier.detached_upto = barrier.latest
        for (issued_channel, _), (acting, _, _) in intent.issued.items():
            if issued_channel == channel:
                intent.expected[(channel, acting)] = (_GONE, None)
        self._expect_all(intent, channel, _GONE)

    def restarted(
        self, client: str, *, recovering: bool, subscribed: bool, detaching: Iterable[str]
    ) -> None:
        """``client``'s process died; a new one starts (see point 3 of the module docs).

        ``recovering``: the new process has the old one's recovery key; ``subscribed``: its
        rooms have ``subscribe``; ``detaching`` names the channels whose detach was in flight.
        """
        intent = self._clients[client]
        for (channel, _), (acting, _, _) in intent.issued.items():
            intent.expected[(channel, acting)] = (_UNKNOWN, None)
        for channel in detaching:
            self._expect_all(intent, channel, _UNKNOWN)
        for channel, owed in intent.reentering.items():
            for acting in owed:
                intent.expected[(channel, acting)] = (_UNKNOWN, None)
        intent.reentering.clear()
        intent.issued.clear()
        # The new process numbers its operations from 1 again.
        intent.barriers.clear()
        intent.failed_upto.clear()
        intent.view.clear()
        intent.restarted = True
        intent.subscribed = subscribed
        expected = intent.expected
        for (channel, acting), value in expected.items():
            if recovering:
                saved = intent.recovering.setdefault(channel, {})
                if value[0] != _UNKNOWN or acting not in saved:
                    saved[acting] = value
                expected[(channel, acting)] = (_UNKNOWN, None)  # until the first ATTACHED
            else:
                expected[(channel, acting)] = (_GONE, None)

    # --- what clients learn ---------------------------------------------------------------

    def settle(self, client: str, op: Operation, *, ok: bool) -> bool:
        """``client`` learnt the result of ``op``; true if it was an operation it issued."""
        intent = self._clients[client]
        issued = intent.issued.pop((op.channel, op.id), None)
        if issued is None:
            return False  # an automatic re-entry: not an application intent
        acting, action, data = issued
        barrier = intent.barriers.get(op.channel)
        if barrier is not None and op.id <= barrier.detached_upto:
            return True  # issued before a detach the server confirmed: the detach decides
        key = (op.channel, acting)
        if ok:
            intent.reentering.get(op.channel, set()).discard(acting)
        if not ok or op.id <= intent.failed_upto.get(op.channel, 0):
            intent.expected[key] = (_UNKNOWN, None)
        elif action is _LEAVE:
            intent.expected[key] = (_GONE, None)
        else:
            intent.expected[key] = (_PRESENT, data)
        return True

    def observe(self, client: str, batch: ChannelEvents, *, elapsed: int) -> None:
        """Apply a batch of ``client``'s events to its event-built view; flag impossible leaves.

        ``elapsed`` is the virtual time since the start, for the violation messages.
        """
        intent = self._clients[client]
        channel = batch.channel
        view = intent.view.setdefault(channel, {})
        for event in batch.events:
            if isinstance(event, ChannelStateChanged):
                if event.current is ChannelState.ATTACHED and channel in intent.recovering:
                    self._recovered(intent, channel, resumed=event.resumed)
                elif event.current is ChannelState.ATTACHED and event.resumed:
                    intent.reentering.pop(channel, None)  # the server kept the members
                elif event.current is ChannelState.ATTACHED or (
                    event.current is ChannelState.ATTACHING
                    and event.previous is ChannelState.ATTACHED
                ):
                    # Continuity is lost or in doubt: the server may have removed the members.
                    intent.reentering[channel] = {
                        acting
                        for (room, acting), (state, _) in intent.expected.items()
                        if room == channel and state == _PRESENT
                    }
                if event.current is ChannelState.FAILED:
                    intent.blind.add(channel)
                    intent.failed_upto[channel] = intent.barrier(channel).latest
                if event.current in _CLEARED:
                    view.clear()  # RTP5a: the members are dropped without events
                    self._expect_all(intent, channel, _GONE)  # the server removed them there
                elif (
                    event.previous is ChannelState.DETACHING
                    and event.reason is not None
                    and event.reason.code == _TIMED_OUT
                ):
                    self._expect_all(intent, channel, _UNKNOWN)  # RTL5f: the detach timed out
                continue
            key = (event.connection_id, event.client_id)
            if event.action is _LEAVE:
                if key in view:
                    del view[key]
                else:
                    self._violations.append(
                        f"{client} at {elapsed} ms: a leave in {channel} "
                        f"for {key}, a member it did not have"
                    )
            elif event.action is _ABSENT:
                self._violations.append(f"{client}: an ABSENT event in {channel}")
            else:
                view[key] = event.data
                owed = intent.reentering.get(channel)
                if owed:
                    owed.discard(event.client_id)  # the server holds it again

    @staticmethod
    def _recovered(intent: _ClientIntent, channel: str, *, resumed: bool) -> None:
        """A restarted process's first ATTACHED of ``channel``: RESUMED decides (point 3)."""
        for acting, value in intent.recovering.pop(channel).items():
            if intent.expected.get((channel, acting), (None,))[0] != _UNKNOWN:
                continue  # a new operation of the new process has decided it since
            if not resumed:
                intent.expected[(channel, acting)] = (_GONE, None)
            elif intent.subscribed:
                intent.expected[(channel, acting)] = value

    @staticmethod
    def _expect_all(intent: _ClientIntent, channel: str, state: str) -> None:
        """Expect ``state`` on the server for every member ``intent`` has in ``channel``."""
        expected = intent.expected
        for member in expected:
            if member[0] == channel:
                expected[member] = (state, None)

    # --- the check --------------------------------------------------------------------------

    def check(self, server: Server, connections: Iterable[tuple[str, Connection]]) -> list[str]:
        """Check points 1 to 3 for every ``(client name, connection)``; one line per problem."""
        problems = list(self._violations)
        # channel -> (clientId, connectionId) -> data, so each lookup below is O(1).
        index: dict[str, dict[_MemberId, str]] = {}
        for name, conn in connections:
            if conn.state is not ConnectionState.CONNECTED:
                problems.append(f"{name}: connection is {conn.state.value}")
                continue
            intent = self._clients[name]
            conn_id = conn.connection_id
            for channel, presence in conn.rooms.items():
                members = presence.get()
                seen = {key: _freeze(data) for key, data in intent.view.get(channel, {}).items()}
                got = {(m.connection_id, m.client_id): _freeze(m.data) for m in members}
                if seen != got:
                    problems.append(
                        f"{name}: events in {channel} add up to {sorted(seen.items())}, "
                        f"get() is {sorted(got.items())}"
                    )
                if presence.state is ChannelState.ATTACHED:
                    mine = sorted(map(_member_key, members))
                    theirs = sorted(
                        _member_key(m)
                        for m in server.members(channel)
                        if presence.options.subscribe or m.connection_id == conn_id
                    )
                    # A restarted process is not told what the old one entered (point 2).
                    blind = (
                        intent.restarted or channel in intent.blind
                    ) and not presence.options.subscribe
                    if not (set(mine) <= set(theirs) if blind else mine == theirs):
                        problems.append(
                            f"{name}: get() in {channel} is {mine}, the server has {theirs}"
                        )
            for (channel, client_id), (state, data) in intent.expected.items():
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
