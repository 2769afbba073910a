"""The gate's tiers, each a function from the two results to findings, and the one-line causes a failure starts with.

Tiers: coverage (every baseline benchmark present, same suite and backend), N+1 findings, exact counts, complexity
classes, CPU instructions, wall time. gate.py applies gate.toml's settings and prints the verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.gate.compare import Change
from bench.report.complexity import classify, slice_keys
from bench.results import benchmark_info, load_suite

CLASS_METRICS = ("calls", "round_trips", "entries_read", "bytes_read", "bytes_written")
#: How many benchmarks a cause line names before "and N more".
NAMED = 3


@dataclass(frozen=True)
class Finding:
    """One reason to fail (or, for report-only tiers, to look): one row of the gate's table."""

    benchmark: str
    metric: str
    base: object
    new: object
    why: str
    tier: str = "counts"
    #: The N+1's code site, the ratio and its interval: what the cause line quotes.
    site: str = ""
    ratio: float | None = None
    interval: tuple[float, float] | None = None


@dataclass(frozen=True)
class FileInfo:
    """What the gate reads from a results file besides its tidy rows."""

    nplus1: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    #: The environment the instruction figures were counted in (bench/instructions.py), None if none were.
    instructions_env: dict[str, str] | None = None


def file_info(path: Path) -> FileInfo:
    nplus1: dict[str, list[dict[str, Any]]] = {}
    env: dict[str, str] | None = None
    for bench in load_suite(path):
        meta = benchmark_info(bench)
        nplus1[bench.get_name()] = list(meta.get("kvq_nplus1") or [])
        if "kvq_instructions_env" in meta:
            raw = meta["kvq_instructions_env"]
            env = dict(raw if isinstance(raw, dict) else json.loads(raw))
    return FileInfo(nplus1, env)


# -- coverage ----------------------------------------------------------------------------------------------------


def coverage_findings(base: pd.DataFrame, new: pd.DataFrame, allowed: Callable[[str], bool]) -> list[Finding]:
    """Baseline benchmarks missing from the results (unless allowed), and results of another suite or backend."""
    out = []
    for column in ("suite", "backend"):
        b, n = sorted(set(base[column].dropna())), sorted(set(new[column].dropna()))
        if b != n:
            why = f"results of another {column}: baseline {', '.join(b) or '?'}, results {', '.join(n) or '?'}"
            out.append(Finding("(all)", column, ", ".join(b), ", ".join(n), why, tier="foreign"))
    missing = sorted(set(base["benchmark"]) - set(new["benchmark"]))
    out += [
        Finding(name, "benchmark", "present", "missing", "baseline benchmark missing from the results", tier="missing")
        for name in missing
        if not allowed(name)
    ]
    return out


# -- N+1 ---------------------------------------------------------------------------------------------------------


def nplus1_findings(base: FileInfo, new: FileInfo, ignored: Callable[[str], bool]) -> list[Finding]:
    """N+1 patterns the results have and the baseline does not, or that repeat more often per call."""
    out = []
    for name, found in new.nplus1.items():
        if name not in base.nplus1 or ignored(name):
            continue
        before = {(f["source"], f["fingerprint"]): int(f["count"]) for f in base.nplus1[name]}
        for f in found:
            was = before.get((f["source"], f["fingerprint"]))
            if was is not None and int(f["count"]) <= was:
                continue
            why = "new N+1" if was is None else f"N+1 grew by {int(f['count']) - was} per call"
            out.append(
                Finding(
                    name,
                    f"N+1 {f['fingerprint']}",
                    was if was is not None else "none",
                    int(f["count"]),
                    f"{why} at {f['site']}",
                    tier="nplus1",
                    site=str(f["site"]),
                )
            )
    return out


# -- exact counts and complexity classes -------------------------------------------------------------------------


def count_findings(found: Sequence[Change], ignored: Callable[[str], bool]) -> list[Finding]:
    rose = [c for c in found if c.kind == "count" and c.new > c.base and not ignored(c.benchmark)]
    return [
        Finding(c.benchmark, c.metric, _num(c.base), _num(c.new), f"exact count rose by {c.new - c.base:g}")
        for c in rose
    ]


