"""Fuzzing the Server reducer with frame sequences from hostile or broken clients.

Three connections (an identified client, a backend that may act for any clientId, and a
client whose key allows little) send a sequence that mixes plausible client frames (ATTACH,
DETACH, PRESENCE, MESSAGE, AUTH, HEARTBEAT, SYNC, CLOSE, DISCONNECT, unknown actions), raw
or decoded, the same frames mangled on the wire, transport losses, resumes and timer ticks.
The server's bounds are small, so the sequences reach them: message size, members per
channel, channels per connection, rate, frame size, nesting, item counts.
A second test sends single frames of any shape the shipped strategies make (every action, any
channel name).  Properties:

* ``receive_frame`` (raw text or bytes) and ``receive`` (decoded frames) never raise;
* a frame the codec refuses is answered with exactly one frame to its sender: a NACK of its
  msgSerial (count 1) or an ERROR, with code 40000 (40009 when over the frame size);
* a frame refused this way, or one the server NACKs or answers with an ERROR (a refused AUTH
  apart, which ends the connection), changes nothing: ``members()`` of every channel,
  ``connections()`` and ``next_deadline()`` are as they were;
* replaying every call but the codec-refused frames on a fresh server gives the same
  outputs and state, so a refused frame did not touch hidden state either (the msgSerial
  dedup record, the rate bucket).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any, Final

import attrs
from hypothesis import given, strategies as st

from presence_core import (
    CodecLimits,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    decode,
)
from presence_core.server import (
    AccessToken,
    ApiKey,
    Deliver,
    Server,
    ServerConfig,
    ServerOutput,
)
from presence_core.testing import strategies
from tests.fuzz.frames import CHANNEL, CHANNELS, TOKEN, client_frames, wire_forms
from tests.fuzz.harness import Replay

T0 = 1_700_000_000_000
LIMITS = CodecLimits(
    max_frame_bytes=1024, max_nesting_depth=8, max_presence_items=3, max_message_items=3
)
ALICE = ApiKey(name="app.alice", secret="s1")
BACKEND = ApiKey(name="app.backend", secret="s2", any_client_id=True)
NARROW = ApiKey(name="app.narrow", secret="s3", capability={CHANNEL: ["subscribe"]})
CONFIG = ServerConfig(
    keys=(ALICE, BACKEND, NARROW),
    tokens=(AccessToken(token=TOKEN),),
    max_message_size=300,
    max_members_per_channel=4,
    max_channels_per_connection=2,
    max_messages_per_second=20,
    codec_limits=LIMITS,
    sync_page_size=2,
    sync_page_interval=50,
)
NUMBERED: Final = (ProtocolAction.PRESENCE, ProtocolAction.MESSAGE)
#: Each transport's connect parameters (the key, and the clientId it asks for).
TRANSPORTS: dict[str, dict[str, str]] = {
    "t1": {"key": ALICE.key, "clientId": "alice"},
    "t2": {"key": BACKEND.key},
    "t3": {"key": NARROW.key, "clientId": "bob"},
}


def _params(tid: str, resume: str | None) -> dict[str, str]:
    params = {"format": "json", "v": "6", **TRANSPORTS[tid]}
    if resume is not None:
        params["resume"] = resume
    return params


def start() -> Server:
    server = Server(CONFIG, random.Random(7).randbytes)
    for tid in TRANSPORTS:
        server.connect(tid, _params(tid, None), now=T0)
    for tid in ("t1", "t2"):
        for channel in CHANNELS:
            attach = ProtocolMessage(action=ProtocolAction.ATTACH, channel=channel)
            server.receive(tid, attach, now=T0)
    return server


def state(server: Server) -> object:
    """Everything a server shows: connections, every channel's members, the next deadline."""
    connections = server.connections()
    channels = sorted({*CHANNELS, *(name for c in connections for name in c.channels)})
    members = tuple((name, server.members(name)) for name in channels)
    return connections, members, server.next_deadline()


def _raw(frame: Any) -> str | bytes:
    if isinstance(frame, dict):
        try:
            return json.dumps(frame)
        except (ValueError, RecursionError):
            return "{}"
    return frame  # type: ignore[no-any-return]


def refused_by_codec(frame: str | bytes) -> bool:
    """Whether the server's codec, with its limits, refuses ``frame``."""
    try:
        decode(frame, limits=LIMITS)
    except ProtocolError:
        return True
    return False


any_client_frames = client_frames()
tids = st.sampled_from(sorted(TRANSPORTS))
steps = st.one_of(
    st.tuples(st.sampled_from(["raw", "raw", "decoded"]), tids),
    st.tuples(st.sampled_from(["raw", "raw", "decoded"]), tids),
    st.tuples(st.sampled_from(["raw", "raw", "decoded"]), tids),
    st.tuples(st.sampled_from(["drop", "reconnect", "resume"]), tids),
    st.tuples(st.just("tick"), st.integers(0, 40_000)),
)
#: How a numbered frame's msgSerial is chosen: mostly the next one, as a client numbers
#: them; sometimes the last one again (a resend), or whatever was drawn (a gap or a repeat).
serial_modes = st.sampled_from(["next", "next", "next", "again", "drawn"])


