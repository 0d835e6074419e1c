"""ably-js Realtime and Rest against ``presence-core serve``: presence on JSON and msgpack with
string, object and binary data, REST presence, and a client with default options.

One server serves the whole module; every script runs at the same time on channels of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.support import CREDENTIALS, Batch, start_server

FORMATS = ("json", "msgpack")
DATA = ("string", "object", "binary")

#: Every check of realtime_presence.mjs, by the behaviour it shows.
REALTIME_CHECKS = (
    "attach",
    "enter",
    "get_own_member_after_enter",
    "data_own_member",
    "implicit_attach_on_enter",
    "implicit_attach_state",
    "subscribe",
    "get",
    "get_lists_both",
    "data_synced",
    "get_by_client_id",
    "get_by_client_id_filters",
    "subscribe_sees_enter",
    "data_enter_event",
    "update",
    "update_seen",
    "data_update_event",
    "leave",
    "leave_seen",
    "data_leave_event",
    "get_after_leave",
    "detach",
    "detach_state",
    "ping",
    "ping_round_trip",
    "no_connection_errors",
)


@pytest.fixture(scope="module")
def batch(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Batch]:
    with start_server(tmp_path_factory.mktemp("realtime"), CREDENTIALS) as served:
        scripts = Batch(node, served)
        for fmt in FORMATS:
            for kind in DATA:
                scripts.start(f"{fmt}-{kind}", "realtime_presence.mjs", format=fmt, data=kind)
        scripts.start("rest", "rest_presence.mjs")
        scripts.start("defaults", "default_options.mjs")
        try:
            yield scripts
        finally:
            scripts.close()


@pytest.mark.parametrize("kind", DATA)
@pytest.mark.parametrize("fmt", FORMATS)
def test_realtime_presence(batch: Batch, fmt: str, kind: str) -> None:
    batch[f"{fmt}-{kind}"].assert_checks(*REALTIME_CHECKS)


@pytest.mark.parametrize("wire", FORMATS)
def test_rest_presence_get(batch: Batch, wire: str) -> None:
    """One run asks in both formats; each test asserts the checks of one."""
    checks = ("rest_presence_get", "rest_lists_members", "rest_data", "rest_action_present")
    names = [f"{check}_{wire}" for check in (*checks, "rest_get_by_client_id")]
    batch["rest"].assert_checks("connect", "enter", *names, others=False)


def test_default_options_client_enters_and_sees_the_others(batch: Batch) -> None:
    batch["defaults"].assert_checks(
        "default_options_enter",
        "default_options_get",
        "default_options_sees_others",
        "others_see_default_options_client",
        "default_options_data",
    )
