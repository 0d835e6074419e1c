"""Nobody gets in where they don't belong: the server's security rules, one test per rule.

Each test is named after its rule and fails if the rule is removed from the server.  The JWT
rules (signature, expiry, the key's capability) are pinned in ``tests/test_jwt.py``.
"""

from __future__ import annotations

import logging
import random
import secrets
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from hypothesis import given, strategies as st

from presence_core import ChannelMode, Flag, PresenceAction, ProtocolAction, ProtocolMessage
from presence_core.client import connect as client_connect
from presence_core.serve import PresenceApp
from presence_core.serve._run import bind, serve
from presence_core.serve._tokens import mint_jwt
from presence_core.server import AccessToken, ApiKey, Server, ServerConfig, ServerOutput
from presence_core.server._auth import capability_modes, intersect_capability
from tests.serve.support import HANG, Breakable
from tests.server_support import (
    KEY,
    T0,
    Client,
    actions,
    attach,
    connect,
    make_server,
    member_view,
    presence,
    presence_items,
)

A = PresenceAction
P = ProtocolAction
M = ChannelMode
CH = "chat:lobby"
SECRET = "wLzQ9cN4tV2xR7bM1kH6yF3jD8sA5gE0uP"


def nack(out: ServerOutput, tid: str) -> int | None:
    """The code of the NACK ``tid`` got, if any."""
    for frame in out.messages_for(tid):
        if frame.action == P.NACK and frame.error is not None:
            return frame.error.code
    return None


def alice_and_bob(server: Server, access_token: str | None = None) -> tuple[Client, Client]:
    if access_token is None:
        alice, _ = connect(server, "ta", "alice")
    else:
        alice, _ = connect(server, "ta", "alice", key="", access_token=access_token)
    bob, _ = connect(server, "tb", "bob")
    attach(server, alice, CH)
    attach(server, bob, CH)
    return alice, bob


# --- nobody enters, updates or leaves as another clientId -----------------------------------


@pytest.mark.parametrize("action", [A.ENTER, A.UPDATE, A.LEAVE])
def test_nobody_enters_updates_or_leaves_as_another_client_id(action: PresenceAction) -> None:
    server = make_server()
    alice, bob = alice_and_bob(server)
    presence(server, bob, CH, A.ENTER, {"v": "bob's"})
    before = member_view(server, CH)
    out = presence(server, alice, CH, action, {"v": "forged"}, client_id="bob")
    assert nack(out, "ta") == 40012
    assert presence_items(out, "tb") == []
    assert member_view(server, CH) == before
    # The same through a JWT that binds alice: the token's clientId is the connection's.
    jwt_key = ApiKey(name="app.jwt", secret=SECRET)
    server = make_server(keys=(KEY, jwt_key))
    token = mint_jwt(jwt_key, client_id="alice", now=T0)
    alice, bob = alice_and_bob(server, token)
    presence(server, bob, CH, A.ENTER, {"v": "bob's"})
    out = presence(server, alice, CH, action, client_id="bob")
    assert nack(out, "ta") == 40012
    assert member_view(server, CH) == {(bob.connection_id, "bob"): {"v": "bob's"}}


# --- nobody receives presence without the subscribe capability and mode ----------------------


def _presence_seen_by(
    server: Server, watcher: Client, flags: int | None = None
) -> list[ProtocolMessage]:
    """Every presence frame (PRESENCE, SYNC) ``watcher`` gets while a peer enters and leaves.

    ``watcher`` is attached to the channel with ``flags``, and attaches again with them.
    """
    peer, _ = connect(server, "tpeer", "peer")
    attach(server, peer, CH)
    outs = [
        presence(server, peer, CH, A.ENTER, {"v": 1}),
        presence(server, peer, CH, A.UPDATE, {"v": 2}),
        server.receive(watcher.tid, ProtocolMessage(action=P.SYNC, channel=CH), now=T0),
        server.resync(CH, now=T0),
        attach(server, watcher, CH, flags),  # a subscriber would get HAS_PRESENCE and a SYNC
        presence(server, peer, CH, A.LEAVE),
    ]
    return [
        m
        for out in outs
        for m in out.messages_for(watcher.tid)
        if m.action in (P.PRESENCE, P.SYNC) or (m.flags or 0) & Flag.HAS_PRESENCE
    ]


def test_nobody_receives_presence_without_the_subscribe_capability() -> None:
    publisher = ApiKey(name="pub.key", secret="x", capability={"*": ["presence", "publish"]})
    server = make_server(keys=(KEY, publisher))
    watcher, _ = connect(server, "tw", "watcher", key=publisher.key)
    (attached,) = attach(server, watcher, CH).messages_for("tw")
    assert not attached.modes & M.PRESENCE_SUBSCRIBE
    assert _presence_seen_by(server, watcher) == []


