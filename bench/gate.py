"""`qbench gate`: fail a change that makes an access pattern cost more; `qbench baseline update` records the baseline.

Hard rules: no exact count may rise, no complexity class in N may get worse. Times fail only when a slowdown is both
significant (Welch's t-test, p < 0.05) and above a threshold, or are reported only. Exit 0 pass, 1 fail, 2 unusable.
"""

from __future__ import annotations

import fnmatch
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.compare import Change, changes
from bench.complexity import SLICE_KEYS, classify
from bench.document import cell, markdown_table
from bench.errors import BenchError, ResultsError
from bench.files import append_step_summary, copy_file
from bench.report_cli import DEFAULT_BASELINE, TIME_MODES
from bench.results import load

DEFAULT_CONFIG = Path(__file__).with_name("gate.toml")
CLASS_METRICS = ("calls", "round_trips", "entries_read", "bytes_read", "bytes_written")


class GateError(BenchError):
    """The gate cannot judge: a missing or foreign file, a bad config, nothing in common."""


@dataclass(frozen=True)
class GateConfig:
    """Settings from a TOML file (bench/gate.toml documents each key)."""

    times: str = "fail"
    threshold: float = 0.10
    thresholds: dict[str, float] = field(default_factory=dict)
    ignore_counts: tuple[str, ...] = ()

    def threshold_for(self, benchmark: str) -> float:
        """The first per-benchmark pattern that matches, else the default."""
        return next((t for pat, t in self.thresholds.items() if fnmatch.fnmatchcase(benchmark, pat)), self.threshold)

    def counts_ignored(self, benchmark: str) -> bool:
        return any(fnmatch.fnmatchcase(benchmark, pat) for pat in self.ignore_counts)


def load_config(path: Path) -> GateConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"cannot read gate config {path}: {exc}") from exc
    times, counts = raw.get("times", {}), raw.get("counts", {})
    config = GateConfig(
        times=times.get("mode", "fail"),
        threshold=times.get("threshold", 0.10),
        thresholds=dict(times.get("thresholds", {})),
        ignore_counts=tuple(counts.get("ignore", ())),
    )
    if config.times not in TIME_MODES:
        raise GateError(f"{path}: times.mode must be one of {', '.join(TIME_MODES)}: got {config.times!r}")
    for name, value in {"threshold": config.threshold, **config.thresholds}.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 100:
            raise GateError(f"{path}: time threshold {name!r} must be a fraction such as 0.10 (>= 0): got {value!r}")
    return config


@dataclass(frozen=True)
class Finding:
    """One reason to fail (or, for report-only times, to look)."""

    benchmark: str
    metric: str
    base: object
    new: object
    why: str


@dataclass
class Verdict:
    compared: int
    failures: list[Finding] = field(default_factory=list)
    reported: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> int:
        return 1 if self.failures else 0


def count_findings(found: list[Change], config: GateConfig) -> list[Finding]:
    rose = [c for c in found if c.kind == "count" and c.new > c.base and not config.counts_ignored(c.benchmark)]
    return [
        Finding(c.benchmark, c.metric, _num(c.base), _num(c.new), f"exact count rose by {c.new - c.base:g}")
        for c in rose
    ]


def class_findings(base: pd.DataFrame, new: pd.DataFrame) -> list[Finding]:
    """Slices (every parameter but N) whose class in N got worse for some count metric."""
    keys = [*SLICE_KEYS, "metric"]
    joined = classify(base, CLASS_METRICS).merge(classify(new, CLASS_METRICS), on=keys, suffixes=("_b", "_n"))
    worse = joined[joined["rank_n"] > joined["rank_b"]]
    return [
        Finding(_slice_name(row), str(row["metric"]), row["label_b"], row["label_n"], "complexity class in N got worse")
        for _, row in worse.iterrows()
    ]


def _slice_name(row: pd.Series) -> str:
    params = ",".join(f"{k}={_num(row[k])}" for k in SLICE_KEYS[2:] if pd.notna(row[k]))
    return f"{row['scenario']}/{row['layout']}/N=*" + (f",{params}" if params else "")


