"""``Connection.receive_many``: several frames in one call, exactly as one ``receive`` each.

The property: two connections in the same state, one fed a random frame sequence one frame per
``receive`` (a refused frame's ProtocolError caught, as an embedder does), the other the same
sequence cut into random batches for ``receive_many``.  After every batch both are in the same
state (snapshot), and the batch gave the same events and commands as its frames one by one,
with one room's consecutive events merged into one ChannelEvents, and the same refusals.

The frames cover the hot path (PRESENCE for attached rooms, including frames the room refuses)
and everything that leaves it: other rooms and unknown channels, SYNC, ATTACHED, DETACHED,
channel and connection ERRORs, ACK/NACK of pending operations, HEARTBEAT, CONNECTED updates,
DISCONNECTED (after which the rest of the batch arrives on a stale transport), token errors
(for a connection with a key, a token, or a renewable token, which may get a new one between
batches), unknown actions, and frames from an older transport.
"""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings, strategies as st

from presence_core import (
    DEFAULT_MODES,
    ChannelEvents,
    Connection,
    ErrorInfo,
    Flag,
    Output,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolError,
    ProtocolMessage,
    UsageError,
)
from tests.connection_support import receive
from tests.test_connection import OTHER, ROOM, attached, connected, new_connection

P = ProtocolAction
UNKNOWN = "nowhere::$chat"
CHANNELS = (ROOM, OTHER, UNKNOWN)


#: How the connection authenticates: a key, a token it cannot renew, or a renewable one.
CREDENTIALS = ("key", "token", "renewable")


def prepared(credential: str = "key", now: int = 1_000) -> Connection:
    """CONNECTED on transport 2 (transport 1 is stale), both rooms attached, three operations
    awaiting their ACK (msgSerials 0 to 2)."""
    if credential == "key":
        c = new_connection()
    else:
        c = Connection(token="t0", client_id="alice", renewable=credential == "renewable")
    c.connect(now=now)
    c.transport_closed(transport_id=1, now=now)  # a failed attempt: retried on transport 2
    c.tick(now=now + 60_000)
    now += 60_000
    receive(c, connected("C1"), now=now)
    for channel in (ROOM, OTHER):
        c.attach(channel, now=now)
        receive(c, attached(channel), now=now)
    c.enter(ROOM, {"n": 0}, now=now)
    c.enter(OTHER, {"n": 1}, now=now)
    c.update(ROOM, {"n": 2}, now=now)
    assert c.transport_id == 2
    return c


items = st.builds(
    PresenceMessage,
    action=st.sampled_from(
        [PresenceAction.ENTER, PresenceAction.UPDATE, PresenceAction.LEAVE, PresenceAction.PRESENT]
    ),
    client_id=st.sampled_from(["alice", "bob", "carol", None]),  # None: refused
    connection_id=st.sampled_from(["C1", "C2", "C3"]),
    id=st.builds(
        lambda c, s, i: f"{c}:{s}:{i}",
        st.sampled_from(["C2", "C3"]),
        st.integers(0, 5),
        st.integers(0, 1),
    ),
    timestamp=st.integers(0, 10),
    data=st.integers(0, 3),
)
presence_frames = st.builds(
    lambda channel, presence, serial: ProtocolMessage(
        action=P.PRESENCE, channel=channel, presence=tuple(presence), msg_serial=serial
    ),
    st.sampled_from(CHANNELS),
    st.lists(items, max_size=3),
    st.sampled_from([None, None, None, 7, -1]),  # -1: refused
)
sync_frames = st.builds(
    lambda channel, presence, cursor: ProtocolMessage(
        action=P.SYNC, channel=channel, presence=tuple(presence), channel_serial=f"s1:{cursor}"
    ),
    st.sampled_from(CHANNELS),
    st.lists(items, max_size=2),
    st.sampled_from(["", "", "c1"]),
)
error = ErrorInfo(code=90000, status_code=400, message="test")
TOKEN_EXPIRED = ErrorInfo(code=40142, status_code=401, message="Token expired")
other_frames = st.sampled_from(
    [
        attached(ROOM),
        attached(OTHER, flags=int(DEFAULT_MODES) | int(Flag.HAS_PRESENCE)),
        ProtocolMessage(action=P.DETACHED, channel=OTHER, error=error),
        ProtocolMessage(action=P.ERROR, channel=ROOM, error=error),
        ProtocolMessage(action=P.ACK, msg_serial=0, count=1),
        ProtocolMessage(action=P.ACK, msg_serial=1, count=2),
        ProtocolMessage(action=P.NACK, msg_serial=2, count=1, error=error),
        ProtocolMessage(action=P.ACK),  # no msgSerial: refused
        ProtocolMessage(action=P.HEARTBEAT),
        connected("C1"),
        ProtocolMessage(action=P.DISCONNECTED, error=error),
        ProtocolMessage(action=P.DISCONNECTED, error=TOKEN_EXPIRED),
        ProtocolMessage(action=P.ERROR, error=error),
        ProtocolMessage(action=P.ERROR, error=TOKEN_EXPIRED),
        ProtocolMessage(action=99),
    ]
)
frames = st.lists(
    st.tuples(
        st.one_of(presence_frames, presence_frames, presence_frames, sync_frames, other_frames),
        # The transport it arrives on: the current one (as of its batch), or the stale 1.
        st.sampled_from([0, 0, 0, 0, 1]),
    ),
    min_size=5,
    max_size=40,
)


