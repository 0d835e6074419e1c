"""The outbox: a connection's numbered PRESENCE frames, from a room's SendPresence to its ACK.

The rules of outgoing presence frames, applied here and nowhere else:

* **Numbering (RTN7b).**  A frame gets the next ``msgSerial`` when it is sent; serials start
  from 0 on each connection.
* **Pending (RTN7a).**  A sent frame stays pending until an ACK or NACK covers it: one whose
  ``msgSerial`` is at most the frame's and whose ``msgSerial + count`` is above it.  An ACK for
  frames already settled covers nothing.
* **Resend (RTN19a).**  On a new transport every pending frame goes out again, in serial order:
  with its serial when the resume kept the connection, so the server can drop a copy it has
  already applied; renumbered from 0 when the connection is new (RTN15c7).
* **Holding (RTL3d2, RTP16a).**  While there is no usable transport, frames are held per
  channel, in the order they were issued, until the caller releases them to submit or fail
  (:mod:`presence_core._routing` says when).
* **Failing (RTN7e).**  When the connection gives up, every pending frame and then every held
  frame fails.
* **The gate** says what a submitted frame meets: *open* (CONNECTED) numbers and sends it,
  *holding* keeps it, *refusing* fails it at once with the gate's error.

The outbox knows channels only by name and never calls a room: it hands back the frames whose
operations are to be settled, and the caller settles them.
"""

from __future__ import annotations

import attrs

from presence_core._output import Command, Operation, Send
from presence_core._wire import ErrorInfo, ProtocolMessage

__all__: list[str] = []


class Frame:
    """A room's PRESENCE frame, kept without a msgSerial, and the operations its ACK settles."""

    __slots__ = ("channel", "message", "operations")

    def __init__(
        self, channel: str, message: ProtocolMessage, operations: tuple[Operation, ...]
    ) -> None:
        self.channel = channel
        self.message = message
        self.operations = operations


class Outbox:
    """Numbered, pending and held PRESENCE frames of one connection.  See the module docs.

    ``is_open``, ``refusal`` and ``holding`` are read by the caller on every room Output, so
    they are plain attributes; only the outbox's own methods change them.
    """

    __slots__ = ("_pending", "_queues", "_serial", "holding", "is_open", "refusal")

    def __init__(self) -> None:
        self._serial = 0
        # Keyed by msgSerial; insertion order is serial order, since serials only grow and a
        # renumbering keeps the order.
        self._pending: dict[int, Frame] = {}
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

    # -- frames in --------------------------------------------------------------------------
    def add_channel(self, channel: str) -> None:
        """Give ``channel`` its place in :meth:`drain` and :meth:`held_ids` (rooms' order)."""
        self._queues.setdefault(channel, [])

    def submit(self, frame: Frame, commands: list[Command]) -> ErrorInfo | None:
        """Send, hold or refuse ``frame``, as the gate says.

        When open, the numbered frame is appended to ``commands`` as a :class:`Send`.  Returns
        the error to fail the frame's operations with when the gate refuses it, else ``None``.
        """
        if self.is_open:
            serial = self._serial
            self._serial = serial + 1
            self._pending[serial] = frame
            commands.append(Send(message=attrs.evolve(frame.message, msg_serial=serial)))
            return None
        if self.refusal is None:
            self._queues.setdefault(frame.channel, []).append(frame)
            self.holding += 1
        return self.refusal

    def release(self, channel: str) -> list[Frame]:
        """Take the frames held for ``channel``, oldest first, to submit or fail them."""
        frames = self._queues.get(channel)
        if not frames:
            return []
        self._queues[channel] = []
        self.holding -= len(frames)
        return frames

    # -- frames out -------------------------------------------------------------------------
    def settle(self, serial: int, count: int) -> list[Frame]:
        """Take the pending frames an ACK or NACK of ``serial`` and ``count`` covers."""
        pending = self._pending
        if count == 1:  # the usual ACK: one frame
            frame = pending.pop(serial, None)
            return [] if frame is None else [frame]
        end = serial + count
        if count <= len(pending):
            covered = [s for s in range(serial, end) if s in pending]
        else:  # a wide range (count is the peer's number): look only at what is pending
            covered = [s for s in pending if serial <= s < end]
        return [pending.pop(s) for s in covered]

    def restart(self) -> None:
        """Renumber the pending frames from 0, in order, for a new connection (RTN15c7)."""
        self._pending = dict(enumerate(self._pending.values()))
        self._serial = len(self._pending)

    def resend(self) -> list[Send]:
        """The pending frames to send again on a new transport, in serial order (RTN19a)."""
        return [
            Send(message=attrs.evolve(frame.message, msg_serial=serial))
            for serial, frame in self._pending.items()
        ]

    def drain(self) -> list[Frame]:
        """Take every frame, pending ones in serial order, then held ones by channel (RTN7e)."""
        frames = list(self._pending.values())
        self._pending = {}
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

    def held_ids(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """``(channel, operation ids)`` of every held frame, by channel, oldest first."""
        return tuple(
            (channel, tuple(op.id for op in frame.operations))
            for channel, queue in self._queues.items()
            for frame in queue
        )
