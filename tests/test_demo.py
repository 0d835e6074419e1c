"""The README's main job, ``python -m presence_core``, runs and tells the story it promises."""

from __future__ import annotations

import subprocess
import sys

from presence_core.__main__ import run_demo


def test_demo_shows_bob_leaving_after_grace_and_reentering() -> None:
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


def test_demo_is_deterministic_for_a_seed() -> None:
    assert run_demo(3) == run_demo(3)


def test_demo_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "presence_core", "--seed", "7"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == run_demo(7)
