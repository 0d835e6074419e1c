"""The PresenceSet reducer: Ably realtime presence for one channel (room).

API CONTRACT (fixed; the connection reducer, the simulator and outside conformance suites
drive PresenceSet exactly through these entry points):

* Frames for this channel: ``receive(message, now=...)`` for ATTACHED, DETACHED, PRESENCE,
  SYNC and ERROR naming the channel.  Other actions are ignored (a ``FrameIgnored`` event).
* Non-frame inputs:
  - ``set_connection(connection_id, client_id=..., now=...)`` on every CONNECTED, including a
    new id after a failed resume;
  - ``set_channel_state(state, reason=..., now=...)`` for the local channel-state changes that
    connection states cause (ATTACHING, SUSPENDED, DETACHED, FAILED; RTL3).
* User operations: ``attach``, ``detach``, ``enter``, ``update``, ``leave``, ``enter_client``,
  ``update_client``, ``leave_client``.  Presence operations put their handle in
  ``Output.operation``; an ACK or NACK settles it later through ``acknowledge`` / ``reject``.
* Every call returns one frozen :class:`~presence_core.Output`.
* Queries: ``get``, ``is_user_present``, ``sync_complete``, ``state``, ``own_members``,
  ``snapshot``.

Outgoing PRESENCE frames are :class:`~presence_core.SendPresence` commands without a
``msg_serial``; whoever owns the connection numbers them and routes the ACK/NACK back.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from presence_core._output import ChannelState, Operation, Output
from presence_core._wire import (
    ChannelMode,
    ErrorInfo,
    PresenceAction,
    ProtocolMessage,
)

__all__ = ["RoomOptions", "PresenceMember", "PresenceSet", "PresenceSnapshot"]


@attrs.frozen(kw_only=True)
class RoomOptions:
    """Room options (decisions.md, "Room options and modes").

    ``enter`` is the permission to enter presence, ``subscribe`` the permission to receive
    presence events.  Both default to true and become explicit ATTACH mode flags.
    """

    enter: bool = True
    subscribe: bool = True

    @property
    def modes(self) -> ChannelMode:
        """The ATTACH mode flags: PUBLISH | SUBSCRIBE, plus PRESENCE and PRESENCE_SUBSCRIBE."""
        modes = ChannelMode.PUBLISH | ChannelMode.SUBSCRIBE
        if self.enter:
            modes |= ChannelMode.PRESENCE
        if self.subscribe:
            modes |= ChannelMode.PRESENCE_SUBSCRIBE
        return modes


@attrs.frozen(kw_only=True)
class PresenceMember:
    """A member as returned by :meth:`PresenceSet.get`: always action PRESENT."""

    action: PresenceAction
    client_id: str
    connection_id: str
    data: Any = None
    extras: dict[str, Any] | None = None
    #: Epoch ms of the message that last set this member.
    updated_at: int | None = None


@attrs.frozen(kw_only=True)
class PresenceSnapshot:
    """A comparable picture of a PresenceSet's whole state, for tests and debugging."""

    state: ChannelState
    connection_id: str | None
    client_id: str | None
    sync_complete: bool
    members: frozenset[Any]
    own_members: frozenset[Any]
    pending: tuple[Any, ...]
    extra: tuple[Any, ...] = ()


class PresenceSet:
    """Deterministic presence reducer for one channel.  See the module docstring."""

    def __init__(
        self,
        channel: str,
        *,
        client_id: str | None = None,
        options: RoomOptions | None = None,
    ) -> None:
        raise NotImplementedError

    # -- properties -------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        """The channel name."""
        raise NotImplementedError

    @property
    def state(self) -> ChannelState:
        """The channel state as this PresenceSet knows it."""
        raise NotImplementedError

    @property
    def sync_complete(self) -> bool:
        """RTP13: true when no sync is in progress."""
        raise NotImplementedError

    # -- inputs -----------------------------------------------------------------------------
    def receive(self, message: ProtocolMessage, *, now: int) -> Output:
        """Apply one frame for this channel.  Raises ProtocolError and changes nothing if bad."""
        raise NotImplementedError

    def set_connection(
        self, connection_id: str, *, client_id: str | None = None, now: int
    ) -> Output:
        """Record the current connection id (on every CONNECTED)."""
        raise NotImplementedError

    def set_channel_state(
        self, state: ChannelState, *, reason: ErrorInfo | None = None, now: int
    ) -> Output:
        """Apply a local channel-state change caused by the connection (RTL3)."""
        raise NotImplementedError

    def attach(self, *, now: int) -> Output:
        """Start attaching (sends ATTACH with the room's mode flags)."""
        raise NotImplementedError

    def detach(self, *, now: int) -> Output:
        """Start detaching (sends DETACH)."""
        raise NotImplementedError

    def enter(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Enter with the connection's clientId (RTP8)."""
        raise NotImplementedError

    def update(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Update own data (RTP9)."""
        raise NotImplementedError

    def leave(self, data: Any = None, *, extras: dict[str, Any] | None = None, now: int) -> Output:
        """Leave (RTP10)."""
        raise NotImplementedError

    def enter_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Enter on behalf of ``client_id`` (RTP14/RTP15)."""
        raise NotImplementedError

    def update_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Update on behalf of ``client_id`` (RTP15)."""
        raise NotImplementedError

    def leave_client(
        self, client_id: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Leave on behalf of ``client_id`` (RTP15)."""
        raise NotImplementedError

    def acknowledge(self, operations: Iterable[Operation], *, now: int) -> Output:
        """The frame carrying ``operations`` was ACKed: settle them as succeeded."""
        raise NotImplementedError

    def reject(self, operations: Iterable[Operation], error: ErrorInfo, *, now: int) -> Output:
        """The frame carrying ``operations`` was NACKed (or lost): settle them as failed."""
        raise NotImplementedError

    # -- queries ----------------------------------------------------------------------------
    def get(
        self, *, client_id: str | None = None, connection_id: str | None = None
    ) -> list[PresenceMember]:
        """Current members (never ABSENT), optionally filtered (RTP11c2/c3)."""
        raise NotImplementedError

    def is_user_present(self, client_id: str) -> bool:
        """Whether any connection has a member with this clientId."""
        raise NotImplementedError

    def snapshot(self) -> PresenceSnapshot:
        """A comparable picture of the whole state."""
        raise NotImplementedError
