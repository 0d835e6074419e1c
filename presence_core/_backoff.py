"""Retry delays with incremental backoff and jitter (RTB1).

The rule, applied wherever a retry waits:

* **RTB1.**  The wait before the nth retry is the initial retry timeout times the backoff
  coefficient times the jitter coefficient.
* **RTB1a.**  The backoff coefficient is the smaller of ``(n + 2) / 3`` and 2: the sequence
  1, 4/3, 5/3, 2, 2 ...
* **RTB1b.**  The jitter coefficient lies between 0.8 and 1, drawn roughly uniformly.

The core reads no randomness: the caller injects a :data:`Jitter` source, a callable that
returns a float in ``[0, 1)``, and ``u`` from it gives the coefficient ``1 - u / 5``.  A value
outside ``[0, 1)`` (a faulty source, NaN) counts as 0, so no source can make a retry instant,
negative or longer than the backoff allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

__all__: list[str] = []

#: A jitter source: returns a float in ``[0, 1)`` on each call (``random.random`` fits).
Jitter: TypeAlias = Callable[[], float]


def no_jitter() -> float:
    """The default jitter source: always 0, so every coefficient is 1 and delays are exact."""
    return 0.0


def retry_delay(initial: int, attempt: int, u: float) -> int:
    """The wait in ms before retry number ``attempt`` (from 1), for a jitter draw ``u`` (RTB1).

    Whole milliseconds, rounded down; at least 1.
    """
    if not 0.0 <= u < 1.0:
        u = 0.0
    # The backoff is kept as thirds, so that a delay without jitter is exact in ints.
    return max(1, int(initial * min(attempt + 2, 6) * (1.0 - u / 5) / 3))
