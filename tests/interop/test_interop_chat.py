"""@ably/chat against ``presence-core serve``: room presence and typing between two Chat
clients, and a mixed room where a Chat client and our Python client see each other.

One server serves the whole module.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from presence_core import PresenceMessage
from presence_core.client import connect
from tests.client.support import Recorder
from tests.interop.support import CREDENTIALS, HANG, KEY, Served, start_script, start_server

CHAT_CHECKS = (
    "rooms_get",
    "presence_subscribe",
    "attach",
    "enter",
    "get",
    "get_lists_own_member",
    "is_user_present",
    "is_user_absent",
    "subscribe_sees_enter",
    "enter_data",
    "peer_enter_seen",
    "get_lists_both",
    "update",
    "update_seen",
    "update_data",
    "leave",
    "leave_seen",
    "leave_data",
    "is_user_present_after_leave",
    "typing_keystroke",
    "typing_seen",
    "detach",
    "room_never_failed",
    "no_connection_errors",
    "no_errors_logged",
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with start_server(tmp_path_factory.mktemp("chat"), CREDENTIALS) as server:
        yield server


@pytest.mark.parametrize("fmt", ["json", "msgpack"])
def test_chat_room_presence_and_typing(node: str, served: Served, fmt: str) -> None:
    result = start_script(node, served, "chat_presence.mjs", tag=f"chat-{fmt}", format=fmt)
    result.result().assert_checks(*CHAT_CHECKS)


def _mine(step: int) -> dict[str, object]:
    return {"from": "python", "step": step}


def _theirs(step: int) -> dict[str, object]:
    return {"from": "chat", "step": step}


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["json", "msgpack"])
async def test_mixed_room_python_and_chat_see_each_other(
    node: str, served: Served, anyio_backend: str, fmt: str
) -> None:
    """Each side waits for the other's event before its next step (mixed_room.mjs).  The
    Python client speaks JSON; the Chat client JSON or msgpack."""
    room_name = f"mixed-{anyio_backend}-{fmt}"
    with anyio.fail_after(HANG):
        async with connect(served.url, key=KEY, client_id="pyclient") as client:
            room = await client.rooms.get(room_name)
            seen = Recorder()
            room.presence.subscribe(seen)
            await room.attach()
            chat = start_script(
                node, served, "mixed_room.mjs", room=room_name, peer="pyclient", format=fmt
            )
            try:
                await seen.wait_seen("enter", "chatty")
                await room.presence.enter(_mine(1))
                await seen.wait_seen("update", "chatty")
                await room.presence.update(_mine(2))
                await seen.wait_seen("leave", "chatty")
                await room.presence.leave(_mine(3))
                result = await anyio.to_thread.run_sync(chat.result)
            finally:
                chat.kill()
    result.assert_checks(
        "enter",
        "sees_python_enter",
        "python_enter_data",
        "get_lists_python",
        "update",
        "sees_python_update",
        "python_update_data",
        "leave",
        "sees_python_leave",
        "python_leave_data",
    )
    from_chat = [(e.action.event_name, e.data) for e in seen.events if _by_chat(e)]
    assert from_chat == [("enter", _theirs(1)), ("update", _theirs(2)), ("leave", _theirs(3))]


def _by_chat(event: PresenceMessage) -> bool:
    return event.client_id == "chatty"
