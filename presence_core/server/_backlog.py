"""MESSAGE continuity across a resume (RTN15c6): the frames held for a connection.

RULES OF THIS MODULE

* A connection's channels are *held* from the moment its transport is lost (or it is resumed
  on a new one) until the client attaches each of them again.  While a channel is held, every
  MESSAGE frame that its subscription would have received is kept in the connection's
  :class:`Backlog` instead of being sent.  A client discards messages for a channel that is not
  ATTACHED (RTL17), and it re-attaches every channel after a resume, so sending them earlier,
  even on the new transport, would lose them.
* The re-ATTACHED of a held channel is followed by that channel's held frames, in the order
  they were published, and the channel is no longer held.
* A backlog is bounded per connection by :attr:`ServerConfig.resume_backlog_messages` frames
  and :attr:`ServerConfig.resume_backlog_bytes` bytes (the messages' sizes as
  ``max_message_size`` counts them).  A frame that does not fit breaks its channel's
  continuity: that channel's held frames are dropped, later ones are not kept, and its
  re-ATTACHED carries no RESUMED and error 90004, so the client knows it missed messages.  The
  connection itself keeps its id, and its other channels are unaffected.
* Detaching a held channel drops its frames; the end of the grace period drops the backlog
  (the attachments are gone, and a later resume re-attaches without RESUMED anyway).
* After a recover (RTN16), a channel still held a grace period later is detached, its members
  leaving: a recovering process knows only the channels its recovery key names, so one it has
  not attached again is one it would never detach.  A resuming client re-attaches at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import attrs

from presence_core._wire import ErrorInfo, ProtocolMessage
from presence_core.server._output import error
from presence_core.server._registry import Connection

__all__: list[str] = []


@attrs.define(eq=False)
class Backlog:
    """The MESSAGE frames held for one connection, and which channels they are held for."""

    #: Channels held (see the module rules).
    channels: set[str]
    #: (channel, frame, size), oldest first.
    frames: deque[tuple[str, ProtocolMessage, int]] = attrs.Factory(deque)
    #: Sum of the sizes in ``frames``.
    size: int = 0
    #: Held channels that lost a frame, so their continuity is broken.
    lost: set[str] = attrs.Factory(set)


def hold_all(conn: Connection) -> None:
    """Hold every channel ``conn`` is attached to; frames already held stay."""
    if not conn.channels:
        return
    if conn.backlog is None:
        conn.backlog = Backlog(set(conn.channels))
    else:
        conn.backlog.channels.update(conn.channels)


def hold(
    holders: Iterable[Connection],
    channel: str,
    frame: ProtocolMessage,
    size: int,
    *,
    max_frames: int,
    max_bytes: int,
) -> None:
    """Keep ``frame`` (published on ``channel``, ``size`` bytes) for each of ``holders``."""
    for conn in holders:
        backlog = conn.backlog
        if backlog is None or channel in backlog.lost:
            continue
        if len(backlog.frames) >= max_frames or backlog.size + size > max_bytes:
            _drop(backlog, channel)
            backlog.lost.add(channel)
            continue
        backlog.frames.append((channel, frame, size))
        backlog.size += size


def release(conn: Connection, channel: str) -> tuple[list[ProtocolMessage], ErrorInfo | None]:
    """Stop holding ``channel``; return its held frames, or the 90004 error if it lost any."""
    backlog = conn.backlog
    if backlog is None or channel not in backlog.channels:
        return [], None
    backlog.channels.discard(channel)
    frames = _drop(backlog, channel)
    lost = None
    if channel in backlog.lost:
        backlog.lost.discard(channel)
        lost = error(90004, 400, f"Unable to recover channel {channel!r}: message limit exceeded")
    if not backlog.channels:
        conn.backlog = None
    return frames, lost


def _drop(backlog: Backlog, channel: str) -> list[ProtocolMessage]:
    """Take ``channel``'s frames out of ``backlog``; return them, oldest first."""
    taken = [frame for name, frame, _ in backlog.frames if name == channel]
    if taken:
        kept = deque(entry for entry in backlog.frames if entry[0] != channel)
        backlog.frames = kept
        backlog.size = sum(entry[2] for entry in kept)
    return taken
