"""What the server hands back: commands, outputs, connection snapshots, and refusal frames.

Every collaborator of :class:`~presence_core.server.Server` appends :data:`ServerCommand`
values to one list per call, which the facade freezes into a :class:`ServerOutput`.  A frame
the server refuses is answered with the ERROR or NACK built here, never with an exception that
reaches the adapter: :class:`Reject` carries the error from where a check fails to the handler
that answers.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import Final, TypeAlias

import attrs

from presence_core._wire import ErrorInfo, ProtocolAction, ProtocolMessage

__all__ = [
    "Deliver",
    "Disconnect",
    "ServerCommand",
    "ServerOutput",
    "ServerConnectionState",
    "ServerConnectionInfo",
]

#: Any hashable value the adapter uses to name a transport (an int, a string, a socket id).
TransportId: TypeAlias = Hashable


@attrs.frozen(kw_only=True)
class Deliver:
    """Send ``message`` to every transport in ``transport_ids``, in this order.

    A broadcast is one Deliver, so the adapter encodes the frame once.
    """

    transport_ids: tuple[TransportId, ...]
    message: ProtocolMessage


@attrs.frozen(kw_only=True)
class Disconnect:
    """Close this transport (after the frames delivered before this command).

    The adapter still reports its end with :meth:`Server.transport_closed`.
    """

    transport_id: TransportId
    reason: ErrorInfo | None = None


ServerCommand: TypeAlias = Deliver | Disconnect


@attrs.frozen
class ServerOutput:
    """Everything one server call caused: commands to run in order."""

    commands: tuple[ServerCommand, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.commands)

    def messages_for(self, transport_id: TransportId) -> tuple[ProtocolMessage, ...]:
        """Return the frames delivered to ``transport_id``, in order (a test helper)."""
        return tuple(
            command.message
            for command in self.commands
            if isinstance(command, Deliver) and transport_id in command.transport_ids
        )

    def disconnected(self) -> tuple[TransportId, ...]:
        """Return the transports this output tells the adapter to close, in order."""
        return tuple(
            command.transport_id for command in self.commands if isinstance(command, Disconnect)
        )


EMPTY_OUTPUT: Final = ServerOutput()


class ServerConnectionState(enum.Enum):
    """Where a connection is in its server-side life."""

    #: It has a live transport.
    CONNECTED = "connected"
    #: Its transport is gone and the grace period runs; its members are still present.
    DISCONNECTED = "disconnected"
    #: The grace period is over (members left, attachments dropped); still resumable.
    SUSPENDED = "suspended"


@attrs.frozen(kw_only=True)
class ServerConnectionInfo:
    """A snapshot of one connection, as listed by :meth:`Server.connections`."""

    connection_id: str
    client_id: str | None
    state: ServerConnectionState
    transport_id: TransportId | None
    #: Attached channels, in attach order.
    channels: tuple[str, ...]
    #: A recovered connection's channels that its client has not attached again are detached
    #: at this time (RTN16); ``None`` when no such hold runs.
    holding_until: int | None = None


class Reject(Exception):
    """A frame is refused with this error (NACK or channel ERROR); never leaves the server."""

    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(error.message)
        self.error = error


def error(code: int, status_code: int, message: str) -> ErrorInfo:
    """An Ably error: ``code`` (such as 40160) with its HTTP-like ``status_code``."""
    return ErrorInfo(code=code, status_code=status_code, message=message)


def error_frame(info: ErrorInfo, channel: str | None = None) -> ProtocolMessage:
    """An ERROR frame; naming a channel fails only that channel, not the connection."""
    return ProtocolMessage(action=ProtocolAction.ERROR, channel=channel, error=info)


def no_channel(tid: TransportId, verb: str) -> Deliver:
    """The ERROR answering a channel operation that names no channel."""
    return Deliver(
        transport_ids=(tid,), message=error_frame(error(40000, 400, f"{verb} without a channel"))
    )
