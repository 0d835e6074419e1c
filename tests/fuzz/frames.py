"""Strategies shared by the fuzz tests: plausible protocol traffic, and hostile mutations of it.

Plausible frames use a few channels, clientIds, connectionIds and small serials, so that a
sequence of them keeps hitting the same members, operations and timers; the shipped
strategies (:mod:`presence_core.testing.strategies`) supply payloads, mode flags and JSON
values.

A frame goes through the wire on its way to a reducer: encoded to its wire dict, maybe mutated
there (a field deleted or given a hostile value), maybe written to JSON text or bytes and
mutated again (truncated, a bit flipped, bytes inserted, nested very deeply), then decoded.
What the codec refuses never reaches a reducer; what it accepts is the most hostile input a
peer can give a reducer.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

from hypothesis import strategies as st

from presence_core import (
    AuthDetails,
    ConnectionDetails,
    ErrorInfo,
    Flag,
    Message,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    encode,
)
from presence_core.testing import strategies

CHANNEL: Final = "room1::$chat"
OTHER_CHANNEL: Final = "lobby"
CHANNELS: Final = (CHANNEL, OTHER_CHANNEL)
CLIENT_IDS: Final = ("alice", "bob", "carol")
CONNECTION_IDS: Final = ("C1", "C2", "C3")
#: The access token a server under fuzz accepts in AUTH.
TOKEN: Final = "fuzz-token"

# --- hostile values ------------------------------------------------------------------------


def nested(depth: int) -> Any:
    """A list nested ``depth`` levels deep."""
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


#: Values a hostile peer puts where a field should be: wrong types, numbers just outside
#: int64, floats that are not integers or not finite, deep nesting, odd strings.
hostile_values: Final = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 7, 1 << 31, (1 << 63) - 1, 1 << 63, -(1 << 63) - 1, 1 << 64]),
    st.sampled_from([0.5, -0.0, 1.7e12, 1e300, float("nan"), float("inf"), -float("inf")]),
    st.sampled_from(["", ":", "x" * 300, "\ud800", "C1:0:0", "sync:", "\x00"]),
    st.sampled_from([nested(40), [nested(3)], {"a": nested(40)}]),
    st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.sampled_from(["code", "statusCode", "action", "x"]), st.integers(-1, 3)),
    strategies.json_values(max_leaves=4),
)

# --- plausible frames ----------------------------------------------------------------------


def _serials() -> st.SearchStrategy[int]:
    return st.integers(0, 6)


def _timestamps() -> st.SearchStrategy[int]:
    return st.integers(1_000, 1_020)


# Built once: building a recursive strategy costs far more than drawing from it, and these
# are drawn per item.
_PAYLOADS: Final = strategies.payloads()
_CLIENT_IDS: Final = st.sampled_from(CLIENT_IDS) | st.none()
_ITEM_ACTIONS: Final = st.sampled_from(list(PresenceAction)[1:])
# A client sends enter, update and leave; PRESENT now and then, which a server refuses.
_CLIENT_ACTIONS: Final = st.sampled_from(
    [
        PresenceAction.ENTER,
        PresenceAction.ENTER,
        PresenceAction.UPDATE,
        PresenceAction.LEAVE,
        PresenceAction.PRESENT,
    ]
)
_MESSAGE_NAMES: Final = st.sampled_from(["chat", "typing.started"]) | st.none()


@st.composite
def presence_items(draw: st.DrawFn, *, server: bool = True) -> PresenceMessage:
    """One presence item; ``server`` items carry the ids a server stamps."""
    data, encoding = draw(_PAYLOADS)
    action = draw(_ITEM_ACTIONS if server else _CLIENT_ACTIONS)
    client_id = draw(_CLIENT_IDS)
    if not server:
        return PresenceMessage(
            action=action, client_id=client_id, data=data, encoding=encoding, id=None
        )
    connection_id = draw(st.sampled_from(CONNECTION_IDS))
    serial, index = draw(_serials()), draw(st.integers(0, 2))
    return PresenceMessage(
        action=action,
        client_id=client_id,
        connection_id=connection_id,
        id=draw(st.just(f"{connection_id}:{serial}:{index}") | st.none()),
        data=data,
        encoding=encoding,
        timestamp=draw(_timestamps() | st.none()),
    )


@st.composite
def channel_messages(draw: st.DrawFn) -> Message:
    """One MESSAGE item, such as a chat message or a typing indicator."""
    data, encoding = draw(_PAYLOADS)
    return Message(
        name=draw(_MESSAGE_NAMES), data=data, encoding=encoding, client_id=draw(_CLIENT_IDS)
    )


def _items(server: bool, min_size: int = 1) -> st.SearchStrategy[tuple[PresenceMessage, ...]]:
    # Empty arrays come from the mutations (and SYNC pages), not from every other draw.
    return st.lists(presence_items(server=server), min_size=min_size, max_size=3).map(tuple)


def _channels() -> st.SearchStrategy[str]:
    # Mostly the channel the fuzz tests attach first, so that frames are applied.
    return st.sampled_from([CHANNEL, CHANNEL, CHANNEL, OTHER_CHANNEL])


def _errors() -> st.SearchStrategy[ErrorInfo]:
    # 40142 with 401 is a token error, which a token connection cannot recover from.
    return st.builds(
        ErrorInfo,
        code=st.sampled_from([40000, 40142, 80008, 90001, 91004]),
        status_code=st.sampled_from([400, 401, 500]),
        message=st.just("fuzz"),
    )


def _connected() -> st.SearchStrategy[ProtocolMessage]:
    details = st.builds(
        ConnectionDetails,
        client_id=st.sampled_from(CLIENT_IDS[:1]) | st.none(),
        connection_key=st.sampled_from(["k1", "k2"]),
        max_message_size=st.sampled_from([100, 65536]) | st.none(),
        max_idle_interval=st.sampled_from([1_000, 15_000]) | st.none(),
        connection_state_ttl=st.sampled_from([5_000, 120_000]) | st.none(),
        max_inbound_rate=st.integers(1, 50) | st.none(),
    )
    return st.builds(
        ProtocolMessage,
        action=st.just(ProtocolAction.CONNECTED),
        connection_id=st.sampled_from(CONNECTION_IDS[:2]),
        connection_details=details,
        error=_errors() | st.none(),
    )


def _flags() -> st.SearchStrategy[int]:
    return strategies.mode_flags(extra=(Flag.HAS_PRESENCE, Flag.RESUMED))


def channel_frames() -> st.SearchStrategy[ProtocolMessage]:
    """What a server sends a client's room: every channel action, on :data:`CHANNELS`."""
    frame = ProtocolMessage
    return st.one_of(
        st.builds(
            frame,
            action=st.just(ProtocolAction.PRESENCE),
            channel=_channels(),
            presence=_items(server=True),
            channel_serial=st.sampled_from(["s1", "s2"]) | st.none(),
        ),
        st.builds(
            frame,
            action=st.just(ProtocolAction.SYNC),
            channel=_channels(),
            presence=_items(server=True, min_size=0),
            channel_serial=st.sampled_from(["x:", "x:1", "y:2", "y:"]) | st.none(),
        ),
        st.builds(
            frame,
            action=st.just(ProtocolAction.ATTACHED),
            channel=_channels(),
            flags=_flags(),
            error=_errors() | st.none(),
        ),
        st.builds(
            frame,
            action=st.sampled_from([ProtocolAction.DETACHED, ProtocolAction.ERROR]),
            channel=_channels(),
            error=_errors() | st.none(),
        ),
        st.builds(
            frame,
            action=st.just(ProtocolAction.MESSAGE),
            channel=_channels(),
            messages=st.lists(channel_messages(), min_size=1, max_size=2).map(tuple),
        ),
    )


