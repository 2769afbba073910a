"""`qbench gate`: fail a change that makes an access pattern cost more; `qbench baseline update` records the baseline.

Tiers (tiers.py), all hard rules unless gate.toml says otherwise: every baseline benchmark present
in results of the same suite and backend, no new or grown N+1, no exact count up, no complexity class in N worse,
CPU instructions within a threshold, and wall time (report-only between two files; `--against REF` judges it on
interleaved runs, against.py). A failing verdict starts with one line per cause. Exit 0 pass, 1 fail, 2 unusable.
"""

from __future__ import annotations

import fnmatch
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import BenchError, ResultsError
from bench.files import append_step_summary, copy_file
from bench.gate.compare import changes
from bench.gate.defaults import DEFAULT_BASELINE, DEFAULT_CONFIG, TIME_MODES
from bench.gate.tiers import (
    FileInfo,
    Finding,
    causes,
    class_findings,
    count_findings,
    coverage_findings,
    file_info,
    instruction_comparability,
    instruction_findings,
    nplus1_findings,
    welch_time_findings,
)
from bench.report.document import cell, markdown_table
from bench.results import load

__all__ = ["Finding", "GateConfig", "GateError", "Verdict", "evaluate", "gate", "load_config", "update_baseline"]


class GateError(BenchError):
    """The gate cannot judge: a missing or foreign file, a bad config, nothing in common."""


def _first_match(patterns: dict[str, float], benchmark: str, default: float) -> float:
    return next((t for pat, t in patterns.items() if fnmatch.fnmatchcase(benchmark, pat)), default)


@dataclass(frozen=True)
class GateConfig:
    """Settings from a TOML file (bench/gate/gate.toml documents each key)."""

    times: str = "report-only"
    threshold: float = 0.10
    thresholds: dict[str, float] = field(default_factory=dict)
    ignore_counts: tuple[str, ...] = ()
    instructions_threshold: float = 0.02
    instructions_thresholds: dict[str, float] = field(default_factory=dict)
    #: "fail" or "report-only": what instruction figures that cannot be compared do to the verdict.
    incomparable: str = "fail"
    allow_missing: tuple[str, ...] = ()
    #: --against REF: how wall time is judged on interleaved runs (bench/against.py).
    against_times: str = "fail"
    against_threshold: float = 0.05
    against_rounds: int = 8
    against_max_rounds: int = 24
    against_confidence: float = 0.95

    def threshold_for(self, benchmark: str) -> float:
        """The first per-benchmark pattern that matches, else the default."""
        return _first_match(self.thresholds, benchmark, self.threshold)

    def instructions_threshold_for(self, benchmark: str) -> float:
        return _first_match(self.instructions_thresholds, benchmark, self.instructions_threshold)

    def counts_ignored(self, benchmark: str) -> bool:
        return any(fnmatch.fnmatchcase(benchmark, pat) for pat in self.ignore_counts)

    def missing_allowed(self, benchmark: str) -> bool:
        return any(fnmatch.fnmatchcase(benchmark, pat) for pat in self.allow_missing)


def load_config(path: Path) -> GateConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise GateError(f"cannot read gate config {path}: {exc}") from exc
    times, counts, instr = _table(raw, "times", path), _table(raw, "counts", path), _table(raw, "instructions", path)
    against, coverage = _table(raw, "against", path), _table(raw, "coverage", path)
    default = GateConfig()
    config = GateConfig(
        times=times.get("mode", default.times),
        threshold=times.get("threshold", default.threshold),
        thresholds=_table(times, "thresholds", path, "times."),
        ignore_counts=_patterns(counts, "ignore", path, "counts."),
        instructions_threshold=instr.get("threshold", default.instructions_threshold),
        instructions_thresholds=_table(instr, "thresholds", path, "instructions."),
        incomparable=instr.get("incomparable", default.incomparable),
        allow_missing=_patterns(coverage, "allow_missing", path, "coverage."),
        against_times=against.get("mode", default.against_times),
        against_threshold=against.get("threshold", default.against_threshold),
        against_rounds=against.get("rounds", default.against_rounds),
        against_max_rounds=against.get("max_rounds", default.against_max_rounds),
        against_confidence=against.get("confidence", default.against_confidence),
    )
    _check_config(path, config)
    return config


