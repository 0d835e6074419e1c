"""The two checks every reducer fuzz test makes, whatever the reducer.

* :func:`checked`: a call either succeeds or raises one of the allowed typed errors, and a
  raising call leaves the reducer's snapshot exactly as it was.
* :class:`Replay`: the calls that succeeded, replayed on a fresh reducer without the refused
  ones, give the same outputs and the same final snapshot.  This catches a refused input that
  changed state the snapshot does not show (a counter, a dedup record, a timer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Generic, TypeVar

from presence_core import ProtocolError, ProtocolMessage, decode

R = TypeVar("R")


def decoded(frame: Any) -> ProtocolMessage | None:
    """The frame as the codec hands it to a reducer, or ``None`` when the codec refuses it."""
    try:
        return decode(frame)
    except ProtocolError:
        return None


#: What :func:`checked` returns for a call that raised an allowed error.
REFUSED: Final = object()


def checked(
    snapshot: Callable[[], object],
    call: Callable[[], object],
    allowed: tuple[type[Exception], ...],
) -> object:
    """Run ``call``; only ``allowed`` errors may escape it, and they change nothing.

    Returns the call's result, or :data:`REFUSED` when it raised an allowed error.
    """
    before = snapshot()
    try:
        return call()
    except allowed as exc:
        error = exc
    assert snapshot() == before, f"{error!r} was raised but the state changed"
    return REFUSED


class Replay(Generic[R]):
    """The accepted calls of one run and their outputs, to replay on a fresh reducer."""

    def __init__(self, start: Callable[[], R]) -> None:
        self._start = start
        self.reducer = start()
        self._calls: list[Callable[[R], object]] = []
        self._outputs: list[object] = []

    def run(
        self,
        snapshot: Callable[[R], object],
        call: Callable[[R], object],
        allowed: tuple[type[Exception], ...] = (),
        *,
        record: bool = True,
    ) -> object:
        """Run ``call`` on the reducer through :func:`checked`; record it if it succeeded.

        ``record=False`` leaves out of the replay a call that the reducer refused by answering
        (a server's NACK), not by raising.
        """
        reducer = self.reducer
        result = checked(lambda: snapshot(reducer), lambda: call(reducer), allowed)
        if record and result is not REFUSED:
            self._calls.append(call)
            self._outputs.append(result)
        return result

    def check(self, snapshot: Callable[[R], object]) -> None:
        """Replay the accepted calls on a fresh reducer: same outputs, same final state."""
        fresh = self._start()
        for index, (call, want) in enumerate(zip(self._calls, self._outputs, strict=True)):
            assert call(fresh) == want, f"call {index} differs once refused inputs are left out"
        assert snapshot(fresh) == snapshot(self.reducer)