def test_nobody_receives_presence_without_the_subscribe_mode() -> None:
    server = make_server()
    watcher, _ = connect(server, "tw", "watcher")
    flags = int(M.PRESENCE | M.PUBLISH)
    (attached,) = attach(server, watcher, CH, flags).messages_for("tw")
    assert attached.modes == M.PRESENCE | M.PUBLISH
    assert _presence_seen_by(server, watcher, flags) == []
    # Its own presence it does see (RTP17a), and only its own.
    out = presence(server, watcher, CH, A.ENTER)
    assert [i.client_id for i in presence_items(out, "tw")] == ["watcher"]


def test_nobody_enters_without_the_presence_capability() -> None:
    reader = ApiKey(name="read.key", secret="x", capability={"*": ["subscribe", "publish"]})
    server = make_server(keys=(KEY, reader))
    watcher, _ = connect(server, "tw", "watcher", key=reader.key)
    attach(server, watcher, CH)
    for action in (A.ENTER, A.UPDATE):
        out = presence(server, watcher, CH, action)
        assert nack(out, "tw") == 40160
    assert server.members(CH) == ()
    # With the capability but without the mode, likewise.
    full, _ = connect(server, "tf", "full")
    attach(server, full, "other", int(M.SUBSCRIBE | M.PRESENCE_SUBSCRIBE))
    assert nack(presence(server, full, "other", A.ENTER), "tf") == 40160
    assert server.members("other") == ()


# --- capabilities apply per channel pattern ----------------------------------------------


def test_capabilities_apply_per_channel_pattern() -> None:
    key = ApiKey(
        name="per.key",
        secret="x",
        capability={"chat:*": ["presence", "subscribe"], "news": ["subscribe"]},
    )
    server = make_server(keys=(KEY, key))
    client, _ = connect(server, "t1", "alice", key=key.key)
    granted: dict[str, Any] = {}
    for channel in ("chat:lobby", "chat:", "chat", "news", "newsroom", "other"):
        (frame,) = attach(server, client, channel).messages_for("t1")
        refused = frame.error.code if frame.error is not None else None
        granted[channel] = frame.modes if frame.action == P.ATTACHED else refused
    full = M.PRESENCE | M.SUBSCRIBE | M.PRESENCE_SUBSCRIBE
    assert granted == {
        "chat:lobby": full,
        "chat:": full,
        "chat": 40160,
        "news": M.SUBSCRIBE | M.PRESENCE_SUBSCRIBE,
        "newsroom": 40160,
        "other": 40160,
    }
    assert nack(presence(server, client, "news", A.ENTER), "t1") == 40160
    assert actions(presence(server, client, "chat:lobby", A.ENTER), "t1") == [P.PRESENCE, P.ACK]


_SEGMENTS = st.sampled_from(["", "a", "b", "a:", "ab", "a:b"])
_PATTERNS = st.builds(lambda s, star: s + "*" if star else s or "a", _SEGMENTS, st.booleans())
#: ``history`` is an Ably operation this server does not know: it grants nothing.
_OPS = st.frozensets(st.sampled_from(["presence", "subscribe", "publish", "*", "history"]))
_CAPS = st.dictionaries(_PATTERNS, _OPS, max_size=4)


@given(token=_CAPS, key=_CAPS, channel=_SEGMENTS.map(lambda s: s or "x"))
def test_capabilities_apply_per_channel_pattern_through_a_token(
    token: dict[str, frozenset[str]], key: dict[str, frozenset[str]], channel: str
) -> None:
    """A token's capability, cut to its key's, grants on each channel what both grant there."""
    known = {pattern: ops - {"history"} for pattern, ops in key.items()}  # as a key validates
    met = intersect_capability(token, known)
    expected = capability_modes(
        {pattern: ops - {"history"} for pattern, ops in token.items()}, channel
    ) & capability_modes(known, channel)
    assert capability_modes(met, channel) == expected


# --- connection keys and recovery keys are unguessable, and never logged ---------------------


def _entropy(first: bytes, seed: int) -> Callable[[int], bytes]:
    """Entropy whose first draw is ``first`` (the connection id), then seeded bytes."""
    source = random.Random(seed)
    draws = [first]

    def entropy(n: int) -> bytes:
        return draws.pop() if draws and n == len(draws[0]) else source.randbytes(n)

    return entropy


def test_connection_keys_are_unguessable() -> None:
    """128 bits from the injected entropy, drawn apart from the id's: the id tells nothing."""
    config = ServerConfig(keys=(KEY,))
    same_id = bytes(6)
    one, _ = connect(Server(config, _entropy(same_id, 1)), "t")
    two, _ = connect(Server(config, _entropy(same_id, 2)), "t")
    assert one.connection_id == two.connection_id == same_id.hex()
    assert one.connection_key != two.connection_key
    assert len(one.connection_key) == 32
    assert one.connection_id not in one.connection_key
    keys = set()
    server = Server(config, secrets.token_bytes)
    for n in range(50):
        client, _ = connect(server, f"t{n}", f"c{n}")
        keys.add(client.connection_key)
    assert len(keys) == 50


