"""The results file (docs/results-format.md): written by ``qbench run``, read by ``load()`` and everything else.

A pyperf BenchmarkSuite whose benchmarks carry the kvq metadata; ``load`` flattens it into one tidy row per
benchmark x metric. Writing is incremental and atomic, so an interrupted run leaves a valid file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyperf

from .errors import ResultsError

COLUMNS: Final = (
    "benchmark", "scenario", "layout", "backend", "suite", "N", "K", "limit", "offset", "status", "op",
    "concurrency", "rtt_ms", "metric", "kind", "value", "unit", "stdev", "n_values",
)  # fmt: skip
_PARAM_COLUMNS: Final = ("N", "K", "limit", "offset", "status", "op", "concurrency", "rtt_ms")
#: Count metrics of kvq_counts (besides ``calls``), with their units.
COUNT_UNITS: Final = {
    "round_trips": "round_trips",
    "serial_round_trips": "round_trips",
    "entries_read": "entries",
    "bytes_read": "bytes",
    "mutations": "mutations",
    "checks": "checks",
    "bytes_written": "bytes",
}
DERIVED_UNITS: Final = {
    "predicted_s": "second",
    "jobs_per_s": "jobs/s",
    "read_round_trips_per_page": "round_trips",
    "write_round_trips_per_job": "round_trips",
    "read_bytes_per_page": "bytes",
    "write_bytes_per_job": "bytes",
}
_JSON_KEYS: Final = ("kvq_params", "kvq_counts", "kvq_derived", "kvq_nplus1")


# -- writing ---------------------------------------------------------------------------------------------------


def compact_json(value: Any) -> str:
    """A metadata value pyperf accepts: compact JSON on one line."""
    return json.dumps(value, separators=(",", ":"), sort_keys=False)


def package_version() -> str:
    try:
        return importlib_metadata.version("kvq-bench")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def git_commit() -> str:
    """The project's commit (with ``+dirty`` when tracked files differ from it), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = _git(root, "rev-parse", "HEAD")
        dirty = subprocess.run(["git", "-C", str(root), "diff", "--quiet", "HEAD"], timeout=30).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}+dirty" if dirty else commit


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()


def suite_metadata(*, suite: str, backend: str, backend_version: str, rtt_ms: tuple[float, ...]) -> dict[str, str]:
    """The run-wide metadata every benchmark carries (pyperf shows it as the file's common metadata)."""
    return {
        "kvq_suite": suite,
        "kvq_backend": backend,
        "kvq_backend_version": backend_version,
        "kvq_git_commit": git_commit(),
        "kvq_version": package_version(),
        "kvq_rtt_ms": ",".join(f"{r:g}" for r in rtt_ms),
    }


