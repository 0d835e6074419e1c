"""Failure paths with ably-js against ``presence-core serve``: close, resume, failed resume,
recover across processes, authorize with a new token, a SYNC in pages, and refusals.

Two servers: a steady one (a 30 s grace period, so nothing expires while a test runs, and one
member per SYNC page) for most scripts, started together; and one whose grace period and
connection ttl are 300 ms, for the resume that comes too late.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.support import CREDENTIALS, Batch, Served, run_script, start_server

STEADY = CREDENTIALS + "\n[server]\ngrace_period = 30000\nsync_page_size = 1\n"
SHORT = CREDENTIALS + "\n[server]\ngrace_period = 300\nconnection_state_ttl = 300\n"
SCRIPTS = ("close_leave", "resume", "authorize", "sync_pages", "refusals")


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with start_server(tmp_path_factory.mktemp("steady"), STEADY) as served:
        yield served


@pytest.fixture(scope="module")
def batch(node: str, steady: Served) -> Iterator[Batch]:
    scripts = Batch(node, steady)
    for script in SCRIPTS:
        scripts.start(script, f"{script}.mjs")
    try:
        yield scripts
    finally:
        scripts.close()


def test_close_is_seen_as_leave(batch: Batch) -> None:
    batch["close_leave"].assert_checks(
        "enter", "closed", "close_seen_as_leave", "leave_carries_last_data", "get_after_close"
    )


def test_resume_with_same_connection_id_gives_peers_no_events(batch: Batch) -> None:
    batch["resume"].assert_checks(
        "drop_seen_by_client",
        "resumed",
        "resume_keeps_connection_id",
        "resume_without_error",
        "reattached",
        "update_after_resume",
        "resume_gives_peers_no_events",
        "same_connection_for_peers",
    )


def test_failed_resume_gives_leave_then_enter(node: str, tmp_path: Path) -> None:
    with start_server(tmp_path, SHORT) as short:
        result = run_script(node, short, "failed_resume.mjs", tag="failed-resume")
    result.assert_checks(
        "failed_resume_leave_for_old_connection",
        "leave_names_old_connection",
        "reconnected",
        "failed_resume_new_connection_id",
        "failed_resume_enter_for_new_connection",
        "enter_names_new_connection",
        "enter_carries_data",
        "peer_events_in_order",
    )


def test_recover_after_process_restart_keeps_the_connection(node: str, steady: Served) -> None:
    first = run_script(node, steady, "recover.mjs", tag="recover", phase="first")
    first.assert_checks("enter", "recovery_key_made")
    second = run_script(
        node,
        steady,
        "recover.mjs",
        tag="recover",
        phase="second",
        recoveryKey=first.info["recoveryKey"],
        connectionId=first.info["connectionId"],
    )
    second.assert_checks(
        "member_kept_while_away",
        "recovered",
        "recover_keeps_connection_id",
        "recover_without_error",
        "attach_after_recover",
        "update_after_recover",
        "peer_sees_update",
        "update_from_same_connection",
        "recover_gives_peers_no_leave",
    )


def test_authorize_with_a_new_token_on_a_live_connection(batch: Batch) -> None:
    batch["authorize"].assert_checks(
        "token_client_id_adopted",
        "authorize",
        "authorize_used_new_token",
        "authorize_keeps_connection",
        "presence_after_authorize",
        "peer_sees_update_after_authorize",
        "no_reconnect",
    )


def test_sync_of_three_pages_arrives_whole(batch: Batch) -> None:
    batch["sync_pages"].assert_checks(
        "sync_arrives_whole", "sync_in_three_pages", "last_page_has_empty_cursor"
    )


def test_enter_without_presence_capability_is_nacked_40160(batch: Batch) -> None:
    batch["refusals"].assert_checks(
        "enter_without_presence_capability_nacked_40160",
        "nack_keeps_channel_attached",
        "nack_keeps_connection",
        others=False,
    )


def test_token_for_another_client_id_is_refused_40102(batch: Batch) -> None:
    batch["refusals"].assert_checks(
        "mismatch_fails_connection", "token_for_other_client_id_refused_40102", others=False
    )
