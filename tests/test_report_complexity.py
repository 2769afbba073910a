"""The complexity rule: exact on counts of the form a + b*f(N), least squares with an Occam margin on times."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import pytest

from bench.report.complexity import classify, fit
from bench.results import load
from tests.synthetic_results import write_results

NS = [100.0, 1000.0, 10000.0]
CASES: list[tuple[str, Callable[[float], float]]] = [
    ("O(1)", lambda n: 7),
    ("O(log N)", lambda n: 3 * math.log(n) + 1),
    ("O(N)", lambda n: 1 + n),
    ("O(N)", lambda n: 2 + n // 100),  # one list batch per 100 entries
    ("O(N log N)", lambda n: n * math.log(n) + 7),
    ("O(N^2)", lambda n: n * n / 2 + 5),
]


@pytest.mark.parametrize(("expected", "cost"), CASES)
def test_counts_of_the_form_a_plus_b_f_are_exact(expected: str, cost: Callable[[float], float]) -> None:
    result = fit(NS, [cost(n) for n in NS], exact_data=True)
    assert result is not None and result.name == expected and result.exact and result.label() == expected


@pytest.mark.parametrize(
    ("counts", "expected"), [([1, 1, 2], "~O(log N)"), ([100, 1000, 5000], "~O(N)"), ([10, 5, 3], "~O(1)")]
)
def test_counts_with_steps_take_the_nearest_growth_exponent(counts: list[int], expected: str) -> None:
    result = fit(NS, counts, exact_data=True)
    assert result is not None and result.label() == expected


def test_two_points_are_never_exact_and_one_point_has_no_class() -> None:
    two = fit([100, 1000], [11, 101], exact_data=True)
    assert two is not None and two.label() == "~O(N)"
    assert fit([100, 100], [1, 1], exact_data=True) is None


@pytest.mark.parametrize(("expected", "cost"), [CASES[0], CASES[1], CASES[2], CASES[5]])
def test_noisy_times_find_the_class_and_are_never_exact(expected: str, cost: Callable[[float], float]) -> None:
    rng = random.Random(expected)
    ns = [100, 300, 1000, 3000, 10000]
    for _ in range(5):
        result = fit(ns, [cost(n) * 1e-6 * (1 + rng.gauss(0, 0.03)) for n in ns], exact_data=False)
        assert result is not None and result.name == expected and not result.exact


def test_classify_slices_every_parameter_but_n(tmp_path) -> None:  # type: ignore[no-untyped-def]
    df = load(write_results(tmp_path / "r.json"))
    classes = classify(df[df["scenario"] == "list_by_name"], ["calls"])
    assert len(classes) == 4 * 3 * 2  # layouts x limits x statuses
    naive = classes[(classes["layout"] == "naive") & (classes["limit"] == 100)].set_index("status")["label"]
    assert naive.to_dict() == {"none": "O(1)", "rare": "O(N)"}
