"""Transport identity: every OpenTransport names a transport, and input from any other is stale.

The rule is in the module docs of :mod:`presence_core._connection`; each test pins one part.
"""

from __future__ import annotations

import pytest

from presence_core import (
    CloseTransport,
    ConnectionState,
    FrameIgnored,
    OpenTransport,
    Output,
    ProtocolAction,
    ProtocolMessage,
)
from tests.connection_support import NO_TRANSPORT, lost, receive
from tests.test_connection import ROOM, attached, connected, new_connection, of_type, up


def opened(out: Output) -> list[int]:
    return [c.transport_id for c in out.commands if isinstance(c, OpenTransport)]


def test_transport_identity_ids_count_from_1_one_per_OpenTransport() -> None:
    c = new_connection()
    assert c.snapshot().transport_id is None
    assert opened(c.connect(now=0)) == [1]
    assert c.snapshot().transport_id == 1
    receive(c, connected(), now=1)
    assert opened(lost(c, now=2)) == [2]  # RTN15a: the resume attempt, at once
    assert c.snapshot().transport_id == 2
    out = lost(c, now=3)  # it fails: DISCONNECTED, no transport until the retry
    assert opened(out) == []
    assert c.snapshot().transport_id is None
    assert opened(c.tick(now=c.next_deadline() or 0)) == [3]


@pytest.mark.parametrize(
    "frame",
    [
        connected("C2"),
        ProtocolMessage(action=ProtocolAction.HEARTBEAT),
        ProtocolMessage(action=ProtocolAction.ACK, msg_serial=0, count=1),
        ProtocolMessage(action=ProtocolAction.DISCONNECTED),
        ProtocolMessage(action=ProtocolAction.CLOSED),
        ProtocolMessage(action=ProtocolAction.ERROR),
        attached(ROOM),
        ProtocolMessage(action=ProtocolAction.ACK),  # malformed (no msgSerial): not even read
    ],
    ids=lambda m: m.action.name,
)
def test_transport_identity_a_frame_from_an_old_transport_is_ignored_and_changes_nothing(
    frame: ProtocolMessage,
) -> None:
    c = up(now=1_000)
    c.attach(ROOM, now=1_000)
    lost(c, now=2_000)  # transport 1 is gone; transport 2 is opening
    before = c.snapshot()
    out = c.receive(frame, transport_id=1, now=50_000)
    (ignored,) = out.events
    assert isinstance(ignored, FrameIgnored)
    assert ignored.message is frame
    assert out == Output(events=(ignored,))
    assert c.snapshot() == before  # the clock included


def test_transport_identity_the_close_of_an_old_transport_is_an_empty_output() -> None:
    c = up(now=1_000)
    lost(c, now=2_000)
    receive(c, connected("C1"), now=2_001)  # resumed on transport 2
    before = c.snapshot()
    assert c.transport_closed(transport_id=1, now=9_000) == Output()  # late, out of order
    assert c.snapshot() == before
    assert c.state is ConnectionState.CONNECTED


def test_transport_identity_a_transport_the_reducer_closed_is_forgotten() -> None:
    c = up(now=1_000)
    out = c.tick(now=c.next_deadline() or 0)  # RTN23a: idle, so the reducer closes it
    assert of_type(out, CloseTransport)
    assert opened(out) == [2]
    before = c.snapshot()
    assert c.transport_closed(transport_id=1, now=40_000) == Output()
    heartbeat = ProtocolMessage(action=ProtocolAction.HEARTBEAT)
    assert of_type(c.receive(heartbeat, transport_id=1, now=40_000), FrameIgnored)
    assert c.snapshot() == before


def test_transport_identity_without_a_transport_every_id_is_stale() -> None:
    c = new_connection()
    c.connect(now=0)
    lost(c, now=1)  # DISCONNECTED: no transport
    before = c.snapshot()
    for tid in (NO_TRANSPORT, 1, 2, 99):
        assert c.transport_closed(transport_id=tid, now=5) == Output()
        assert of_type(c.receive(connected(), transport_id=tid, now=5), FrameIgnored)
    assert c.snapshot() == before


def test_transport_identity_CLOSING_keeps_the_transport_until_CLOSED() -> None:
    c = up(now=1_000)
    c.close(now=1_001)
    assert c.transport_id == 1
    out = c.receive(ProtocolMessage(action=ProtocolAction.CLOSED), transport_id=1, now=1_002)
    assert of_type(out, CloseTransport)
    assert c.state is ConnectionState.CLOSED
    assert c.transport_id is None
