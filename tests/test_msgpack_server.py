"""The server reducer on ``format=msgpack``: accepted by default, raw frames decoded by the
format table, and a refused msgpack frame answered by the same NACK/ERROR rules as JSON (RTN7).
"""

from __future__ import annotations

import sys
from typing import Any

import msgpack
import pytest
from hypothesis import given, strategies as st

from presence_core import (
    CodecLimits,
    ErrorInfo,
    PresenceAction,
    PresenceMessage,
    ProtocolAction,
    ProtocolMessage,
    UsageError,
    encode_text,
)
from presence_core._msgpack import MISSING, encode_msgpack
from presence_core.server import Server, ServerConfig
from tests.server_support import (
    T0,
    Client,
    actions,
    connect,
    make_server,
    member_view,
    presence_items,
)

P = ProtocolAction
CH = "room"


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]


def error_of(message: ProtocolMessage) -> ErrorInfo:
    assert message.error is not None
    return message.error


def attached_pair(server: Server) -> tuple[Client, Client]:
    """``ta`` on msgpack, ``tb`` on JSON, both attached to CH."""
    mia, _ = connect(server, "ta", "mia", format="msgpack")
    jay, _ = connect(server, "tb", "jay", format="json")
    attach = ProtocolMessage(action=P.ATTACH, channel=CH)
    assert actions(server.receive_frame("ta", encode_msgpack(attach), now=T0), "ta") == [P.ATTACHED]
    assert actions(server.receive_frame("tb", encode_text(attach), now=T0), "tb") == [P.ATTACHED]
    return mia, jay


def enter_frame(serial: int, data: Any, **item: Any) -> dict[str, Any]:
    return {
        "action": 14,
        "channel": CH,
        "presence": [{"action": 2, "data": data, **item}],
        "msgSerial": serial,
    }


# --- accepted and decoded ------------------------------------------------------------------


def test_msgpack_format_is_accepted_by_default() -> None:
    assert ServerConfig().formats == {"json", "msgpack"}
    server = make_server()
    _, out = connect(server, "ta", format="msgpack")
    assert actions(out, "ta") == [P.CONNECTED]


def test_without_msgpack_installed_the_default_is_json_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "msgpack", None)
    assert ServerConfig().formats == {"json"}
    with pytest.raises(UsageError) as caught:
        ServerConfig(formats={"json", "msgpack"})
    assert caught.value.message == MISSING
    server = make_server()
    out = server.connect("ta", {"key": "app.key:s3cret", "format": "msgpack"}, now=T0)
    assert actions(out, "ta") == [P.ERROR]


def test_receive_frame_decodes_msgpack_through_the_format_table() -> None:
    server = make_server()
    mia, jay = attached_pair(server)
    out = server.receive_frame("ta", pack(enter_frame(0, b"\x00\xff")), now=T0)
    assert actions(out, "ta") == [P.PRESENCE, P.ACK]
    (item,) = presence_items(out, "tb")
    assert (item.client_id, item.data, item.encoding) == ("mia", b"\x00\xff", None)
    assert member_view(server, CH) == {(mia.connection_id, "mia"): b"\x00\xff"}
    # A JSON client's base64 data is the same bytes to the server.
    json_enter = '{"action":14,"channel":"room","msgSerial":0,"presence":[{"action":2,' + (
        '"data":"AP8=","encoding":"base64"}]}'
    )
    server.receive_frame("tb", json_enter, now=T0)
    assert member_view(server, CH)[(jay.connection_id, "jay")] == b"\x00\xff"


# --- refusals (RTN7) -----------------------------------------------------------------------


def test_RTN7_refused_msgpack_frame_is_nacked_by_its_serial() -> None:
    server = make_server()
    attached_pair(server)
    bad = pack(enter_frame(3, "x", timestamp="soon"))
    (nack,) = server.receive_frame("ta", bad, now=T0).messages_for("ta")
    assert (nack.action, nack.msg_serial, nack.count) == (P.NACK, 3, 1)
    assert error_of(nack).code == 40000
    assert "timestamp" in error_of(nack).message
    assert server.members(CH) == ()
    # Nothing was recorded: the same serial, well formed, is applied.
    good = server.receive_frame("ta", pack(enter_frame(3, "x")), now=T0)
    assert actions(good, "ta") == [P.PRESENCE, P.ACK]


def test_RTN7_msgpack_frame_over_the_frame_limit_is_nacked_40009_from_its_tail() -> None:
    """The size limit holds on the binary path; the msgSerial is read from the frame's end."""
    server = make_server(codec_limits=CodecLimits(max_frame_bytes=300))
    attached_pair(server)
    big = pack(enter_frame(7, b"\x01" * 300))
    assert len(big) > 300
    for frame in (big, bytearray(big), memoryview(big)):
        (nack,) = server.receive_frame("ta", frame, now=T0).messages_for("ta")
        assert (nack.action, nack.msg_serial) == (P.NACK, 7)
        assert (error_of(nack).code, error_of(nack).status_code) == (40009, 413)
    # A JavaScript encoder may write the serial as a float64.
    as_float = big[: -len(pack(7))] + pack(7.0)
    (nack,) = server.receive_frame("ta", as_float, now=T0).messages_for("ta")
    assert nack.msg_serial == 7
    assert server.members(CH) == ()


