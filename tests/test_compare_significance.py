"""Welch's t-test: p-values match Student's t tables; degenerate samples are handled, not divided by zero."""

from __future__ import annotations

import math

import pytest

from bench.gate.significance import Sample, regularized_beta, two_sided_p, welch


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [(2.228, 10, 0.05), (2.0, 10, 0.0734), (0.5, 3, 0.6514), (12.0, 4, 0.000276), (1.96, 1e6, 0.05), (0.0, 5, 1.0)],
)
def test_two_sided_p_matches_t_tables(t: float, df: float, p: float) -> None:
    assert two_sided_p(t, df) == pytest.approx(p, rel=2e-3)


def test_regularized_beta_edges_and_symmetry() -> None:
    assert regularized_beta(0.0, 2, 3) == 0.0 and regularized_beta(1.0, 2, 3) == 1.0
    assert regularized_beta(0.3, 2, 3) == pytest.approx(1 - regularized_beta(0.7, 3, 2))
    assert regularized_beta(0.5, 1, 1) == pytest.approx(0.5)


def test_welch_equal_variances_reduces_to_student() -> None:
    result = welch(Sample(1.0, 0.1, 10), Sample(1.1, 0.1, 10))
    assert result is not None
    assert result.t == pytest.approx(math.sqrt(5)) and result.df == pytest.approx(18)
    assert result.significant and result.p == pytest.approx(0.0382, rel=1e-2)


def test_welch_unequal_sizes_use_satterthwaite_df() -> None:
    result = welch(Sample(10.0, 1.0, 5), Sample(11.0, 3.0, 20))
    assert result is not None
    v1, v2 = 1.0 / 5, 9.0 / 20
    assert result.df == pytest.approx((v1 + v2) ** 2 / (v1**2 / 4 + v2**2 / 19))
    assert not result.significant


def test_degenerate_samples() -> None:
    assert welch(Sample(1.0, 0.0, 1), Sample(2.0, 0.0, 5)) is None
    same = welch(Sample(1.0, 0.0, 3), Sample(1.0, 0.0, 3))
    assert same is not None and same.p == 1.0 and not same.significant
    differ = welch(Sample(1.0, 0.0, 3), Sample(1.5, 0.0, 3))
    assert differ is not None and differ.significant
