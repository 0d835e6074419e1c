"""What the atheris harnesses share: their command line (a seed corpus, or libFuzzer's run).

Not a harness itself; see atheris_codec.py and atheris_server.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import atheris


def write_seeds(directory: str, seeds: Sequence[bytes]) -> None:
    """Write ``seeds``, one input per file, as a starting corpus in ``directory``."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seeds):
        (target / f"seed-{index}").write_bytes(seed)


def main(test_one_input: Callable[[bytes], None], seeds: Sequence[bytes]) -> None:
    """Write the seeds (``--write-seeds DIR``), or run libFuzzer with the arguments given."""
    if sys.argv[1:2] == ["--write-seeds"]:
        write_seeds(sys.argv[2], seeds)
        return
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
