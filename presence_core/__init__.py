"""presence_core: deterministic, sans-IO realtime presence with Ably protocol v6 semantics.

This is the flat public namespace of the client core: wire values, the codec, the client
reducers (:class:`PresenceSet` for one room, :class:`Connection` for a connection and its
rooms), their outputs, and the errors.  The server reducer lives in :mod:`presence_core.server`,
the simulator and the hypothesis strategies in :mod:`presence_core.testing`.  Importing this
package imports no I/O adapter: :func:`connect`, the async client's entry point, is looked up
lazily (PEP 562) and imports :mod:`presence_core.client` on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from presence_core._codec import (
    CodecLimits as CodecLimits,
    decode as decode,
    decode_data as decode_data,
    encode as encode,
    encode_data as encode_data,
    encode_text as encode_text,
)
from presence_core._connection import (
    Connection as Connection,
    ConnectionSettings as ConnectionSettings,
    ConnectionSnapshot as ConnectionSnapshot,
)
from presence_core._errors import (
    PresenceError as PresenceError,
    ProtocolError as ProtocolError,
    UsageError as UsageError,
)
from presence_core._msgpack import (
    decode_msgpack as decode_msgpack,
    encode_msgpack as encode_msgpack,
)
from presence_core._output import (
    ChannelEvents as ChannelEvents,
    ChannelState as ChannelState,
    ChannelStateChanged as ChannelStateChanged,
    CloseTransport as CloseTransport,
    Command as Command,
    ConnectionState as ConnectionState,
    ConnectionStateChanged as ConnectionStateChanged,
    Event as Event,
    FrameIgnored as FrameIgnored,
    OpenTransport as OpenTransport,
    Operation as Operation,
    OperationFailed as OperationFailed,
    OperationSucceeded as OperationSucceeded,
    Output as Output,
    PingAnswered as PingAnswered,
    PingFailed as PingFailed,
    ReentryFailed as ReentryFailed,
    RenewToken as RenewToken,
    Send as Send,
    SendMessage as SendMessage,
    SendPresence as SendPresence,
)
from presence_core._presence_set import (
    ChannelSettings as ChannelSettings,
    PresenceMember as PresenceMember,
    PresenceSet as PresenceSet,
    PresenceSnapshot as PresenceSnapshot,
    RoomOptions as RoomOptions,
)
from presence_core._version import __version__ as __version__
from presence_core._wire import (
    DEFAULT_MODES as DEFAULT_MODES,
    AuthDetails as AuthDetails,
    ChannelMode as ChannelMode,
    ConnectionDetails as ConnectionDetails,
    ErrorInfo as ErrorInfo,
    Flag as Flag,
    Message as Message,
    PresenceAction as PresenceAction,
    PresenceMessage as PresenceMessage,
    ProtocolAction as ProtocolAction,
    ProtocolMessage as ProtocolMessage,
)

__all__ = [
    "__version__",
    # errors
    "PresenceError",
    "ProtocolError",
    "UsageError",
    # wire values
    "ProtocolAction",
    "PresenceAction",
    "Flag",
    "ChannelMode",
    "DEFAULT_MODES",
    "ErrorInfo",
    "AuthDetails",
    "ConnectionDetails",
    "PresenceMessage",
    "Message",
    "ProtocolMessage",
    # the codec
    "CodecLimits",
    "decode",
    "encode",
    "encode_text",
    "decode_msgpack",
    "encode_msgpack",
    "decode_data",
    "encode_data",
    # what the reducers return
    "ChannelState",
    "ConnectionState",
    "Operation",
    "ChannelStateChanged",
    "ConnectionStateChanged",
    "ChannelEvents",
    "FrameIgnored",
    "PingAnswered",
    "PingFailed",
    "OperationSucceeded",
    "OperationFailed",
    "ReentryFailed",
    "Event",
    "Send",
    "SendPresence",
    "SendMessage",
    "RenewToken",
    "CloseTransport",
    "OpenTransport",
    "Command",
    "Output",
    # the reducers
    "RoomOptions",
    "ChannelSettings",
    "PresenceMember",
    "PresenceSnapshot",
    "PresenceSet",
    "ConnectionSettings",
    "ConnectionSnapshot",
    "Connection",
    # the async client, imported on first use
    "connect",
]

if TYPE_CHECKING:
    from presence_core.client._client import connect as connect


def __getattr__(name: str) -> Any:
    """Import the async client's ``connect`` on first use, so the core imports no adapter."""
    if name == "connect":
        from presence_core.client import connect  # noqa: PLC0415 - lazy by design

        return connect
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "connect"})
