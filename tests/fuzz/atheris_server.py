"""Coverage-guided fuzzing of the Server's raw-frame path with atheris, run by hand.

Usage::

    pip install -e ".[fuzz]"
    python tests/fuzz/atheris_server.py --write-seeds corpus/server     # valid sequences
    python tests/fuzz/atheris_server.py corpus/server -atheris_runs=100000

Arguments after the script name are libFuzzer's.  An input is a sequence of frames, one per
line (compact JSON has no raw newline).  The first byte of a line picks the transport (its
value modulo 3: an identified client, a backend acting for any clientId, a client whose key
allows little) and whether the frame goes as text (bit 2 set) or bytes; the rest is the frame.
The server and its small bounds are those of tests/fuzz/test_fuzz_server.py, and so are the
properties: ``receive_frame`` never raises; a frame the codec refuses is answered with one
NACK or ERROR to its sender (40000, or 40009 over the frame size) and changes nothing the
server shows (members, connections, next deadline).

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
    import presence_core.server  # noqa: F401 - imported here to be instrumented

from tests.fuzz.atheris_support import main
from tests.fuzz.frames import CHANNEL
from tests.fuzz.test_fuzz_server import (
    T0,
    TRANSPORTS,
    check_refusal,
    refused_by_codec,
    start,
    state,
)

TIDS = sorted(TRANSPORTS)
#: Frames after the first this many lines are ignored, so one input stays cheap.
MAX_FRAMES = 16


def test_one_input(data: bytes) -> None:
    """One libFuzzer input: up to :data:`MAX_FRAMES` frames, one per line."""
    server = start()
    live = set(TIDS)
    now = T0
    for line in data.split(b"\n")[:MAX_FRAMES]:
        if not line:
            continue
        selector, body = line[0], line[1:]
        tid = TIDS[selector % len(TIDS)]
        if tid not in live:
            continue
        frame: str | bytes = body.decode("utf-8", "replace") if selector & 4 else body
        now += 10
        server.tick(now=now)
        before = state(server)
        out = server.receive_frame(tid, frame, now=now)
        if refused_by_codec(frame):
            check_refusal(out, tid)
            assert state(server) == before
        for gone in out.disconnected():
            live.discard(str(gone))
            server.transport_closed(gone, now=now)


def _line(tid: str, frame: str) -> bytes:
    return bytes([TIDS.index(tid) | 4]) + frame.encode()


_SEQUENCES = (
    [
        _line("t1", '{"action":14,"channel":"%s","msgSerial":0,"presence":[{"action":2}]}'),
        _line(
            "t2",
            '{"action":14,"channel":"%s","msgSerial":0,"presence":[{"action":2,'
            '"clientId":"bob","data":{"a":1}}]}',
        ),
        _line("t1", '{"action":15,"channel":"%s","msgSerial":1,"messages":[{"name":"x"}]}'),
        _line("t3", '{"action":10,"channel":"%s","flags":983040}'),
        _line("t1", '{"action":14,"channel":"%s","msgSerial":1,"presence":[{"action":3}]}'),
    ],
    [
        _line("t1", '{"action":12,"channel":"%s"}'),
        _line("t1", '{"action":10,"channel":"%s"}'),
        _line("t2", '{"action":16,"channel":"%s"}'),
        _line("t1", '{"action":17,"auth":{"accessToken":"fuzz-token"}}'),
        _line("t2", '{"action":0,"id":"p"}'),
        _line("t1", '{"action":7}'),
    ],
)
#: Valid sequences, one input each, as a starting corpus.
SEEDS = tuple(b"\n".join(lines).replace(b"%s", CHANNEL.encode()) for lines in _SEQUENCES)


if __name__ == "__main__":
    main(test_one_input, SEEDS)
