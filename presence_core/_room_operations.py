"""The room operations of a connection: each a room's PresenceSet call, made through it.

:class:`RoomOperations` gives :class:`~presence_core.Connection` its nine room operations,
channel first.  Each hands the matching :class:`~presence_core.PresenceSet` call to
``_room_call``, which the connection defines: it checks the connection state, makes the room
on first use and folds the room's Output into the connection's (see
:mod:`presence_core._routing`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from presence_core._output import Output
from presence_core._presence_set import PresenceSet

__all__: list[str] = []

#: A room operation: a PresenceSet method called with the room and ``now``.
RoomCall: TypeAlias = Callable[[PresenceSet, int], Output]


class RoomOperations:
    """The room operations of a connection, each forwarded to ``_room_call``."""

    __slots__ = ()

    if TYPE_CHECKING:
        # Declared for the type checker only: the class that mixes this in defines it.
        def _room_call(self, channel: str, now: int, call: RoomCall) -> Output: ...

    def attach(self, channel: str, *, now: int) -> Output:
        """Attach the room ``channel`` (created with default options if new)."""
        return self._room_call(channel, now, lambda ps, t: ps.attach(now=t))

    def detach(self, channel: str, *, now: int) -> Output:
        """Detach the room ``channel``."""
        return self._room_call(channel, now, lambda ps, t: ps.detach(now=t))

    def enter(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Enter the room's presence with the connection's clientId (RTP8)."""
        return self._room_call(channel, now, lambda ps, t: ps.enter(data, extras=extras, now=t))

    def update(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Update own presence data in the room (RTP9)."""
        return self._room_call(channel, now, lambda ps, t: ps.update(data, extras=extras, now=t))

    def leave(
        self, channel: str, data: Any = None, *, extras: dict[str, Any] | None = None, now: int
    ) -> Output:
        """Leave the room's presence (RTP10)."""
        return self._room_call(channel, now, lambda ps, t: ps.leave(data, extras=extras, now=t))

    def enter_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Enter on behalf of ``client_id`` (RTP14/RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.enter_client(client_id, data, extras=extras, now=t)
        )

    def update_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Update on behalf of ``client_id`` (RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.update_client(client_id, data, extras=extras, now=t)
        )

    def leave_client(
        self,
        channel: str,
        client_id: str,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Leave on behalf of ``client_id`` (RTP15)."""
        return self._room_call(
            channel, now, lambda ps, t: ps.leave_client(client_id, data, extras=extras, now=t)
        )

    def publish(
        self,
        channel: str,
        name: str | None,
        data: Any = None,
        *,
        extras: dict[str, Any] | None = None,
        now: int,
    ) -> Output:
        """Publish a MESSAGE on the room ``channel``, numbered with its presence (RTL6, D8).

        Returns the operation handle in ``Output.operation``; the ACK or NACK settles it with
        an :class:`~presence_core.OperationSucceeded` or :class:`~presence_core.OperationFailed`
        event.  The room must be attached, and attaches implicitly: see
        :meth:`PresenceSet.publish <presence_core.PresenceSet.publish>`.
        """
        return self._room_call(
            channel, now, lambda ps, t: ps.publish(name, data, extras=extras, now=t)
        )
