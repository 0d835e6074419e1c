"""The reduced load run: 100 real WebSocket clients, churn and a server restart.

``benchmarks/load_churn.py`` is the full run (1,000 clients, by hand); this runs the same
driver at a tenth of the size on both backends, and holds it to the same verdict: no ghost and
no lost member after each phase, every resume failing after the restart (so every client
re-entered on its own), and empty tables once everyone has left.
"""

from __future__ import annotations

import pytest

from benchmarks.load_churn import Plan, run

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_load_churn_and_restart_converge_with_nothing_lost() -> None:
    plan = Plan(clients=100, sample=5, rounds=3, restart=True, seed=7)
    result = await run(plan)
    assert [phase.name for phase in result.phases] == ["load", "churn", "restart"]
    for phase in result.phases:
        assert (phase.name, phase.ghosts, phase.lost) == (phase.name, 0, 0)
    assert result.failed_operations == 0
    assert result.resumes_failed_after_restart == plan.clients
    assert (result.final_connections, result.final_members) == (0, 0)
    assert result.ok