class ResultsWriter:
    """Adds benchmarks one at a time; after each, the whole suite is rewritten atomically (temp file + rename)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.suite: pyperf.BenchmarkSuite | None = None
        #: Benchmarks in the file on disk (the suite may hold one more while it is being written).
        self.written = 0

    def add(self, benchmark: pyperf.Benchmark) -> None:
        if self.suite is None:
            self.suite = pyperf.BenchmarkSuite([benchmark])
        else:
            self.suite.add_benchmark(benchmark)
        self._flush()

    def _flush(self) -> None:
        assert self.suite is not None
        directory = self.path.parent if str(self.path.parent) else Path(".")
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=self.path.name, dir=directory)
        os.close(fd)
        try:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a results file is meant to be shared
            self.suite.dump(tmp, replace=True)
            os.replace(tmp, self.path)
            self.written = len(self.suite)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


# -- reading ---------------------------------------------------------------------------------------------------


def load_suite(path: str | os.PathLike[str]) -> pyperf.BenchmarkSuite:
    """The results file as a pyperf suite, checked to be a kvq results file; ResultsError otherwise."""
    try:
        suite = pyperf.BenchmarkSuite.load(os.fspath(path))
    except FileNotFoundError:
        raise ResultsError(f"No results file at {os.fspath(path)!r}: run `qbench run -o FILE` first") from None
    except OSError as exc:
        raise ResultsError(f"Cannot read results file {os.fspath(path)!r}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ResultsError(
            f"{os.fspath(path)!r} is not a pyperf results file ({type(exc).__name__}: {exc}); "
            "expected the JSON file `qbench run` writes"
        ) from None
    for bench in suite:
        missing = [key for key in ("kvq_scenario", "kvq_layout", "kvq_counts") if key not in bench.get_metadata()]
        if missing:
            raise ResultsError(
                f"{os.fspath(path)!r} is a pyperf file but not a kvq results file: benchmark "
                f"{bench.get_name()!r} has no {', '.join(missing)} metadata (see docs/results-format.md)"
            )
    return suite


def benchmark_info(bench: pyperf.Benchmark) -> dict[str, Any]:
    """The kvq metadata of one benchmark, JSON values decoded."""
    meta = dict(bench.get_metadata())
    for key in _JSON_KEYS:
        if key in meta:
            try:
                meta[key] = json.loads(meta[key])
            except (TypeError, ValueError):
                raise ResultsError(f"benchmark {bench.get_name()!r}: metadata {key} is not valid JSON") from None
    return meta


def load(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One tidy row per benchmark x metric (columns: COLUMNS); ResultsError for a bad or foreign file."""
    suite = load_suite(path)
    rows = [row for bench in suite for row in _rows(bench)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in ("N", "K", "limit", "offset", "concurrency", "rtt_ms", "value", "stdev", "n_values"):
        frame[column] = pd.to_numeric(frame[column])
    return frame


def _rows(bench: pyperf.Benchmark) -> Iterator[dict[str, Any]]:
    meta = benchmark_info(bench)
    base = _base_row(bench.get_name(), meta)
    per_job = meta.get("kvq_per") == "job"
    for metric, value, unit in _count_metrics(meta["kvq_counts"]):
        yield {**base, "metric": metric, "kind": "count", "value": value, "unit": f"{unit}/job" if per_job else unit}
    yield from _time_rows(bench, base)
    yield from _instruction_rows(bench.get_name(), meta.get("kvq_instructions"), base, per_job)
    for metric, value in (meta.get("kvq_derived") or {}).items():
        yield {**base, "metric": metric, "kind": "derived", "value": value, "unit": DERIVED_UNITS.get(metric, "")}


def _base_row(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    params = meta.get("kvq_params") or {}
    row: dict[str, Any] = {
        "benchmark": name,
        "scenario": meta["kvq_scenario"],
        "layout": meta["kvq_layout"],
        "backend": meta.get("kvq_backend"),
        "suite": meta.get("kvq_suite"),
    }
    row.update({column: params.get(column) for column in _PARAM_COLUMNS})
    row.update({"stdev": math.nan, "n_values": math.nan})
    return row


def _count_metrics(counts: Mapping[str, Any]) -> Iterator[tuple[str, float, str]]:
    calls = counts.get("calls") or {}
    yield "calls", counts.get("total_calls", sum(calls.values())), "calls"
    for op, n in calls.items():
        yield f"calls.{op}", n, "calls"
    for metric, unit in COUNT_UNITS.items():
        if metric in counts:
            yield metric, counts[metric], unit


def _instruction_rows(name: str, raw: Any, base: dict[str, Any], per_job: bool) -> Iterator[dict[str, Any]]:
    """kvq_instructions (bench/instructions.py): CPU instructions of one operation, or of one job."""
    if raw is None:
        return
    try:
        value = float(json.loads(raw) if isinstance(raw, str) else raw)
    except (TypeError, ValueError):
        raise ResultsError(f"benchmark {name!r}: metadata kvq_instructions is not a number: {raw!r}") from None
    unit = "instructions/job" if per_job else "instructions"
    yield {**base, "metric": "instructions", "kind": "instructions", "value": value, "unit": unit}


def _time_rows(bench: pyperf.Benchmark, base: dict[str, Any]) -> Iterator[dict[str, Any]]:
    values = bench.get_values()
    if not values:
        return
    stdev = bench.stdev() if len(values) > 1 else math.nan
    common = {**base, "kind": "time", "unit": "second", "n_values": len(values)}
    yield {**common, "metric": "time", "value": bench.mean(), "stdev": stdev}
    yield {**common, "metric": "time_median", "value": bench.median()}


def export_csv(source: str | os.PathLike[str], destination: str | os.PathLike[str] | None) -> int:
    """Write load(source) as CSV to ``destination`` (None: standard output); returns the number of rows."""
    frame = load(source)
    if destination is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        frame.to_csv(destination, index=False)
    return len(frame)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
