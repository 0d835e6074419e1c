"""Credentials and capabilities: who a connection is and what it may do on each channel.

RULES OF THIS MODULE

* A credential is checked at ``connect``; what it allows is kept as a :class:`Grant` on the
  connection and replaced only by a resume with new credentials or by an AUTH frame's token
  (RTC8a), which may change what the connection may do but never who it is.
* A capability maps channel patterns to operations, and an operation stands for channel modes.
  A connection gets on a channel the intersection of the modes it asked for in ATTACH (the
  default modes when it asked for none) with the union of what every matching pattern grants.
* The server never answers with an identity other than the one asked for: a clientId that
  conflicts with the credential's is refused (40102), since the client would fail on it anyway.
  A credential that binds a clientId fixes the connection's identity: an opaque token with a
  ``client_id``, and every JWT but one for ``*`` (one without ``x-ably-clientId`` binds the
  connection to being unidentified, as Ably's tokens do).
* A JWT (``_jwt`` states how one is read and checked) gets the capability of its claim and of
  its key at once, channel by channel: a key cannot mint more than it has.  A token whose
  capability shares nothing with its key's is refused (40160).
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Final, TypeAlias

import attrs

from presence_core._errors import UsageError
from presence_core._wire import DEFAULT_MODES, MODE_MASK, AuthDetails, ChannelMode, ErrorInfo
from presence_core.server._jwt import is_jwt, read_jwt
from presence_core.server._output import Reject, error

__all__ = ["ApiKey", "AccessToken"]

#: Which channel modes each capability operation allows.  ``subscribe`` covers both message
#: and presence subscription, as in Ably.
_OPERATION_MODES: Final[Mapping[str, int]] = types.MappingProxyType(
    {
        "presence": int(ChannelMode.PRESENCE),
        "publish": int(ChannelMode.PUBLISH),
        "subscribe": int(ChannelMode.SUBSCRIBE | ChannelMode.PRESENCE_SUBSCRIBE),
        "annotation-publish": int(ChannelMode.ANNOTATION_PUBLISH),
        "annotation-subscribe": int(ChannelMode.ANNOTATION_SUBSCRIBE),
        "object-subscribe": int(ChannelMode.OBJECT_SUBSCRIBE),
        "object-publish": int(ChannelMode.OBJECT_PUBLISH),
        "*": MODE_MASK,
    }
)

Capability: TypeAlias = Mapping[str, frozenset[str]]


def _freeze_capability(value: Mapping[str, Iterable[str]]) -> Capability:
    """Validate a capability and return a read-only copy with frozenset values."""
    if not isinstance(value, Mapping):
        raise UsageError("capability must be a mapping of channel pattern to operations")
    frozen: dict[str, frozenset[str]] = {}
    for pattern, operations in value.items():
        if not isinstance(pattern, str) or not pattern:
            raise UsageError(f"capability pattern {pattern!r} must be a non-empty string")
        if isinstance(operations, str):
            raise UsageError(f"capability operations for {pattern!r} must be a collection")
        ops = frozenset(operations)
        unknown = ops - _OPERATION_MODES.keys()
        if unknown:
            raise UsageError(f"unknown capability operations {sorted(unknown)} for {pattern!r}")
        frozen[pattern] = ops
    return types.MappingProxyType(frozen)


def capability_modes(capability: Capability, channel: str) -> int:
    """Return the union of the modes every matching pattern grants on ``channel``.

    A pattern is an exact channel name, ``*`` (every channel), or a prefix ending in ``*``
    (``chat:*`` matches ``chat:lobby``).
    """
    modes = 0
    for pattern, operations in capability.items():
        if pattern == channel or (pattern.endswith("*") and channel.startswith(pattern[:-1])):
            for operation in operations:
                modes |= _OPERATION_MODES[operation]
    return modes


def _pattern_meet(first: str, second: str) -> str | None:
    """The pattern matching exactly the channels both patterns match, or ``None`` if none."""
    if first.endswith("*") and second.endswith("*"):
        if first[:-1].startswith(second[:-1]):
            return first
        return second if second[:-1].startswith(first[:-1]) else None
    if first.endswith("*"):
        first, second = second, first
    if first == second or (second.endswith("*") and first.startswith(second[:-1])):
        return first
    return None


def intersect_capability(first: Capability, second: Capability) -> Capability:
    """The capability granting on each channel what both ``first`` and ``second`` grant there.

    ``capability_modes`` of the result is, on every channel, the bitwise and of theirs: modes
    distribute over the union of matching patterns, so the meet of every pair of patterns, with
    the operations both allow, is exact.  Operations the server does not know are dropped.
    """
    met: dict[str, frozenset[str]] = {}
    for pattern, operations in first.items():
        for other, others in second.items():
            where = _pattern_meet(pattern, other)
            if where is None:
                continue
            if "*" in operations:
                allowed = others
            elif "*" in others:
                allowed = operations
            else:
                allowed = operations & others
            allowed = allowed & _OPERATION_MODES.keys()
            if allowed:
                met[where] = met.get(where, frozenset()) | allowed
    return types.MappingProxyType(met)


def granted_modes(allowed: int, flags: int | None) -> int:
    """Return the modes an ATTACH with ``flags`` gets where the capability ``allowed`` these."""
    requested = (flags or 0) & MODE_MASK or int(DEFAULT_MODES)
    return requested & allowed


_FULL_CAPABILITY: Final[Capability] = types.MappingProxyType({"*": frozenset({"*"})})


@attrs.frozen(kw_only=True)
class ApiKey:
    """An API key the server accepts in the ``key`` query parameter, as ``name:secret``.

    ``capability`` maps channel patterns to operations (``presence``, ``subscribe``,
    ``publish``, the annotation and object operations, or ``*`` for all).  A connection made
    with this key is identified by the ``clientId`` query parameter, if any.
    ``any_client_id`` lets an *unidentified* connection act for any clientId
    (``enter_client``), as a trusted backend does.  The key also signs the Ably JWTs the server
    accepts in ``access_token`` (HS256 with ``secret``, ``kid`` = ``name``; see ``_jwt``).
    """

    #: The key name, such as ``appid.keyid``.
    name: str
    #: The secret after the colon.
    secret: str
    capability: Capability = attrs.field(default=_FULL_CAPABILITY, converter=_freeze_capability)
    any_client_id: bool = False

    @property
    def key(self) -> str:
        """The full key string a client passes: ``name:secret``."""
        return f"{self.name}:{self.secret}"


@attrs.frozen(kw_only=True)
class AccessToken:
    """An opaque token the server accepts in the ``access_token`` query parameter.

    A token of three dot-separated parts is read as a JWT instead, so none is accepted here.
    ``client_id`` binds the connection's identity (a client asking for another clientId is
    refused with 40102); ``"*"`` means the connection is unidentified but may act for any
    clientId; ``None`` leaves the identity to the ``clientId`` query parameter.
    """

    token: str = attrs.field()
    capability: Capability = attrs.field(default=_FULL_CAPABILITY, converter=_freeze_capability)
    client_id: str | None = None

    @token.validator
    def _opaque(self, attribute: attrs.Attribute[str], value: str) -> None:
        # A token of three dot-separated parts is read as a JWT, so this one could never match.
        if is_jwt(value):
            raise UsageError(f"access token {value!r} has the shape of a JWT")


@attrs.frozen(kw_only=True)
class Grant:
    """What a credential allows: capability, identity, acting for others, and until when."""

    capability: Capability
    #: The clientId the credential names; it is the connection's own when ``bound``.
    client_id: str | None
    #: Whether the credential fixes the connection's clientId to ``client_id``.
    bound: bool
    any_client_id: bool = False
    #: Epoch ms at which the credential expires (a JWT's ``exp``); ``None`` for never.
    expires: int | None = None


def acting_client_id(own: str | None, grant: Grant, requested: str | None) -> str | None:
    """Return the clientId a message acts for, or raise :class:`Reject` (40012).

    ``own`` is the connection's clientId; a message naming none acts for it.
    """
    if requested is None:
        return own
    if requested == own:
        return requested
    if own is None and grant.any_client_id and requested not in ("", "*"):
        return requested
    raise Reject(error(40012, 400, f"Mismatched clientId: {requested!r}"))


class Authenticator:
    """Checks the credentials and clientId of a ``connect`` against the configured ones."""

    __slots__ = ("_formats", "_keys", "_secrets", "_tokens")

    def __init__(
        self, keys: Iterable[ApiKey], tokens: Iterable[AccessToken], formats: frozenset[str]
    ) -> None:
        self._keys = {key.name: key for key in keys}
        self._secrets = {key.name: key.secret for key in self._keys.values()}
        self._tokens = {token.token: token for token in tokens}
        self._formats = formats

    def authenticate(
        self, params: Mapping[str, str], *, now: int | None = None
    ) -> ErrorInfo | tuple[Grant, str | None]:
        """Return a refusal, or (grant, clientId) for the query parameters ``params``.

        ``now`` (epoch ms) is what a JWT's expiry is checked against; without it every JWT is
        refused (40140), since its expiry cannot be known.
        """
        fmt = params.get("format", "json")
        if fmt not in self._formats:
            return error(40000, 400, f"Unsupported format {fmt!r}")
        requested = params.get("clientId")
        if requested in {"*", ""}:
            return error(40012, 400, "Invalid clientId")
        key = params.get("key")
        token = params.get("access_token")
        grant: Grant
        if key is not None:
            name, sep, secret = key.partition(":")
            api_key = self._keys.get(name)
            if not sep or api_key is None or api_key.secret != secret:
                return error(40101, 401, "Invalid credentials")
            grant = Grant(
                capability=api_key.capability,
                client_id=None,
                bound=False,
                any_client_id=api_key.any_client_id,
            )
        elif token is not None:
            found = self._token_grant(token, now)
            if isinstance(found, ErrorInfo):
                return found
            grant = found
        else:
            return error(40101, 401, "No key or access_token")
        client_id = requested
        if grant.bound:
            if requested is not None and requested != grant.client_id:
                return error(40102, 401, "Mismatched clientId")
            client_id = grant.client_id
        return grant, client_id

    def reauthorize(
        self, auth: AuthDetails | None, client_id: str | None, *, now: int
    ) -> ErrorInfo | Grant:
        """Return the grant of an AUTH frame's token on a connection of ``client_id`` (RTC8a).

        A token binding a clientId other than the connection's is refused with 40102: an AUTH
        renews the credential, never the identity.
        """
        if auth is None or not auth.access_token:
            return error(40101, 401, "AUTH without an accessToken")
        grant = self._token_grant(auth.access_token, now)
        if isinstance(grant, ErrorInfo):
            return grant
        if grant.bound and grant.client_id != client_id:
            return error(40102, 401, "Incompatible credentials: the token's clientId differs")
        return grant

    def _token_grant(self, token: str, now: int | None) -> ErrorInfo | Grant:
        if is_jwt(token):
            return self._jwt_grant(token, now)
        access = self._tokens.get(token)
        if access is None:
            return error(40101, 401, "Invalid credentials")
        if access.client_id == "*":
            return Grant(
                capability=access.capability, client_id=None, bound=False, any_client_id=True
            )
        bound = access.client_id is not None
        return Grant(capability=access.capability, client_id=access.client_id, bound=bound)

    def _jwt_grant(self, token: str, now: int | None) -> ErrorInfo | Grant:
        if now is None:
            return error(40140, 401, "A JWT is not accepted here: its expiry cannot be checked")
        claims = read_jwt(token, self._secrets, now)
        if isinstance(claims, ErrorInfo):
            return claims
        capability = intersect_capability(
            {pattern: frozenset(ops) for pattern, ops in claims.capability.items()},
            self._keys[claims.key_name].capability,
        )
        if not capability:
            return error(40160, 401, "The token's capability is not within its key's")
        wildcard = claims.client_id == "*"
        return Grant(
            capability=capability,
            client_id=None if wildcard else claims.client_id,
            bound=not wildcard,
            any_client_id=wildcard,
            expires=claims.expires,
        )
