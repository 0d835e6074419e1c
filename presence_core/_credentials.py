"""What a connection authenticates with: an API key or a token, and renewing the token.

The connection reducer (:mod:`presence_core._connection`) applies these rules through
:class:`Credentials`; getting a token is I/O, so the reducer only asks for one, with a
:class:`~presence_core.RenewToken` command, and the embedder answers with
``Connection.authorize(token, expires_at=, now=)``.

* **Query parameters.**  Every transport sends ``key`` or ``access_token`` (the latest token),
  then ``resume`` or ``recover``, ``clientId``, ``format``, ``heartbeats`` and ``v``.
* **A means to renew.**  A connection made with a key can always authenticate again.  One made
  with a token can renew it only when the embedder says so (``renewable=True``: it has an auth
  callback, as Ably's ``authCallback``); such a connection may also start without a token and
  ask for its first one on connecting.
* **Token errors** (status 401 with a code from 40140 to 40149), in the server's DISCONNECTED
  (RTN15h) or in the ERROR that refuses a connection attempt (RTN14b):

  - with a key, a DISCONNECTED is a loss like any other: the next attempt authenticates again
    with the key (RTN15h2 has nothing to renew), and an ERROR fails the connection as any
    connection ERROR does;
  - with a token and no means to renew, the connection fails with 40171 ("no means to
    renew", status 403), whose ``cause`` is the server's token error (RSA4a2, RTN15h1);
  - with a means to renew, the transport closes and the connection becomes DISCONNECTED with
    the server's error; it asks for a new token at once, and the token it gets connects at
    once, resuming (RTN15h2, RTN14b).  A renewed token refused again is not renewed at once:
    the connection waits its retry delay (RTB1), as after a failed attempt, then asks again.
  While the token stands refused, every attempt the connection would make (a retry, a
  ``connect()``) asks for a token instead of opening a transport with the refused one, and
  keeps the retry timing of a failed attempt (RTN14d, RTN14e), so a callback that never
  answers does not make the connection retry any faster.
* **Renewal before expiry.**  When the token's expiry is known (``expires_at``, epoch ms, given
  with the token), a renewable connection asks for a new token ``token_renewal_margin`` before
  it, or halfway through the token's remaining life if that comes later, so a short-lived
  token is not renewed in a loop.  It asks once per token, in any state but CLOSING, CLOSED and
  FAILED; the new token replaces the old one on the live connection with AUTH (RTC8a).
"""

from __future__ import annotations

from typing import Final, TypeGuard

from presence_core._wire import ErrorInfo

__all__: list[str] = []

#: The protocol version sent as ``v``.
PROTOCOL_VERSION: Final = "6"


def token_error(error: ErrorInfo | None) -> TypeGuard[ErrorInfo]:
    """Whether ``error`` says the token is no longer valid (RTN15h, RTN14b, RTN22a)."""
    return error is not None and error.status_code == 401 and 40140 <= error.code < 40150


def no_means_to_renew(error: ErrorInfo) -> ErrorInfo:
    """RSA4a2: the error a connection fails with when its token is refused and cannot be renewed."""
    return ErrorInfo(
        code=40171,
        status_code=403,
        message="the token was refused and there is no means to renew it",
        cause=error,
    )


class Credentials:
    """A connection's credential (see the module docs): its query parameters and renewal."""

    __slots__ = ("_expires_at", "_margin", "_retried", "params", "refused", "renew_at", "renewable")

    def __init__(self, key: str | None, token: str | None, *, renewable: bool, margin: int) -> None:
        #: ``{"key": ...}`` or ``{"access_token": ...}``; empty while no token was given yet.
        self.params: dict[str, str] = (
            {"key": key} if key is not None else {} if token is None else {"access_token": token}
        )
        #: Whether the embedder can get a new token when asked.
        self.renewable = renewable and key is None
        #: Whether the current token was refused (or there is none yet): ask before using it.
        self.refused = not self.params
        #: When to ask for a new token ahead of the expiry, or ``None``.
        self.renew_at: int | None = None
        self._margin = margin
        # The expiry of a token given before the first input, until start() schedules it.
        self._expires_at: int | None = None
        # Whether the current token was given to replace a refused one: a second refusal in a
        # row waits for the retry delay before asking again.
        self._retried = False

    @property
    def uses_key(self) -> bool:
        """Whether transports authenticate with an API key."""
        return "key" in self.params

    def replace(self, token: str, expires_at: int | None, t: int | None) -> None:
        """Use ``token`` from now on, given at ``t`` (``None``: before the first input).

        Its renewal is scheduled if the connection is renewable; for a token given before the
        first input, when :meth:`start` learns the time.
        """
        self._retried = self.refused
        self.refused = False
        self.params = {"access_token": token}
        self.renew_at = None
        self._expires_at = expires_at if self.renewable else None
        if t is not None:
            self.start(t)

    def start(self, t: int) -> None:
        """Schedule the pending renewal, counting the token's life from ``t``."""
        expires_at, self._expires_at = self._expires_at, None
        if expires_at is not None:
            self.renew_at = max(expires_at - self._margin, t + (expires_at - t) // 2)

    def refuse(self, error: ErrorInfo) -> ErrorInfo | bool:
        """The server refused the token with ``error``, a token error.

        Returns the error to fail with when there is no means to renew (RSA4a2); otherwise
        whether to ask for a new token at once (``False``: this was already a renewal, so
        the retry delay comes first).
        """
        if not self.renewable:
            return no_means_to_renew(error)
        self.refused = True
        self.renew_at = None
        return not self._retried

    def connected(self) -> None:
        """A CONNECTED: the token worked, so a later refusal is renewed at once again."""
        self._retried = False


def transport_params(
    credentials: Credentials,
    resume: str | None,
    recover: str | None,
    client_id: str | None,
    heartbeats: bool,
) -> dict[str, str]:
    """The query parameters of an OpenTransport."""
    params = dict(credentials.params)
    if resume is not None:
        params["resume"] = resume
    elif recover is not None:
        params["recover"] = recover
    if client_id is not None:
        params["clientId"] = client_id
    params["format"] = "json"
    params["heartbeats"] = "true" if heartbeats else "false"
    params["v"] = PROTOCOL_VERSION
    return params