def server_frames() -> st.SearchStrategy[ProtocolMessage]:
    """What a server sends a client: :func:`channel_frames` and the connection's own frames."""
    frame = ProtocolMessage
    return st.one_of(
        channel_frames(),
        st.builds(
            frame,
            action=st.sampled_from([ProtocolAction.ACK, ProtocolAction.NACK]),
            msg_serial=_serials(),
            count=st.integers(1, 3) | st.none(),
            error=_errors() | st.none(),
        ),
        _connected(),
        st.builds(
            frame,
            action=st.sampled_from(
                [ProtocolAction.DISCONNECTED, ProtocolAction.CLOSED, ProtocolAction.ERROR]
            ),
            error=_errors() | st.none(),
        ),
        st.builds(
            frame,
            action=st.sampled_from([ProtocolAction.HEARTBEAT, 99]),
            id=st.sampled_from(["p1", "p2"]) | st.none(),
        ),
    )


def client_frames() -> st.SearchStrategy[ProtocolMessage]:
    """What a client sends a server: every action the server handles, on :data:`CHANNELS`.

    Mostly PRESENCE and MESSAGE, the frames that change state.
    """
    frame = ProtocolMessage
    presence = st.builds(
        frame,
        action=st.just(ProtocolAction.PRESENCE),
        channel=_channels(),
        msg_serial=_serials(),
        presence=_items(server=False),
    )
    return st.one_of(
        presence,
        presence,
        presence,
        st.builds(
            frame,
            action=st.sampled_from(
                [ProtocolAction.ATTACH, ProtocolAction.ATTACH, ProtocolAction.DETACH]
            ),
            channel=_channels(),
            flags=_flags() | st.none(),
            params=st.just({"agent": "fuzz"}) | st.none(),
        ),
        st.builds(
            frame,
            action=st.just(ProtocolAction.MESSAGE),
            channel=_channels(),
            msg_serial=_serials(),
            messages=st.lists(channel_messages(), min_size=1, max_size=2).map(tuple),
        ),
        # The rest, one branch between them: AUTH, CLOSE and DISCONNECT end or replace the
        # connection, and would cut every sequence short.
        st.one_of(
            st.builds(
                frame,
                action=st.sampled_from(
                    [ProtocolAction.HEARTBEAT, ProtocolAction.SYNC, ProtocolAction.CONNECT, 99]
                ),
                channel=_channels() | st.none(),
                id=st.sampled_from(["p1"]) | st.none(),
            ),
            st.builds(
                frame,
                action=st.just(ProtocolAction.AUTH),
                auth=st.builds(
                    AuthDetails, access_token=st.sampled_from([TOKEN, TOKEN, "not-a-token"])
                ),
            ),
            st.builds(
                frame,
                action=st.sampled_from([ProtocolAction.CLOSE, ProtocolAction.DISCONNECT]),
            ),
        ),
    )


