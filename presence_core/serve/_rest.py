"""The HTTP routes: Ably REST presence (RSP3) and the health check.

``GET /channels/{channel}/presence`` answers as Ably's REST presence endpoint does, so that
ably-js's ``Rest`` client's ``channel.presence.get()`` works against this server: a JSON array
of presence messages (action 1, present, as a SYNC lists them), filtered by the ``clientId``
and ``connectionId`` query parameters, at most ``limit`` of them (100 by default, at most
1,000), with a ``Link`` header whose ``rel="next"`` page continues the list.  A client that
cannot read response headers asks for ``envelope=json`` and gets the body wrapped with its
status code and headers.  Credentials are the API key in HTTP Basic auth or a token (opaque
or an Ably JWT) as a Bearer (base64, as ably-js sends them), checked by the reducer's own
rules; listing members needs the ``subscribe`` capability on the channel.  Errors have Ably's
REST shape, ``{"error": {"code", "statusCode", "message"}}``.

A client that accepts ``application/x-msgpack`` (ably-js on Node, by default) gets the same
body in msgpack, binary data as msgpack bin: ably-js decodes a presence page in the format it
asked for, whatever the response's content type says.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, quote, urlencode

from presence_core._codec import encode
from presence_core._msgpack import encode_msgpack, load, unpack_unchecked
from presence_core._wire import ChannelMode, ErrorInfo, ProtocolAction, ProtocolMessage
from presence_core.client import ServerHost
from presence_core.client._support import now_ms
from presence_core.server import ServerConnectionState
from presence_core.server._auth import Authenticator, capability_modes

if TYPE_CHECKING:
    from presence_core.serve._app import Scope, Send

__all__: list[str] = []

_DEFAULT_LIMIT: Final = 100
_MAX_LIMIT: Final = 1_000
_PRESENCE_PREFIX: Final = "/channels/"
_PRESENCE_SUFFIX: Final = "/presence"
_MSGPACK: Final = "application/x-msgpack"


class _HttpError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.info = ErrorInfo(code=code, status_code=status, message=message)


class Rest:
    """Answers the HTTP requests of a :class:`~presence_core.serve.PresenceApp`."""

    def __init__(self, host: ServerHost) -> None:
        self._host = host
        config = host.server.config
        self._auth = Authenticator(config.keys, config.tokens, config.formats)

    async def handle(self, path: str, scope: Scope, send: Send) -> None:
        """Answer one HTTP request for ``path`` (below the mount point)."""
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        envelope = query.pop("envelope", None) is not None
        binary = _MSGPACK in (_header(scope, b"accept") or "") or query.get("format") == "msgpack"
        headers: dict[str, str] = {}
        body: Any
        try:
            if scope.get("method", "GET") not in ("GET", "HEAD"):
                raise _HttpError(405, 40500, "Method not allowed")
            if path == "/health":
                status, body = 200, self._health()
            elif path.startswith(_PRESENCE_PREFIX) and path.endswith(_PRESENCE_SUFFIX):
                channel = path[len(_PRESENCE_PREFIX) : -len(_PRESENCE_SUFFIX)]
                if not channel:
                    raise _HttpError(404, 40400, "No channel named")
                self._authorize(scope, query, channel)
                status = 200
                body, headers = self._presence(channel, query, binary=binary)
            else:
                raise _HttpError(404, 40400, f"Not found: {path}")
        except _HttpError as problem:
            info = problem.info
            status = info.status_code
            body = {"error": {"code": info.code, "statusCode": status, "message": info.message}}
        if envelope:
            body = {"statusCode": status, "response": body, "headers": headers}
            status = 200
        if binary:
            data: bytes = load().packb(body, use_bin_type=True)
            kind = _MSGPACK.encode()
        else:
            data, kind = json.dumps(body, separators=(",", ":")).encode(), b"application/json"
        raw = [(b"content-type", kind), (b"content-length", b"%d" % len(data))]
        raw.extend((name.encode(), value.encode()) for name, value in headers.items())
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": data})

    def _health(self) -> dict[str, Any]:
        server = self._host.server
        connections = server.connections()
        channels = {name for info in connections for name in info.channels}
        in_grace = sum(info.state is ServerConnectionState.DISCONNECTED for info in connections)
        return {
            "status": "ok",
            "connections": len(connections),
            "transports": self._host.transport_count,
            "channels": len(channels),
            "members": sum(len(server.members(name)) for name in channels),
            "in_grace": in_grace,
        }

    def _authorize(self, scope: Scope, query: Mapping[str, str], channel: str) -> None:
        params = {k: query[k] for k in ("key", "access_token") if k in query}
        header = _header(scope, b"authorization")
        if header is not None:
            kind, _, value = header.partition(" ")
            decoded = _base64_text(value.strip())
            if kind.lower() == "basic" and decoded is not None:
                params = {"key": decoded}
            elif kind.lower() == "bearer":
                params = {"access_token": decoded if decoded is not None else value.strip()}
        # The adapter reads the clock: a JWT's expiry is checked against it.
        grant = self._auth.authenticate(params, now=now_ms())
        if isinstance(grant, ErrorInfo):
            raise _HttpError(grant.status_code, grant.code, grant.message)
        capability = grant[0].capability
        if not capability_modes(capability, channel) & ChannelMode.PRESENCE_SUBSCRIBE:
            raise _HttpError(401, 40160, f"No subscribe permission on {channel!r}")

    def _presence(
        self, channel: str, query: Mapping[str, str], *, binary: bool
    ) -> tuple[list[Any], dict[str, str]]:
        try:
            limit = int(query.get("limit", _DEFAULT_LIMIT))
            offset = int(query.get("offset", 0))
        except ValueError:
            raise _HttpError(400, 40000, "limit and offset must be integers") from None
        if not 0 < limit <= _MAX_LIMIT or offset < 0:
            raise _HttpError(400, 40000, f"limit must be 1 to {_MAX_LIMIT}, offset >= 0")
        client_id = query.get("clientId")
        connection_id = query.get("connectionId")
        members = sorted(
            (
                m
                for m in self._host.server.members(channel)
                if (client_id is None or m.client_id == client_id)
                and (connection_id is None or m.connection_id == connection_id)
            ),
            key=lambda m: (m.client_id or "", m.connection_id or ""),
        )
        page = tuple(members[offset : offset + limit])
        items: list[Any] = []
        if page:
            # The codec's own wire shape of presence items (data with its encoding), in msgpack
            # with binary data as bin, as the frame's msgpack encoding carries it.
            frame = ProtocolMessage(action=ProtocolAction.SYNC, channel=channel, presence=page)
            wire = unpack_unchecked(encode_msgpack(frame)) if binary else encode(frame)
            items = wire["presence"]
        filters = {k: v for k, v in query.items() if k in ("clientId", "connectionId")}
        links = [_link({**filters, "limit": str(limit)}, "first")]
        if offset + limit < len(members):
            links.append(
                _link({**filters, "limit": str(limit), "offset": str(offset + limit)}, "next")
            )
        return items, {"link": ", ".join(links)}


def _link(params: Mapping[str, str], rel: str) -> str:
    return f'<./presence?{urlencode(params, quote_via=quote)}>; rel="{rel}"'


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def _base64_text(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