def test_RTN7_unparsable_msgpack_frame_is_nacked_by_the_serial_at_its_end() -> None:
    server = make_server()
    attached_pair(server)
    frame = pack(enter_frame(4, "x"))
    broken = frame.replace(b"\xa1x", b"\xc1x")  # 0xc1 is never valid msgpack
    assert broken != frame
    (nack,) = server.receive_frame("ta", broken, now=T0).messages_for("ta")
    assert (nack.action, nack.msg_serial, error_of(nack).code) == (P.NACK, 4, 40000)


def test_RTN7_refused_msgpack_frame_without_serial_gets_an_error_naming_its_channel() -> None:
    server = make_server()
    attached_pair(server)
    bad = pack({"action": 10, "channel": "c", "flags": "all"})
    (refused,) = server.receive_frame("ta", bad, now=T0).messages_for("ta")
    assert (refused.action, refused.channel, error_of(refused).code) == (P.ERROR, "c", 40000)


@pytest.mark.parametrize(
    "frame",
    [b"\x81\xa1x", pack([1, 2]), pack({"x": 1}), pack({"action": 0}) + b"\x00", b"", b"\xc1"],
)
def test_RTN7_msgpack_that_is_not_a_frame_gets_a_connection_error(frame: bytes) -> None:
    server = make_server()
    attached_pair(server)
    (refused,) = server.receive_frame("ta", frame, now=T0).messages_for("ta")
    assert (refused.action, refused.channel, error_of(refused).code) == (P.ERROR, None, 40000)
    assert server.connection_for("ta") is not None


def test_a_text_frame_on_a_msgpack_connection_is_refused() -> None:
    """A msgpack client never sends text; one that does is refused, the frame read as JSON
    for a msgSerial so that a publish fails rather than hang."""
    server = make_server()
    attached_pair(server)
    text = encode_text(
        ProtocolMessage(
            action=P.PRESENCE,
            channel=CH,
            msg_serial=5,
            presence=(PresenceMessage(action=PresenceAction.ENTER),),
        )
    )
    (nack,) = server.receive_frame("ta", text, now=T0).messages_for("ta")
    assert (nack.action, nack.msg_serial, error_of(nack).code) == (P.NACK, 5, 40000)
    assert "binary" in error_of(nack).message
    (refused,) = server.receive_frame("ta", '{"action":0}', now=T0).messages_for("ta")
    assert (refused.action, refused.channel) == (P.ERROR, None)
    assert server.members(CH) == ()


def test_a_binary_frame_on_a_json_connection_is_utf8_json() -> None:
    """A JSON client's binary WebSocket message is its UTF-8 text; msgpack there is refused."""
    server = make_server()
    _mia, jay = attached_pair(server)
    frame = '{"action":14,"channel":"room","msgSerial":0,"presence":[{"action":2,"data":"j"}]}'
    assert actions(server.receive_frame("tb", frame.encode(), now=T0), "tb") == [
        P.PRESENCE,
        P.ACK,
    ]
    assert member_view(server, CH) == {(jay.connection_id, "jay"): "j"}
    (nack,) = server.receive_frame("tb", pack(enter_frame(1, "m")), now=T0).messages_for("tb")
    assert (nack.action, nack.msg_serial, error_of(nack).code) == (P.NACK, 1, 40000)


_FRAME_PARTS = st.sampled_from(
    [
        pack(enter_frame(0, "x")),
        pack(enter_frame(1, b"\x00")),
        pack({"action": 10, "channel": CH}),
        pack({"action": 15, "channel": CH, "msgSerial": 2, "messages": [{"data": 1.5}]}),
    ]
)


@given(
    st.lists(
        st.one_of(
            st.binary(max_size=40),
            st.text(max_size=20),
            st.builds(
                lambda frame, cut, junk: frame[:cut] + junk + frame[cut:],
                _FRAME_PARTS,
                st.integers(0, 60),
                st.binary(max_size=3),
            ),
        ),
        max_size=6,
    )
)
def test_RTN7_raw_msgpack_input_never_raises_and_a_refusal_changes_nothing(
    frames: list[Any],
) -> None:
    server = make_server()
    attached_pair(server)
    for frame in frames:
        before = (member_view(server, CH), server.connections())
        replies = server.receive_frame("ta", frame, now=T0).messages_for("ta")
        refused = [m for m in replies if m.action in (P.NACK, P.ERROR)]
        if refused:
            assert (member_view(server, CH), server.connections()) == before
            assert all(isinstance(m.error, ErrorInfo) for m in refused)