# --- mutations -----------------------------------------------------------------------------


def _places(wire: dict[str, Any]) -> list[dict[str, Any]]:
    """Every dict in a wire frame where a field can live: the frame, its objects, its items."""
    places = [wire]
    for key in ("connectionDetails", "error", "params", "auth"):
        if isinstance(wire.get(key), dict):
            places.append(wire[key])
    for key in ("presence", "messages", "res"):
        items = wire.get(key)
        if isinstance(items, list):
            places.extend(item for item in items if isinstance(item, dict))
    return places


_FIELD_NAMES: Final = (
    "action", "id", "channel", "channelSerial", "connectionId", "msgSerial", "count", "flags",
    "presence", "messages", "error", "clientId", "timestamp", "data", "encoding", "extras",
    "code", "statusCode", "cause", "connectionDetails", "maxIdleInterval", "res",
)  # fmt: skip


@st.composite
def mutated_wire(draw: st.DrawFn, message: ProtocolMessage) -> dict[str, Any]:
    """``message``'s wire dict with up to three fields deleted or given hostile values."""
    # Copies, as encode shares objects with the message and the strategies share theirs.
    wire = copy.deepcopy(encode(message))
    for _ in range(draw(st.integers(1, 3))):
        place = draw(st.sampled_from(_places(wire)))
        key = draw(st.sampled_from(sorted({*place, *_FIELD_NAMES})))
        if key in place and draw(st.booleans()):
            del place[key]
        else:
            place[key] = copy.deepcopy(draw(hostile_values))
    return wire


def _dumps(wire: dict[str, Any]) -> str:
    # NaN and infinities are written as bare words, as a careless peer would.
    try:
        return json.dumps(wire)
    except (ValueError, RecursionError):
        return "{}"


_BYTE_MUTATIONS: Final = st.sampled_from(
    ["truncate", "flip", "insert", "delete", "deep", "digits", "wrap", "bom", "as_is"]
)


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` (a frame) mangled the ways a broken or hostile peer mangles a frame."""
    kind = draw(_BYTE_MUTATIONS)
    at = draw(st.integers(0, len(data)))
    if kind == "truncate":
        data = data[:at]
    elif kind == "flip":
        if data:
            at = min(at, len(data) - 1)
            data = data[:at] + bytes([data[at] ^ (1 << draw(st.integers(0, 7)))]) + data[at + 1 :]
    elif kind == "insert":
        data = (
            data[:at] + draw(st.sampled_from([b",", b"}", b'"', b"\xff", b"[", b"0"])) + data[at:]
        )
    elif kind == "delete":
        data = data[:at] + data[at + 1 :]
    elif kind == "deep":
        # Far deeper than any recursion limit: the parser must refuse it, not crash.
        depth = draw(st.sampled_from([100, 5_000, 100_000]))
        data = b'{"action":14,"data":' + b"[" * depth + b"]" * depth + b"}"
    elif kind == "digits":
        # More digits than CPython converts to an int.
        data = b'{"action":1,"msgSerial":' + b"9" * draw(st.sampled_from([19, 20, 5000])) + b"}"
    elif kind == "wrap":
        data = b"[" + data + b"]"
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    return data


@st.composite
def mutated_text(draw: st.DrawFn, text: str) -> str | bytes:
    """``text`` (a JSON frame) mangled by :func:`mutated_bytes`, as bytes or as text."""
    data = draw(mutated_bytes(text.encode("utf-8", "surrogatepass")))
    if draw(st.booleans()):
        return data
    return data.decode("utf-8", "replace")


@st.composite
def wire_forms(draw: st.DrawFn, message: ProtocolMessage) -> dict[str, Any] | str | bytes:
    """``message`` as a peer sends it: valid, or mutated as a dict, as text, or both."""
    mutate = draw(st.integers(0, 2)) == 0
    wire = draw(mutated_wire(message)) if mutate else encode(message)
    shape = draw(st.sampled_from(["dict", "text", "bytes", "mangled"]))
    if shape == "dict":
        return wire
    text = _dumps(wire)
    if shape == "text":
        return text
    if shape == "bytes":
        return text.encode("utf-8", "surrogatepass")
    return draw(mutated_text(text))


def wire_frames(
    valid: st.SearchStrategy[ProtocolMessage],
) -> st.SearchStrategy[dict[str, Any] | str | bytes]:
    """A frame drawn from ``valid``, in one of its :func:`wire_forms`."""
    return valid.flatmap(wire_forms)
