"""The adapter's bounds: each socket's send queue, the REST route's page size, and the
``[server]`` table reaching the reducer's bounds.  The reducer's own are in
``tests/test_bounds.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from presence_core import ProtocolAction, ProtocolMessage, UsageError
from presence_core.serve import OVERFLOW, PresenceApp, _app, mint_jwt
from presence_core.serve._settings import load_config
from tests.serve.test_serve_rest_jwt import KEY, ROUTE, get, server_with_alice

HEARTBEAT = ProtocolMessage(action=ProtocolAction.HEARTBEAT)


def closing(peer: _app._SocketPeer) -> int | None:
    """The close code the socket is to close with, or None while it stays open."""
    return peer._closing


def test_bound_send_queue_overflow_is_told_80020_and_closes_the_socket() -> None:
    peer = _app._SocketPeer(_app._Encoder(), 3, "json")
    for index in range(3):
        peer.deliver(ProtocolMessage(action=ProtocolAction.HEARTBEAT, id=str(index)))
    assert len(peer._queue) == 3
    assert closing(peer) is None  # at the limit: still open
    peer.deliver(HEARTBEAT)  # one past it
    (frame,) = peer._queue
    assert isinstance(frame, str)
    told = json.loads(frame)
    assert told["action"] == ProtocolAction.DISCONNECTED
    assert (told["error"]["code"], told["error"]["statusCode"]) == (80020, 503)
    assert OVERFLOW.code == 80020
    assert closing(peer) == 1008
    peer.deliver(HEARTBEAT)  # nothing more is queued for a closing socket
    assert len(peer._queue) == 1


@pytest.mark.anyio
async def test_bound_rest_page_size_over_1000_is_refused_40000() -> None:
    app = PresenceApp(server_with_alice())
    token = mint_jwt(KEY)
    status, members = await get(app, ROUTE, token, b"limit=1000")
    assert status == 200
    assert [m["clientId"] for m in members] == ["alice"]
    status, body = await get(app, ROUTE, token, b"limit=1001")
    assert (status, body["error"]["code"]) == (400, 40000)
    # The app is still usable: the next request is answered.
    status, _ = await get(app, ROUTE, token)
    assert status == 200


def test_bound_settings_are_read_from_the_server_table(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text("[server]\nmax_held_connections = 5\nmax_remembered_results = 7\n")
    config = load_config(path)
    assert (config.max_held_connections, config.max_remembered_results) == (5, 7)
    path.write_text("[server]\nmax_held_connections = 0\n")
    with pytest.raises(UsageError, match="max_held_connections"):
        load_config(path)
