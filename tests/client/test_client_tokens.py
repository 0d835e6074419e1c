"""Tokens on the client: ``auth_callback``, renewal ahead of a JWT's ``exp``, renewal after the
server's 40142 (RTN15h2), and a static token that cannot be renewed (RSA4a2, RTN15h1).

In-process against the server reducer, which expires JWTs itself (DISCONNECTED 40142, the
connection kept resumable), on both event loops.  The tokens live about a second: these
tests wait for real expiries, bounded by the hang guard.
"""

from __future__ import annotations

import logging
import secrets

import anyio
import pytest

from presence_core import ConnectionSettings, ConnectionState, UsageError
from presence_core.client import connect
from presence_core.client._support import now_ms, token_expires_at
from presence_core.serve._tokens import mint_jwt
from presence_core.server import ApiKey, Server, ServerConfig
from tests.client.support import HANG, Recorder

pytestmark = pytest.mark.anyio

_CS = ConnectionState
#: A JWT signing key: 32 bytes or more, as an Ably key secret is (PyJWT warns below that).
JWT_KEY = ApiKey(name="app.jwt", secret="s3cret-of-thirty-two-bytes-or-more")


def make_server() -> Server:
    return Server(ServerConfig(keys=(JWT_KEY,)), secrets.token_bytes)


def short_jwt(client_id: str = "alice", life: int = 1_000) -> str:
    """A JWT for ``client_id`` that expires in about ``life`` ms (``exp`` is whole seconds)."""
    issued = now_ms() - 60_000 + life
    return mint_jwt(JWT_KEY, client_id=client_id, ttl=60_000, now=issued)


class Tokens:
    """An auth callback that counts its calls and can be held back."""

    def __init__(self, life: int = 60_000) -> None:
        self.life = life
        self.calls = 0
        self.hold = False
        self.release = anyio.Event()

    async def __call__(self) -> str:
        self.calls += 1
        if self.hold:
            await self.release.wait()
        return short_jwt(life=self.life)


def test_a_jwt_expiry_is_read_without_checking_the_signature() -> None:
    other = ApiKey(name="other.key", secret="not-the-servers-secret-but-long-enough")
    token = mint_jwt(other, client_id="alice", ttl=5_000, now=1_000_000)
    assert token_expires_at(token) == 1_005_000
    assert token_expires_at("opaque-token") is None
    assert token_expires_at("not.a.jwt") is None


async def test_auth_callback_gives_the_first_token() -> None:
    server = make_server()
    tokens = Tokens()
    with anyio.fail_after(HANG):
        async with connect(server, auth_callback=tokens, client_id="alice") as alice:
            await alice.connection.wait_for(_CS.CONNECTED)
            room = await alice.rooms.get("r")
            await room.presence.enter("here")
            assert await room.presence.is_user_present("alice")
            assert tokens.calls == 1


async def test_rsa4b_a_jwt_is_renewed_on_the_live_connection_before_it_expires() -> None:
    """Renewed halfway through its short life, with AUTH: the connection never drops."""
    server = make_server()
    tokens = Tokens(life=1_000)
    with anyio.fail_after(HANG):
        async with connect(server, auth_callback=tokens, client_id="alice") as alice:
            await alice.connection.wait_for(_CS.CONNECTED)
            changes = alice.connection.changes()
            first_id = alice.connection.id
            room = await alice.rooms.get("r")
            await room.presence.enter("here")
            while tokens.calls < 4:  # three renewals: past the first token's expiry
                await anyio.sleep(0.05)
            assert alice.connection.state is _CS.CONNECTED
            assert alice.connection.id == first_id
            await room.presence.update("still here")  # the server accepts the connection
            changes.close()
            seen = [change.current async for change in changes]
            assert set(seen) <= {_CS.CONNECTED}  # updates only (RTN24), no DISCONNECTED


async def test_rtn15h2_an_expired_token_is_renewed_and_the_connection_resumed() -> None:
    """The renewal is late, the server sends DISCONNECTED 40142; the token that comes then
    resumes the same connection, and the others see nothing."""
    server = make_server()
    tokens = Tokens(life=1_000)
    with anyio.fail_after(HANG):
        async with connect(server, token=short_jwt("bob", 600_000), client_id="bob") as bob:
            watcher = Recorder()
            bob_room = await bob.rooms.get("r")
            bob_room.presence.subscribe(watcher)
            await bob_room.attach()
            async with connect(server, auth_callback=tokens, client_id="alice") as alice:
                await alice.connection.wait_for(_CS.CONNECTED)
                first_id = alice.connection.id
                await (await alice.rooms.get("r")).presence.enter("here")
                await watcher.wait_seen("enter", "alice")
                tokens.hold = True  # the proactive renewal hangs until after the expiry
                await alice.connection.wait_for(_CS.DISCONNECTED, _CS.CONNECTING)
                reason = alice.connection.error_reason
                assert reason is not None
                assert reason.code == 40142
                tokens.release.set()
                await alice.connection.wait_for(_CS.CONNECTED)
                assert alice.connection.id == first_id  # resumed (RTN15c6)
                assert await bob_room.presence.is_user_present("alice")
            await watcher.wait_seen("leave", "alice")
            assert watcher.seen == [("enter", "alice"), ("leave", "alice")]


async def test_rsa4a2_a_static_token_that_expires_fails_with_40171(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    with anyio.fail_after(HANG), caplog.at_level(logging.WARNING, logger="presence_core.client"):
        async with connect(server, token=short_jwt(), client_id="alice") as alice:
            await alice.connection.wait_for(_CS.CONNECTED)
            room = await alice.rooms.get("r")
            await room.presence.enter("here")
            await alice.connection.wait_for(_CS.FAILED)
            reason = alice.connection.error_reason
            assert reason is not None
            assert reason.code == 40171
            assert reason.cause is not None
            assert reason.cause.code == 40142
            with pytest.raises(UsageError):
                await room.presence.update("too late")
    assert any("40171" in record.getMessage() for record in caplog.records)


async def test_a_failing_auth_callback_is_asked_again_at_the_next_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = make_server()
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("token service down")
        return short_jwt(life=60_000)

    # The first call fails; the request for a token times out as an attempt would (after
    # realtime_request_timeout, short here), and the retry asks again.
    settings = ConnectionSettings(realtime_request_timeout=300, disconnected_retry_timeout=50)
    with anyio.fail_after(HANG), caplog.at_level(logging.WARNING, logger="presence_core.client"):
        async with connect(server, auth_callback=flaky, client_id="alice", settings=settings) as c:
            await c.connection.wait_for(_CS.CONNECTED)
    assert len(calls) == 2
    assert any("token service down" in record.getMessage() for record in caplog.records)


async def test_connect_refuses_a_key_with_an_auth_callback() -> None:
    server = make_server()
    with pytest.raises(UsageError):
        connect(server, key=JWT_KEY.key, auth_callback=lambda: "t")
    with pytest.raises(UsageError):
        connect(server, auth_callback="not callable")  # type: ignore[arg-type]
