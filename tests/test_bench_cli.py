"""``qbench run`` / ``qbench export`` end to end: a real smoke run through pyperf, its file read by pyperf itself,
bad input (exit status 2, no traceback) and Ctrl-C (a valid file of what finished)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.cli import COMMANDS, build_parser, main
from bench.results import COLUMNS, load, load_suite
from bench.scenarios import SCENARIOS

SMOKE_LAYOUTS = "naive,optimized"


def qbench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("seeds")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> tuple[Path, str]:
    """Every scenario, two layouts, one process and value each: the whole pipeline, small."""
    out = tmp_path_factory.mktemp("run") / "smoke.json"
    args = ["--layouts", SMOKE_LAYOUTS, "--no-instructions", "--cache-dir", str(cache_dir)]  # callgrind: test below
    done = qbench("run", "--suite", "smoke", *args, "-o", str(out))
    assert done.returncode == 0, done.stderr
    return out, done.stdout


@pytest.mark.slow
def test_a_smoke_run_writes_every_scenario_and_says_so(smoke: tuple[Path, str]) -> None:
    path, stdout = smoke
    frame = load(path)
    assert set(frame.scenario) == set(SCENARIOS)
    assert set(frame.layout) == {"naive", "optimized"}
    assert (frame.suite == "smoke").all() and (frame.backend == "sqlite").all()
    every = frame.groupby("benchmark").kind.agg(set)
    assert all({"count", "time"} == kinds - {"derived"} for kinds in every)
    seed = frame[(frame.scenario == "seed_case") & (frame.metric == "calls")].set_index("layout").value
    assert (seed["naive"], seed["optimized"]) == (101, 1)
    assert f"wrote {frame.benchmark.nunique()} of {frame.benchmark.nunique()} benchmarks to {path}" in stdout
    assert "seed_case/naive/N=100,K=1,limit=100,offset=0,status=none" in stdout
    assert 'N+1: 100 x get ("jobs", ?)' in stdout


@pytest.mark.slow
@pytest.mark.timeout(600)  # one benchmark under callgrind: seconds on an idle machine, minutes on a loaded one
def test_a_run_records_instructions_or_says_in_one_line_why_not(cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "counted.json"
    args = ["--layouts", "optimized", "--scenarios", "seed_case", "--cache-dir", str(cache_dir)]
    done = qbench("run", "--suite", "smoke", *args, "-o", str(out), timeout=600)
    assert done.returncode == 0, done.stderr
    frame = load(out)
    counted = frame[frame.metric == "instructions"]
    if shutil.which("valgrind") is None:
        assert counted.empty and "valgrind is not installed: instruction counts not recorded" in done.stdout
        return
    assert len(counted) == 1 and counted.value.iloc[0] > 1_000_000 and counted.unit.iloc[0] == "instructions"
    assert "counting instructions under callgrind" in done.stdout
    assert re.search(r"1 call, 1 round trip, [\d,]+ instructions", done.stdout)
    env = json.loads(load_suite(out).get_benchmarks()[0].get_metadata()["kvq_instructions_env"])
    assert set(env) == {"python", "valgrind", "machine", "sqlite", "aiosqlite", "method"}


@pytest.mark.slow
def test_pyperf_reads_the_results_file_unchanged(smoke: tuple[Path, str]) -> None:
    path, _ = smoke
    stats = subprocess.run([sys.executable, "-m", "pyperf", "stats", str(path)], capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert f"Number of benchmarks: {len(load_suite(path))}" in stats.stdout
    compare = subprocess.run(
        [sys.executable, "-m", "pyperf", "compare_to", str(path), str(path)], capture_output=True, text=True
    )
    assert compare.returncode == 0, compare.stderr
    assert "seed_case/naive" in compare.stdout


@pytest.mark.slow
def test_export_writes_the_tidy_table_as_csv(smoke: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = smoke
    assert main(["export", str(path), "-o", str(tmp_path / "r.csv")]) == 0
    with (tmp_path / "r.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == list(COLUMNS)
    assert len(rows) - 1 == len(load(path))


@pytest.mark.slow
def test_export_without_o_writes_csv_to_standard_output(
    smoke: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = smoke
    assert main(["export", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) - 1 == len(load(path))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["memory", pytest.param("deno", marks=pytest.mark.deno)])
def test_the_other_backends_run_through_pyperf_workers(backend: str, cache_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / f"{backend}.json"
    args = ["--layouts", SMOKE_LAYOUTS, "--scenarios", "seed_case,write_path", "--cache-dir", str(cache_dir)]
    args.append("--no-instructions")  # the smoke fixture covers the callgrind pass; this test is about the workers
    done = qbench("run", "--suite", "smoke", "--backend", backend, *args, "-o", str(out))
    assert done.returncode == 0, done.stderr
    frame = load(out)
    assert (frame.backend == backend).all() and frame.benchmark.nunique() == 12
    seed = frame[(frame.scenario == "seed_case") & (frame.metric == "calls")].set_index("layout").value
    assert (seed["naive"], seed["optimized"]) == (101, 1)  # the same exact counts on every backend


def test_every_command_is_registered_once_with_help() -> None:
    names = [command.name for command in COMMANDS]
    assert len(names) == len(set(names)) and {"run", "export"} <= set(names)
    help_text = build_parser().format_help()
    assert all(name in help_text for name in names)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--suite", "huge"], "invalid choice: 'huge'"),
        (["run", "--backend", "redis"], "invalid choice: 'redis'"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_unknown_suite_backend_or_command_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--layouts", "naive,sharded"], "Unknown layout 'sharded': expected one of naive, optimized"),
        (["run", "--scenarios", "list"], "Unknown scenario 'list'"),
        (["run", "--rtt", "5ms"], "Bad --rtt '5ms'"),
        (["run", "-o", "."], "is a directory"),
        (["export", "missing.json"], "No results file at 'missing.json'"),
    ],
)
def test_bad_values_exit_2_with_a_message_before_anything_runs(
    argv: Sequence[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*argv, *(["--cache-dir", str(tmp_path)] if argv[0] == "run" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []  # nothing written, nothing seeded


def test_a_foreign_file_exits_2_from_the_installed_command(tmp_path: Path) -> None:
    (tmp_path / "other.json").write_text('{"version": "1.0", "benchmarks": [{"runs": []}]}')
    done = qbench("export", str(tmp_path / "other.json"), timeout=60)
    assert done.returncode == 2
    assert "is not a pyperf results file" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_ctrl_c_leaves_a_valid_file_of_what_finished(tmp_path: Path, cache_dir: Path) -> None:
    out = tmp_path / "partial.json"
    args = [
        "run",
        "--suite",
        "smoke",
        "--layouts",
        "naive",
        "--no-instructions",
        "--cache-dir",
        str(cache_dir),
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so the signal reaches pyperf's workers as from a terminal
    )
    deadline = time.monotonic() + 120
    while not out.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert out.exists(), "no benchmark finished in time"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    # Not one traceback from qbench's own process. A pyperf worker that was still starting dies of the signal with its
    # own report, whole or cut short: KeyboardInterrupt's traceback, a "Fatal Python error: init_import_site" block
    # (seen in CI), or a traceback through bench/worker.py's imports with no last line (seen in make test).
    assert not _has_qbench_traceback(stderr), stderr
    written = load(out).benchmark.nunique()
    assert 1 <= written < 19  # the smoke suite has 19 benchmarks per layout
    assert f"{written} of 19 benchmarks written to {out}" in stderr


def _has_qbench_traceback(stderr: str) -> bool:
    """Whether qbench's own process printed a traceback: every one of its tracebacks starts in bench/__main__.py
    (it runs as python -m bench), which no pyperf worker (python -m bench.worker) has on its stack."""
    return re.search(r'File "[^"]*bench/__main__\.py", line \d+', stderr) is not None


def test_only_a_traceback_through_qbench_main_counts_as_qbench_s() -> None:
    startup_death = (
        "Fatal Python error: init_import_site: Failed to import the site module\n"
        "Python runtime state: initialized\n"
        "Traceback (most recent call last):\n"
        '  File "<frozen site>", line 616, in <module>\n'
        "Benchmark interrupted: exit\n"
    )
    cut_short = (  # a worker interrupted while importing, its last lines lost (make test, 2026-11-29)
        "Traceback (most recent call last):\n"
        '  File "<frozen runpy>", line 198, in _run_module_as_main\n'
        '  File "<frozen runpy>", line 88, in _run_code\n'
        '  File "/work/main/bench/worker.py", line 9, in <module>\n'
        "    import signal\n"
        '  File "/root/.pyenv/versions/3.11.7/lib/python3.11/signal.py", line 7, in <module>\n'
        "Benchmark interrupted: exit\n"
    )
    ours = (
        "Traceback (most recent call last):\n"
        '  File "<frozen runpy>", line 198, in _run_module_as_main\n'
        '  File "/work/main/bench/__main__.py", line 5, in <module>\n'
        '  File "/work/main/bench/cli.py", line 150, in main\n'
        "ValueError: x\n"
    )
    assert not _has_qbench_traceback(startup_death + cut_short)
    assert _has_qbench_traceback(startup_death + ours + cut_short)


def test_affinity_must_be_a_list_of_cpus_this_process_may_use(capsys: pytest.CaptureFixture[str]) -> None:
    for bad, message in (
        ("x", "not a CPU list: 'x'"),
        ("3-1", "not a CPU list"),
        ("4096", "CPU 4096 is not available"),
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", "--affinity", bad])
        assert message in capsys.readouterr().err
    last = str(max(os.sched_getaffinity(0)))
    assert build_parser().parse_args(["run", "--affinity", last]).affinity == last


@pytest.mark.slow
def test_a_pinned_run_records_its_cpus_in_every_benchmark(tmp_path: Path, cache_dir: Path) -> None:
    last = max(os.sched_getaffinity(0))
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: pinning to it is no different from not pinning")
    out = tmp_path / "pinned.json"
    args = ["--layouts", "optimized", "--scenarios", "seed_case", "--affinity", str(last), "--no-instructions"]
    done = qbench("run", "--suite", "smoke", *args, "--cache-dir", str(cache_dir), "-o", str(out))
    assert done.returncode == 0, done.stderr
    benchmarks = load_suite(out).get_benchmarks()
    assert benchmarks and all(b.get_metadata().get("cpu_affinity") == str(last) for b in benchmarks)


def test_a_worker_pins_itself_so_that_its_store_threads_inherit_the_cpus() -> None:
    # In a child process: pinning the pytest process itself would slow every later test.
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: nothing to pin to")
    code = (
        "import os, threading\n"
        "from bench.run.affinity import pin\n"
        f"pin('{cpus[-1]}')\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))\n"
        "t.start(); t.join()\n"
        "print(seen[0])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == str([cpus[-1]])
