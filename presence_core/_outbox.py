"""The outbox: a connection's numbered frames, from a room's SendPresence or SendMessage to the ACK.

The rules of outgoing PRESENCE and MESSAGE frames, applied here and nowhere else:

* **Numbering (RTN7b).**  A frame gets the next ``msgSerial`` when it is sent; serials start
  from 0 on each connection, or where the recovered one's stopped (RTN16f).  PRESENCE and
  MESSAGE frames share the one sequence.
* **Pending (RTN7a).**  A sent frame stays pending until an ACK or NACK covers it: one whose
  ``msgSerial`` is at most the frame's and whose ``msgSerial + count`` is above it.  An ACK for
  frames already settled covers nothing.
* **Resend (RTN19a).**  On a new transport every pending frame goes out again, in serial order:
  with its serial when the resume kept the connection, so the server can drop a copy it has
  already applied; renumbered from 0 when the connection is new (RTN15c7).  A renumbered frame
  loses the item ids stamped for the old connection (RTP17g1): a re-entry's id names a member
  of that connection, which the new one does not have.
* **The server's limits (D10).**  A frame whose items do not fit in one frame is split by
  ``maxMessageSize`` (the encoded frame), by 1,000 items, and by the rate budget below; each
  part settles its own operations.  Every presence item and every message counts once against
  the rate.  Frames go out, resends first and then in the order they
  were submitted, as fast as ``maxInboundRate`` allows: the rest wait for :meth:`pump` at
  :meth:`next_send_at`.
* **Holding (RTL3d2, RTP16a).**  While there is no usable transport, frames are held per
  channel, in the order they were issued, until the caller releases them to submit or fail
  (:mod:`presence_core._routing` says when).
* **Failing (RTN7e).**  When the connection gives up, every pending frame, then every frame
  waiting for the rate, then every held frame fails.
* **The gate** says what a submitted frame meets: *open* (CONNECTED) numbers and sends it,
  *holding* keeps it, *refusing* fails it at once with the gate's error.
* **The bound.**  The outbox keeps at most ``max_frames`` frames, pending, waiting and held
  together (each part of a split frame counts).  A frame submitted to a full outbox fails at
  once with :data:`OUTBOX_FULL` (42910) and changes nothing, so an application issuing
  operations faster than the server takes them is told so instead of growing without limit.

The outbox knows channels only by name and never calls a room: it hands back the frames whose
operations are to be settled, and the caller settles them.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from typing import Final, cast

import attrs

from presence_core._codec import encode_text
from presence_core._output import Command, Operation, Send
from presence_core._wire import (
    ConnectionDetails,
    ErrorInfo,
    Message,
    PresenceMessage,
    ProtocolMessage,
)

__all__: list[str] = []

#: The most items one frame may carry (the codec's limit, and Ably's).
MAX_ITEMS: Final = 1000
# What the numbering adds to an encoded frame: ``,"msgSerial":`` and up to 19 digits.
_SERIAL_BYTES: Final = 32
#: Frames one outbox keeps by default (see the module rules).  At the server's default rate
#: (50 a second, of which the client budgets 25) 10,000 frames take over six minutes to send,
#: longer than a connection stays resumable (2 min), so an application within the rate never
#: meets it; it caps the memory of a loop of operations or of a server that never ACKs.
MAX_QUEUED_FRAMES: Final = 10_000
#: What a frame submitted to a full outbox fails with: the rate error, as the server would
#: answer the same excess, which the application may retry once earlier frames are settled.
OUTBOX_FULL: Final = ErrorInfo(
    code=42910, status_code=429, message="Too many operations queued on this connection"
)

Item = PresenceMessage | Message


def _items(message: ProtocolMessage) -> tuple[Item, ...]:
    """The items a numbered frame carries: its presence items, or its messages."""
    if message.presence is not None:
        return message.presence
    return message.messages or ()


def _with_items(message: ProtocolMessage, items: tuple[Item, ...]) -> ProtocolMessage:
    """``message`` carrying ``items`` instead of its own (all of one kind, as in ``message``)."""
    if message.presence is not None:
        return attrs.evolve(message, presence=cast("tuple[PresenceMessage, ...]", items))
    return attrs.evolve(message, messages=cast("tuple[Message, ...]", items))


class Frame:
    """A room's numbered frame, its msgSerial once sent, and the operations its ACK settles."""

    __slots__ = ("channel", "message", "operations", "serial")

    def __init__(
        self, channel: str, message: ProtocolMessage, operations: tuple[Operation, ...]
    ) -> None:
        self.channel = channel
        self.message = message
        self.operations = operations
        #: The msgSerial it was sent with; ``None`` until it is sent.
        self.serial: int | None = None

    @property
    def size(self) -> int:
        """How many messages it counts against the rate: its items."""
        return max(1, len(_items(self.message)))


