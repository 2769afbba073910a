"""The results file (docs/results-format.md): written by ``qbench run``, read by ``load()`` and everything else.

Its frame's parameter columns, their types and the units of derived figures come from the scenarios' declarations.

A pyperf BenchmarkSuite whose benchmarks carry the kvq metadata; ``load`` flattens it into one tidy row per
benchmark x metric. Writing is incremental and atomic, so an interrupted run leaves a valid file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyperf

from .errors import ResultsError
from .files import write_file, write_text
from .scenarios import BUILTIN, Scenario, derived_units, param_columns, text_params

#: The columns of ``load``'s frame: these, then one per parameter the scenarios declare as a column, then METRIC_ROW.
ID_COLUMNS: Final = ("benchmark", "scenario", "layout", "backend", "suite")
METRIC_COLUMNS: Final = ("metric", "kind", "value", "unit", "stdev", "n_values")


def columns(scenarios: Iterable[Scenario] | None = None) -> tuple[str, ...]:
    """The frame's columns for the registered scenarios (or the ones given): the parameter columns are derived from
    their declarations, in the order they first appear."""
    return (*ID_COLUMNS, *param_columns(scenarios), *METRIC_COLUMNS)


def numeric_params(scenarios: Iterable[Scenario] | None = None) -> tuple[str, ...]:
    """The parameter columns that hold numbers (every declared parameter but the text ones)."""
    text = text_params(scenarios)
    return tuple(c for c in param_columns(scenarios) if c not in text)


#: The built-in scenarios' columns: benchmark, scenario, layout, backend, suite, N, K, limit, offset, status, op,
#: concurrency, rtt_ms, metric, kind, value, unit, stdev, n_values. A plug-in's column parameters come after rtt_ms.
COLUMNS: Final = columns(BUILTIN)
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
        suite = self.suite
        assert suite is not None
        write_file(self.path, lambda tmp: suite.dump(os.fspath(tmp), replace=True))
        self.written = len(suite)


# -- reading ---------------------------------------------------------------------------------------------------


def load_suite(path: str | os.PathLike[str]) -> pyperf.BenchmarkSuite:
    """The results file as a pyperf suite, checked to be a kvq results file; ResultsError otherwise."""
    try:
        suite = pyperf.BenchmarkSuite.load(os.fspath(path))
    except FileNotFoundError:
        raise ResultsError(f"No results file at {os.fspath(path)!r}: run `qbench run -o FILE` first") from None
    except OSError as exc:
        raise ResultsError(f"Cannot read results file {os.fspath(path)!r}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as exc:
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
        problem = metadata_problem(bench.get_metadata())
        if problem is not None:
            raise ResultsError(
                f"{os.fspath(path)!r}: benchmark {bench.get_name()!r}: {problem} (see docs/results-format.md)"
            )
    return suite


# Types of the kvq metadata (docs/results-format.md): checked on load, so that a damaged file is refused by name
# instead of failing deep inside a report, or being judged as if the code had changed.
_TEXT_KEYS: Final = (
    "kvq_scenario", "kvq_layout", "kvq_suite", "kvq_backend", "kvq_backend_version", "kvq_git_commit", "kvq_version",
    "kvq_rtt_ms",
)  # fmt: skip
_REQUIRED_COUNTS: Final = ("total_calls", *COUNT_UNITS)
_NPLUS1_TEXT: Final = ("source", "fingerprint", "site")


def metadata_problem(meta: Mapping[str, Any]) -> str | None:
    """What is wrong with one benchmark's kvq metadata (naming the field), or None when every field has its type."""
    for key in _TEXT_KEYS:
        if key in meta and not isinstance(meta[key], str):
            return f"{key} must be a string: got {_show(meta[key])}"
    if meta.get("kvq_per", "call") not in ("call", "job"):
        return f"kvq_per must be 'call' or 'job': got {_show(meta['kvq_per'])}"
    decoded: dict[str, Any] = {}
    for key in _JSON_KEYS:
        if key in meta:
            if not isinstance(meta[key], str):
                return f"{key} must be a JSON text: got {_show(meta[key])}"
            try:
                decoded[key] = json.loads(meta[key])
            except (TypeError, ValueError, RecursionError):
                return f"{key} is not valid JSON: got {_show(meta[key])}"
    checks = (
        ("kvq_params", _params_problem),
        ("kvq_counts", _counts_problem),
        ("kvq_derived", _derived_problem),
        ("kvq_nplus1", _nplus1_problem),
    )
    return next((p for key, check in checks if key in decoded and (p := check(decoded[key])) is not None), None)


def _params_problem(params: Any) -> str | None:
    if not isinstance(params, dict):
        return f"kvq_params must be a JSON object of parameters: got {_show(params)}"
    text = text_params()
    for key in numeric_params():
        if key in params and not _is_number(params[key]):
            return f"kvq_params.{key} must be a finite number: got {_show(params[key])}"
    for key in text:
        if key in params and not isinstance(params[key], str):
            return f"kvq_params.{key} must be a string: got {_show(params[key])}"
    return None


