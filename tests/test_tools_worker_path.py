"""The worker-path scripts, smoke-tested cheaply: an idle worker's reads per minute (exact, on a fake clock) and
the huey comparison's own timing loop (tiny sizes; huey's side only when the bench-only extra is installed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tools.huey_vs import goals, report, time_floor, time_huey, time_ours
from tools.worker_idle import add_to_handler_ms, idle_reads_per_minute


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_an_idle_worker_reads_twice_a_minute(backend: str, tmp_path: Path) -> None:
    reads, entries = await idle_reads_per_minute(backend, 3, tmp_path)
    assert (reads, entries) == (2.0, 0.0)  # the safety re-check: reap_expired + the claim's list, nothing found


async def test_add_to_handler_is_timed_for_every_job(tmp_path: Path) -> None:
    latencies = await add_to_handler_ms("memory", 5, tmp_path)
    assert len(latencies) == 5 and all(ms > 0 for ms in latencies)


async def test_our_side_of_the_huey_comparison_runs_every_job(tmp_path: Path) -> None:
    add_s, run_s = await time_ours(tmp_path / "q.db", "indexed", 8, 20)
    assert add_s > 0 and run_s > 0


async def test_the_floor_writes_each_job_once_per_phase(tmp_path: Path) -> None:
    add_s, run_s = await time_floor(tmp_path / "f.db", 20)
    assert add_s > 0 and run_s > 0


@pytest.mark.skipif(importlib.util.find_spec("huey") is None, reason="huey (the bench-only extra) is not installed")
def test_huey_side_and_the_report(tmp_path: Path) -> None:
    huey = time_huey(tmp_path / "h.db", 20)
    text = report({"huey": [huey], "indexed/c1": [(huey[0] * 2, huey[1] * 3)]}, 20, 1)
    row = next(line for line in text.splitlines() if line.startswith("indexed/c1 "))
    assert "2.00x [2.00, 2.00]" in row and "3.00x [3.00, 3.00]" in row


def test_the_goals_are_judged_on_paired_ratios() -> None:
    huey = [(1.0, 1.0), (2.0, 2.0), (1.0, 1.0)]
    times = {
        "huey": huey,
        "floor": [(0.5, 0.5)] * 3,
        "naive/c1": [(0.9, 1.0), (1.8, 2.0), (0.9, 1.0)],
        "naive/c8": [(0.9, 1.1), (1.8, 2.2), (0.9, 1.1)],  # 10% slower to run than c1 in every round
        "batched/c1": [(3.0, 1.0), (6.0, 2.0), (3.0, 1.0)],
        "batched/c8": [(3.0, 0.9), (6.0, 1.8), (3.0, 0.9)],
    }
    lines = goals(times)
    assert "[   met] naive/c1 add at most 1.0x huey: 0.90x [0.90, 0.90]" in lines
    assert "[MISSED] naive/c8 run at most 1.0x huey: 1.10x [1.10, 1.10]" in lines
    assert "[MISSED] batched/c1 add at most 1.0x huey: 3.00x [3.00, 3.00]" in lines
    assert "[MISSED] naive run at concurrency 8 not slower than at 1: c8 / c1 1.10x [1.10, 1.10]" in lines
    assert "[   met] batched run at concurrency 8 not slower than at 1: c8 / c1 0.90x [0.90, 0.90]" in lines
    assert not any("floor" in line for line in lines)  # the floor is a bound, not a contender with goals
