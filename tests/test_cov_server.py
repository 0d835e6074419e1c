"""Server rules that no other test states on its own: settings and credentials checks, the
server's initiatives on a connection without a transport, the bounds of one MESSAGE frame,
and the msgSerial dedup record's bound.

Each test is named after the rule it checks.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from presence_core import (
    ErrorInfo,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from presence_core.server import AccessToken, ApiKey, Server, ServerConfig
from tests.server_support import (
    KEY,
    T0,
    Client,
    attach,
    connect,
    make_server,
    member_view,
    presence,
    presence_items,
)

FAILED = ErrorInfo(code=80000, status_code=400, message="failed by the operator")


def message_frame(serial: int, *items: Message, channel: str = "r") -> ProtocolMessage:
    return ProtocolMessage(
        action=ProtocolAction.MESSAGE, channel=channel, msg_serial=serial, messages=items
    )


# --- settings and credentials --------------------------------------------------------------


def test_two_equal_access_tokens_are_refused() -> None:
    with pytest.raises(UsageError, match="two access tokens"):
        ServerConfig(tokens=(AccessToken(token="t"), AccessToken(token="t")))


@pytest.mark.parametrize(
    ("capability", "problem"),
    [
        (["room"], "must be a mapping"),
        ({"": ["*"]}, "must be a non-empty string"),
        ({"room": "publish"}, "must be a collection"),
    ],
)
def test_a_capability_is_a_mapping_of_patterns_to_collections_of_operations(
    capability: Any, problem: str
) -> None:
    with pytest.raises(UsageError, match=problem):
        ApiKey(name="app.key", secret="s", capability=capability)


@pytest.mark.parametrize("client_id", ["*", ""])
def test_a_connect_asking_for_a_wildcard_or_empty_client_id_is_refused(client_id: str) -> None:
    """RSA7c: the wildcard is a capability, never a connection's identity (40012)."""
    server = make_server()
    params = {"key": KEY.key, "clientId": client_id, "format": "json"}
    out = server.connect("t1", params, now=T0)
    (answer,) = out.messages_for("t1")
    assert answer.action == ProtocolAction.ERROR
    assert answer.error is not None
    assert answer.error.code == 40012
    assert out.disconnected() == ("t1",)
    assert server.connections() == ()


class _RepeatingEntropy:
    """Returns each connection id and key twice before a new one, then random bytes."""

    def __init__(self) -> None:
        self._script = {6: [b"A" * 6, b"A" * 6, b"B" * 6], 16: [b"K" * 16, b"K" * 16, b"L" * 16]}
        self._rest = random.Random(1)

    def __call__(self, size: int) -> bytes:
        script = self._script.get(size)
        return script.pop(0) if script else self._rest.randbytes(size)


def test_connection_ids_and_keys_stay_unique_when_the_entropy_repeats() -> None:
    server = Server(ServerConfig(keys=(KEY,)), _RepeatingEntropy())
    first, _ = connect(server, "t1")
    second, _ = connect(server, "t2")
    assert (first.connection_id, second.connection_id) == ("41" * 6, "42" * 6)
    assert (first.connection_key, second.connection_key) == ("4b" * 16, "4c" * 16)


# --- initiatives on a connection without a transport ---------------------------------------


def _entered_then_gone() -> tuple[Server, Client, Client]:
    """alice entered room ``r`` and lost her transport (her grace period runs); bob watches."""
    server = make_server()
    alice, _ = connect(server, "t1", "alice")
    bob, _ = connect(server, "t2", "bob")
    attach(server, alice, "r")
    attach(server, bob, "r")
    presence(server, alice, "r", PresenceAction.ENTER, "x")
    server.transport_closed("t1", now=T0 + 1)
    assert member_view(server, "r") == {(alice.connection_id, "alice"): "x"}
    return server, alice, bob


def test_failing_a_connection_without_a_transport_makes_its_members_leave_at_once() -> None:
    server, alice, _ = _entered_then_gone()
    out = server.fail_connection(alice.connection_id, FAILED, now=T0 + 2)
    (leave,) = presence_items(out, "t2")
    assert (leave.action, leave.client_id, leave.data) == (PresenceAction.LEAVE, "alice", "x")
    assert out.messages_for("t1") == ()
    assert member_view(server, "r") == {}
    assert alice.connection_id not in [c.connection_id for c in server.connections()]


