"""``presence-core token`` mints a JWT that ``presence-core serve`` accepts, over WebSockets.

Both are the real programs, as subprocesses; the client is presence_core.client on asyncio.
"""

from __future__ import annotations

import subprocess
import sys

import anyio
import pytest

from presence_core import ConnectionState
from presence_core.client import connect
from presence_core.serve._tokens import mint_jwt
from tests.serve.support import HANG, served

pytestmark = pytest.mark.anyio

KEY = "app.jwt:wLzQ9cN4tV2xR7bM1kH6yF3jD8sA5gE0uP"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def token_command(*argv: str) -> str:
    """Run ``presence-core token`` and return the last line it prints."""
    command = [sys.executable, "-m", "presence_core", "token", "--key", KEY, *argv]
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    return result.stdout.splitlines()[-1]


async def test_token_command_jwt_is_accepted_by_serve_with_that_key() -> None:
    minted = token_command("--client-id", "alice", "--ttl", "600")
    with anyio.fail_after(HANG):
        async with served("--key", KEY) as server, connect(server.url, token=minted) as client:
            await client.connection.wait_for(ConnectionState.CONNECTED)
            assert client.client_id == "alice"
            room = await client.rooms.get("room1")
            await room.attach()
            await room.presence.enter({"via": "jwt"})
            assert [m.client_id for m in await room.presence.get()] == ["alice"]


async def test_serve_refuses_an_expired_jwt_with_40142() -> None:
    expired = mint_jwt(KEY, client_id="alice", ttl=1_000, now=1_000_000)
    with anyio.fail_after(HANG):
        async with served("--key", KEY) as server, connect(server.url, token=expired) as client:
            await client.connection.wait_for(ConnectionState.FAILED)
            reason = client.connection.error_reason
            assert reason is not None
            # The server's 40142, or the client's 40171 ("no means to renew") caused by it.
            refused = reason if reason.code != 40171 else reason.cause
            assert refused is not None
            assert (refused.code, refused.status_code) == (40142, 401)