def _table(raw: dict[str, Any], key: str, path: Path, where: str = "") -> dict[str, Any]:
    """A [table] of the config (empty when absent); GateError naming it when it is something else."""
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise GateError(f"{path}: {where}{key} must be a table ([{where}{key}]): got {value!r}")
    return value


def _patterns(raw: dict[str, Any], key: str, path: Path, where: str) -> tuple[str, ...]:
    """A list of shell-style name patterns; a bare string would be read as one pattern per character."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise GateError(f"{path}: {where}{key} must be a list of name patterns (strings): got {value!r}")
    return tuple(value)


def _check_config(path: Path, config: GateConfig) -> None:
    for key, mode in (("times.mode", config.times), ("instructions.incomparable", config.incomparable),
                      ("against.mode", config.against_times)):  # fmt: skip
        if mode not in TIME_MODES:
            raise GateError(f"{path}: {key} must be one of {', '.join(TIME_MODES)}: got {mode!r}")
    fractions = {
        **{f"times threshold {k!r}": v for k, v in {"threshold": config.threshold, **config.thresholds}.items()},
        **{f"instructions threshold {k!r}": v
           for k, v in {"threshold": config.instructions_threshold, **config.instructions_thresholds}.items()},
        "against.threshold": config.against_threshold,
    }  # fmt: skip
    for name, value in fractions.items():
        if not _is_number(value) or not 0 <= value < 100:
            raise GateError(f"{path}: {name} must be a fraction such as 0.10 (>= 0): got {value!r}")
    if (
        not isinstance(config.against_rounds, int)
        or isinstance(config.against_rounds, bool)
        or not 3 <= config.against_rounds <= 1000
    ):
        raise GateError(f"{path}: against.rounds must be a whole number in 3..1000: got {config.against_rounds!r}")
    if not isinstance(config.against_max_rounds, int) or not config.against_rounds <= config.against_max_rounds <= 1000:
        raise GateError(
            f"{path}: against.max_rounds must be a whole number in rounds..1000: got {config.against_max_rounds!r}"
        )
    if not _is_number(config.against_confidence) or not 0.5 <= config.against_confidence < 1:
        raise GateError(f"{path}: against.confidence must be in [0.5, 1), e.g. 0.95: got {config.against_confidence!r}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass
class Verdict:
    compared: int
    failures: list[Finding] = field(default_factory=list)
    reported: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Wall time judged on interleaved rounds (--against) rather than between two files.
    paired: bool = False

    @property
    def status(self) -> int:
        return 1 if self.failures else 0

    @property
    def causes(self) -> list[str]:
        return causes(self.failures)


def evaluate(
    base: pd.DataFrame,
    new: pd.DataFrame,
    config: GateConfig,
    *,
    base_info: FileInfo | None = None,
    new_info: FileInfo | None = None,
    paired_times: list[Finding] | None = None,
) -> Verdict:
    """Judge `new` against `base`; raises GateError when they share no benchmark.

    ``paired_times``: wall-time findings of an interleaved run (``--against``), judged instead of the two files' times.
    """
    common = set(base["benchmark"]) & set(new["benchmark"])
    if not common:
        raise GateError("the baseline and the results share no benchmark: wrong suite or a foreign file?")
    base_info, new_info = base_info or FileInfo(), new_info or FileInfo()
    found = changes(base, new)
    verdict = Verdict(compared=len(common), paired=paired_times is not None)
    verdict.failures += coverage_findings(base, new, config.missing_allowed)
    verdict.failures += nplus1_findings(base_info, new_info, config.counts_ignored)
    verdict.failures += count_findings(found, config.counts_ignored) + class_findings(base, new)
    _judge_instructions(verdict, found, config, base_info, new_info)
    if paired_times is None:
        slow = welch_time_findings(found, config.threshold_for)
        (verdict.failures if config.times == "fail" else verdict.reported).extend(slow)
    else:
        (verdict.failures if config.against_times == "fail" else verdict.reported).extend(paired_times)
    extra = sorted(set(new["benchmark"]) - set(base["benchmark"]))
    if extra:
        verdict.notes.append(f"{len(extra)} benchmarks are not in the baseline (not gated), e.g. `{extra[0]}`.")
    return verdict


def _judge_instructions(
    verdict: Verdict, found: list[Any], config: GateConfig, base_info: FileInfo, new_info: FileInfo
) -> None:
    why = instruction_comparability(base_info, new_info)
    if why is None:
        if base_info.instructions_env is None:
            verdict.notes.append("CPU instructions: not measured in either file (tier skipped).")
        verdict.failures += instruction_findings(found, config.instructions_threshold_for)
        return
    line = f"CPU instructions not comparable: {why}; re-record the baseline here, or gate with --against REF"
    finding = Finding("(all)", "instructions", "-", "-", line, tier="incomparable")
    (verdict.failures if config.incomparable == "fail" else verdict.reported).append(finding)


def to_markdown(verdict: Verdict, config: GateConfig, *, baseline: Path | str, results: Path | str) -> str:
    reasons = verdict.causes
    state = f"FAILED ({len(reasons)} {'cause' if len(reasons) == 1 else 'causes'})" if verdict.failures else "passed"
    parts = [f"## qbench gate: {state}"]
    if reasons:
        parts.append("\n".join(f"- {line}" for line in reasons))
    parts.append(
        f"`{results}` against baseline `{baseline}`: {verdict.compared} benchmarks compared. Rules: {_rules(config, verdict.paired)}."
    )
    headers = ["benchmark", "metric", "base -> new", "why"]
    for title, items in (("Failures", verdict.failures), ("Reported only (not failing)", verdict.reported)):
        if items:
            rows = [[f"`{f.benchmark}`", f.metric, f"{cell(f.base)} -> {cell(f.new)}", f.why] for f in items]
            parts += [f"### {title}", markdown_table(headers, rows)]
    parts += [f"- {note}" for note in verdict.notes]
    return "\n\n".join(parts) + "\n"


def _rules(config: GateConfig, paired: bool) -> str:
    if paired:
        times = (
            f"interleaved with an A/A control, fail above +{config.against_threshold:.0%} and outside the A/A noise"
            if config.against_times == "fail"
            else "interleaved with an A/A control, report-only"
        )
    elif config.times == "report-only":
        times = "between two files, report-only"
    else:
        times = f"between two files, fail when significant (Welch p < 0.05) and more than {config.threshold:.0%} slower"
    return (
        "coverage, N+1, exact counts and complexity classes are hard; CPU instructions fail above "
        f"+{config.instructions_threshold:.0%}; time: {times}"
    )


def gate(
    *,
    baseline: Path,
    results: Path | None,
    config: Path | None = None,
    times: str | None = None,
    allow_missing: tuple[str, ...] = (),
    against: Callable[[GateConfig], tuple[Verdict, str, str]] | None = None,
) -> int:
    """Print the verdict (and append it to $GITHUB_STEP_SUMMARY); return 0 pass, 1 fail, 2 unusable input.

    ``against``: judges instead of two files, given the settings; returns the verdict and the two sides' labels
    (``gate --against REF`` passes ``against.judge_against`` bound to its options: both trees are run and compared).
    """
    try:
        settings = load_config(config or DEFAULT_CONFIG)
        if times is not None:
            settings = replace(settings, times=times, against_times=times)
        settings = replace(settings, allow_missing=settings.allow_missing + tuple(allow_missing))
        if against is not None:
            verdict, baseline_label, results_label = against(settings)
        else:
            if results is None:
                raise GateError("give a results file to judge, or --against REF")
            verdict = judge_files(baseline, results, settings)
            baseline_label, results_label = str(baseline), results.name
    except (GateError, ResultsError) as exc:
        print(f"qbench gate: {exc}", file=sys.stderr)
        return 2
    text = to_markdown(verdict, settings, baseline=baseline_label, results=results_label)
    sys.stdout.write(text)
    append_step_summary(text, command="gate")
    return verdict.status


def judge_files(baseline: Path, results: Path, settings: GateConfig) -> Verdict:
    """The verdict on two results files."""
    base, new = _load(baseline, "baseline"), _load(results, "results file")
    return evaluate(base, new, settings, base_info=file_info(baseline), new_info=file_info(results))


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
