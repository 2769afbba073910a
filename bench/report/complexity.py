"""The complexity class of a cost in N (O(1) .. O(N^2)), fitted from a benchmark sweep; see docs/reports.md.

For each candidate f, fit cost = a + b*f(N) (a, b >= 0) by least squares with relative weights (each point's residual
divided by its cost, so a sweep over decades weighs every N alike).
- Counts are deterministic: with three or more N, if some candidate fits to float precision, the simplest such is the class, marked exact.
  Otherwise (steps such as one more list batch) the class is the candidate whose growth exponent over the two largest
  N, log(f(N2)/f(N1)) / log(N2/N1), is nearest the count's own; marked approximate.
- Times are noisy: the simplest candidate whose residual is within NOISE of the best least-squares residual, so
  noise alone does not promote a flat time to a growing class. Never marked exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from bench.scenarios import BUILTIN, param_columns

# Candidates from the cheapest to the most expensive: the order is the one "got worse" compares on.
CLASSES: tuple[tuple[str, Callable[[float], float]], ...] = (
    ("O(1)", lambda n: 0.0),
    ("O(log N)", lambda n: math.log(n)),
    ("O(N)", lambda n: n),
    ("O(N log N)", lambda n: n * math.log(n)),
    ("O(N^2)", lambda n: n * n),
)
RANK = {name: rank for rank, (name, _) in enumerate(CLASSES)}
EXACT_TOLERANCE = 1e-9
NOISE_RATIO, NOISE_ABS = 1.25, 0.02


@dataclass(frozen=True)
class Fit:
    """A fitted class: `exact` when the cost is a + b*f(N) to float precision."""

    name: str
    exact: bool
    residual: float
    points: int

    @property
    def rank(self) -> int:
        return RANK[self.name]

    def label(self) -> str:
        return self.name if self.exact else f"~{self.name}"


def _residual(ns: np.ndarray, costs: np.ndarray, f: Callable[[float], float]) -> float | None:
    """Relative RMS residual of the best a + b*f(N) with a, b >= 0; None if no such fit is increasing."""
    weights = 1.0 / np.maximum(np.abs(costs), 1e-300)
    fx = np.array([f(float(n)) for n in ns])
    designs = [np.column_stack([np.ones_like(fx), fx]), fx[:, None], np.ones_like(fx)[:, None]]
    best: float | None = None
    for design in designs:
        coef, *_ = np.linalg.lstsq(design * weights[:, None], costs * weights, rcond=None)
        if (coef < 0).any():
            continue
        rel = (design @ coef - costs) * weights
        value = float(np.sqrt(np.mean(rel**2)))
        best = value if best is None else min(best, value)
    return best


def fit(ns: Sequence[float], costs: Sequence[float], *, exact_data: bool) -> Fit | None:
    """The class of `costs` over the sweep `ns`; None when fewer than two distinct N were swept."""
    n_arr, inverse = np.unique(np.asarray(ns, dtype=float), return_inverse=True)
    if len(n_arr) < 2:
        return None
    c_arr = np.bincount(inverse, weights=np.asarray(costs, dtype=float)) / np.bincount(inverse)
    if (c_arr == c_arr[0]).all():
        return Fit("O(1)", exact=exact_data, residual=0.0, points=len(n_arr))
    if (c_arr <= 0).any():
        c_arr = c_arr - c_arr.min() + 1.0  # a zero count is a real value; shift so relative weights stay finite
    scored = {rank: res for rank, (_, f) in enumerate(CLASSES) if (res := _residual(n_arr, c_arr, f)) is not None}
    best = min(scored.values(), default=math.nan)
    if exact_data:
        # two points fit every a + b*f(N) exactly: exactness only means something from three N on
        exact = [rank for rank, res in scored.items() if res < EXACT_TOLERANCE and len(n_arr) >= 3]
        rank = exact[0] if exact else _nearest_exponent(n_arr, c_arr)
        return Fit(CLASSES[rank][0], exact=bool(exact), residual=best, points=len(n_arr))
    if not scored:  # the time falls as N grows: bounded
        return Fit("O(1)", exact=False, residual=math.nan, points=len(n_arr))
    rank = min(r for r, res in scored.items() if res <= max(best * NOISE_RATIO, best + NOISE_ABS))
    return Fit(CLASSES[rank][0], exact=False, residual=best, points=len(n_arr))


def _nearest_exponent(ns: np.ndarray, costs: np.ndarray) -> int:
    """The candidate whose growth exponent over the two largest N is nearest the observed one (simplest on ties)."""
    (n1, n2), (c1, c2) = ns[-2:], costs[-2:]
    observed = math.log(c2 / c1) / math.log(n2 / n1)
    exponents = [0.0, *(math.log(f(n2) / f(n1)) / math.log(n2 / n1) for _, f in CLASSES[1:])]
    return min(range(len(CLASSES)), key=lambda rank: (abs(exponents[rank] - observed), rank))


def slice_keys() -> tuple[str, ...]:
    """What a sweep over N is sliced by: scenario, layout and every other parameter column the scenarios declare."""
    return ("scenario", "layout", *(c for c in param_columns() if c != "N"))


#: The built-in scenarios' slice keys: scenario, layout, K, limit, offset, status, op, concurrency, rtt_ms.
SLICE_KEYS: Final = ("scenario", "layout", *(c for c in param_columns(BUILTIN) if c != "N"))


def classify(df: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per (slice of every parameter but N) x metric with at least two N: its fitted class.

    `df` is the tidy frame of `bench.results.load`. Columns: the slice keys, metric, kind, cls, exact, label, points.
    """
    rows = []
    subset = df[df["metric"].isin(metrics) & df["N"].notna()]
    keys = [k for k in slice_keys() if k in subset.columns]
    for key, group in subset.groupby([*keys, "metric", "kind"], dropna=False, sort=True):
        result = fit(
            group["N"].astype(float).tolist(),
            group["value"].astype(float).tolist(),
            exact_data=group["kind"].iloc[0] == "count",
        )
        if result is not None:
            rows.append(
                {
                    **dict(zip([*keys, "metric", "kind"], key, strict=True)),
                    "cls": result.name,
                    "exact": result.exact,
                    "label": result.label(),
                    "rank": result.rank,
                    "points": result.points,
                }
            )
    columns = [*keys, "metric", "kind", "cls", "exact", "label", "rank", "points"]
    return pd.DataFrame(rows, columns=columns)
