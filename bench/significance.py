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


def t_critical(confidence: float, df: float) -> float:
    """The t such that P(|T| <= t) = confidence for Student's t with df degrees of freedom (by bisection)."""
    low, high = 0.0, 1e6
    for _ in range(200):
        middle = (low + high) / 2
        if two_sided_p(middle, df) > 1 - confidence:
            low = middle
        else:
            high = middle
    return (low + high) / 2


@dataclass(frozen=True)
class RatioInterval:
    """The geometric mean of paired ratios and its confidence interval (a t-interval on their logarithms)."""

    ratio: float
    low: float
    high: float
    n: int


def paired_ratio(ratios: list[float], confidence: float = 0.95) -> RatioInterval:
    """Geometric mean of ``ratios`` (each new/base of one round) with a ``confidence`` interval; needs 2 or more."""
    if len(ratios) < 2 or any(r <= 0 for r in ratios):
        raise ValueError(f"need two or more positive ratios: got {ratios!r}")
    logs = [math.log(r) for r in ratios]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    half = t_critical(confidence, len(logs) - 1) * sd / math.sqrt(len(logs))
    return RatioInterval(math.exp(mean), math.exp(mean - half), math.exp(mean + half), len(logs))