class RateBudget:
    """A token bucket that keeps a connection's sends within the server's ``maxInboundRate``.

    The server's bucket holds one second of its rate; this one holds half of that, so a frame
    that arrives early because the latency varied still finds the server's allowance (the
    margin covers half a second of variation).  Amounts are thousandths of a message.
    """

    __slots__ = ("_at", "_capacity", "_level", "_rate")

    def __init__(self) -> None:
        self._rate = 0  # messages per second; 0 is no limit
        self._capacity = 0
        self._level = 0
        self._at = 0

    @property
    def max_items(self) -> int:
        """The most items one frame may carry and still be affordable."""
        return self._capacity // 1000 if self._rate else MAX_ITEMS

    def configure(self, rate: int | None, t: int, *, fresh: bool) -> None:
        """Adopt ``rate`` (None or 0: no limit); a ``fresh`` connection starts with a full bucket.

        A resumed one keeps what it spent, as the server's bucket does, unless nothing was
        counted because no rate was known.
        """
        counted = self._rate
        self._rate = rate if rate is not None and rate > 0 else 0
        self._capacity = max(1, self._rate // 2) * 1000
        if fresh or not counted:
            self._level = self._capacity
        else:
            self._level = min(self._capacity, self._level_at(t))
        self._at = max(t, self._at)

    def ready_at(self, items: int) -> int:
        """The earliest time ``items`` messages are affordable (clamped to a full bucket)."""
        rate = self._rate
        if not rate:
            return self._at
        missing = min(items * 1000, self._capacity) - self._level
        if missing <= 0:
            return self._at
        return self._at - (-missing // rate)  # ceiling division

    def charge(self, items: int, t: int) -> None:
        """Spend ``items`` messages at ``t`` (affordable there, see :meth:`ready_at`)."""
        if self._rate:
            level = self._level_at(t) - min(items * 1000, self._capacity)
            self._level = max(0, level)
            self._at = max(t, self._at)

    def _level_at(self, t: int) -> int:
        return min(self._capacity, self._level + max(0, t - self._at) * self._rate)


class Outbox:
    """Numbered, pending, paced and held PRESENCE frames of one connection.  See the module docs.

    ``is_open``, ``refusal`` and ``holding`` are read by the caller on every room Output, so
    they are plain attributes; only the outbox's own methods change them.

    Args:
        max_frames: The most frames it keeps (see the module rules).
    """

    __slots__ = (
        "_budget",
        "_max_bytes",
        "_max_frames",
        "_new",
        "_pending",
        "_queues",
        "_serial",
        "_unsent",
        "holding",
        "is_open",
        "refusal",
    )

    def __init__(self, max_frames: int = MAX_QUEUED_FRAMES) -> None:
        self._max_frames = max_frames
        # Frames in ``_unsent`` not sent yet (serial None): the waiting part of the bound.
        self._new = 0
        self._serial = 0
        # Keyed by msgSerial; insertion order is serial order, since serials only grow and a
        # renumbering keeps the order.
        self._pending: dict[int, Frame] = {}
        # Frames past the gate that wait for the rate budget, in send order: resends of pending
        # frames (serial set) first, then new ones (serial None).
        self._unsent: deque[Frame] = deque()
        self._budget = RateBudget()
        self._max_bytes: int | None = None
        # One queue per channel, kept when empty so that channels stay in the order they were
        # added; failures and snapshots list them that way.
        self._queues: dict[str, list[Frame]] = {}
        #: How many frames are held, over all channels.
        self.holding = 0
        #: True when submitted frames are numbered and sent.
        self.is_open = False
        #: When not open: ``None`` while holding, else the error refused frames fail with.
        self.refusal: ErrorInfo | None = None

    @property
    def serial(self) -> int:
        """The msgSerial the next frame sent will get."""
        return self._serial

    @property
    def queued(self) -> int:
        """How many frames it keeps: pending, waiting for the rate, and held."""
        return len(self._pending) + self._new + self.holding

    def recover(self, serial: int) -> None:
        """Number frames from ``serial``, continuing a recovered connection (RTN16f)."""
        self._serial = serial

    # -- the gate ---------------------------------------------------------------------------
    def open(self) -> None:
        """Number and send submitted frames (the connection is CONNECTED)."""
        self.is_open = True
        self.refusal = None

    def hold(self) -> None:
        """Hold submitted frames until their channel is released (no usable transport)."""
        self.is_open = False
        self.refusal = None

    def refuse(self, error: ErrorInfo) -> None:
        """Fail submitted frames with ``error`` (the connection cannot send them any more)."""
        self.is_open = False
        self.refusal = error

    def configure(self, details: ConnectionDetails, t: int, *, fresh: bool) -> None:
        """Adopt the server's limits from a CONNECTED (``fresh``: a new connection id)."""
        size = details.max_message_size
        self._max_bytes = size if size is not None and size > 0 else None
        self._budget.configure(details.max_inbound_rate, t, fresh=fresh)

    # -- frames in --------------------------------------------------------------------------
    def add_channel(self, channel: str) -> None:
        """Give ``channel`` its place in :meth:`drain` and :meth:`held_ids` (rooms' order)."""
        self._queues.setdefault(channel, [])

    def submit(self, frame: Frame, commands: list[Command], now: int = 0) -> ErrorInfo | None:
        """Send, hold or refuse ``frame``, as the gate says.

        When open, the frame is split to the server's limits and each part appended to
        ``commands`` as a numbered :class:`Send` if the rate allows it at ``now``, else queued
        for :meth:`pump`.  Returns the error to fail the frame's operations with when the gate
        refuses it or the outbox is full (:data:`OUTBOX_FULL`), else ``None``.
        """
        if not self.is_open and self.refusal is not None:
            return self.refusal
        if self.queued >= self._max_frames:
            return OUTBOX_FULL
        if self.is_open:
            items = _items(frame.message)
            parts = self._split(frame, items) if len(items) > 1 else [frame]
            self._unsent.extend(parts)
            self._new += len(parts)
            self.pump(now, commands)
            return None
        self._queues.setdefault(frame.channel, []).append(frame)
        self.holding += 1
        return None

    def release(self, channel: str) -> list[Frame]:
        """Take the frames held for ``channel``, oldest first, to submit or fail them."""
        frames = self._queues.get(channel)
        if not frames:
            return []
        self._queues[channel] = []
        self.holding -= len(frames)
        return frames

    # -- sending ----------------------------------------------------------------------------
    def next_send_at(self) -> int | None:
        """When :meth:`pump` can send the next waiting frame, or ``None`` if none waits."""
        if not self.is_open or not self._unsent:
            return None
        return self._budget.ready_at(self._unsent[0].size)

    def pump_due(self, now: int, commands: list[Command]) -> bool:
        """:meth:`pump` if a waiting frame's time has come; return whether it had."""
        due = self.next_send_at()
        if due is None or due > now:
            return False
        self.pump(now, commands)
        return True

    def pump(self, now: int, commands: list[Command]) -> None:
        """Send, in order, every waiting frame the rate budget affords at ``now``."""
        if not self.is_open:
            return
        unsent, pending, budget = self._unsent, self._pending, self._budget
        while unsent:
            frame = unsent[0]
            serial = frame.serial
            if serial is not None and pending.get(serial) is not frame:
                unsent.popleft()  # settled before its resend went out
                continue
            size = frame.size
            if budget.ready_at(size) > now:
                return
            unsent.popleft()
            budget.charge(size, now)
            if serial is None:
                frame.serial = serial = self._serial
                self._serial = serial + 1
                pending[serial] = frame
                self._new -= 1
            commands.append(Send(message=attrs.evolve(frame.message, msg_serial=serial)))

    def _split(self, frame: Frame, items: tuple[Item, ...]) -> list[Frame]:
        """``frame`` as parts within the size, item and rate limits, each with its operations."""
        operations = frame.operations
        if len(operations) != len(items):
            return [frame]  # not one operation per item: it cannot be settled in parts
        message = frame.message
        cap = min(MAX_ITEMS, self._budget.max_items)
        limit = self._max_bytes
        if len(items) <= cap and (
            limit is None or _SERIAL_BYTES + len(encode_text(message)) <= limit
        ):
            return [frame]
        bare = len(encode_text(_with_items(message, ())))
        base = _SERIAL_BYTES + bare
        cuts = [0]
        size = base
        for index, item in enumerate(items):
            # The bytes the item adds to the encoded frame, its separating comma included.
            grow = (
                0 if limit is None else len(encode_text(_with_items(message, (item,)))) - bare + 1
            )
            start = cuts[-1]
            full = index - start >= cap or (limit is not None and size + grow > limit)
            if full and index > start:  # an item too big on its own still gets a frame
                cuts.append(index)
                size = base
            size += grow
        cuts.append(len(items))
        return [
            Frame(frame.channel, _with_items(message, items[a:b]), operations[a:b])
            for a, b in itertools.pairwise(cuts)
        ]

    # -- frames out -------------------------------------------------------------------------
    def settle(self, serial: int, count: int) -> list[Frame]:
        """Take the pending frames an ACK or NACK of ``serial`` and ``count`` covers."""
        pending = self._pending
        if count == 1:  # the usual ACK: one frame
            frame = pending.pop(serial, None)
            frames = [] if frame is None else [frame]
        else:
            end = serial + count
            if count <= len(pending):
                covered = [s for s in range(serial, end) if s in pending]
            else:  # a wide range (count is the peer's number): look only at what is pending
                covered = [s for s in pending if serial <= s < end]
            frames = [pending.pop(s) for s in covered]
        unsent = self._unsent
        # A settled resend at the head would make next_send_at wait for its size.
        while unsent and unsent[0].serial is not None and unsent[0].serial not in pending:
            unsent.popleft()
        return frames

    def restart(self, old_connection_id: str | None = None) -> None:
        """Renumber the pending frames from 0, in order, for a new connection (RTN15c7).

        Items of pending and waiting frames lose an id stamped for ``old_connection_id``.
        """
        unsent = [frame for frame in self._unsent if frame.serial is None]
        self._unsent = deque(unsent)
        self._pending = dict(enumerate(self._pending.values()))
        for serial, frame in self._pending.items():
            frame.serial = serial
        self._serial = len(self._pending)
        if old_connection_id is not None:
            prefix = f"{old_connection_id}:"
            for frame in (*self._pending.values(), *unsent):
                _forget_ids(frame, prefix)

    def resend(self, now: int = 0) -> list[Send]:
        """Queue the pending frames to go again on a new transport, in serial order (RTN19a).

        Returns those the rate budget lets out at ``now``; the rest go out through :meth:`pump`,
        before any frame not sent yet.
        """
        waiting = [frame for frame in self._unsent if frame.serial is None]
        self._unsent = deque((*self._pending.values(), *waiting))
        commands: list[Command] = []
        self.pump(now, commands)
        return [c for c in commands if isinstance(c, Send)]

    def drain(self) -> list[Frame]:
        """Take every frame: pending ones in serial order, waiting ones, then held ones (RTN7e)."""
        frames = list(self._pending.values())
        self._pending = {}
        frames.extend(frame for frame in self._unsent if frame.serial is None)
        self._unsent = deque()
        self._new = 0
        for channel, queue in self._queues.items():
            if queue:
                frames.extend(queue)
                self._queues[channel] = []
        self.holding = 0
        return frames

    # -- queries ----------------------------------------------------------------------------
    def pending_ids(self) -> tuple[tuple[int, str, tuple[int, ...]], ...]:
        """``(msgSerial, channel, operation ids)`` of every pending frame, in serial order."""
        return tuple(
            (serial, frame.channel, tuple(op.id for op in frame.operations))
            for serial, frame in self._pending.items()
        )

    def waiting_ids(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(channel, operation ids)`` of every frame waiting for the rate, not sent yet."""
        return _ids(frame for frame in self._unsent if frame.serial is None)

    def held_ids(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(channel, operation ids)`` of every held frame, by channel, oldest first."""
        return _ids(frame for queue in self._queues.values() for frame in queue)


def _ids(frames: Iterable[Frame]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    return tuple((frame.channel, tuple(op.id for op in frame.operations)) for frame in frames)


def _forget_ids(frame: Frame, prefix: str) -> None:
    """Drop the ids ``frame``'s items were given for the connection ``prefix`` names."""
    items = frame.message.presence
    if not items or not any(item.id is not None and item.id.startswith(prefix) for item in items):
        return
    kept = tuple(
        attrs.evolve(item, id=None) if item.id is not None and item.id.startswith(prefix) else item
        for item in items
    )
    frame.message = attrs.evolve(frame.message, presence=kept)
