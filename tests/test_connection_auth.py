"""Re-authentication of a connection (RTC8, RTN24) and token errors (RTN15h).

The rules are in the module docs of :mod:`presence_core._connection` and in
:meth:`~presence_core.Connection.authorize`; each test is named after the rule it pins.
"""

from __future__ import annotations

import pytest

from presence_core import (
    AuthDetails,
    ChannelState,
    CloseTransport,
    Connection,
    ConnectionState,
    ConnectionStateChanged,
    ErrorInfo,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from tests.connection_support import lost, receive
from tests.test_connection import (
    ROOM,
    attached,
    channel_states,
    connected,
    of_type,
    open_params,
    sent,
    states,
    up,
)

TOKEN_EXPIRED = ErrorInfo(code=40142, status_code=401, message="Token expired")


def token_up(now: int = 1_000) -> Connection:
    """A CONNECTED connection authenticated with a token, with ROOM attached."""
    c = Connection(token="old-token", client_id="alice")
    c.connect(now=now)
    receive(c, connected("C1"), now=now)
    c.attach(ROOM, now=now)
    receive(c, attached(), now=now)
    return c


def disconnected(error: ErrorInfo) -> ProtocolMessage:
    return ProtocolMessage(action=ProtocolAction.DISCONNECTED, error=error)


def test_RTC8a_authorize_while_connected_sends_AUTH_with_the_token() -> None:
    c = token_up()
    out = c.authorize("new-token", now=2_000)
    assert sent(out) == [
        ProtocolMessage(action=ProtocolAction.AUTH, auth=AuthDetails(access_token="new-token"))
    ]
    assert out.events == ()
    assert c.state is ConnectionState.CONNECTED
    # Every later transport authenticates with the new token.
    out = lost(c, now=3_000)
    assert open_params(out)["access_token"] == "new-token"
    assert open_params(out)["resume"] == "key-C1"


def test_RTN24_CONNECTED_while_connected_updates_the_details_only() -> None:
    c = token_up()
    c.authorize("new-token", now=2_000)
    update = connected("C1", key="key-C1b", max_idle=30_000)
    out = receive(c, update, now=2_100)
    assert out.events == (
        ConnectionStateChanged(
            previous=ConnectionState.CONNECTED, current=ConnectionState.CONNECTED, reason=None
        ),
    )
    assert out.commands == ()  # nothing re-attached or resent
    assert c.details == update.connection_details
    assert c.connection_key == "key-C1b"
    assert c.room(ROOM).state is ChannelState.ATTACHED


def test_RTN24_the_update_carries_the_CONNECTED_error_as_its_reason() -> None:
    c = token_up()
    warning = ErrorInfo(code=40160, status_code=401, message="capability reduced")
    out = receive(c, connected("C1", error=warning), now=2_000)
    assert states(out) == [ConnectionState.CONNECTED]
    assert c.error_reason == warning


def test_RTC8a2_ERROR_answering_AUTH_fails_the_connection_and_its_rooms() -> None:
    c = token_up()
    c.authorize("token-for-bob", now=2_000)
    error = ErrorInfo(code=40102, status_code=401, message="incompatible clientId")
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=error), now=2_100)
    assert states(out) == [ConnectionState.FAILED]
    assert channel_states(out) == [ChannelState.FAILED]
    assert c.error_reason == error


def test_RTN15h1_token_error_without_a_means_to_renew_fails_the_connection() -> None:
    c = token_up()
    out = receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    assert states(out) == [ConnectionState.FAILED]
    assert channel_states(out) == [ChannelState.FAILED]
    assert of_type(out, CloseTransport) == [CloseTransport(reason=TOKEN_EXPIRED)]
    assert c.error_reason == TOKEN_EXPIRED
    assert c.next_deadline() is None  # no retry with the expired token


def test_RTN15h1_a_new_token_after_the_failure_connects_afresh() -> None:
    c = token_up()
    receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    out = c.authorize("new-token", now=3_000)  # RTC8c
    assert states(out) == [ConnectionState.CONNECTING]
    params = open_params(out)
    assert params["access_token"] == "new-token"
    assert "resume" not in params


def test_RTN15h2_with_a_key_a_token_error_reconnects_at_once() -> None:
    c = up()
    out = receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert open_params(out)["resume"] == "key-C1"


@pytest.mark.parametrize(
    "error",
    [
        ErrorInfo(code=40150, status_code=401, message="not a token error"),
        ErrorInfo(code=40142, status_code=400, message="not a 401"),
        ErrorInfo(code=80003, status_code=503, message="going away"),
    ],
)
def test_RTN15h3_other_errors_reconnect_at_once_even_with_a_token(error: ErrorInfo) -> None:
    c = token_up()
    out = receive(c, disconnected(error), now=2_000)
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert open_params(out)["resume"] == "key-C1"


def test_RTC8b_authorize_while_connecting_starts_another_attempt_with_the_token() -> None:
    c = Connection(token="old-token", client_id="alice")
    first = c.connect(now=0)
    out = c.authorize("new-token", now=10)
    assert out.events == ()  # still CONNECTING: no state change
    assert of_type(out, CloseTransport) == [CloseTransport()]
    assert open_params(out)["access_token"] == "new-token"
    assert c.transport_id == 2
    # The old transport is stale now, and the connect timeout restarted with the new attempt.
    assert c.transport_closed(transport_id=1, now=20).events == ()
    assert c.next_deadline() == 10 + c.settings.realtime_request_timeout
    assert open_params(first)["access_token"] == "old-token"


@pytest.mark.parametrize("start", ["initialized", "disconnected", "closed"])
def test_RTC8c_authorize_while_not_connected_connects_with_the_token(start: str) -> None:
    c = token_up()
    if start == "initialized":
        c = Connection(token="old-token")
    elif start == "disconnected":
        lost(c, now=2_000)
        lost(c, now=2_000)  # the immediate retry fails too: DISCONNECTED, waiting to retry
        assert c.state is ConnectionState.DISCONNECTED
    else:
        c.close(now=2_000)
        receive(c, ProtocolMessage(action=ProtocolAction.CLOSED), now=2_000)
    out = c.authorize("new-token", now=3_000)
    assert c.state is ConnectionState.CONNECTING
    assert open_params(out)["access_token"] == "new-token"


def test_RTC8_authorize_refuses_an_empty_token_and_changes_nothing() -> None:
    c = token_up()
    before = c.snapshot()
    with pytest.raises(UsageError):
        c.authorize("", now=2_000)
    assert c.snapshot() == before
