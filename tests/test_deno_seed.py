"""The seed's TypeScript queue, run by the real Deno through qbench serve, costs exactly what its Python port costs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.run.deno_program import measure_deno_listing, measure_python_listing, shared_counts

pytestmark = pytest.mark.deno

POINTS = [
    {"N": 100, "K": 1, "limit": 100, "offset": 0},  # the seed's own case
    {"N": 250, "K": 2, "limit": 50, "offset": 10},  # a second name, a page inside the list, several batches
    {"N": 30, "K": 1, "limit": 10, "offset": 25},  # the page runs past the end
]


@pytest.mark.parametrize("layout", ["naive", "optimized"])
@pytest.mark.parametrize("point", POINTS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
async def test_typescript_and_python_ports_count_the_same(layout: str, point: dict[str, Any]) -> None:
    ts = await measure_deno_listing(layout, **point)
    py = await measure_python_listing(layout, **point)
    assert shared_counts(ts.counts) == shared_counts(py)
    assert ts.listed == min(point["limit"], max(0, -(-point["N"] // point["K"]) - point["offset"]))
    if layout == "naive":
        [finding] = ts.nplus1
        assert (finding["fingerprint"], finding["count"]) == ('get ("jobs", ?)', -(-point["N"] // point["K"]))
    else:
        assert ts.nplus1 == []


def test_qbench_runs_the_typescript_scenario_and_reports_it_beside_python(tmp_path: Path) -> None:
    results = tmp_path / "r.json"
    run = [sys.executable, "-m", "bench", "run", "--suite", "smoke", "--scenarios", "seed_case,deno_seed_case"]
    done = subprocess.run(
        [*run, "--layouts", "naive,optimized", "--no-progress", "-o", str(results), "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "deno_seed_case/naive/N=100,K=1,limit=100,offset=0,status=none" in done.stdout
    suite = json.loads(results.read_text())
    names = [b["metadata"]["name"] for b in suite["benchmarks"]]
    assert len(names) == 4
    report = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(results), "-o", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "README.md").read_text()
    assert "The counts of the two ports are equal (calls, round trips, entries read)." in text
    assert "| naive | TypeScript (Deno, through qbench serve) | 101 | 102 | 200 |" in text
