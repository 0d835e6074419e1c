"""Re-authentication of a connection (RTC8, RTN24), token errors (RTN15h, RTN14b, RSA4a) and
token renewal (RTN15h2, RSA4b), with hand-made server frames.

The rules are in the module docs of :mod:`presence_core._credentials` and in
:meth:`~presence_core.Connection.authorize`; each test is named after the rule it pins.
"""

from __future__ import annotations

from typing import Any

import pytest

from presence_core import (
    AuthDetails,
    ChannelState,
    CloseTransport,
    Connection,
    ConnectionState,
    ConnectionStateChanged,
    ErrorInfo,
    OpenTransport,
    Output,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from presence_core._output import RenewToken
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
NO_MEANS_TO_RENEW = ErrorInfo(
    code=40171,
    status_code=403,
    message="the token was refused and there is no means to renew it",
    cause=TOKEN_EXPIRED,
)


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
    """RSA4a2: with 40171, whose cause is the server's token error."""
    c = token_up()
    out = receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    assert states(out) == [ConnectionState.FAILED]
    assert channel_states(out) == [ChannelState.FAILED]
    assert c.error_reason == NO_MEANS_TO_RENEW
    assert c.error_reason.cause == TOKEN_EXPIRED
    assert of_type(out, CloseTransport) == [CloseTransport(reason=NO_MEANS_TO_RENEW)]
    assert of_type(out, RenewToken) == []
    assert c.next_deadline() is None  # no retry with the expired token


def test_RSA4a2_a_token_refused_at_connect_without_a_means_to_renew_fails_with_40171() -> None:
    c = Connection(token="expired", client_id="alice")
    c.connect(now=0)
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=TOKEN_EXPIRED), now=5)
    assert states(out) == [ConnectionState.FAILED]
    assert c.error_reason == NO_MEANS_TO_RENEW


# -- renewal: a connection whose embedder can get new tokens (renewable=True) ------------------


def renewable_up(now: int = 1_000, **kw: Any) -> Connection:
    """A CONNECTED renewable connection with ROOM attached, and no idle timer (so that
    ``next_deadline`` shows the renewal)."""
    c = Connection(token="old-token", client_id="alice", renewable=True, **kw)
    c.connect(now=now)
    receive(c, connected("C1", max_idle=None), now=now)
    c.attach(ROOM, now=now)
    receive(c, attached(), now=now)
    return c


def renewals(out: Output) -> list[RenewToken]:
    return of_type(out, RenewToken)


def test_RTN15h2_a_token_error_asks_for_a_token_and_resumes_with_it() -> None:
    c = renewable_up()
    out = receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    assert states(out) == [ConnectionState.DISCONNECTED, ConnectionState.CONNECTING]
    assert of_type(out, CloseTransport) == [CloseTransport(reason=TOKEN_EXPIRED)]
    assert renewals(out) == [RenewToken(reason=TOKEN_EXPIRED)]
    assert of_type(out, OpenTransport) == []  # never with the refused token
    assert c.transport_id is None
    assert c.error_reason == TOKEN_EXPIRED
    assert c.room(ROOM).state is ChannelState.ATTACHED  # RTL3e: a loss like any other
    out = c.authorize("new-token", now=2_050)
    assert of_type(out, CloseTransport) == []
    params = open_params(out)
    assert params["access_token"] == "new-token"
    assert params["resume"] == "key-C1"  # the same connection, members kept
    out = receive(c, connected("C1"), now=2_100)
    assert states(out) == [ConnectionState.CONNECTED]
    assert channel_states(out) == [ChannelState.ATTACHING]  # RTL3d, as after any resume


def test_RTN15h2_a_renewed_token_refused_too_waits_for_the_retry_delay() -> None:
    c = renewable_up()
    receive(c, disconnected(TOKEN_EXPIRED), now=2_000)
    c.authorize("still-bad", now=2_050)
    out = receive(c, disconnected(TOKEN_EXPIRED), now=2_100)
    assert states(out) == [ConnectionState.DISCONNECTED]
    assert renewals(out) == []
    retry = c.next_deadline()
    assert retry == 2_100 + c.settings.disconnected_retry_timeout
    out = c.tick(now=retry)  # the retry asks again instead of opening with the bad token
    assert states(out) == [ConnectionState.CONNECTING]
    assert renewals(out) == [RenewToken(reason=TOKEN_EXPIRED)]
    assert of_type(out, OpenTransport) == []


