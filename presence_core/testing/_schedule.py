"""What a simulation runs: client specifications and schedule events (operations and faults).

Every schedule event is a frozen value with ``at``: milliseconds of virtual time after the start
of the simulation.  A schedule is any iterable of them; the simulator orders them by ``at`` and,
for equal times, by their position in the schedule.
"""

from __future__ import annotations

from typing import Any, Final, TypeAlias

import attrs

from presence_core._errors import UsageError
from presence_core._presence_set import RoomOptions
from presence_core.server import ApiKey

__all__ = [
    "SIMULATION_KEY",
    "ClientSpec",
    "Enter",
    "Update",
    "Leave",
    "Attach",
    "Detach",
    "DropTransport",
    "HalfOpen",
    "Partition",
    "Resync",
    "ServerDetach",
    "ChannelFailure",
    "ConnectionFailure",
    "Close",
    "Restart",
    "ServerRestart",
    "Lag",
    "ClockStep",
    "OperationEvent",
    "FaultEvent",
    "ScheduleEvent",
]

#: The API key every simulated client uses unless its spec names another: full capability, and
#: an unidentified connection may act for any clientId (``enter_client``), as a backend does.
SIMULATION_KEY: Final = ApiKey(name="sim.app", secret="sim-secret", any_client_id=True)


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        raise UsageError(f"{attribute.name} must be a non-negative int of ms, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value <= 0:
        raise UsageError(f"{attribute.name} must be a positive int of ms, got {value!r}")


def _name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if type(value) is not str or not value:
        raise UsageError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _default_name(spec: ClientSpec) -> str:
    if spec.client_id is None:
        raise UsageError("a ClientSpec without client_id needs a name")
    return spec.client_id


def _rooms(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise UsageError("rooms must be a collection of room names, not one string")
    rooms = tuple(value)
    for room in rooms:
        if type(room) is not str or not room:
            raise UsageError(f"room names must be non-empty strings, got {room!r}")
    return rooms


@attrs.frozen(kw_only=True)
class ClientSpec:
    """One simulated client: a :class:`~presence_core.Connection` and the rooms it attaches.

    The client connects and attaches its rooms at time 0.  Rooms are Chat room names; the
    channel of room ``R`` is ``R::$chat``.
    """

    #: The clientId to connect as; ``None`` for an unidentified connection (which may use
    #: ``enter_client`` when its key allows it).
    client_id: str | None = None
    #: How schedules and queries name this client; defaults to ``client_id``.
    name: str = attrs.field(default=attrs.Factory(_default_name, takes_self=True), validator=_name)
    #: Rooms attached at time 0.
    rooms: tuple[str, ...] = attrs.field(default=(), converter=_rooms)
    #: Options of every room of this client (``subscribe=False`` for a client that only enters).
    room_options: RoomOptions = attrs.field(factory=RoomOptions)
    #: The ``name:secret`` key the client connects with.
    key: str = SIMULATION_KEY.key


@attrs.frozen(kw_only=True)
class Enter:
    """``client`` enters ``room`` with ``data`` (for ``client_id``: ``enter_client``)."""

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str
    data: Any = None
    #: Act for this clientId (RTP14) instead of the connection's own.
    client_id: str | None = None


@attrs.frozen(kw_only=True)
class Update:
    """``client`` updates its presence data in ``room`` (``update_client`` with ``client_id``)."""

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str
    data: Any = None
    client_id: str | None = None


@attrs.frozen(kw_only=True)
class Leave:
    """``client`` leaves ``room`` (``leave_client`` with ``client_id``)."""

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str
    data: Any = None
    client_id: str | None = None


@attrs.frozen(kw_only=True)
class Attach:
    """``client`` attaches ``room``."""

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str


@attrs.frozen(kw_only=True)
class Detach:
    """``client`` detaches ``room``; the server removes its members there."""

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str


@attrs.frozen(kw_only=True)
class DropTransport:
    """The network abruptly breaks ``client``'s transport; both ends notice at once.

    Frames in flight on it are lost.  The client resumes at once, within the grace period.
    With ``sent_arrive`` the frames the client already sent still reach the server (its socket
    had flushed them), and only those to the client are lost: a frame applied whose ACK is
    lost is resent on the new transport, a duplicate the server must drop (RTN19a).
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    sent_arrive: bool = False


@attrs.frozen(kw_only=True)
class HalfOpen:
    """``client``'s transport stops delivering, both ways, without closing.

    Nothing sent on it arrives any more.  The server's end breaks ``breaks_after`` ms later,
    as a TCP timeout would; the client finds out from its idle timer (RTN23a: no frame for
    maxIdleInterval plus its request timeout), then resumes.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    breaks_after: int = attrs.field(validator=_non_negative)


@attrs.frozen(kw_only=True)
class Partition:
    """``client`` loses the network for ``duration`` ms.

    The current transport breaks (frames in flight are lost) and the server notices at once.
    Connection attempts fail until the partition ends.  With ``silent`` the client is not told:
    it finds out from its idle timer (no HEARTBEAT for maxIdleInterval plus its request
    timeout), later than the server, so a partition ending near the connectionStateTtl gives
    a resume the server has forgotten (a new connectionId and error 80008).
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    duration: int = attrs.field(validator=_positive)
    silent: bool = False


@attrs.frozen(kw_only=True)
class Resync:
    """The server sends a fresh SYNC of ``room`` to every presence subscriber (RTP18).

    With ``restart_after`` it starts another one that many ms later, which restarts the
    first midway when its pages are still going out (RTP18a: a new sync id).
    """

    at: int = attrs.field(validator=_non_negative)
    room: str
    restart_after: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_positive)
    )


@attrs.frozen(kw_only=True)
class ServerDetach:
    """The server detaches ``client`` from ``room`` (a DETACHED it did not ask for).

    The server removes the connection's members there.  The client attaches again at once
    (RTL13a) and re-enters them (RTP17i).
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str


@attrs.frozen(kw_only=True)
class ChannelFailure:
    """The server sends ``client`` a channel ERROR for ``room``, which fails it (RTL14).

    The server removes the connection's members there, and the client's room drops its members
    (RTP5a).  The application attaches the room again ``reattach_after`` ms later; nobody is
    re-entered.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    room: str
    reattach_after: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class ConnectionFailure:
    """The server sends ``client`` a connection ERROR and closes its transport (RTN15i).

    The connection and its rooms fail (RTL3a) and the server removes its members at once.  The
    application connects again ``reconnect_after`` ms later and attaches the rooms it had.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    reconnect_after: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class Close:
    """``client`` closes its connection (RTN12), then connects again ``reopen_after`` ms later.

    Closing detaches its rooms (RTL3b) and the server removes its members at once.  On
    reopening it attaches again the rooms that were attached or attaching when it closed.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    reopen_after: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class Restart:
    """``client``'s process dies, and a new one starts ``down_for`` ms later.

    The old process's transport breaks and the server notices at once; its queued and
    unacknowledged operations die with it.  The new process builds a fresh
    :class:`~presence_core.Connection` from the old one's recovery key (RTN16), connects and
    attaches the rooms the old one had attached.  Recovered within the grace period, the
    connection keeps its id and its members, and the peers see nothing.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    down_for: int = attrs.field(validator=_positive)


@attrs.frozen(kw_only=True)
class ServerRestart:
    """The server restarts and loses all its state.

    Every transport breaks (each client notices at once) and a new server takes over.  Every
    resume fails (80008), each client gets a new connection and re-enters its members (RTP17i).
    """

    at: int = attrs.field(validator=_non_negative)


@attrs.frozen(kw_only=True)
class Lag:
    """For ``duration`` ms, frames to and from ``client`` take a heavy-tailed extra latency.

    Each frame's extra delay is ``scale`` times a Pareto draw (shape 1.5, so most are short and
    a few are many times longer), capped at a minute.  Frames still never overtake each other
    on a link; a long one may make either end time out and reconnect.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    duration: int = attrs.field(validator=_positive)
    scale: int = attrs.field(validator=_positive)


def _nonzero(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value == 0:
        raise UsageError(f"{attribute.name} must be a non-zero int of ms, got {value!r}")


@attrs.frozen(kw_only=True)
class ClockStep:
    """``client``'s clock steps by ``step`` ms (negative: backwards), as an NTP correction does.

    From then on every ``now`` the client is given is off by ``step`` more.  A step backwards
    makes its time stand still until real time catches up; a step forwards may fire its timers
    early.
    """

    at: int = attrs.field(validator=_non_negative)
    client: str
    step: int = attrs.field(validator=_nonzero)


#: A user operation in a schedule.
OperationEvent: TypeAlias = Enter | Update | Leave | Attach | Detach
#: A network, client-process or server fault in a schedule.
FaultEvent: TypeAlias = (
    DropTransport
    | HalfOpen
    | Partition
    | Resync
    | ServerDetach
    | ChannelFailure
    | ConnectionFailure
    | Close
    | Restart
    | ServerRestart
    | Lag
    | ClockStep
)
#: Anything a schedule may hold.
ScheduleEvent: TypeAlias = OperationEvent | FaultEvent
