"""Ably JWTs: reading one and checking its signature, claims and expiry.

RULES OF THIS MODULE

* A token with exactly three dot-separated parts is a JWT; any other token is opaque (see
  :class:`~presence_core.server.AccessToken`).
* A JWT is signed HS256 with an API key's secret, and its header's ``kid`` names that key.  Its
  claims are ``x-ably-capability`` (required: a capability as JSON text, as Ably writes it),
  ``x-ably-clientId`` (optional: the clientId it binds, ``*`` for any), and ``iat`` and ``exp``
  (required: seconds since the epoch).
* The checks run in a fixed order and the first failure answers: the header (40144), the key
  and the signature (40144, one answer for both, so that a caller cannot tell a key name that
  exists from one that does not), the claims (40144), then the expiry (40142).  No claim is
  read before the signature holds.
* ``exp`` is compared with the server's clock, never the machine's: PyJWT's own time checks
  are off.
* PyJWT is imported when the first JWT arrives, so the core imports without it; a server without
  it refuses every JWT with 50000 naming the missing package, and never raises.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

import attrs

from presence_core._wire import ErrorInfo
from presence_core.server._output import error

__all__: list[str] = []

#: The refusal of a JWT whose key is unknown or whose signature does not verify.  Ably answers a
#: JWT signed with the wrong secret with 40144 (a token error, so a client that can renew its
#: token tries once more with a new one), and this server does the same for an unknown key.
BAD_SIGNATURE: Final = error(40144, 401, "Invalid JWT: the signature does not verify")

#: The refusal of a JWT whose ``exp`` has come, and the reason a connection on it is sent away.
TOKEN_EXPIRED: Final = error(40142, 401, "Token expired")

#: PyJWT is an optional dependency of the core: without it no JWT can be checked.
NO_PYJWT: Final = error(
    50000, 500, "This server cannot verify JWTs: PyJWT is not installed (the server extra)"
)

#: Signs nothing: an unknown ``kid`` is checked against it, so that the refusal costs the same
#: HMAC as a wrong signature does.  A token that does verify against it is refused all the same.
_NO_SECRET: Final = "presence-core: no key has this name, and none ever will"


@attrs.frozen
class JwtClaims:
    """What a verified, unexpired JWT says."""

    #: The ``kid``: the name of the key that signed it.
    key_name: str
    #: ``x-ably-clientId``: ``None`` when absent, ``"*"`` for any clientId.
    client_id: str | None
    #: ``x-ably-capability``, parsed: channel pattern to operation names, as written.
    capability: Mapping[str, tuple[str, ...]]
    #: ``exp`` in epoch milliseconds.
    expires: int


def is_jwt(token: str) -> bool:
    """Whether ``token`` is read as a JWT: three dot-separated parts."""
    return token.count(".") == 2


def _malformed(why: str) -> ErrorInfo:
    return error(40144, 401, f"Invalid JWT format: {why}")


def read_jwt(token: str, secrets: Mapping[str, str], now: int) -> JwtClaims | ErrorInfo:
    """Verify ``token`` against the key secrets by name, at ``now`` (epoch ms).

    Returns its claims, or the refusal (see the module rules for which and in what order).
    """
    try:
        import jwt  # noqa: PLC0415 - optional: only a server that meets a JWT needs it
    except ImportError:
        return NO_PYJWT
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, RecursionError):
        return _malformed("the header is not a JWT header")
    kid = header.get("kid")
    if header.get("alg") != "HS256" or not isinstance(kid, str):
        return _malformed("the header needs alg HS256 and the key name as kid")
    secret = secrets.get(kid)
    try:
        # PyJWT checks the signature only: the claims are read below, and time is the server's.
        claims = jwt.decode(
            token,
            _NO_SECRET if secret is None else secret,
            algorithms=["HS256"],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
            },
        )
    except jwt.InvalidSignatureError:
        return BAD_SIGNATURE
    except (jwt.PyJWTError, RecursionError):
        return _malformed("its parts do not decode")
    if secret is None:
        return BAD_SIGNATURE
    return _claims(kid, claims, now)


def _claims(kid: str, claims: Mapping[str, Any], now: int) -> JwtClaims | ErrorInfo:
    exp = claims.get("exp")
    if not _numeric_date(exp) or not _numeric_date(claims.get("iat")):
        return _malformed("iat and exp must be numbers of seconds")
    client_id = claims.get("x-ably-clientId")
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        return _malformed("x-ably-clientId must be a non-empty string")
    capability = _capability(claims.get("x-ably-capability"))
    if capability is None:
        return _malformed("x-ably-capability must be a capability as JSON text")
    expires = math.floor(exp * 1000)
    if now >= expires:
        return TOKEN_EXPIRED
    return JwtClaims(kid, client_id, capability, expires)


def _numeric_date(value: object) -> TypeGuard[int | float]:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _capability(text: object) -> dict[str, tuple[str, ...]] | None:
    """The capability JSON text ``text`` as a mapping, or ``None`` if it is not one."""
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    parsed: dict[str, tuple[str, ...]] = {}
    for pattern, operations in value.items():
        if not pattern or not isinstance(operations, list):
            return None
        if not all(isinstance(operation, str) for operation in operations):
            return None
        parsed[pattern] = tuple(operations)
    return parsed
