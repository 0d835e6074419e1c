"""The server's settings from the command line and a TOML file, as a ServerConfig.

The TOML file has three optional parts: ``[[keys]]`` (``name``, ``secret``, and optionally
``capability``, a table of channel pattern to a list of operations, and ``any_client_id``),
``[[tokens]]`` (``token``, optionally ``client_id`` and ``capability``), and ``[server]``, whose
keys are :class:`~presence_core.server.ServerConfig` settings with the values it takes
(durations in milliseconds).  Command-line flags win over the file; their durations are in
seconds.  Keys from both are accepted.  Ably JWTs need no setting: every key signs them (its
name is their ``kid``), so a server accepts the JWTs of each key it has.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from presence_core._errors import UsageError
from presence_core.server import AccessToken, ApiKey, ServerConfig

__all__: list[str] = []

#: Settings the ``[server]`` table may not set: credentials have tables of their own, and the
#: codec limits are not a plain value.
_NOT_IN_TABLE = frozenset({"keys", "tokens", "codec_limits"})


def parse_key(text: str) -> ApiKey:
    """``NAME:SECRET`` as an API key with every capability.

    Raises:
        UsageError: There is no colon, or a part is empty.
    """
    name, sep, secret = text.partition(":")
    if not sep or not name or not secret:
        raise UsageError(f"a key is NAME:SECRET, got {text!r}")
    return ApiKey(name=name, secret=secret)


def load_config(
    path: Path | None,
    *,
    keys: Sequence[ApiKey] = (),
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """The ServerConfig of the TOML file at ``path`` (if any), ``keys`` and ``overrides``.

    Raises:
        UsageError: The file is not valid TOML or names an unknown setting, or a setting is out
            of range (as :class:`ServerConfig` checks it).
    """
    table: dict[str, Any] = {}
    if path is not None:
        try:
            table = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"cannot read {path}: {exc}") from exc
    unknown = table.keys() - {"keys", "tokens", "server"}
    if unknown:
        raise UsageError(f"unknown tables in {path}: {sorted(unknown)}")
    settings = dict(table.get("server", {}))
    allowed = {field.name for field in attrs.fields(ServerConfig)} - _NOT_IN_TABLE
    bad = settings.keys() - allowed
    if bad:
        raise UsageError(f"unknown [server] settings in {path}: {sorted(bad)}")
    settings.update(overrides or {})
    try:
        file_keys = [ApiKey(**entry) for entry in table.get("keys", [])]
        tokens = [AccessToken(**entry) for entry in table.get("tokens", [])]
        return ServerConfig(keys=(*file_keys, *keys), tokens=tokens, **settings)
    except TypeError as exc:
        raise UsageError(f"bad credentials in {path}: {exc}") from exc