def _counts_problem(counts: Any) -> str | None:
    if not isinstance(counts, dict):
        return f"kvq_counts must be a JSON object of counts: got {_show(counts)}"
    missing = [key for key in ("calls", *_REQUIRED_COUNTS) if key not in counts]
    if missing:
        return f"kvq_counts has no {', '.join(missing)}: got {_show(counts)}"
    if not isinstance(counts["calls"], dict):
        return f"kvq_counts.calls must be a JSON object of counts per operation: got {_show(counts['calls'])}"
    fields = [(f"calls.{op}", n) for op, n in counts["calls"].items()]
    fields += [(key, counts[key]) for key in (*_REQUIRED_COUNTS, *COUNT_UNITS) if key in counts]
    bad = next(((key, value) for key, value in fields if not _is_count(value)), None)
    return None if bad is None else f"kvq_counts.{bad[0]} must be a count (a finite number >= 0): got {_show(bad[1])}"


def _derived_problem(derived: Any) -> str | None:
    if not isinstance(derived, dict):
        return f"kvq_derived must be a JSON object of numbers: got {_show(derived)}"
    bad = next((key for key, value in derived.items() if not _is_number(value)), None)
    return None if bad is None else f"kvq_derived.{bad} must be a finite number: got {_show(derived[bad])}"


def _nplus1_problem(findings: Any) -> str | None:
    if not isinstance(findings, list):
        return f"kvq_nplus1 must be a JSON array of findings: got {_show(findings)}"
    for i, item in enumerate(findings):
        if not isinstance(item, dict):
            return f"kvq_nplus1[{i}] must be a JSON object: got {_show(item)}"
        for key in _NPLUS1_TEXT:
            if not isinstance(item.get(key), str):
                return f"kvq_nplus1[{i}].{key} must be a string: got {_show(item.get(key))}"
        if not _is_count(item.get("count")):
            return f"kvq_nplus1[{i}].count must be a count (a finite number >= 0): got {_show(item.get('count'))}"
    return None


def _is_number(value: Any) -> bool:
    """A finite float, or an int that fits in 64 bits (what pandas and the gate's arithmetic can hold)."""
    if isinstance(value, bool):
        return False
    return (isinstance(value, int) and -(2**63) <= value < 2**63) or (isinstance(value, float) and math.isfinite(value))


def _is_count(value: Any) -> bool:
    return _is_number(value) and value >= 0


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    """One tidy row per benchmark x metric (columns: ``columns()``); ResultsError for a bad or foreign file."""
    suite = load_suite(path)
    params, units = param_columns(), derived_units()
    rows = [row for bench in suite for row in _rows(bench, params, units)]
    frame = pd.DataFrame(rows, columns=list(columns()))
    for column in (*numeric_params(), "value", "stdev", "n_values"):
        frame[column] = pd.to_numeric(frame[column])
    return frame


def _rows(bench: pyperf.Benchmark, params: Sequence[str], units: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    meta = benchmark_info(bench)
    base = _base_row(bench.get_name(), meta, params)
    per_job = meta.get("kvq_per") == "job"
    for metric, value, unit in _count_metrics(meta["kvq_counts"]):
        yield {**base, "metric": metric, "kind": "count", "value": value, "unit": f"{unit}/job" if per_job else unit}
    yield from _time_rows(bench, base)
    yield from _instruction_rows(bench.get_name(), meta.get("kvq_instructions"), base, per_job)
    for metric, value in (meta.get("kvq_derived") or {}).items():
        yield {**base, "metric": metric, "kind": "derived", "value": value, "unit": units.get(metric, "")}


def _base_row(name: str, meta: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    params = meta.get("kvq_params") or {}
    row: dict[str, Any] = {
        "benchmark": name,
        "scenario": meta["kvq_scenario"],
        "layout": meta["kvq_layout"],
        "backend": meta.get("kvq_backend"),
        "suite": meta.get("kvq_suite"),
    }
    row.update({column: params.get(column) for column in columns})
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
    frame = _integers_as_integers(load(source))
    if destination is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        write_text(Path(destination), frame.to_csv(index=False))
    return len(frame)


def _integers_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """For CSV: exact counts and whole-number parameters as ``1001``, not ``1001.0`` (load keeps floats for pandas)."""
    out = frame.copy()
    counts = out["kind"] == "count"
    values = [
        int(v) if is_count and math.isfinite(v) and float(v).is_integer() else v
        for v, is_count in zip(out["value"], counts, strict=True)
    ]
    out["value"] = pd.Series(values, index=out.index, dtype=object)  # a float column would turn 1001 back into 1001.0
    for column in numeric_params():
        given = out[column].dropna()
        if len(given) and (given % 1 == 0).all():
            out[column] = out[column].astype("Int64")
    return out