def test_RTN14b_a_token_refused_at_connect_is_renewed_once_in_the_same_attempt() -> None:
    c = Connection(token="expired", client_id="alice", renewable=True)
    c.connect(now=0)
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=TOKEN_EXPIRED), now=5)
    assert out.events == ()  # still CONNECTING, now waiting for the token
    assert renewals(out) == [RenewToken(reason=TOKEN_EXPIRED)]
    assert c.state is ConnectionState.CONNECTING
    out = c.authorize("fresh", now=10)
    assert open_params(out)["access_token"] == "fresh"
    assert "resume" not in open_params(out)
    # Refused again: DISCONNECTED, as a failed attempt, and no new request before the retry.
    out = receive(c, ProtocolMessage(action=ProtocolAction.ERROR, error=TOKEN_EXPIRED), now=20)
    assert states(out) == [ConnectionState.DISCONNECTED]
    assert renewals(out) == []


def test_RSA4b_a_connection_without_a_token_asks_for_one_on_connect() -> None:
    c = Connection(client_id="alice", renewable=True)
    out = c.connect(now=0)
    assert states(out) == [ConnectionState.CONNECTING]
    assert renewals(out) == [RenewToken(reason=None)]
    assert of_type(out, OpenTransport) == []
    out = c.authorize("first", now=3)
    assert open_params(out)["access_token"] == "first"
    assert c.transport_id == 1


def test_an_unanswered_request_for_a_token_times_out_like_an_attempt() -> None:
    c = Connection(client_id="alice", renewable=True)
    c.connect(now=0)
    timeout = c.settings.realtime_request_timeout
    assert c.next_deadline() == timeout
    out = c.tick(now=timeout)
    assert states(out) == [ConnectionState.DISCONNECTED]
    assert c.error_reason is not None
    assert c.error_reason.code == 40170
    assert of_type(out, CloseTransport) == []  # there was no transport
    out = c.tick(now=c.next_deadline() or 0)
    assert renewals(out) == [RenewToken(reason=c.error_reason)]


def test_RSA4b_renewal_is_asked_for_ahead_of_the_known_expiry() -> None:
    c = renewable_up(now=1_000)
    out = c.authorize("jwt-1", now=2_000, expires_at=2_000 + 3_600_000)
    assert renewals(out) == []
    margin = c.settings.token_renewal_margin
    due = 2_000 + 3_600_000 - margin
    assert c.next_deadline() == due
    assert renewals(c.tick(now=due - 1)) == []
    out = c.tick(now=due)
    assert renewals(out) == [RenewToken(reason=None)]
    assert c.state is ConnectionState.CONNECTED
    assert renewals(c.tick(now=due + 1)) == []  # once per token
    out = c.authorize("jwt-2", now=due + 10, expires_at=due + 10 + 3_600_000)
    assert sent(out)[0].action == ProtocolAction.AUTH  # RTC8a: no break in the connection


def test_RSA4b_a_short_lived_token_is_renewed_halfway_through_its_life() -> None:
    c = renewable_up(now=1_000)
    c.authorize("jwt", now=2_000, expires_at=4_000)  # 2 s of life, under the 30 s margin
    assert c.next_deadline() == 3_000


def test_RSA4b_a_constructor_token_is_renewed_counting_from_connect() -> None:
    c = Connection(token="jwt", renewable=True, token_expires_at=10_000)
    c.connect(now=6_000)
    assert c.next_deadline() == min(8_000, 6_000 + c.settings.realtime_request_timeout)


def test_no_renewal_is_asked_for_without_a_means_to_renew_or_once_closed() -> None:
    static = token_up()
    static.authorize("jwt", now=2_000, expires_at=5_000)
    assert renewals(static.tick(now=5_000)) == []
    c = renewable_up()
    c.authorize("jwt", now=2_000, expires_at=5_000)
    c.close(now=2_100)
    receive(c, ProtocolMessage(action=ProtocolAction.CLOSED), now=2_200)
    assert c.next_deadline() is None
    assert renewals(c.tick(now=10_000)) == []


def test_a_key_needs_no_token_and_no_renewal() -> None:
    with pytest.raises(UsageError):
        Connection(key="app.key:secret", renewable=True)
    with pytest.raises(UsageError):
        Connection()


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
