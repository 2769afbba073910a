"""The results file: written incrementally and atomically, read back by load(), rejected when foreign or broken."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pyperf
import pytest

from bench.errors import ResultsError
from bench.results import COLUMNS, ResultsWriter, load, load_suite, suite_metadata
from bench.run.measure import Measured
from bench.run.runner import benchmark_metadata
from bench.scenarios import Case, get_scenario

COUNTS = {
    "calls": {"get": 100, "get_many": 0, "list": 1, "set": 0, "delete": 0, "commit": 0},
    "total_calls": 101,
    "round_trips": 102,
    "serial_round_trips": 102,
    "entries_read": 200,
    "bytes_read": 50_000,
    "mutations": 0,
    "checks": 0,
    "bytes_written": 0,
}


def benchmark(case: Case, values: list[float], measured: Measured | None = None) -> pyperf.Benchmark:
    run = pyperf.Run(values, warmups=[(1, values[0])], metadata={"name": case.name, "unit": "second"})
    bench = pyperf.Benchmark([run])
    meta = suite_metadata(suite="quick", backend="sqlite", backend_version="SQLite 3", rtt_ms=(0.0, 5.0))
    bench.update_metadata({**meta, **benchmark_metadata(case, measured or Measured(COUNTS, []))})
    return bench


SEED = Case.make(get_scenario("seed_case"), "naive", {"N": 100, "K": 1, "limit": 100, "offset": 0, "status": "none"})
WRITE = Case.make(get_scenario("write_path"), "indexed", {"op": "fail_retry"})
THROUGHPUT = Case.make(get_scenario("worker_throughput"), "batched", {"N": 50, "concurrency": 8})


def write(path: Path, *benchmarks: pyperf.Benchmark) -> Path:
    writer = ResultsWriter(path)
    for bench in benchmarks:
        writer.add(bench)
    return path


def test_load_gives_one_tidy_row_per_benchmark_and_metric(tmp_path: Path) -> None:
    finding = {"source": 'list ("jobs_by_name", ?)', "fingerprint": 'get ("jobs", ?)', "count": 100, "site": "x.py:1"}
    path = write(tmp_path / "r.json", benchmark(SEED, [0.010, 0.012, 0.011], Measured(COUNTS, [finding])))
    frame = load(path)
    assert list(frame.columns) == list(COLUMNS)
    rows = {row.metric: row for row in frame.itertuples()}
    assert rows["calls"].value == 101 and rows["calls"].kind == "count" and rows["calls"].unit == "calls"
    assert rows["calls.get"].value == 100 and rows["bytes_read"].unit == "bytes"
    assert rows["time"].value == pytest.approx(0.011) and rows["time"].n_values == 3 and rows["time"].stdev > 0
    assert rows["time_median"].value == pytest.approx(0.011)
    first = frame.iloc[0]
    assert (first.scenario, first.layout, first.backend, first.suite, first.N, first.status) == (
        "seed_case", "naive", "sqlite", "quick", 100, "none",
    )  # fmt: skip
    assert math.isnan(first.concurrency) and first.op is None
    assert json.loads(load_suite(path).get_benchmarks()[0].get_metadata()["kvq_nplus1"]) == [finding]


def test_per_job_counts_derived_figures_and_parameters_of_other_scenarios(tmp_path: Path) -> None:
    per_job = {**COUNTS, "total_calls": 4.2}
    measured = Measured(per_job, [], {"jobs_per_s": 1234.5})
    path = write(tmp_path / "r.json", benchmark(WRITE, [0.001, 0.002]), benchmark(THROUGHPUT, [0.04, 0.05], measured))
    frame = load(path)
    write_rows = frame[frame.scenario == "write_path"]
    assert set(write_rows.op) == {"fail_retry"} and write_rows.N.isna().all()
    throughput = frame[(frame.scenario == "worker_throughput")].set_index("metric")
    assert throughput.loc["calls", "value"] == 4.2 and throughput.loc["calls", "unit"] == "calls/job"
    assert throughput.loc["jobs_per_s", "kind"] == "derived" and throughput.loc["jobs_per_s", "unit"] == "jobs/s"
    assert throughput.loc["time", "concurrency"] == 8


def test_the_writer_rewrites_the_whole_file_after_each_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "out" / "r.json"
    writer = ResultsWriter(path)
    writer.add(benchmark(SEED, [0.01, 0.02]))
    assert len(load_suite(path)) == 1
    writer.add(benchmark(WRITE, [0.01, 0.02]))
    assert [b.get_name() for b in load_suite(path)] == [SEED.name, WRITE.name]
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left behind


def test_suite_metadata_is_common_to_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", benchmark(SEED, [0.01, 0.02]), benchmark(WRITE, [0.01, 0.02]))
    common = load_suite(path).get_metadata()
    assert common["kvq_suite"] == "quick" and common["kvq_rtt_ms"] == "0,5" and common["kvq_backend"] == "sqlite"
    assert common["kvq_git_commit"] and common["kvq_version"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "No results file"),
        ("not json at all", "is not a pyperf results file"),
        ('{"version": "1.0", "benchmarks": []}', "is not a pyperf results file"),
        ('{"hello": 1}', "is not a pyperf results file"),
        (b"\xff\xfe\x00garbage", "is not a pyperf results file"),
    ],
)
def test_unreadable_files_are_results_errors(tmp_path: Path, content: Any, message: str) -> None:
    path = tmp_path / "bad.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ResultsError, match=message):
        load(path)


def test_a_foreign_pyperf_file_is_rejected_with_what_is_missing(tmp_path: Path) -> None:
    run = pyperf.Run([0.1, 0.2], metadata={"name": "telco", "unit": "second"})
    pyperf.BenchmarkSuite([pyperf.Benchmark([run])]).dump(str(tmp_path / "pyperformance.json"))
    with pytest.raises(ResultsError, match="not a kvq results file: benchmark 'telco' has no kvq_scenario"):
        load(tmp_path / "pyperformance.json")


def test_a_directory_is_not_a_results_file(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="Cannot read results file"):
        load(tmp_path)


def test_a_results_file_is_as_readable_as_any_file_the_user_writes(tmp_path: Path) -> None:
    path = write(tmp_path / "r.json", benchmark(SEED, [0.010, 0.012]))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's private 0600
    assert not [p for p in tmp_path.iterdir() if p.name != "r.json"]  # no temporary file left behind
