"""The REST presence route accepts an Ably JWT as a Bearer token, checked against the clock.

The app runs in process: each request is one ASGI call, so no socket or subprocess is needed.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import pytest

from presence_core import PresenceAction, PresenceMessage, ProtocolAction, ProtocolMessage
from presence_core.client._support import now_ms
from presence_core.serve import PresenceApp, mint_jwt
from presence_core.server import ApiKey, Server, ServerConfig

pytestmark = pytest.mark.anyio

KEY = ApiKey(name="app.jwt", secret="wLzQ9cN4tV2xR7bM1kH6yF3jD8sA5gE0uP")
ROUTE = "/channels/room1/presence"


def server_with_alice() -> Server:
    """A server on which alice is present on ``room1``."""
    server = Server(ServerConfig(keys=(KEY,)), random.Random(3).randbytes)
    params = {"key": KEY.key, "clientId": "alice", "format": "json"}
    server.connect("t1", params, now=now_ms())
    attach = ProtocolMessage(action=ProtocolAction.ATTACH, channel="room1")
    server.receive("t1", attach, now=now_ms())
    enter = ProtocolMessage(
        action=ProtocolAction.PRESENCE,
        channel="room1",
        msg_serial=0,
        presence=(PresenceMessage(action=PresenceAction.ENTER, data="here"),),
    )
    server.receive("t1", enter, now=now_ms())
    return server


async def get(app: PresenceApp, path: str, bearer: str, query: bytes = b"") -> tuple[int, Any]:
    """GET ``path?query`` with ``bearer`` as ably-js sends a token: base64 in the Authorization."""
    token = base64.b64encode(bearer.encode()).decode()
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": query,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    start, body = sent
    return start["status"], json.loads(body["body"])


async def test_rest_presence_accepts_a_jwt_bearer() -> None:
    app = PresenceApp(server_with_alice())
    status, members = await get(app, ROUTE, mint_jwt(KEY, client_id="reader"))
    assert status == 200
    assert [(m["clientId"], m["data"]) for m in members] == [("alice", "here")]


async def test_rest_presence_refuses_an_expired_jwt_with_40142() -> None:
    app = PresenceApp(server_with_alice())
    expired = mint_jwt(KEY, client_id="reader", ttl=1_000, now=1_000_000)
    status, body = await get(app, ROUTE, expired)
    assert (status, body["error"]["code"]) == (401, 40142)


async def test_rest_presence_needs_subscribe_in_the_jwt_capability() -> None:
    app = PresenceApp(server_with_alice())
    narrow = mint_jwt(KEY, capability={"other": ["subscribe"]})
    status, body = await get(app, ROUTE, narrow)
    assert (status, body["error"]["code"]) == (401, 40160)
