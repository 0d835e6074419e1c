"""Connection recovery (RTN16): a new Connection carrying on an old one's connection.

The rules are in the module docs of :mod:`presence_core._recovery` and
:mod:`presence_core._routing`; each test is named after the rule it pins.
"""

from __future__ import annotations

import json

import attrs
import pytest

from presence_core import (
    ChannelState,
    Connection,
    ConnectionState,
    ConnectionStateChanged,
    ErrorInfo,
    ProtocolAction,
    ProtocolMessage,
)
from tests.connection_support import lost, receive
from tests.test_connection import (
    KEY,
    OTHER,
    ROOM,
    TTL,
    attached,
    connected,
    numbered,
    open_params,
    sent,
    up,
)

FAILED_RECOVER = ErrorInfo(code=80008, status_code=400, message="Unable to recover connection")


def attached_at(serial: str, channel: str = ROOM) -> ProtocolMessage:
    return attrs.evolve(attached(channel), channel_serial=serial)


def old_connection() -> Connection:
    """Connected as C1, ROOM attached at serial ``s@7`` with one enter sent (msgSerial 0)."""
    c = up()
    c.attach(ROOM, now=1_000)
    receive(c, attached_at("s@7"), now=1_000)
    c.enter(ROOM, {"status": "hi"}, now=1_100)
    c.attach(OTHER, now=1_100)  # attaching: not in the key
    return c


def recovered(key: str | None) -> Connection:
    return Connection(key=KEY, client_id="alice", recover=key)


def has_key(c: Connection) -> bool:
    return c.recovery_key is not None


def attach_serial(c: Connection, channel: str, now: int) -> str | None:
    (frame,) = [m for m in sent(c.attach(channel, now=now)) if m.action == ProtocolAction.ATTACH]
    return frame.channel_serial


def test_RTN16g_recovery_key_holds_the_key_msg_serial_and_attached_rooms_serials() -> None:
    key = old_connection().recovery_key
    assert key is not None
    assert json.loads(key) == {
        "connectionKey": "key-C1",
        "msgSerial": 1,
        "channelSerials": {ROOM: "s@7"},
    }


def test_RTN16g1_any_unicode_channel_name_survives_the_key() -> None:
    name = "räum \u2603 \U0001f600::$chat"
    c = up()
    c.attach(name, now=1_000)
    receive(c, attached_at("s@1", name), now=1_000)
    key = c.recovery_key
    assert key is not None
    assert key.isascii()
    fresh = recovered(key)
    fresh.connect(now=2_000)
    receive(fresh, connected("C1"), now=2_000)
    assert attach_serial(fresh, name, 2_000) == "s@1"


def test_RTN16g2_no_recovery_key_without_a_connection_key_or_once_given_up() -> None:
    c = Connection(key=KEY, client_id="alice")
    assert not has_key(c)  # INITIALIZED
    c.connect(now=0)
    assert not has_key(c)  # CONNECTING, no connectionKey yet
    receive(c, connected("C1"), now=0)
    assert has_key(c)
    lost(c, now=10)
    assert has_key(c)  # resuming: the connection can still be recovered
    receive(c, connected("C1"), now=10)
    c.close(now=20)
    assert not has_key(c)  # CLOSING
    receive(c, ProtocolMessage(action=ProtocolAction.CLOSED), now=20)
    assert not has_key(c)  # CLOSED


def test_RTN16g2_no_recovery_key_when_suspended_or_failed() -> None:
    c = up()
    lost(c, now=2_000)
    lost(c, now=2_000)
    c.tick(now=2_000 + TTL)
    assert c.state is ConnectionState.SUSPENDED
    assert c.recovery_key is None
    c = up()
    error = ErrorInfo(code=40000, status_code=400, message="bad")
    receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=error), now=2_000)
    assert c.state is ConnectionState.FAILED
    assert c.recovery_key is None


def test_RTN16k_first_transport_sends_recover_and_later_ones_resume() -> None:
    c = recovered(old_connection().recovery_key)
    params = open_params(c.connect(now=5_000))
    assert params["recover"] == "key-C1"
    assert "resume" not in params
    receive(c, connected("C1", key="key-C1b"), now=5_000)
    params = open_params(lost(c, now=6_000))
    assert params["resume"] == "key-C1b"
    assert "recover" not in params


