"""Welch's two-sample t-test on summary statistics, so compare and gate can judge a time change from mean, stdev, n.

pyperf's own test (`pyperf._utils.is_significant`) is private and needs equal sample sizes; Welch's test does not
assume equal variances or sizes. The p-value uses Student's t distribution through the regularized incomplete beta
function (Numerical Recipes' continued fraction), so no SciPy is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True)
class Sample:
    """Summary of timing values: what `bench.results.load` keeps per benchmark."""

    mean: float
    stdev: float
    n: int


@dataclass(frozen=True)
class TTest:
    """Welch's t statistic, its degrees of freedom and two-sided p-value."""

    t: float
    df: float
    p: float

    @property
    def significant(self) -> bool:
        return self.p < ALPHA


def welch(base: Sample, new: Sample) -> TTest | None:
    """Welch's t-test of new against base; None when either sample has fewer than 2 values."""
    if base.n < 2 or new.n < 2:
        return None
    var_b, var_n = base.stdev**2 / base.n, new.stdev**2 / new.n
    spread = var_b + var_n
    if spread == 0:
        p = 1.0 if base.mean == new.mean else 0.0
        return TTest(t=math.copysign(math.inf, new.mean - base.mean) if p == 0 else 0.0, df=math.inf, p=p)
    t = (new.mean - base.mean) / math.sqrt(spread)
    df = spread**2 / (var_b**2 / (base.n - 1) + var_n**2 / (new.n - 1))
    return TTest(t=t, df=df, p=two_sided_p(t, df))


def two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom."""
    return regularized_beta(df / (df + t * t), df / 2, 0.5)


def regularized_beta(x: float, a: float, b: float) -> float:
    """I_x(a, b), the regularized incomplete beta function."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b


def _beta_fraction(x: float, a: float, b: float) -> float:
    """Lentz's evaluation of the continued fraction for I_x(a, b)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 300):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-14:
            break
    return result


@dataclass(frozen=True)
class RatioInterval:
    """A typical ratio of paired measurements (new/base per round) and its confidence interval."""

    ratio: float
    low: float
    high: float
    n: int


def paired_ratio(ratios: list[float], confidence: float = 0.95) -> RatioInterval:
    """The Hodges-Lehmann estimate of ``ratios`` (each new/base of one round) on their logarithms, with the
    Wilcoxon signed-rank interval: robust to the few rounds another process on the machine disturbed."""
    if len(ratios) < 2 or any(r <= 0 for r in ratios):
        raise ValueError(f"need two or more positive ratios: got {ratios!r}")
    centre, low, high = signed_rank_interval([math.log(r) for r in ratios], confidence)
    return RatioInterval(math.exp(centre), math.exp(low), math.exp(high), len(ratios))


def signed_rank_interval(values: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """Hodges-Lehmann estimate of the centre of ``values`` and its distribution-free interval (Wilcoxon signed rank).

    The estimate is the median of the Walsh averages (x_i + x_j) / 2, i <= j; the interval runs from the (k+1)-th to
    the (M-k)-th of the M sorted averages, k the largest count with P(T <= k) <= (1 - confidence) / 2 under the exact
    null distribution of the signed-rank statistic T. A round disturbed by another process moves it by one rank only.
    """
    n = len(values)
    if n < 2:
        raise ValueError(f"need two or more values: got {values!r}")
    walsh = sorted((values[i] + values[j]) / 2 for i in range(n) for j in range(i, n))
    total = len(walsh)
    k = min(max(_signed_rank_critical(n, (1 - confidence) / 2), 0), (total - 1) // 2)
    middle = (walsh[(total - 1) // 2] + walsh[total // 2]) / 2
    return middle, walsh[k], walsh[total - 1 - k]


def _signed_rank_critical(n: int, tail: float) -> int:
    """The largest k with P(T <= k) <= tail for the signed-rank statistic of n values (exact, by counting subsets)."""
    top = n * (n + 1) // 2
    ways = [1] + [0] * top
    for rank in range(1, n + 1):
        for t in range(top, rank - 1, -1):
            ways[t] += ways[t - rank]
    cumulative = 0.0
    for t, count in enumerate(ways):
        cumulative += count / 2**n
        if cumulative > tail:
            return t - 1  # -1: too few values for this confidence, the interval is their whole range
    return top