def flat(events: Any) -> list[Any]:
    """Events with each ChannelEvents spread out as (channel, event) pairs."""
    out: list[Any] = []
    for event in events:
        if isinstance(event, ChannelEvents):
            out += [(event.channel, e) for e in event.events]
        else:
            out.append(event)
    return out


def refusal(index: int, exc: ProtocolError) -> tuple[int, str, str | None, int]:
    return index, str(exc), exc.path, exc.code


def one_by_one(
    c: Connection, batch: list[tuple[ProtocolMessage, int]], now: int
) -> tuple[list[Any], list[Any], list[Any]]:
    events: list[Any] = []
    commands: list[Any] = []
    refused = []
    for index, (message, tid) in enumerate(batch):
        try:
            out = c.receive(message, transport_id=tid, now=now)
        except ProtocolError as exc:
            refused.append(refusal(index, exc))
            continue
        assert out.operation is None
        events += flat(out.events)
        commands += out.commands
    return events, commands, refused


def no_adjacent_runs_of_one_channel(out: Output) -> bool:
    previous: object = None
    for event in out.events:
        channel = event.channel if isinstance(event, ChannelEvents) else None
        if channel is not None and channel == previous:
            return False
        previous = channel
    return True


@settings(max_examples=200, deadline=None)
@given(
    credential=st.sampled_from(CREDENTIALS),
    frames=frames,
    cuts=st.lists(
        st.tuples(st.integers(1, 8), st.sampled_from([None, None, ROOM, OTHER, "authorize"]))
    ),
)
def test_receive_many_is_receive_frame_by_frame(
    credential: str, frames: list[tuple[ProtocolMessage, int]], cuts: list[tuple[int, str | None]]
) -> None:
    single, batched = prepared(credential), prepared(credential)
    now = 70_000
    start = 0
    cuts = cuts + [(4, None)] * len(frames)
    for size, enter_in in cuts:
        if start >= len(frames):
            break
        if enter_in is not None:
            # An operation between two batches, so that frames wait for a transport or a
            # room (the outbox holds them) while the next batch arrives; or a new token.
            for c in (single, batched):
                with contextlib.suppress(UsageError):
                    if enter_in == "authorize":
                        c.authorize(f"t{start}", now=now)
                    else:
                        c.enter(enter_in, {"at": start}, now=now)
        current = single.transport_id or 2
        chunk = [(m, tid or current) for m, tid in frames[start : start + size]]
        start += size
        now += 1
        expected = one_by_one(single, chunk, now)
        # A batch comes from one transport: the chunk is cut where the transport changes.
        events: list[Any] = []
        commands: list[Any] = []
        got_refused: list[Any] = []
        index = 0
        while index < len(chunk):
            tid = chunk[index][1]
            end = index
            while end < len(chunk) and chunk[end][1] == tid:
                end += 1
            out, refused = batched.receive_many(
                [m for m, _ in chunk[index:end]], transport_id=tid, now=now
            )
            assert out.operation is None
            assert no_adjacent_runs_of_one_channel(out)
            events += flat(out.events)
            commands += out.commands
            got_refused += [refusal(index + i, exc) for i, exc in refused]
            index = end
        assert (events, commands, got_refused) == expected
        assert batched.snapshot() == single.snapshot()


def test_a_burst_of_presence_is_one_run_per_room() -> None:
    c = prepared()
    frames = [
        ProtocolMessage(
            action=P.PRESENCE,
            channel=channel,
            presence=(
                PresenceMessage(
                    action=PresenceAction.ENTER,
                    client_id=f"user-{n}",
                    connection_id="C2",
                    id=f"C2:{n}:0",
                    timestamp=n,
                ),
            ),
        )
        for n, channel in enumerate([ROOM, ROOM, ROOM, OTHER, ROOM])
    ]
    out, refused = c.receive_many(frames, transport_id=2, now=70_000)
    assert refused == ()
    runs = [(e.channel, len(e.events)) for e in out.events if isinstance(e, ChannelEvents)]
    assert runs == [(ROOM, 3), (OTHER, 1), (ROOM, 1)]
    assert len(out.events) == 3
    assert out.commands == ()


def test_a_refused_frame_changes_nothing_and_the_rest_applies() -> None:
    c = prepared()
    good = ProtocolMessage(
        action=P.PRESENCE,
        channel=ROOM,
        presence=(
            PresenceMessage(
                action=PresenceAction.ENTER,
                client_id="bob",
                connection_id="C2",
                id="C2:0:0",
                timestamp=1,
            ),
        ),
    )
    bad = ProtocolMessage(action=P.PRESENCE, channel=ROOM, msg_serial=-1, presence=good.presence)
    out, refused = c.receive_many([bad, good], transport_id=2, now=70_000)
    assert [(i, e.path) for i, e in refused] == [(0, "msgSerial")]
    assert flat(out.events) == [(ROOM, good.presence[0])]  # type: ignore[index]