def test_RTN16f_recovered_connection_continues_the_msg_serial() -> None:
    c = recovered(old_connection().recovery_key)
    assert c.msg_serial == 1
    c.connect(now=5_000)
    receive(c, connected("C1"), now=5_000)
    c.attach(ROOM, now=5_000)
    receive(c, attached_at("s@8"), now=5_000)
    assert numbered(c.enter(ROOM, {"status": "back"}, now=5_100)) == [1]


def test_RTN16j_a_room_named_in_the_key_attaches_with_its_channel_serial() -> None:
    c = recovered(old_connection().recovery_key)
    c.connect(now=5_000)
    receive(c, connected("C1"), now=5_000)
    assert attach_serial(c, ROOM, 5_000) == "s@7"
    assert attach_serial(c, OTHER, 5_000) is None  # not in the key
    # Once ATTACHED the room sends its own serial (RTL15b), here the new one.
    receive(c, attached_at("s@9"), now=5_100)
    lost(c, now=6_000)
    out = receive(c, connected("C1"), now=6_000)
    (attach,) = [m for m in sent(out) if m.channel == ROOM]
    assert attach.channel_serial == "s@9"


def test_RTN16j_an_attach_made_before_connected_carries_the_serial_on_connected() -> None:
    c = recovered(old_connection().recovery_key)
    c.connect(now=5_000)
    c.enter(ROOM, {"status": "hi"}, now=5_000)  # implicit attach, sent on CONNECTED
    out = receive(c, connected("C1"), now=5_100)
    (attach,) = [m for m in sent(out) if m.action == ProtocolAction.ATTACH]
    assert attach.channel_serial == "s@7"


def test_RTN16j_a_detached_room_forgets_the_recovered_serial() -> None:
    c = recovered(old_connection().recovery_key)
    c.connect(now=5_000)
    receive(c, connected("C1"), now=5_000)
    c.attach(ROOM, now=5_000)
    c.detach(ROOM, now=5_000)
    receive(c, ProtocolMessage(action=ProtocolAction.DETACHED, channel=ROOM), now=5_000)
    assert c.room(ROOM).state is ChannelState.DETACHED
    assert attach_serial(c, ROOM, 5_100) is None  # RTL15b2


def test_RTN16l_failed_recover_restarts_the_msg_serial_like_a_failed_resume() -> None:
    c = recovered(old_connection().recovery_key)
    c.connect(now=5_000)
    out = receive(c, connected("C9", error=FAILED_RECOVER), now=5_000)
    assert c.state is ConnectionState.CONNECTED
    assert c.error_reason == FAILED_RECOVER
    assert out.events[0] == ConnectionStateChanged(
        previous=ConnectionState.CONNECTING,
        current=ConnectionState.CONNECTED,
        reason=FAILED_RECOVER,
    )
    assert c.msg_serial == 0  # RTN15c7
    c.attach(ROOM, now=5_000)
    receive(c, attached(), now=5_000)
    assert numbered(c.enter(ROOM, now=5_100)) == [0]


@pytest.mark.parametrize(
    "key",
    [
        "",
        "not json",
        "[]",
        '{"msgSerial": 1, "channelSerials": {}}',
        '{"connectionKey": "", "msgSerial": 1, "channelSerials": {}}',
        '{"connectionKey": "k", "msgSerial": -1, "channelSerials": {}}',
        '{"connectionKey": "k", "msgSerial": true, "channelSerials": {}}',
        '{"connectionKey": "k", "msgSerial": 1.5, "channelSerials": {}}',
        '{"connectionKey": "k", "msgSerial": 1, "channelSerials": []}',
        '{"connectionKey": "k", "msgSerial": 1, "channelSerials": {"r": 3}}',
        '{"connectionKey": "k", "msgSerial": 1, "channelSerials": {"": "s"}}',
        "[" * 100_000,
    ],
)
def test_RTN16f1_an_unreadable_key_connects_as_without_one(key: str) -> None:
    c = recovered(key)
    assert c.msg_serial == 0
    params = open_params(c.connect(now=0))
    assert "recover" not in params
    assert params == open_params(Connection(key=KEY, client_id="alice").connect(now=0))