@pytest.mark.parametrize("param", ["resume", "recover"])
def test_connection_and_recovery_keys_are_unguessable(param: str) -> None:
    """A resume or a recover naming anything but the key itself takes over nothing."""
    server = make_server()
    alice, _bob = alice_and_bob(server)
    presence(server, alice, CH, A.ENTER)
    server.transport_closed("ta", now=T0 + 1)
    key = alice.connection_key
    flipped = key[:-1] + ("0" if key[-1] != "0" else "1")
    for n, guess in enumerate((alice.connection_id, flipped, key[:16], key.upper(), "")):
        thief, out = connect(server, f"tx{n}", "alice", now=T0 + 2, **{param: guess})
        (connected,) = out.messages_for(f"tx{n}")
        assert connected.error is not None
        assert connected.error.code == 80008
        assert thief.connection_id != alice.connection_id
    assert [m.connection_id for m in server.members(CH)] == [alice.connection_id]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


#: The loggers of the serving side: the app, its runner and the host driving the reducer.
_SERVER_LOGGERS = ("presence_core.serve", "presence_core.server", "presence_core.client.host")


async def _serve_session(caplog: pytest.LogCaptureFixture, backend: str) -> tuple[set[str], str]:
    """Run a serve session at DEBUG with a resume and a recovery; its keys and recovery key."""
    caplog.set_level(logging.DEBUG)
    key = ApiKey(name="app.key", secret=SECRET)
    server = Server(ServerConfig(keys=(key,)), secrets.token_bytes)
    app = PresenceApp(server)
    sock = bind("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{sock.getsockname()[1]}/"
    stop = anyio.Event()
    seen: set[str] = set()
    recovery = ""

    def note_keys() -> None:
        seen.update(conn.key for conn in server._registry.connections.values())

    with anyio.fail_after(HANG):
        async with anyio.create_task_group() as group:
            group.start_soon(
                lambda: serve(app, sock, backend=backend, stop=stop, log_level="debug")
            )
            links = Breakable(url)
            async with client_connect(links, key=key.key, client_id="alice") as alice:
                room = await alice.rooms.get("lobby")
                await room.attach()
                await room.presence.enter({"v": 1})
                note_keys()
                links.break_links()  # the client resumes with its connection key
                await room.presence.update({"v": 2})
                note_keys()
                recovery = alice.recovery_key or ""
                assert recovery
            async with client_connect(
                url, key=key.key, client_id="alice", recover=recovery
            ) as again:
                room = await again.rooms.get("lobby")
                await room.attach()
                note_keys()
            stop.set()
    assert len(seen) == 2
    return seen, recovery


def _leaks(records: list[logging.LogRecord], secrets_: set[str]) -> list[logging.LogRecord]:
    return [r for r in records if any(s in r.getMessage() for s in secrets_)]


@pytest.mark.anyio
async def test_connection_and_recovery_keys_are_never_logged(
    caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    """A serve session at DEBUG, with a resume and a recovery: no key in the server's logs."""
    keys, recovery = await _serve_session(caplog, anyio_backend)
    served = [r for r in caplog.records if r.name.startswith(_SERVER_LOGGERS)]
    assert served  # the serving side did log, at DEBUG
    assert _leaks(served, {*keys, recovery}) == []


@pytest.mark.anyio
async def test_connection_and_recovery_keys_are_never_logged_by_the_client(
    caplog: pytest.LogCaptureFixture, anyio_backend: str
) -> None:
    keys, recovery = await _serve_session(caplog, anyio_backend)
    mine = [r for r in caplog.records if r.name.startswith("presence_core")]
    assert _leaks(mine, {*keys, recovery}) == []


# --- a token's clientId and capability bind the connection ---------------------------------


def test_a_tokens_client_id_and_capability_bind_the_connection() -> None:
    opaque = AccessToken(token="alices", client_id="alice", capability={"chat:*": ["presence"]})
    jwt_key = ApiKey(name="app.jwt", secret=SECRET)
    jwt = mint_jwt(jwt_key, client_id="alice", capability={"chat:*": ["presence"]}, now=T0)
    server = make_server(keys=(KEY, jwt_key), tokens=(opaque,))
    for n, token in enumerate(("alices", jwt)):
        # A requested clientId that differs is refused, and never granted.
        out = server.connect(f"bad{n}", {"access_token": token, "clientId": "bob"}, now=T0)
        (refused,) = out.messages_for(f"bad{n}")
        assert refused.action == P.ERROR
        assert refused.error is not None
        assert (refused.error.code, refused.error.status_code) == (40102, 401)
        assert out.disconnected() == (f"bad{n}",)
        # Without one, the token's clientId is the connection's, and so is its capability.
        client, out = connect(server, f"t{n}", None, key="", access_token=token)
        (connected,) = out.messages_for(f"t{n}")
        assert connected.connection_details is not None
        assert connected.connection_details.client_id == "alice"
        (attached,) = attach(server, client, CH).messages_for(f"t{n}")
        assert attached.modes == M.PRESENCE
        (denied,) = attach(server, client, "news").messages_for(f"t{n}")
        assert denied.action == P.ERROR
    assert {c.client_id for c in server.connections()} == {"alice"}
