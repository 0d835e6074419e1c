"""The PresenceError hierarchy.

One base, two sides:

* :class:`UsageError` -- the caller misused the API.  It is also a :class:`ValueError`, so
  generic handlers still catch it.
* :class:`ProtocolError` -- the peer sent something illegal.  It names the offending field path.

Both carry the Ably error ``code`` and HTTP-like ``status_code``.  Raising either never changes
the state of the object that raised it: a rejected input changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presence_core._wire import ErrorInfo

__all__ = ["PresenceError", "ProtocolError", "UsageError"]


class PresenceError(Exception):
    """Base of every error raised by presence_core.

    Attributes:
        code: The Ably error code (for example 40000, 90001, 91005).
        status_code: The HTTP-like status that Ably pairs with the code.
        message: A human-readable description.
    """

    def __init__(self, message: str, *, code: int, status_code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code

    def to_error_info(self) -> ErrorInfo:
        """Return the wire form of this error, as an :class:`~presence_core.ErrorInfo`."""
        from presence_core._wire import ErrorInfo  # noqa: PLC0415 - avoids an import cycle

        return ErrorInfo(code=self.code, status_code=self.status_code, message=self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, code={self.code})"


class UsageError(PresenceError, ValueError):
    """The caller misused the API (a local error).  Nothing was changed or sent.

    Examples: entering while the room option ``enter`` is false, entering on a FAILED channel
    (90001), or ``enter_client`` with a clientId that differs from the connection's (40012).
    """

    def __init__(self, message: str, *, code: int = 40000, status_code: int = 400) -> None:
        super().__init__(message, code=code, status_code=status_code)


class ProtocolError(PresenceError):
    """The peer sent something illegal: a malformed frame or a value of the wrong type.

    Attributes:
        path: The offending field path, such as ``presence[3].timestamp``; empty for the frame
            itself.
    """

    def __init__(
        self, message: str, *, path: str = "", code: int = 40000, status_code: int = 400
    ) -> None:
        full = f"{path}: {message}" if path else message
        super().__init__(full, code=code, status_code=status_code)
        self.path = path
