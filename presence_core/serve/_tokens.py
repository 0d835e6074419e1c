"""Minting the Ably JWTs this server accepts: what a backend hands a browser or a phone.

This is an adapter: it reads the clock unless given ``now``, and it needs PyJWT (the ``server``
extra).  How the server reads and checks a JWT is stated once, in ``presence_core.server._jwt``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping

import jwt

from presence_core._errors import UsageError
from presence_core.serve._settings import parse_key
from presence_core.server import ApiKey

__all__ = ["mint_jwt"]


def mint_jwt(
    key: ApiKey | str,
    *,
    client_id: str | None = None,
    ttl: int = 3_600_000,
    capability: Mapping[str, Iterable[str]] | None = None,
    now: int | None = None,
) -> str:
    """Return an Ably JWT signed HS256 with ``key``'s secret, its header's ``kid`` the key name.

    Args:
        key: The API key that signs it, as an :class:`~presence_core.server.ApiKey` or as
            ``NAME:SECRET``.  A server configured with that key accepts the token.
        client_id: ``x-ably-clientId``: the clientId the token binds a connection to; ``"*"``
            lets the connection act for any clientId; ``None`` leaves the connection
            unidentified.
        ttl: Milliseconds until it expires (``exp``, rounded up to a whole second).
        capability: ``x-ably-capability``: channel pattern to operations.  By default the
            key's whole capability.  A server grants the part of it within the key's capability
            and refuses a token whose capability shares nothing with its key's.
        now: Epoch milliseconds it is issued at (``iat``); by default the system clock.

    Raises:
        UsageError: The key text is not ``NAME:SECRET``, ``ttl`` is not positive, ``client_id``
            is empty, or ``capability`` is not a capability.
    """
    api_key = parse_key(key) if isinstance(key, str) else key
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
        raise UsageError(f"ttl must be a positive int of milliseconds, got {ttl!r}")
    if client_id is not None and (not isinstance(client_id, str) or not client_id):
        raise UsageError("client_id must be a non-empty string or None")
    granted = api_key.capability
    if capability is not None:
        # The key's own check of a capability, so a token states only what a key could.
        granted = ApiKey(name=api_key.name, secret=api_key.secret, capability=capability).capability
    issued = time.time_ns() // 1_000_000 if now is None else now
    claims: dict[str, object] = {
        "iat": issued // 1000,
        "exp": -(-(issued + ttl) // 1000),
        "x-ably-capability": json.dumps(
            {pattern: sorted(operations) for pattern, operations in granted.items()},
            separators=(",", ":"),
        ),
    }
    if client_id is not None:
        claims["x-ably-clientId"] = client_id
    return jwt.encode(claims, api_key.secret, algorithm="HS256", headers={"kid": api_key.name})