def class_findings(base: pd.DataFrame, new: pd.DataFrame) -> list[Finding]:
    """Slices (every parameter but N) whose class in N got worse for some count metric."""
    keys = [*slice_keys(), "metric"]
    joined = classify(base, CLASS_METRICS).merge(classify(new, CLASS_METRICS), on=keys, suffixes=("_b", "_n"))
    worse = joined[joined["rank_n"] > joined["rank_b"]]
    return [
        Finding(
            _slice_name(row),
            str(row["metric"]),
            row["label_b"],
            row["label_n"],
            "complexity class in N got worse",
            tier="complexity",
        )
        for _, row in worse.iterrows()
    ]


def _slice_name(row: pd.Series) -> str:
    params = ",".join(f"{k}={_num(row[k])}" for k in slice_keys()[2:] if k in row and pd.notna(row[k]))
    return f"{row['scenario']}/{row['layout']}/N=*" + (f",{params}" if params else "")


def _num(value: Any) -> object:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# -- CPU instructions --------------------------------------------------------------------------------------------


def instruction_findings(found: Sequence[Change], threshold: Callable[[str], float]) -> list[Finding]:
    """Operations that need more than their threshold more instructions than in the baseline."""
    out = []
    for c in found:
        if c.kind != "instructions" or c.ratio is None:
            continue
        limit = threshold(c.benchmark)
        if c.ratio - 1 > limit:
            why = f"{c.ratio - 1:+.2%} instructions (> {limit:.1%})"
            out.append(
                Finding(c.benchmark, "instructions", _num(c.base), _num(c.new), why, tier="instructions", ratio=c.ratio)
            )
    return out


def instruction_comparability(base: FileInfo, new: FileInfo) -> str | None:
    """Why the two files' instruction figures cannot be compared, or None when they can (or neither has any)."""
    if base.instructions_env is None and new.instructions_env is None:
        return None
    if base.instructions_env is None or new.instructions_env is None:
        which = "baseline" if base.instructions_env is None else "results"
        return f"the {which} has no instruction figures (was valgrind missing?)"
    differ = [
        f"{key} {base.instructions_env.get(key, '?')!r} -> {new.instructions_env.get(key, '?')!r}"
        for key in sorted(set(base.instructions_env) | set(new.instructions_env))
        if base.instructions_env.get(key) != new.instructions_env.get(key)
    ]
    return "; ".join(differ) if differ else None


# -- wall time between two files (Welch) -------------------------------------------------------------------------


def welch_time_findings(found: Sequence[Change], threshold: Callable[[str], float]) -> list[Finding]:
    out = []
    for c in found:
        if c.metric != "time" or c.ratio is None or c.test is None or not c.test.significant:
            continue
        limit = threshold(c.benchmark)
        if c.ratio - 1 > limit:
            why = f"{c.ratio - 1:+.1%} slower (> {limit:.0%}), significant (Welch p={c.test.p:.2g})"
            out.append(Finding(c.benchmark, "time", *c.values_text(), why, tier="time", ratio=c.ratio))
    return out


# -- causes: one line each ---------------------------------------------------------------------------------------


def causes(findings: Iterable[Finding]) -> list[str]:
    """One line per cause, in the order a reader should look at them."""
    by_tier: dict[str, list[Finding]] = {}
    for f in findings:
        by_tier.setdefault(f.tier, []).append(f)
    lines: list[str] = []
    lines += [f"results of another {f.metric}: baseline {f.base}, results {f.new}" for f in by_tier.get("foreign", [])]
    lines += _nplus1_causes(by_tier.get("nplus1", []))
    if "counts" in by_tier:
        lines.append(_count_cause(by_tier["counts"]))
    if "complexity" in by_tier:
        lines.append(_class_cause(by_tier["complexity"]))
    lines += [f.why for f in by_tier.get("incomparable", [])]
    if "instructions" in by_tier:
        lines.append(_ratio_cause("CPU instructions per operation rose", by_tier["instructions"]))
    for clock in dict.fromkeys(f.metric for f in by_tier.get("time", [])):
        lines.append(_ratio_cause(f"{'wall time' if clock == 'time' else clock} rose", _of(by_tier["time"], clock)))
    if "missing" in by_tier:
        lines.append(_missing_cause(by_tier["missing"]))
    return lines


