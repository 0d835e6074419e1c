"""Ably JWTs on the server reducer: how one is read, what each refusal is, and its expiry.

One test per behaviour, named after it.  Tokens are minted with ``mint_jwt`` (the adapter a
backend uses) or, for the malformed ones, with PyJWT directly.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import sys
import time
from typing import Any

import jwt
import pytest

from presence_core import (
    AuthDetails,
    ChannelMode,
    ErrorInfo,
    PresenceAction,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
)
from presence_core.__main__ import main
from presence_core.serve._settings import load_config, parse_key
from presence_core.serve._tokens import mint_jwt
from presence_core.server import AccessToken, ApiKey, Server, ServerConnectionState, ServerOutput
from presence_core.server._auth import Authenticator
from presence_core.server._jwt import _NO_SECRET
from tests.server_support import T0, actions, attach, connect, make_server, presence

A = PresenceAction
P = ProtocolAction
CH = "chat:lobby"
#: 32 bytes or more, as an Ably key secret is (PyJWT warns below that).
SECRET = "wLzQ9cN4tV2xR7bM1kH6yF3jD8sA5gE0uP"
JWT_KEY = ApiKey(name="app.jwt", secret=SECRET)
LIMITED_KEY = ApiKey(
    name="app.limited",
    secret=SECRET[::-1],
    capability={"chat:*": ["presence", "subscribe"], "news": ["subscribe"]},
)
MINUTE = 60_000


def jwt_server(**settings: Any) -> Server:
    return make_server(keys=(JWT_KEY, LIMITED_KEY), **settings)


def token(key: ApiKey = JWT_KEY, *, now: int = T0, ttl: int = MINUTE, **claims: Any) -> str:
    return mint_jwt(key, now=now, ttl=ttl, **claims)


def refusal(out: ServerOutput, tid: str) -> ErrorInfo:
    """The connection ERROR of a refused connect (or AUTH), which is then disconnected."""
    (frame,) = out.messages_for(tid)
    assert (frame.action, frame.channel) == (P.ERROR, None)
    assert frame.error is not None
    assert out.disconnected() == (tid,)
    return frame.error


def frames(out: ServerOutput, tid: str) -> list[ProtocolMessage]:
    """What ``tid`` got, heartbeats aside."""
    return [m for m in out.messages_for(tid) if m.action != P.HEARTBEAT]


def connect_with(server: Server, tid: str, access_token: str, **params: str) -> ServerOutput:
    return server.connect(tid, {"access_token": access_token, **params}, now=T0)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def signed(header: dict[str, Any], payload: bytes, key: str = SECRET) -> str:
    """A JWT of any header and payload bytes, signed HS256 by hand (PyJWT refuses odd ones)."""
    head = f"{_b64(json.dumps(header).encode())}.{_b64(payload)}"
    mac = hmac.new(key.encode(), head.encode(), hashlib.sha256).digest()
    return f"{head}.{_b64(mac)}"


def crafted(
    claims: dict[str, Any], *, key: str = SECRET, kid: Any = JWT_KEY.name, alg: str = "HS256"
) -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    return signed(header, json.dumps(claims).encode(), key)


GOOD_CLAIMS: dict[str, Any] = {
    "iat": T0 // 1000,
    "exp": T0 // 1000 + 60,
    "x-ably-capability": '{"*":["*"]}',
}


# --- accepted -------------------------------------------------------------------------------


def test_jwt_accepted_binds_its_client_id_and_its_capability() -> None:
    server = jwt_server()
    jwt_token = token(client_id="alice", capability={"chat:*": ["presence", "subscribe"]})
    client, out = connect(server, "t1", None, key="", access_token=jwt_token)
    (connected,) = out.messages_for("t1")
    assert connected.connection_details is not None
    assert connected.connection_details.client_id == "alice"
    (attached,) = attach(server, client, CH).messages_for("t1")
    assert attached.modes == ChannelMode.PRESENCE | ChannelMode.SUBSCRIBE | (
        ChannelMode.PRESENCE_SUBSCRIBE
    )
    (denied,) = attach(server, client, "news").messages_for("t1")
    assert (denied.action, denied.error and denied.error.code) == (P.ERROR, 40160)


def test_jwt_is_told_from_an_opaque_token_by_its_three_parts() -> None:
    """An opaque token of two dots would be read as a JWT, so the config refuses one."""
    server = jwt_server(tokens=(AccessToken(token="one.two", client_id="bob"),))
    connect(server, "t1", None, key="", access_token="one.two")
    assert refusal(connect_with(server, "t2", "one.two.three"), "t2").code == 40144
    with pytest.raises(UsageError):
        AccessToken(token="one.two.three")


def test_jwt_with_a_float_exp_and_iat_is_accepted() -> None:
    server = jwt_server()
    claims = {**GOOD_CLAIMS, "iat": T0 / 1000, "exp": T0 / 1000 + 1.5}
    connect(server, "t1", None, key="", access_token=crafted(claims))
    assert server.connections()[0].client_id is None


# --- refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("at", [T0 + MINUTE, T0 + 2 * MINUTE])
def test_jwt_expired_refused_40142(at: int) -> None:
    server = jwt_server()
    out = server.connect("t1", {"access_token": token(client_id="alice")}, now=at)
    assert (refusal(out, "t1").code, refusal(out, "t1").status_code) == (40142, 401)
    assert server.connections() == ()


def test_jwt_expiry_is_the_servers_clock_not_the_machines() -> None:
    """A token that expired long ago by the machine's clock is valid at the server's ``now``."""
    server = jwt_server()
    old = token(now=1_000_000, ttl=MINUTE)
    server.connect("t1", {"access_token": old}, now=1_000_000 + MINUTE - 1)
    assert len(server.connections()) == 1


MALFORMED = {
    "three-empty-parts": "..",
    "not-base64": "a.b.c",
    "header-not-json": "bm90IGpzb24.e30.c2ln",
    "alg-none": crafted(GOOD_CLAIMS, alg="none"),
    "alg-hs512": jwt.encode(GOOD_CLAIMS, SECRET * 2, algorithm="HS512", headers={"kid": "app.jwt"}),
    "no-kid": crafted(GOOD_CLAIMS, kid=None),
    "kid-not-a-string": crafted(GOOD_CLAIMS, kid=7),
    "no-exp": crafted({k: v for k, v in GOOD_CLAIMS.items() if k != "exp"}),
    "no-iat": crafted({k: v for k, v in GOOD_CLAIMS.items() if k != "iat"}),
    "exp-a-string": crafted({**GOOD_CLAIMS, "exp": "tomorrow"}),
    "exp-true": crafted({**GOOD_CLAIMS, "exp": True}),
    "exp-infinite": crafted({**GOOD_CLAIMS, "exp": float("inf")}),
    "no-capability": crafted({k: v for k, v in GOOD_CLAIMS.items() if k != "x-ably-capability"}),
    "capability-an-object": crafted({**GOOD_CLAIMS, "x-ably-capability": {"*": ["*"]}}),
    "capability-not-json": crafted({**GOOD_CLAIMS, "x-ably-capability": "{*}"}),
    "capability-a-list": crafted({**GOOD_CLAIMS, "x-ably-capability": '["*"]'}),
    "capability-ops-a-string": crafted({**GOOD_CLAIMS, "x-ably-capability": '{"*":"*"}'}),
    "capability-empty-pattern": crafted({**GOOD_CLAIMS, "x-ably-capability": '{"":["*"]}'}),
    "capability-deep": crafted({**GOOD_CLAIMS, "x-ably-capability": "[" * 100_000}),
    "client-id-empty": crafted({**GOOD_CLAIMS, "x-ably-clientId": ""}),
    "client-id-a-number": crafted({**GOOD_CLAIMS, "x-ably-clientId": 7}),
    "payload-not-json": signed({"alg": "HS256", "kid": JWT_KEY.name}, b"not json"),
    "payload-a-list": signed({"alg": "HS256", "kid": JWT_KEY.name}, b"[1]"),
}


@pytest.mark.parametrize("bad", MALFORMED.values(), ids=MALFORMED.keys())
def test_jwt_malformed_refused_40144(bad: str) -> None:
    server = jwt_server()
    error = refusal(connect_with(server, "t1", bad), "t1")
    assert (error.code, error.status_code) == (40144, 401)
    assert server.connections() == ()


def test_jwt_bad_signature_or_unknown_kid_refused_alike_40144() -> None:
    """One answer for both, so that a caller cannot tell which key names exist."""
    server = jwt_server()
    wrong_secret = crafted(GOOD_CLAIMS, key="not-" + SECRET)
    unknown_kid = crafted(GOOD_CLAIMS, kid="app.nobody")
    # The constant an unknown kid is checked against signs nothing either.
    signed_by_the_placeholder = crafted(GOOD_CLAIMS, kid="app.nobody", key=_NO_SECRET)
    errors = [
        refusal(connect_with(server, tid, bad), tid)
        for tid, bad in (
            ("t1", wrong_secret),
            ("t2", unknown_kid),
            ("t3", signed_by_the_placeholder),
        )
    ]
    assert errors[0] == errors[1] == errors[2]
    assert (errors[0].code, errors[0].status_code) == (40144, 401)
    assert "signature" in errors[0].message


def test_jwt_signature_is_checked_before_its_expiry() -> None:
    server = jwt_server()
    forged_and_expired = crafted({**GOOD_CLAIMS, "exp": 1}, key="not-" + SECRET)
    assert refusal(connect_with(server, "t1", forged_and_expired), "t1").code == 40144


def test_jwt_needs_the_time_to_be_accepted() -> None:
    """An adapter that authenticates without ``now`` (a REST route) cannot accept a JWT."""
    auth = Authenticator((JWT_KEY,), (), frozenset({"json"}))
    refused = auth.authenticate({"access_token": token()})
    assert isinstance(refused, ErrorInfo)
    assert (refused.code, refused.status_code) == (40140, 401)
    assert not isinstance(auth.authenticate({"access_token": token()}, now=T0), ErrorInfo)


def test_jwt_without_pyjwt_is_refused_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "jwt", None)  # import jwt now raises ImportError
    server = jwt_server()
    error = refusal(connect_with(server, "t1", token()), "t1")
    assert (error.code, error.status_code) == (50000, 500)
    assert "PyJWT" in error.message
    connect(server, "t2", "bob", key=JWT_KEY.key)  # keys work without it


def test_core_imports_and_serves_keys_without_pyjwt() -> None:
    code = (
        "import sys; sys.modules['jwt'] = None\n"
        "from presence_core.server import ApiKey, Server, ServerConfig\n"
        "key = ApiKey(name='k', secret='s')\n"
        "server = Server(ServerConfig(keys=(key,)), lambda n: bytes(n))\n"
        "out = server.connect('t', {'key': key.key}, now=0)\n"
        "print(out.messages_for('t')[0].action)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == str(int(P.CONNECTED))


def test_jwt_is_imported_only_when_a_jwt_arrives() -> None:
    code = (
        "import sys\n"
        "from presence_core.server import ApiKey, Server, ServerConfig\n"
        "key = ApiKey(name='k', secret='s')\n"
        "server = Server(ServerConfig(keys=(key,)), lambda n: bytes(n))\n"
        "server.connect('t', {'key': key.key}, now=0)\n"
        "print('jwt' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )
    assert result.stdout.strip() == "False"


# --- capability and clientId --------------------------------------------------------------


def test_jwt_capability_is_cut_to_its_keys() -> None:
    """A key cannot mint more than it has: the token gets what both allow, channel by channel."""
    server = jwt_server()
    everything = token(LIMITED_KEY, client_id="alice", capability={"*": ["*"]})
    client, _ = connect(server, "t1", None, key="", access_token=everything)
    (chat,) = attach(server, client, CH).messages_for("t1")
    assert chat.modes == ChannelMode.PRESENCE | ChannelMode.SUBSCRIBE | (
        ChannelMode.PRESENCE_SUBSCRIBE
    )
    (news,) = attach(server, client, "news").messages_for("t1")
    assert news.modes == ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE
    (other,) = attach(server, client, "other").messages_for("t1")
    assert (other.action, other.error and other.error.code) == (P.ERROR, 40160)


def test_jwt_capability_outside_its_keys_refused_40160() -> None:
    server = jwt_server()
    elsewhere = token(LIMITED_KEY, capability={"admin:*": ["*"], "news": ["publish"]})
    error = refusal(connect_with(server, "t1", elsewhere), "t1")
    assert (error.code, error.status_code) == (40160, 401)


def test_jwt_capability_operations_this_server_does_not_know_grant_nothing() -> None:
    server = jwt_server()
    claims = {**GOOD_CLAIMS, "x-ably-capability": '{"*":["history","subscribe"]}'}
    client, _ = connect(server, "t1", None, key="", access_token=crafted(claims))
    (attached,) = attach(server, client, CH).messages_for("t1")
    assert attached.modes == ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE
    only_unknown = {**GOOD_CLAIMS, "x-ably-capability": '{"*":["history"]}'}
    assert refusal(connect_with(server, "t2", crafted(only_unknown)), "t2").code == 40160


@pytest.mark.parametrize(
    ("claim", "requested", "expected"),
    [
        ("alice", None, "alice"),
        ("alice", "alice", "alice"),
        ("alice", "bob", 40102),
        (None, None, None),
        (None, "bob", 40102),  # a token without a clientId binds an unidentified connection
        ("*", None, None),
        ("*", "bob", "bob"),
    ],
)
def test_jwt_client_id_binds_the_connection_and_a_different_one_is_refused_40102(
    claim: str | None, requested: str | None, expected: str | int | None
) -> None:
    server = jwt_server()
    params = {"access_token": token(client_id=claim)}
    if requested is not None:
        params["clientId"] = requested
    out = server.connect("t1", params, now=T0)
    if isinstance(expected, int):
        assert refusal(out, "t1").code == expected
        return
    (connected,) = out.messages_for("t1")
    assert connected.connection_details is not None
    assert connected.connection_details.client_id == expected


def test_jwt_wildcard_client_id_may_act_for_others() -> None:
    server = jwt_server()
    client, _ = connect(server, "t1", None, key="", access_token=token(client_id="*"))
    attach(server, client, CH)
    out = presence(server, client, CH, A.ENTER, client_id="carol")
    assert actions(out, "t1") == [P.PRESENCE, P.ACK]


# --- expiry on a live connection (RTN15h) ------------------------------------------------


def test_jwt_expiry_mid_connection_sends_disconnected_40142_and_stays_resumable() -> None:
    server = jwt_server()
    alice, _ = connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    bob, _ = connect(server, "t2", "bob", key=JWT_KEY.key)
    attach(server, alice, CH)
    attach(server, bob, CH)
    presence(server, alice, CH, A.ENTER)
    deadline = server.next_deadline()
    assert deadline is not None
    assert deadline <= T0 + MINUTE
    assert not frames(server.tick(now=T0 + MINUTE - 1), "t1")
    out = server.tick(now=T0 + MINUTE)
    (frame,) = frames(out, "t1")
    assert frame.action == P.DISCONNECTED
    assert frame.error is not None
    assert (frame.error.code, frame.error.status_code) == (40142, 401)
    assert out.disconnected() == ("t1",)
    assert frames(out, "t2") == []  # its members stay for the grace period
    (info,) = [c for c in server.connections() if c.client_id == "alice"]
    assert info.state is ServerConnectionState.DISCONNECTED
    server.transport_closed("t1", now=T0 + MINUTE)
    # The same token again: refused, and the connection is untouched.
    stale = server.connect(
        "t3",
        {"access_token": token(client_id="alice"), "resume": alice.connection_key},
        now=T0 + MINUTE + 10,
    )
    assert refusal(stale, "t3").code == 40142
    assert len(server.members(CH)) == 1
    # A renewed one resumes the same connection (what a client with an authCallback does).
    fresh = token(client_id="alice", now=T0 + MINUTE)
    resumed, out = connect(
        server,
        "t4",
        None,
        now=T0 + MINUTE + 20,
        key="",
        access_token=fresh,
        resume=alice.connection_key,
    )
    assert resumed.connection_id == alice.connection_id
    assert out.messages_for("t4")[0].error is None
    assert frames(out, "t2") == []


def test_jwt_expiry_of_a_connection_without_its_transport_changes_nothing() -> None:
    server = jwt_server(grace_period=5 * MINUTE, connection_state_ttl=10 * MINUTE)
    alice, _ = connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    server.transport_closed("t1", now=T0 + 1)
    assert not server.tick(now=T0 + MINUTE)
    resumed, _ = connect(
        server,
        "t2",
        None,
        now=T0 + MINUTE,
        key="",
        access_token=token(client_id="alice", now=T0 + MINUTE),
        resume=alice.connection_key,
    )
    assert resumed.connection_id == alice.connection_id


def auth(server: Server, tid: str, access_token: str, *, now: int) -> ServerOutput:
    frame = ProtocolMessage(action=P.AUTH, auth=AuthDetails(access_token=access_token))
    return server.receive(tid, frame, now=now)


def test_jwt_auth_with_a_fresh_token_before_expiry_moves_the_expiry() -> None:
    server = jwt_server()
    alice, _ = connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    renewed = token(client_id="alice", now=T0 + MINUTE // 2)
    (connected,) = frames(auth(server, "t1", renewed, now=T0 + MINUTE // 2), "t1")
    assert (connected.action, connected.connection_id) == (P.CONNECTED, alice.connection_id)
    assert not frames(server.tick(now=T0 + MINUTE), "t1")
    (frame,) = frames(server.tick(now=T0 + MINUTE + MINUTE // 2), "t1")
    assert frame.action == P.DISCONNECTED


def test_jwt_auth_with_a_key_bound_token_cancels_the_expiry() -> None:
    server = jwt_server(tokens=(AccessToken(token="forever", client_id="alice"),))
    connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    auth(server, "t1", "forever", now=T0 + 1)
    assert not server.tick(now=T0 + 2 * MINUTE).disconnected()


@pytest.mark.parametrize(
    ("claim", "code"), [("bob", 40102), (None, 40102)], ids=["another", "unidentified"]
)
def test_RTC8a_jwt_auth_cannot_change_the_identity(claim: str | None, code: int) -> None:
    server = jwt_server()
    connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    out = auth(server, "t1", token(client_id=claim, now=T0 + 1), now=T0 + 1)
    assert refusal(out, "t1").code == code


def test_RTC8a_jwt_auth_with_an_expired_token_is_refused_40142() -> None:
    server = jwt_server()
    connect(server, "t1", None, key="", access_token=token(client_id="alice"))
    expired = token(client_id="alice", now=T0 - 2 * MINUTE)
    assert refusal(auth(server, "t1", expired, now=T0 + 1), "t1").code == 40142


def test_jwt_expiries_fire_in_order_among_many_connections() -> None:
    server = jwt_server()
    for n in range(100):
        ttl = MINUTE + (n * 7919) % 1000 * 10  # spread over ten seconds, in a scrambled order
        connect(server, f"t{n}", f"c{n}", key="", access_token=token(client_id=f"c{n}", ttl=ttl))
    fired: list[int] = []
    while (when := server.next_deadline()) is not None and when <= T0 + 2 * MINUTE:
        out = server.tick(now=when)
        fired.extend(when for _ in out.disconnected())
    assert len(fired) == 100
    assert fired == sorted(fired)


# --- mint_jwt -------------------------------------------------------------------------------


def test_mint_jwt_writes_the_claims_as_ably_reads_them() -> None:
    minted = mint_jwt(
        JWT_KEY.key,
        client_id="alice",
        ttl=1_500,
        capability={"b": ["subscribe", "presence"]},
        now=T0 + 250,
    )
    header = jwt.get_unverified_header(minted)
    assert (header["alg"], header["kid"]) == ("HS256", JWT_KEY.name)
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "iat": T0 // 1000,
        "exp": T0 // 1000 + 2,  # rounded up: valid at least ttl
        "x-ably-capability": '{"b":["presence","subscribe"]}',
        "x-ably-clientId": "alice",
    }
    assert json.loads(claims["x-ably-capability"]) == {"b": ["presence", "subscribe"]}
    default = jwt.decode(
        mint_jwt(LIMITED_KEY, now=T0),
        LIMITED_KEY.secret,
        algorithms=["HS256"],
        options={"verify_exp": False},
    )
    assert "x-ably-clientId" not in default
    assert json.loads(default["x-ably-capability"]) == {
        "chat:*": ["presence", "subscribe"],
        "news": ["subscribe"],
    }


def test_mint_jwt_reads_the_clock_unless_given_now() -> None:
    server = jwt_server()
    minted = mint_jwt(JWT_KEY, ttl=MINUTE)
    now = time.time_ns() // 1_000_000
    server.connect("t1", {"access_token": minted}, now=now)
    assert len(server.connections()) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ttl": 0},
        {"ttl": -5},
        {"ttl": 1.5},
        {"client_id": ""},
        {"capability": {"*": ["flying"]}},
        {"capability": {"*": "presence"}},
    ],
)
def test_mint_jwt_refuses_what_no_server_would_accept(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        mint_jwt(JWT_KEY, now=T0, **kwargs)
    with pytest.raises(UsageError):
        mint_jwt("no-colon", now=T0)


# --- presence-core token ----------------------------------------------------------------


def test_token_command_prints_a_jwt_on_its_last_line_that_the_key_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["token", "--key", JWT_KEY.key, "--client-id", "alice", "--ttl", "90"]
    assert main([*argv, "--capability", '{"chat:*": ["presence", "subscribe"]}']) == 0
    minted = capsys.readouterr().out.splitlines()[-1]
    config = load_config(None, keys=[parse_key(JWT_KEY.key)])
    server = Server(config, lambda n: bytes(range(n)))
    now = time.time_ns() // 1_000_000
    out = server.connect("t1", {"access_token": minted, "clientId": "alice"}, now=now)
    assert actions(out, "t1") == [P.CONNECTED]
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] in (90, 91)


@pytest.mark.parametrize(
    "argv",
    [
        ["--key", "no-colon"],
        ["--key", JWT_KEY.key, "--ttl", "0"],
        ["--key", JWT_KEY.key, "--capability", "{not json"],
        ["--key", JWT_KEY.key, "--capability", '{"*": ["flying"]}'],
        ["--key", JWT_KEY.key, "--client-id", ""],
    ],
)
def test_token_command_refuses_bad_arguments_with_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["token", *argv]) == 2
    assert "presence-core token:" in capsys.readouterr().err