class Run:
    """One fuzz run: the server under test, its replay, and what the adapter knows."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.replay = Replay(start)
        self.live = set(TRANSPORTS)
        self.keys: dict[str, str] = {}
        self.serials = dict.fromkeys(TRANSPORTS, 0)
        self.now = T0

    @property
    def server(self) -> Server:
        return self.replay.reducer

    def call(self, call: Any, *, record: bool = True) -> ServerOutput:
        out = self.replay.run(state, call, record=record)
        assert isinstance(out, ServerOutput)
        for tid, message in ((t, m) for t in TRANSPORTS for m in out.messages_for(t)):
            details = message.connection_details
            if message.action == ProtocolAction.CONNECTED and details is not None:
                self.keys[str(tid)] = details.connection_key or ""
        for gone in out.disconnected():
            # The adapter closes the socket and reports it, as a real one does.
            self.live.discard(str(gone))
            self.replay.run(state, self._closed(str(gone)))
        return out

    def _closed(self, tid: str) -> Callable[[Server], ServerOutput]:
        now = self.now
        return lambda server: server.transport_closed(tid, now=now)

    def frame(self, tid: str, frame: Any, *, raw: bool) -> None:
        now = self.now
        self.call(lambda s: s.tick(now=now))
        before = state(self.server)
        refused = raw and refused_by_codec(frame)
        if raw:
            out = self.call(lambda s: s.receive_frame(tid, frame, now=now), record=not refused)
        else:
            out = self.call(lambda s: s.receive(tid, frame, now=now))
        if refused:
            check_refusal(out, tid)
            assert state(self.server) == before
            return
        message = frame if not raw else decode(frame, limits=LIMITS)
        if refused_by_server(message, out.messages_for(tid)):
            assert state(self.server) == before

    def numbered(self, tid: str, message: ProtocolMessage) -> ProtocolMessage:
        """``message`` with the msgSerial its client would give it (see ``serial_modes``)."""
        if message.msg_serial is None or message.action not in NUMBERED:
            return message
        mode = self.data.draw(serial_modes)
        if mode == "drawn":
            return message
        serial = self.serials[tid]
        if mode == "next":
            self.serials[tid] = serial + 1
        return attrs.evolve(message, msg_serial=max(0, serial - (mode == "again")))

    def step(self, step: tuple[Any, ...]) -> None:
        kind = step[0]
        self.now += step[1] if kind == "tick" else 10
        now = self.now
        if kind == "tick":
            self.call(lambda s: s.tick(now=now))
            return
        tid = step[1]
        if kind in ("raw", "decoded"):
            if tid in self.live:
                message = self.numbered(tid, self.data.draw(any_client_frames))
                if kind == "raw":
                    self.frame(tid, _raw(self.data.draw(wire_forms(message))), raw=True)
                else:
                    self.frame(tid, message, raw=False)
        elif kind == "drop":
            if tid in self.live:
                self.live.discard(tid)
                self.call(lambda s: s.transport_closed(tid, now=now))
        elif tid not in self.live:
            params = _params(tid, self.keys.get(tid) if kind == "resume" else None)
            if kind != "resume":
                self.serials[tid] = 0
            self.live.add(tid)
            self.call(lambda s: s.connect(tid, params, now=now))


def check_refusal(out: ServerOutput, tid: str) -> None:
    """A codec-refused frame gets one answer, to its sender: a NACK or an ERROR."""
    (command,) = out.commands
    assert isinstance(command, Deliver)
    assert command.transport_ids == (tid,)
    answer = command.message
    assert answer.error is not None
    assert answer.error.code in (40000, 40009)
    if answer.action == ProtocolAction.NACK:
        assert answer.msg_serial is not None
        assert answer.msg_serial >= 0
        assert answer.count == 1
    else:
        assert answer.action == ProtocolAction.ERROR


def refused_by_server(message: ProtocolMessage, replies: tuple[ProtocolMessage, ...]) -> bool:
    """Whether the server refused a decoded frame: its NACK, or an ERROR (but AUTH's)."""
    for reply in replies:
        if reply.action == ProtocolAction.NACK and reply.msg_serial == message.msg_serial:
            return True
        if reply.action == ProtocolAction.ERROR and message.action != ProtocolAction.AUTH:
            return True
    return False


@given(st.data(), st.lists(steps, min_size=5, max_size=40))
def test_server_answers_bad_frames_and_changes_nothing(
    data: st.DataObject, sequence: list[tuple[Any, ...]]
) -> None:
    run = Run(data)
    for step in sequence:
        run.step(step)
    run.replay.check(state)


@given(tids, strategies.protocol_messages())
def test_server_receives_any_decoded_frame_without_raising(
    tid: str, message: ProtocolMessage
) -> None:
    """Any frame the shipped strategies make, at any action, on any channel name."""
    server = start()
    server.tick(now=T0 + 10)
    before = state(server)
    out = server.receive(tid, message, now=T0 + 10)
    if refused_by_server(message, out.messages_for(tid)):
        assert state(server) == before
