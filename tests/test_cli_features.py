"""qbench's command-line features: --version, suggestions for typos, -k, pyperf's timing flags passed through, and
--plugin errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.results import load_suite
from bench.run.runner import TimingFlags, timing_for, timing_metadata
from bench.scenarios import SUITE_SPECS


def qbench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_version_names_the_package_and_python() -> None:
    done = qbench("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("qbench (kvq-bench) ")
    assert f"Python {sys.version_info.major}.{sys.version_info.minor}." in done.stdout


@pytest.mark.parametrize(
    ("args", "usage", "hint"),
    [
        (["run", "--suiet", "quick"], "usage: qbench run", "did you mean --suite?"),
        (["run", "--layuots=naive"], "usage: qbench run", "did you mean --layouts?"),
        (["gate", "--baseilne", "x.json"], "usage: qbench gate", "did you mean --baseline?"),
        (["rnu"], "usage: qbench", "did you mean 'run'?"),
        (["run", "--suite", "quik"], "usage: qbench run", "did you mean 'quick'?"),
        (["run", "--backend", "sqlit"], "usage: qbench run", "did you mean 'sqlite'?"),
    ],
)
def test_a_typo_is_answered_with_the_subcommands_usage_and_the_closest_name(
    args: list[str], usage: str, hint: str
) -> None:
    done = qbench(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(usage), done.stderr
    assert hint in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layouts", "naive,optimzed"], "Unknown layout 'optimzed' (did you mean 'optimized'?)"),
        (["--scenarios", "seed_cas"], "Unknown scenario 'seed_cas' (did you mean 'seed_case'?)"),
        (["-k", "seed_cose"], "no benchmark of the 76 planned matches; closest: seed_case"),
        (["--plugin", "no.such.module"], "--plugin no.such.module: the module failed to import: ModuleNotFoundError"),
        (["--plugin", "not a module"], "expected a dotted module path"),
    ],
)
def test_bad_names_are_one_line_errors_with_exit_status_2(args: list[str], message: str, tmp_path: Path) -> None:
    done = qbench("run", "--suite", "smoke", "-o", str(tmp_path / "r.json"), *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "r.json").exists()


def test_fast_and_rigorous_exclude_each_other() -> None:
    done = qbench("run", "--fast", "--rigorous")
    assert done.returncode == 2 and "not allowed with argument" in done.stderr


def test_timing_flags_scale_the_suites_plan_as_pyperf_scales_its_defaults() -> None:
    full, quick = SUITE_SPECS["full"].timing, SUITE_SPECS["quick"].timing
    rigorous = timing_for(full, TimingFlags(rigorous=True))
    assert (rigorous.processes, rigorous.values, rigorous.budget_s) == (40, 3, 2 * full.budget_s)  # pyperf: 20 -> 40
    fast = timing_for(full, TimingFlags(fast=True))
    assert (fast.processes, fast.values, fast.budget_s) == (10, 2, full.budget_s / 2)  # pyperf: 20 x 3 -> 10 x 2
    assert (timing_for(quick, TimingFlags(fast=True)).processes, timing_for(quick, TimingFlags(fast=True)).values) == (
        1,
        2,
    )
    exact = timing_for(quick, TimingFlags(fast=True, processes=4, values=5))
    assert (exact.processes, exact.min_processes, exact.values, exact.min_values) == (4, 4, 5, 5)
    assert timing_for(quick, None) == quick and timing_for(quick, TimingFlags()) == quick
    assert timing_metadata(quick, TimingFlags()) == {}
    recorded = json.loads(timing_metadata(exact, TimingFlags(fast=True, processes=4, values=5))["kvq_timing"])
    assert recorded == {"flags": ["--fast", "--processes=4", "--values=5"], "processes": 4, "values": 5,
                        "warmups": 1, "min_time": 0.01}  # fmt: skip


@pytest.mark.slow
def test_k_and_processes_and_values_reach_pyperf_and_the_results_file(tmp_path: Path) -> None:
    out = tmp_path / "k.json"
    args = ["--suite", "smoke", "-k", "seed_case/optimized", "-p", "2", "--values", "3", "--no-instructions"]
    done = qbench("run", *args, "--cache-dir", str(tmp_path / "cache"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "1 benchmark (-k matched 1 of " in done.stdout
    [bench] = load_suite(out).get_benchmarks()
    assert bench.get_name() == "seed_case/optimized/N=100,K=1,limit=100,offset=0,status=none"
    runs = [run for run in bench.get_runs() if run.values]
    assert len(runs) == 2 and all(len(run.values) == 3 for run in runs)  # two processes, three values each
    timing = json.loads(str(bench.get_metadata()["kvq_timing"]))
    assert timing["flags"] == ["--processes=2", "--values=3"] and (timing["processes"], timing["values"]) == (2, 3)