def _num(value: Any) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def time_findings(found: list[Change], config: GateConfig) -> list[Finding]:
    out = []
    for c in found:
        if c.metric != "time" or c.ratio is None or c.test is None or not c.test.significant:
            continue
        limit = config.threshold_for(c.benchmark)
        if c.ratio - 1 > limit:
            why = f"{c.ratio - 1:+.1%} slower (> {limit:.0%}), significant (Welch p={c.test.p:.2g})"
            out.append(Finding(c.benchmark, "time", *c.values_text(), why))
    return out


def evaluate(base: pd.DataFrame, new: pd.DataFrame, config: GateConfig) -> Verdict:
    """Judge `new` against `base`; raises GateError when they share no benchmark."""
    common = set(base["benchmark"]) & set(new["benchmark"])
    if not common:
        raise GateError("the baseline and the results share no benchmark: wrong suite or a foreign file?")
    found = changes(base, new)
    verdict = Verdict(compared=len(common))
    verdict.failures += count_findings(found, config) + class_findings(base, new)
    slow = time_findings(found, config)
    (verdict.failures if config.times == "fail" else verdict.reported).extend(slow)
    missing = sorted(set(base["benchmark"]) - common)
    if missing:
        verdict.notes.append(f"{len(missing)} baseline benchmarks are missing from the results, e.g. `{missing[0]}`.")
    b_back, n_back = set(base["backend"].dropna()), set(new["backend"].dropna())
    if b_back != n_back:
        verdict.notes.append(
            f"Backends differ (baseline {sorted(b_back)}, results {sorted(n_back)}): times compare poorly."
        )
    return verdict


def to_markdown(verdict: Verdict, config: GateConfig, *, baseline: Path, results: Path) -> str:
    state = f"FAILED ({len(verdict.failures)} failures)" if verdict.failures else "passed"
    times = (
        "report-only"
        if config.times == "report-only"
        else f"fail when significant (Welch p < 0.05) and more than {config.threshold:.0%} slower"
    )
    parts = [
        f"## qbench gate: {state}",
        f"`{results.name}` against baseline `{baseline}`: {verdict.compared} benchmarks compared. "
        f"Exact counts and complexity classes are hard rules; times: {times}.",
    ]
    headers = ["benchmark", "metric", "base -> new", "why"]
    for title, items in (("Failures", verdict.failures), ("Significant slowdowns (report-only)", verdict.reported)):
        if items:
            rows = [[f"`{f.benchmark}`", f.metric, f"{cell(f.base)} -> {cell(f.new)}", f.why] for f in items]
            parts += [f"### {title}", markdown_table(headers, rows)]
    parts += [f"- {note}" for note in verdict.notes]
    return "\n\n".join(parts) + "\n"


def gate(*, baseline: Path, results: Path, config: Path | None = None, times: str | None = None) -> int:
    """Print the verdict (and append it to $GITHUB_STEP_SUMMARY); return 0 pass, 1 fail, 2 unusable input."""
    try:
        settings = load_config(config or DEFAULT_CONFIG)
        if times is not None:
            settings = GateConfig(times, settings.threshold, settings.thresholds, settings.ignore_counts)
        verdict = evaluate(_load(baseline, "baseline"), _load(results, "results file"), settings)
    except (GateError, ResultsError) as exc:
        print(f"qbench gate: {exc}", file=sys.stderr)
        return 2
    text = to_markdown(verdict, settings, baseline=baseline, results=results)
    sys.stdout.write(text)
    append_step_summary(text, command="gate")
    return verdict.status


def _load(path: Path, what: str = "results file") -> pd.DataFrame:
    if not path.is_file():
        raise GateError(
            f"{what} not found: {path}" + (": run `qbench baseline update RESULTS`" if what == "baseline" else "")
        )
    return load(path)


def update_baseline(*, results: Path, out: Path = DEFAULT_BASELINE) -> Path:
    """Copy a results file to the baseline path after checking it is a kvq results file."""
    _load(results)
    return copy_file(results, out)
