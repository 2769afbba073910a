"""Smoke tests of tools/kv_micro.py and tools/kv_interleaved.py at tiny sizes, so they cannot rot (never timed here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import kv_interleaved, kv_micro, kv_stores
from tools.harness import SelfTimed
from tools.kv_micro import format_table
from tools.kv_stores import FLOOR, OPS, STORES, Comparison, Target

ROOT = Path(__file__).resolve().parents[1]  # python -m tools.<name> runs from a clone's root


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.kv_micro", "-q", "--entries", "60", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )


def bench_names(path: Path) -> set[str]:
    return {bench["metadata"]["name"] for bench in json.loads(path.read_text())["benchmarks"]}


def test_every_store_and_op_runs_in_one_process(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = run_bench("--in-process", "--debug-single-value", "-o", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    available = [name for name, store in STORES.items() if store.unavailable() is None]
    assert {"memory", "sqlite", FLOOR} <= set(available)
    assert bench_names(out) == {kv_micro.bench_name(s, op) for s in available for op in STORES[s].ops}
    header = next(line for line in done.stdout.splitlines() if line.startswith("op "))
    assert all(name in header for name in available)
    assert "sqlite/floor" in done.stdout
    assert "Targets:" in done.stdout

    rendered = run_bench("--table", str(out))  # the JSON file alone gives back the same table
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.strip() in done.stdout
    as_min = run_bench("--table", str(out), "--stat", "min")
    assert "min of the values" in as_min.stdout


def test_workers_get_the_same_plan(tmp_path: Path) -> None:
    """The real path: one worker process per benchmark, which must find its store from the forwarded options."""
    out = tmp_path / "r.json"
    done = run_bench("--debug-single-value", "--stores", f"sqlite,{FLOOR}", "--ops", "get,set", "-o", str(out))
    assert done.returncode == 0, done.stderr + done.stdout
    assert bench_names(out) == {f"sqlite :: {OPS[0]}", "sqlite :: set", f"{FLOOR} :: get", f"{FLOOR} :: set"}


def test_a_worker_refuses_a_plan_that_changed_under_it() -> None:
    done = run_bench("--in-process", "--debug-single-value", "--stores", "memory", "--plan-digest", "0123456789abcdef")
    assert done.returncode != 0
    assert "plan changed since this run started" in done.stderr


def test_unknown_store_is_refused() -> None:
    done = run_bench("--stores", "nosuch", "--debug-single-value")
    assert done.returncode != 0
    assert "unknown store 'nosuch'" in done.stderr


RESULTS = {
    ("memory", "get"): 5e-6,
    ("sqlite", "get"): 120e-6,
    (FLOOR, "get"): 100e-6,
    ("sqlite", "set"): 300e-6,
    (FLOOR, "set"): 150e-6,
}


def test_table_prints_microseconds_ratios_and_targets() -> None:
    text = format_table(RESULTS)
    assert "120.0" in text and "100.0" in text
    assert "1.20x" in text and "2.00x" in text
    assert "[   met] SQLite get within 1.3x" in text
    assert "memory get = 5.00" in text
    assert "list page" not in text  # ops nobody measured get no row and no target line


def test_a_comparison_and_a_target_are_one_line_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        kv_stores, "COMPARISONS", [*kv_stores.COMPARISONS, Comparison("memory-sqlite", "memory", "sqlite", "delta")]
    )
    monkeypatch.setattr(kv_stores, "TARGETS", [Target("get", "memory-sqlite", -200.0, "made up")])
    text = format_table(RESULTS)
    assert "-115.0 us" in text
    assert "[MISSED] made up: memory-sqlite get = -115.00 (<= -200.0)" in text


def test_a_broken_op_is_refused_before_timing() -> None:
    with pytest.raises(SystemExit, match="expected 50 rows, got 3"):
        kv_stores.check("sqlite", "list page(50)", [object()] * 3, 50)


# ------------------------------------------------------------------------------------------- interleaved mode


def run_interleaved(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.kv_micro", "--interleaved", "--entries", "60", *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )


def test_interleaved_mode_runs_every_chosen_comparison_side_by_side() -> None:
    stores = f"memory,sqlite,{FLOOR},counting(memory)"
    done = run_interleaved("--blocks", "2", "--block-calls", "3", "--stores", stores, "--ops", "get,set")
    assert done.returncode == 0, done.stderr + done.stdout
    lines = [line for line in done.stdout.splitlines() if line.startswith(("sqlite/floor", "counting-memory"))]
    rows = [re.split(r"\s{2,}", line) for line in lines]  # comparison, op, a us, b us, min, median, interval, calls
    assert [(row[0].split()[0], row[1]) for row in rows] == [
        ("sqlite/floor", "get"),
        ("sqlite/floor", "set"),
        ("counting-memory", "get"),
        ("counting-memory", "set"),
    ]
    assert all(row[-1] == "3" for row in rows)  # --block-calls is the calls per block
    assert ", pinned to CPU " in done.stdout  # the default: one CPU, so both sides pay the same thread hop
    assert "traced" not in done.stdout  # a comparison whose stores were not chosen is not run
    assert "] SQLite get within 1.3x of the single-hop floor: sqlite/floor get = " in done.stdout
    assert "] counting adds under 2 us per call on memory: counting-memory get = " in done.stdout


def test_interleaved_mode_refuses_bad_options() -> None:
    assert "unknown store 'nosuch'" in run_interleaved("--stores", "memory,nosuch").stderr
    assert "--blocks must be at least 1, got 0" in run_interleaved("--blocks", "0").stderr
    assert "unknown op 'scan'" in run_interleaved("--ops", "scan").stderr
    assert "no comparison has both" in run_interleaved("--stores", "memory").stderr
    unpinned = run_interleaved("--cpu", "none", "--blocks", "1", "--block-calls", "1", "--stores", f"sqlite,{FLOOR}")
    assert ", unpinned;" in unpinned.stdout, unpinned.stderr


async def test_blocks_alternate_and_rotate_and_self_timed_ops_report_their_own_time() -> None:
    calls: list[str] = []

    async def a() -> None:
        calls.append("a")

    async def b_run(loops: int) -> float:
        calls.extend("b" * loops)
        return loops * 2.0  # two "seconds" per call, whatever the wall clock says

    pair = kv_interleaved.Pair(Comparison("x", "a", "b"), "get", calls=2)
    await kv_interleaved.measure(pair, a, SelfTimed(b_run), blocks=3)
    assert "".join(calls) == "a" + "b" + "aabb" + "bbaa" + "aabb"  # warm-up, then A,B / B,A / A,B
    assert pair.b == [2.0, 2.0, 2.0] and len(pair.a) == 3


def test_interleaved_report_takes_min_and_median_of_per_round_values() -> None:
    ratio = kv_interleaved.Pair(Comparison("sqlite/floor", "sqlite", FLOOR), "get", 10, [3e-6, 2e-6, 9e-6], [1e-6] * 3)
    delta = kv_interleaved.Pair(
        Comparison("counting-memory", "counting(memory)", "memory", "delta"), "get", 10, [9e-6, 7e-6, 8e-6], [5e-6] * 3
    )
    text = kv_interleaved.format_report([ratio, delta], kv_interleaved.Settings(blocks=3))
    assert "2.00x" in text and "3.00x" in text  # min and median of 3x, 2x, 9x
    assert "+2.0 us" in text and "+3.0 us" in text
    assert "[MISSED] SQLite get within 1.3x of the single-hop floor: sqlite/floor get = 3.00" in text
    assert "[   met] memory get under 10 us: memory get = 5.00" in text
    assert "[MISSED] counting adds under 2 us per call on memory: counting-memory get = 3.00" in text
