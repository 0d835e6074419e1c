"""Coverage-guided fuzzing of the codec with atheris (the ``fuzz`` extra), run by hand.

Usage::

    pip install -e ".[fuzz]"
    python tests/fuzz/atheris_codec.py -atheris_runs=100000            # from nothing
    python tests/fuzz/atheris_codec.py --write-seeds corpus/codec       # valid frames, once
    python tests/fuzz/atheris_codec.py corpus/codec -atheris_runs=1000000

Arguments after the script name are libFuzzer's (``-max_len=4096``, ``-jobs=2``, a corpus
directory...).  Each input is one frame's bytes, decoded as bytes and as text, with the
default limits and with tight ones, as JSON and (when msgpack is installed) as msgpack.  The
properties are those of the hypothesis fuzz tests: decoding raises ProtocolError (40000) or
succeeds, and a decoded frame encodes to a frame that decodes to it again.  A crash is saved
by libFuzzer as ``crash-<sha1>``; replay it with ``python tests/fuzz/atheris_codec.py
crash-<sha1>``.

pytest does not collect this file: its name does not start with ``test_``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

if not __package__:
    # Run as a script: make the repository importable, as ``python -m`` would.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from presence_core import CodecLimits
    from presence_core._msgpack import available

# The properties are the hypothesis tests' own.
from tests.fuzz.atheris_support import main
from tests.fuzz.test_fuzz_codec import TIGHT
from tests.test_codec_fuzz import check_decode

LIMITS = (None, TIGHT)


def check_json(frame: bytes | str) -> None:
    """Decode ``frame`` as JSON, with each of :data:`LIMITS`."""
    for limits in LIMITS:
        check_decode(frame, limits)


def check_msgpack(frame: bytes) -> None:
    """Decode ``frame`` as msgpack, with each of :data:`LIMITS`."""
    from tests.fuzz.test_fuzz_msgpack import check_decode as check_packed  # noqa: PLC0415

    for limits in LIMITS:
        check_packed(frame, limits or CodecLimits())


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: a frame's bytes."""
    check_json(data)
    check_json(data.decode("utf-8", "replace"))
    if available():
        check_msgpack(data)


SEEDS = (
    b'{"action":0}',
    b'{"action":14,"channel":"room1::$chat","msgSerial":3,"presence":[{"action":2,'
    b'"clientId":"alice","data":"{\\"a\\":1}","encoding":"json"}]}',
    b'{"action":16,"channel":"r","channelSerial":"s:","id":"C1:0","connectionId":"C1",'
    b'"timestamp":1700000000000,"presence":[{"action":1,"clientId":"bob","data":"aGk=",'
    b'"encoding":"utf-8/base64","extras":{"x":[1,2]}}]}',
    b'{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"k",'
    b'"maxIdleInterval":15000,"connectionStateTtl":120000},"error":{"code":80008,'
    b'"statusCode":400,"message":"m","cause":{"code":1,"statusCode":2}}}',
    b'{"action":1,"msgSerial":0,"count":2,"res":[{"serials":["a"]},{"serials":[]}]}',
    b'{"action":15,"channel":"r","msgSerial":1,"messages":[{"name":"chat","data":"hi"}]}',
    b'{"action":17,"auth":{"accessToken":"t"}}',
)


if __name__ == "__main__":
    main(test_one_input, SEEDS)
