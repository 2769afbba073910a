"""Smoke tests of the Deno diagnostics in tools/ at tiny sizes (never timed here): the in-Deno script, kv_micro's
Deno columns and the KV Connect server's overhead benchmark."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from queue_impls.kv.backends.deno import find_deno
from tools.deno_inprocess import OP_NAMES, SCRIPT
from tools.kv_stores import OPS

pytestmark = pytest.mark.deno
ROOT = Path(__file__).resolve().parents[1]  # python -m tools.<name> runs from a clone's root


def test_in_deno_script_prints_every_op_as_json(tmp_path: Path) -> None:
    db = tmp_path / "kv.sqlite"
    argv = [find_deno(), "run", "--unstable-kv", "--no-config", f"--allow-read={db}", f"--allow-write={db}"]
    argv += [str(SCRIPT), str(db), "--entries", "60", "--min-time", "0.001"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=90, check=True)
    report = json.loads(done.stdout)
    assert report["entries"] == 60 and set(report["us_per_call_median"]) == set(OPS) == set(OP_NAMES)
    assert all(us > 0 for us in report["us_per_call_median"].values())


def test_kv_micro_prints_the_bridge_overhead(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "tools.kv_micro", "-q", "--entries", "60", "--in-process", "--debug-single-value"]
    argv += ["--stores", "sqlite,deno,deno in-process", "-o", str(tmp_path / "r.json")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "bridge overhead" in done.stdout and "sqlite/deno-in-process" in done.stdout
    assert "deno bridge overhead under 100 us per round trip" in done.stdout


def test_the_server_overhead_benchmark_runs_and_prints_its_verdict() -> None:
    """tools/kvconnect_overhead.py at tiny sizes, so it cannot rot (its figures are not checked: a shared machine)."""
    done = subprocess.run(
        [sys.executable, "-m", "tools.kvconnect_overhead", "--rounds", "2", "--block", "5"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    for line in (
        "Measured side by side in one run",
        "get ",
        "set ",
        "list page(50)",
        "floor: one-byte TCP ping-pong",
        "the app alone",
        "the store alone",
        "server process CPU per get",
        "through granian->sqlite",
        "through builtin->sqlite",
        "builtin no-op",
        "the app and store inside builtin",
    ):
        assert line in done.stdout
