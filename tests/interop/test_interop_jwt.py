"""Ably JWTs with ably-js against ``presence-core serve``: an authCallback returning a JWT,
``authorize()`` renewing it on a live connection, a JWT expiring mid-connection, and an expired
JWT refused.

The JWTs are minted here with :func:`~presence_core.serve._tokens.mint_jwt` (what a backend
would do) just before the script starts, so their expiry runs on the wall clock: carol's first
one lasts a few seconds, and the script waits for the server's DISCONNECTED, never for time.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from presence_core.serve._tokens import mint_jwt
from tests.interop.support import CREDENTIALS, Result, run_script, start_server

SECRET = "wLzQ9cN4tV2xR7bM1kH6yF3jD8sA5gE0uP"
CONFIG = CREDENTIALS + f'\n[[keys]]\nname = "app.jwt"\nsecret = "{SECRET}"\n'
JWT_KEY = f"app.jwt:{SECRET}"
HOUR = 3_600_000
#: Long enough for the script to connect with it, short enough not to slow the suite.
SHORT = 5_000


@pytest.fixture(scope="module")
def jwt_result(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Result]:
    with start_server(tmp_path_factory.mktemp("jwt"), CONFIG) as served:
        jwts = {
            "alice1": mint_jwt(JWT_KEY, client_id="alice", ttl=HOUR),
            "alice2": mint_jwt(JWT_KEY, client_id="alice", ttl=2 * HOUR),
            "carol1": mint_jwt(JWT_KEY, client_id="carol", ttl=SHORT),
            "carol2": mint_jwt(JWT_KEY, client_id="carol", ttl=HOUR),
            "dave": mint_jwt(JWT_KEY, client_id="dave", ttl=1_000, now=1_000_000),
            "erin1": mint_jwt(JWT_KEY, client_id="erin", ttl=1_000, now=1_000_000),
            "erin2": mint_jwt(JWT_KEY, client_id="erin", ttl=HOUR),
        }
        yield run_script(node, served, "jwt.mjs", tag="jwt", jwts=jwts)


def test_auth_callback_returning_a_jwt(jwt_result: Result) -> None:
    jwt_result.assert_checks("connect", "jwt_client_id_adopted", "enter", others=False)


def test_authorize_renews_a_jwt_on_a_live_connection(jwt_result: Result) -> None:
    jwt_result.assert_checks(
        "authorize",
        "authorize_used_new_token",
        "authorize_keeps_connection",
        "presence_after_authorize",
        "peer_sees_update_after_authorize",
        "no_reconnect",
        others=False,
    )


def test_jwt_expiring_mid_connection_is_renewed_and_resumed(jwt_result: Result) -> None:
    """The server sends DISCONNECTED 40142 (RTN15h); ably-js asks its authCallback again and
    resumes with the same connection id."""
    jwt_result.assert_checks(
        "short_jwt_connects",
        "short_jwt_enter",
        "expiry_reconnects",
        "expiry_reason_40142",
        "expiry_asked_for_a_new_jwt",
        "expiry_resumes_the_same_connection",
        "expiry_peer_sees_no_leave",
        "presence_after_expiry",
        others=False,
    )


def test_expired_jwt_is_refused(jwt_result: Result) -> None:
    """A static expired JWT: 40142, then ably-js fails the connection with 40171 (no means to
    renew).  From an authCallback, ably-js asks again and connects with the new JWT."""
    jwt_result.assert_checks(
        "expired_static_jwt_fails",
        "expired_static_jwt_reason",
        "expired_static_jwt_saw_40142_first",
        "expired_callback_jwt_renewed",
        "expired_callback_jwt_asked_twice",
        "renewed_client_id",
        others=False,
    )


def test_jwt_script_has_no_other_failure(jwt_result: Result) -> None:
    jwt_result.assert_checks()