def _nplus1_causes(findings: list[Finding]) -> list[str]:
    groups: dict[tuple[str, str, str], list[Finding]] = {}
    for f in findings:
        kind = "new" if f.base == "none" else "grown"
        groups.setdefault((kind, f.metric.removeprefix("N+1 "), f.site), []).append(f)
    lines = []
    for (kind, fingerprint, site), items in sorted(groups.items(), key=lambda g: -len(g[1])):
        repeats = sorted({int(str(f.new)) for f in items})
        per_call = f"{repeats[0]:,}" if len(repeats) == 1 else f"{repeats[0]:,} to {repeats[-1]:,}"
        lines.append(f"{kind} N+1 `{fingerprint}` at {site}: {per_call} repeats per call, in {_names(items)}")
    return lines


def _count_cause(findings: list[Finding]) -> str:
    """Which benchmarks' counts rose, the largest rise first (each benchmark once, by its largest metric)."""
    worst: dict[str, Finding] = {}
    for f in findings:
        if f.benchmark not in worst or _rise(f) > _rise(worst[f.benchmark]):
            worst[f.benchmark] = f
    ranked = sorted(worst.values(), key=_rise, reverse=True)
    named = ", ".join(f"`{f.benchmark}` {f.metric} {f.base:,} -> {f.new:,}" for f in ranked[:NAMED])
    more = f", and {len(ranked) - NAMED} more" if len(ranked) > NAMED else ""
    return f"exact counts rose in {len(ranked)} benchmarks, largest first: {named}{more}"


def _rise(f: Finding) -> tuple[float, float]:
    """How much a count rose: by ratio where it was not zero (calls 1 -> 51 says more than calls.get 0 -> 50)."""
    base, new = float(str(f.base)), float(str(f.new))
    return (0.0, new) if base == 0 else (new / base, new)


def _class_cause(findings: list[Finding]) -> str:
    named = ", ".join(f"`{f.benchmark}` {f.metric} {f.base} -> {f.new}" for f in findings[:NAMED])
    more = f", and {len(findings) - NAMED} more" if len(findings) > NAMED else ""
    return f"complexity class in N got worse in {len(findings)} slices: {named}{more}"


def _of(findings: list[Finding], metric: str) -> list[Finding]:
    return [f for f in findings if f.metric == metric]


def _ratio_cause(what: str, findings: list[Finding]) -> str:
    ranked = sorted(findings, key=lambda f: f.ratio or 0.0, reverse=True)
    named = ", ".join(f"`{f.benchmark}` {_ratio_text(f)}" for f in ranked[:NAMED])
    more = f", and {len(ranked) - NAMED} more" if len(ranked) > NAMED else ""
    logs = [math.log(f.ratio) for f in ranked if f.ratio]
    mean = f" (geometric mean x{math.exp(sum(logs) / len(logs)):.3f})" if len(logs) > 1 else ""
    return f"{what} in {len(ranked)} benchmarks{mean}: {named}{more}"


def _ratio_text(f: Finding) -> str:
    text = f"x{f.ratio:.3f}" if f.ratio is not None else f.why
    if f.interval is not None:
        text += f" [{f.interval[0]:.3f}, {f.interval[1]:.3f}]"
    return text


def _missing_cause(findings: list[Finding]) -> str:
    return (
        f"{len(findings)} baseline benchmarks missing from the results: {_names(findings)} "
        "(run the baseline's suite, or allow named omissions with --allow-missing PATTERN)"
    )


def _names(findings: Sequence[Finding]) -> str:
    names = list(dict.fromkeys(f.benchmark for f in findings))
    shown = ", ".join(f"`{n}`" for n in names[:NAMED])
    return shown + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
