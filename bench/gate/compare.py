"""`qbench compare base.json new.json`: what changed between two results files, as markdown.

Counts are exact, so their change is exact. Times change by a ratio whose significance is Welch's t-test on the
two benchmarks' summary statistics (bench/significance.py); the summary is the geometric mean of the ratios.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import ResultsError
from bench.gate.significance import Sample, TTest, welch
from bench.report.document import fmt_time, markdown_table
from bench.results import load

KEY = ["benchmark", "metric"]
#: Derived figures computed from a measured time (worker_throughput's N / mean time): as noisy as the time itself.
FROM_TIME = frozenset({"jobs_per_s"})


@dataclass(frozen=True)
class Change:
    """One metric of one benchmark in both files."""

    benchmark: str
    metric: str
    kind: str
    base: float
    new: float
    test: TTest | None = None

    @property
    def ratio(self) -> float | None:
        """new / base; None when base is 0 (a ratio from zero means nothing)."""
        return None if self.base == 0 else self.new / self.base

    def change_text(self) -> str:
        if self.kind == "count":
            delta = self.new - self.base
            return (
                "=" if delta == 0 else f"{delta:+g}" + (f" ({self.ratio - 1:+.1%})" if self.ratio is not None else "")
            )
        return "–" if self.ratio is None else f"{self.ratio - 1:+.1%}"

    def values_text(self) -> tuple[object, object]:
        return (fmt_time(self.base), fmt_time(self.new)) if self.kind == "time" else (self.base, self.new)

    def significance_text(self) -> str:
        if self.test is None:
            if self.kind == "time":
                return "n/a (fewer than 2 values)"
            return "not exact: derived from the time (see its row)" if self.metric in FROM_TIME else "exact"
        word = "significant" if self.test.significant else "not significant"
        return f"{word} (p={self.test.p:.2g})"


def changes(base: pd.DataFrame, new: pd.DataFrame) -> list[Change]:
    """Every count, derived figure and mean time present in both frames, matched by benchmark name and metric."""
    keep = ["benchmark", "metric", "kind", "value", "stdev", "n_values"]
    b = base[base["metric"] != "time_median"][keep]
    merged = b.merge(new[keep], on=KEY, suffixes=("_b", "_n"))
    out = []
    for row in merged.itertuples(index=False):
        test = None
        if row.kind_b == "time":
            test = welch(
                Sample(_num(row.value_b), _num(row.stdev_b), int(_num(row.n_values_b))),
                Sample(_num(row.value_n), _num(row.stdev_n), int(_num(row.n_values_n))),
            )
        value_b, value_n = _num(row.value_b), _num(row.value_n)
        out.append(Change(str(row.benchmark), str(row.metric), str(row.kind_b), value_b, value_n, test))
    return out


def _num(value: Any) -> float:
    return 0.0 if value is None or pd.isna(value) else float(value)


def geometric_mean(ratios: Iterable[float | None]) -> float | None:
    logs = [math.log(r) for r in ratios if r is not None and r > 0]
    return math.exp(sum(logs) / len(logs)) if logs else None


def summary(found: Sequence[Change]) -> list[list[object]]:
    rows: list[list[object]] = []
    kinds = (
        ("time", "mean time"),
        ("count", "exact counts"),
        ("instructions", "CPU instructions"),
        ("derived", "derived figures"),
    )
    for kind, label in kinds:
        mine = [c for c in found if c.kind == kind]
        if not mine:
            continue
        gm = geometric_mean(c.ratio for c in mine)
        rose, fell = sum(c.new > c.base for c in mine), sum(c.new < c.base for c in mine)
        extra = (
            f", {sum(c.test is not None and c.test.significant for c in mine)} significant" if kind == "time" else ""
        )
        rows.append([label, len(mine), "–" if gm is None else f"{gm:.3f}×", f"{rose} up, {fell} down{extra}"])
    return rows


def to_markdown(found: Sequence[Change], *, base_name: str, new_name: str, all_counts: bool = False) -> str:
    parts = [
        f"## qbench compare: `{base_name}` -> `{new_name}`",
        markdown_table(["metrics", "compared", "geometric mean new/base", "changes"], summary(found)),
    ]
    counts = [c for c in found if c.kind == "count" and (all_counts or c.new != c.base)]
    title = "### Exact counts" if all_counts else "### Exact counts that changed"
    rows = [[c.benchmark, c.metric, c.base, c.new, c.change_text()] for c in counts]
    parts += [title, markdown_table(["benchmark", "metric", "base", "new", "change"], rows) if rows else "None."]
    instructions = [c for c in found if c.kind == "instructions"]
    if instructions:
        rows = [[c.benchmark, f"{c.base:,.0f}", f"{c.new:,.0f}", c.change_text()] for c in instructions]
        parts += [
            "### CPU instructions per operation (callgrind)",
            markdown_table(["benchmark", "base", "new", "change"], rows),
        ]
    times = [c for c in found if c.kind in ("time", "derived")]
    rows = [[c.benchmark, c.metric, *c.values_text(), c.change_text(), c.significance_text()] for c in times]
    parts += [
        "### Times and derived figures",
        markdown_table(["benchmark", "metric", "base", "new", "change", "significance"], rows) if rows else "None.",
    ]
    return "\n\n".join(parts) + "\n"


def compare(*, base: Path, new: Path, all_counts: bool = False) -> str:
    """The markdown comparison of two results files; raises ResultsError on unusable input."""
    found = changes(load(base), load(new))
    if not found:
        raise ResultsError(f"{base} and {new} have no benchmark in common: nothing to compare")
    return to_markdown(found, base_name=base.name, new_name=new.name, all_counts=all_counts)