def test_detaching_a_connection_without_a_transport_makes_its_members_leave() -> None:
    server, alice, _ = _entered_then_gone()
    out = server.detach_channel(alice.connection_id, "r", now=T0 + 2)
    (leave,) = presence_items(out, "t2")
    assert (leave.action, leave.client_id) == (PresenceAction.LEAVE, "alice")
    assert out.messages_for("t1") == ()
    assert member_view(server, "r") == {}
    (info,) = [c for c in server.connections() if c.connection_id == alice.connection_id]
    assert info.channels == ()


def test_shutdown_with_no_live_transport_sends_nothing() -> None:
    assert not make_server().shutdown(now=T0)


def test_a_leave_with_data_and_extras_carries_its_own_not_the_members_last() -> None:
    server = make_server()
    alice, _ = connect(server, "t1", "alice")
    bob, _ = connect(server, "t2", "bob")
    attach(server, alice, "r")
    attach(server, bob, "r")
    enter = PresenceMessage(action=PresenceAction.ENTER, data="x", extras={"k": 1})
    leave = PresenceMessage(action=PresenceAction.LEAVE, data="bye", extras={"k": 2})
    for serial, item in enumerate((enter, leave)):
        frame = ProtocolMessage(
            action=ProtocolAction.PRESENCE, channel="r", msg_serial=serial, presence=(item,)
        )
        out = server.receive("t1", frame, now=T0 + serial)
    (left,) = presence_items(out, "t2")
    assert (left.action, left.client_id) == (PresenceAction.LEAVE, "alice")
    assert (left.data, left.extras) == ("bye", {"k": 2})


# --- one MESSAGE frame ---------------------------------------------------------------------


def _publisher(**settings: Any) -> tuple[Server, Client]:
    server = make_server(**settings)
    alice, _ = connect(server, "t1", "alice", echo="false")
    attach(server, alice, "r")
    return server, alice


def _only_answer(server: Server, frame: ProtocolMessage) -> ProtocolMessage:
    out = server.receive("t1", frame, now=T0 + 1)
    (answer,) = out.messages_for("t1")
    return answer


def test_a_message_frame_without_messages_is_nacked() -> None:
    server, _ = _publisher()
    answer = _only_answer(server, message_frame(0))
    assert answer.action == ProtocolAction.NACK
    assert answer.error is not None
    assert answer.error.code == 40000


def test_an_oversized_message_is_nacked_40009() -> None:
    server, _ = _publisher(max_message_size=100)
    answer = _only_answer(server, message_frame(0, Message(name="chat", data="x" * 101)))
    assert answer.action == ProtocolAction.NACK
    assert answer.error is not None
    assert (answer.error.code, answer.error.status_code) == (40009, 413)


def test_a_payload_that_is_not_json_counts_at_the_size_of_its_repr() -> None:
    # A caller-built message (the codec never makes one) is still bounded.
    server, _ = _publisher(max_message_size=100)
    answer = _only_answer(server, message_frame(0, Message(data=set(range(40)))))
    assert answer.action == ProtocolAction.NACK
    assert answer.error is not None
    assert answer.error.code == 40009


def test_without_echo_a_lone_publisher_gets_only_its_ack() -> None:
    """With echo=false a connection's own messages do not come back to it."""
    server, _ = _publisher()
    answer = _only_answer(server, message_frame(0, Message(name="chat", data="hi")))
    assert answer.action == ProtocolAction.ACK
    assert answer.msg_serial == 0


# --- the dedup record's bound --------------------------------------------------------------


def test_only_the_latest_1024_results_are_remembered_an_older_resend_is_acked() -> None:
    server, alice = _publisher()
    nacked = server.receive("t1", message_frame(0, channel="not-attached"), now=T0 + 1)
    assert [m.action for m in nacked.messages_for("t1")] == [ProtocolAction.NACK]
    for serial in range(1, 1025):
        server.receive("t1", message_frame(serial, Message(data=serial)), now=T0 + 1)
    # Serial 0 is still known as seen, so it is not applied; its NACK has been forgotten.
    again = server.receive("t1", message_frame(0, channel="not-attached"), now=T0 + 2)
    (answer,) = again.messages_for("t1")
    assert (answer.action, answer.msg_serial) == (ProtocolAction.ACK, 0)
    assert alice.connection_id in [c.connection_id for c in server.connections()]
