"""The Connection's rules for frames out of place and for the retry cycle's end.

Each test names the rule it checks: a frame the current state cannot use is ignored with a
FrameIgnored event and changes nothing but the clock; a malformed one raises ProtocolError and
changes nothing at all.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from presence_core import (
    CloseTransport,
    Connection,
    ConnectionDetails,
    ConnectionState,
    ConnectionStateChanged,
    Flag,
    FrameIgnored,
    OpenTransport,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    Send,
)
from tests.connection_support import lost, receive

KEY = "app.key:secret"
ROOM = "room1::$chat"
T0 = 1_000_000


def connected(
    *, client_id: str | None = "alice", ttl: int = 120_000, rate: int | None = None
) -> ProtocolMessage:
    details = ConnectionDetails(
        client_id=client_id,
        connection_key="k1",
        max_idle_interval=15_000,
        connection_state_ttl=ttl,
        max_inbound_rate=rate,
    )
    return ProtocolMessage(
        action=ProtocolAction.CONNECTED, connection_id="C1", connection_details=details
    )


def connecting() -> Connection:
    c = Connection(key=KEY, client_id="alice")
    c.connect(now=T0)
    return c


def assert_ignored_changing_only_the_clock(
    c: Connection, frame: ProtocolMessage, reason: str, now: int
) -> None:
    before = c.snapshot()
    out = receive(c, frame, now=now)
    assert out.events == (FrameIgnored(message=frame, reason=reason),)
    assert out.commands == ()
    assert c.snapshot() == attrs.evolve(before, now=now)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ProtocolMessage(action=ProtocolAction.ACK, msg_serial=0, count=1), "ACK/NACK"),
        (ProtocolMessage(action=ProtocolAction.ATTACHED, channel=ROOM), "channel frame"),
    ],
)
def test_frames_that_need_a_connection_are_ignored_while_connecting(
    frame: ProtocolMessage, reason: str
) -> None:
    assert_ignored_changing_only_the_clock(
        connecting(), frame, f"{reason} while connecting", T0 + 5
    )


def test_closed_while_connecting_is_ignored() -> None:
    # Only a CLOSE we sent can be answered by CLOSED; while connecting we sent none.
    frame = ProtocolMessage(action=ProtocolAction.CLOSED)
    assert_ignored_changing_only_the_clock(connecting(), frame, "CLOSED while connecting", T0 + 5)


def test_connected_while_closing_is_ignored() -> None:
    c = connecting()
    receive(c, connected(), now=T0)
    c.close(now=T0 + 1)
    assert c.state is ConnectionState.CLOSING
    assert_ignored_changing_only_the_clock(c, connected(), "CONNECTED while closing", T0 + 2)


def test_disconnected_while_closing_completes_the_close() -> None:
    """RTN12: a close in progress ends CLOSED whichever way the transport goes."""
    c = connecting()
    receive(c, connected(), now=T0)
    c.close(now=T0 + 1)
    out = receive(c, ProtocolMessage(action=ProtocolAction.DISCONNECTED), now=T0 + 2)
    assert out.commands == (CloseTransport(reason=None),)
    assert out.events == (
        ConnectionStateChanged(
            previous=ConnectionState.CLOSING, current=ConnectionState.CLOSED, reason=None
        ),
    )
    assert c.state is ConnectionState.CLOSED


def test_presence_with_a_negative_msg_serial_is_refused_and_changes_nothing() -> None:
    c = connecting()
    receive(c, connected(), now=T0)
    c.attach(ROOM, now=T0)
    receive(c, ProtocolMessage(action=ProtocolAction.ATTACHED, channel=ROOM, flags=0xF0000), now=T0)
    before = c.snapshot()
    frame = ProtocolMessage(action=ProtocolAction.PRESENCE, channel=ROOM, msg_serial=-1)
    with pytest.raises(ProtocolError) as refused:
        receive(c, frame, now=T0 + 5)
    assert refused.value.path == "msgSerial"
    assert c.snapshot() == before


def test_presence_for_a_channel_without_a_room_is_ignored() -> None:
    c = connecting()
    receive(c, connected(), now=T0)
    frame = ProtocolMessage(action=ProtocolAction.PRESENCE, channel="elsewhere", presence=())
    out = receive(c, frame, now=T0 + 5)
    assert out.events == (FrameIgnored(message=frame, reason="unknown channel 'elsewhere'"),)


def test_connected_without_a_client_id_leaves_the_connection_unidentified() -> None:
    c = Connection(key=KEY)
    c.connect(now=T0)
    receive(c, connected(client_id=None), now=T0)
    assert c.state is ConnectionState.CONNECTED
    assert c.client_id is None


def test_an_attempt_failing_after_the_ttl_suspends_at_once() -> None:
    """RTN14e: once connectionStateTtl has passed since the loss, a failed attempt suspends."""
    c = connecting()
    receive(c, connected(ttl=5_000), now=T0)
    lost(c, now=T0 + 100)  # DISCONNECTED, and an immediate resume attempt (RTN15a)
    assert c.state is ConnectionState.CONNECTING
    out = lost(c, now=T0 + 100 + 5_000)
    (event,) = out.events
    assert isinstance(event, ConnectionStateChanged)
    assert (event.previous, event.current) == (
        ConnectionState.CONNECTING,
        ConnectionState.SUSPENDED,
    )
    assert c.snapshot().state is ConnectionState.SUSPENDED
    assert out.commands == ()  # no new attempt until suspendedRetryTimeout


@pytest.mark.parametrize("acked", [0, 2])
def test_a_resend_held_back_by_the_rate_is_dropped_once_an_ack_settles_it(acked: int) -> None:
    """RTN19a with D10: resends wait for maxInboundRate, and an ACK that arrives first, for
    the frame at the head of the queue or one behind it, means it is never sent again."""
    c = connecting()
    limited = connected(rate=1)
    receive(c, limited, now=T0)
    c.attach(ROOM, now=T0)
    receive(c, ProtocolMessage(action=ProtocolAction.ATTACHED, channel=ROOM, flags=0xF0000), now=T0)
    for data in (1, 2, 3):  # one frame a second: serials 0, 1 and 2 by T0 + 2000
        c.update(ROOM, data, now=T0)
    c.tick(now=T0 + 1_000)
    c.tick(now=T0 + 2_000)
    assert [serial for serial, _, _ in c.snapshot().pending] == [0, 1, 2]
    lost(c, now=T0 + 2_001)
    receive(c, limited, now=T0 + 2_002)  # resumed: the three wait to be sent again
    resumed = int(Flag.RESUMED) | 0xF0000
    receive(
        c,
        ProtocolMessage(action=ProtocolAction.ATTACHED, channel=ROOM, flags=resumed),
        now=T0 + 2_002,
    )
    receive(
        c, ProtocolMessage(action=ProtocolAction.ACK, msg_serial=acked, count=1), now=T0 + 2_003
    )
    resent = [
        command.message.msg_serial
        for now in range(T0 + 3_000, T0 + 8_000, 500)
        for command in c.tick(now=now).commands
        if isinstance(command, Send)
    ]
    assert resent == [serial for serial in (0, 1, 2) if serial != acked]


def test_a_recovery_key_that_is_not_text_is_ignored() -> None:
    """RTN16f1: a key that cannot be read starts a fresh connection, with no recover param."""
    key: Any = b'{"connectionKey":"k1","msgSerial":3,"channelSerials":{}}'  # bytes, not text
    c = Connection(key=KEY, client_id="alice", recover=key)
    (command,) = c.connect(now=T0).commands
    assert isinstance(command, OpenTransport)
    assert "recover" not in command.params
    assert c.msg_serial == 0
