"""The README's main job, ``presence-core demo``, runs and tells the story it promises; the
simulator's version of the story (``presence-core simulate``) is deterministic."""

from __future__ import annotations

import io
import subprocess
import sys

import anyio
import pytest
from rich.console import Console

from presence_core.__main__ import main, run_demo
from presence_core.serve._demo import run_demo as run_live_demo


def test_simulated_demo_shows_bob_leaving_after_grace_and_reentering() -> None:
    lines = run_demo()
    story = [line.split("s  ", 1)[1] for line in lines if line.startswith("  t=")]
    presence = [text.split(" on ")[0].split() for text in story if " on " in text]
    assert presence == [
        ["enter", "alice"],
        ["enter", "bob"],
        ["update", "alice"],
        ["leave", "bob"],
        ["enter", "bob"],
        ["leave", "alice"],
    ]
    assert "converged: yes" in lines
    assert lines[-1].endswith("replayed identically")


def test_simulated_demo_is_deterministic_for_a_seed() -> None:
    assert run_demo(3) == run_demo(3)


def _run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "presence_core", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_simulate_runs_as_a_module() -> None:
    result = _run_module("simulate", "--seed", "7")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == run_demo(7)


@pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])
@pytest.mark.anyio
async def test_live_demo_tells_the_whole_story(anyio_backend: str) -> None:
    console = Console(file=io.StringIO(), width=100)
    with anyio.fail_after(60):
        seen = await run_live_demo(users=4, duration=0, grace_period=0.3, console=console)
    # bob's drop and resume give peers nothing; carol leaves after the grace period and comes
    # back; alice leaves; everyone left when the demo closed.
    assert seen[:5] == [
        ("enter", "alice"),
        ("enter", "bob"),
        ("enter", "carol"),
        ("enter", "dave"),
        ("update", "alice"),
    ]
    assert seen[5:9] == [
        ("leave", "carol"),
        ("enter", "carol"),
        ("update", "dave"),
        ("leave", "alice"),
    ]
    assert sorted(seen[9:]) == [("leave", "bob"), ("leave", "carol"), ("leave", "dave")]


def test_demo_command_exits_0_after_its_duration() -> None:
    result = _run_module("demo", "--duration", "5")
    assert result.returncode == 0, result.stderr
    assert "grace period is 2 s" in result.stdout
    assert "leave   carol" in result.stdout


def test_no_command_prints_help() -> None:
    assert main([]) == 2
