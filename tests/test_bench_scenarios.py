"""The suites' benchmark lists, names and timing plans (no store, no pyperf: pure planning)."""

from __future__ import annotations

import math

import pytest

from bench.errors import UsageError
from bench.run.runner import plan_timing
from bench.scenarios import (
    LAYOUTS,
    SCENARIOS,
    SUITE_SPECS,
    Case,
    Timing,
    build_cases,
    get_scenario,
    parse_list,
    parse_rtt,
)

ISSUE_QUICK_AXES = {
    "N": {100, 1000, 10_000},
    "K": {1, 10},
    "limit": {10, 50, 100},
    "offset": {0, 500},
    "status": {"none", "rare", "half"},
}


def cases(suite: str) -> list[Case]:
    return build_cases(suite=suite, layouts=LAYOUTS, rtt_ms=parse_rtt(None, suite=suite))


@pytest.mark.parametrize("suite", list(SUITE_SPECS))
def test_every_suite_runs_every_scenario_on_every_layout_with_unique_names(suite: str) -> None:
    planned = cases(suite)
    names = [case.name for case in planned]
    assert len(names) == len(set(names))
    assert {(case.scenario, case.layout) for case in planned} == {(s, lay) for s in SCENARIOS for lay in LAYOUTS}


@pytest.mark.parametrize("suite", list(SUITE_SPECS))
def test_the_seed_case_is_in_every_suite_with_the_seed_documents_parameters(suite: str) -> None:
    names = {case.name for case in cases(suite)}
    for layout in LAYOUTS:
        assert f"seed_case/{layout}/N=100,K=1,limit=100,offset=0,status=none" in names


def test_quick_sweeps_every_value_of_every_list_parameter_the_issue_names() -> None:
    points = [case.params for case in cases("quick") if case.scenario == "list_by_name"]
    for key, values in ISSUE_QUICK_AXES.items():
        assert {p[key] for p in points} == values, key


def test_full_adds_100k_jobs_and_keeps_every_quick_point() -> None:
    quick = {c.name for c in cases("quick") if c.scenario == "list_by_name"}
    full = {c.name for c in cases("full") if c.scenario == "list_by_name"}
    assert quick <= full
    assert "list_by_name/indexed/N=100000,K=1,limit=50,offset=0,status=none" in full


def test_names_follow_the_results_format() -> None:
    case = Case.make(
        get_scenario("list_by_name"), "naive", {"status": "none", "N": 1000, "K": 1, "limit": 50, "offset": 0}
    )
    assert case.name == "list_by_name/naive/N=1000,K=1,limit=50,offset=0,status=none"
    rtt = Case.make(get_scenario("rtt_sweep"), "optimized", {**case.params, "rtt_ms": 5.0})
    assert rtt.name.endswith(",status=none,rtt_ms=5")
    assert Case.make(get_scenario("write_path"), "batched", {"op": "add"}).name == "write_path/batched/op=add"
    for planned in cases("quick"):
        assert tuple(planned.params) == get_scenario(planned.scenario).param_names


def test_what_each_case_reads_and_whether_it_writes() -> None:
    listing = Case.make(
        get_scenario("list_by_name"), "naive", {"N": 100, "K": 10, "limit": 10, "offset": 0, "status": "rare"}
    )
    assert (listing.seed and listing.seed.N, listing.mutates, listing.per) == (100, False, "call")
    throughput = Case.make(get_scenario("worker_throughput"), "naive", {"N": 50, "concurrency": 8})
    assert (throughput.seed, throughput.mutates, throughput.per) == (None, True, "job")


def test_scenario_and_layout_filters() -> None:
    planned = build_cases(suite="quick", layouts=("naive",), rtt_ms=(0.0, 20.0), scenarios=("rtt_sweep",))
    assert [c.name.rsplit("=", 1)[1] for c in planned] == ["0", "20"]


@pytest.mark.parametrize(
    ("value", "message"),
    [("naive,bogus", "Unknown layout 'bogus'"), (" , ", "Empty layout list"), ("Naive", "Unknown layout 'Naive'")],
)
def test_bad_layout_lists_name_what_is_known(value: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as info:
        parse_list(value, known=LAYOUTS, what="layout")
    assert "naive, optimized, batched, indexed" in str(info.value)


def test_layout_lists_keep_order_and_drop_repeats() -> None:
    assert parse_list("indexed, naive,indexed", known=LAYOUTS, what="layout") == ("indexed", "naive")
    assert parse_list(None, known=LAYOUTS, what="layout") == LAYOUTS


@pytest.mark.parametrize("value", ["fast", "1,,x", "-1", "nan", "5000", ""])
def test_bad_rtt_lists_are_usage_errors(value: str) -> None:
    with pytest.raises(UsageError, match="--rtt"):
        parse_rtt(value, suite="quick")


def test_rtt_defaults_per_suite() -> None:
    assert parse_rtt(None, suite="quick") == (0.0, 1.0, 5.0, 20.0)
    assert parse_rtt("20,0.5", suite="quick") == (20.0, 0.5)


QUICKISH = Timing(2, 3, 1, min_time=0.01, calibrate=False, budget_s=50, max_seconds=2.0, min_processes=1, min_values=2)
FULLISH = Timing(20, 3, 1, min_time=0.1, calibrate=True, budget_s=780, max_seconds=40, min_processes=3, min_values=3)


def test_a_fast_benchmark_gets_the_suites_processes_and_loops_from_the_probe() -> None:
    settings = plan_timing(QUICKISH, probe_s=0.001, allowance_s=10.0)
    assert (settings.processes, settings.values, settings.warmups, settings.loops) == (2, 3, 1, 10)


def test_full_lets_pyperf_calibrate_fast_benchmarks_and_uses_its_defaults_when_affordable() -> None:
    settings = plan_timing(FULLISH, probe_s=0.001, allowance_s=100.0)
    assert (settings.processes, settings.values, settings.loops, settings.min_time) == (20, 3, 0, 0.1)


def test_a_slow_benchmark_gets_fewer_processes_then_fewer_values_but_never_below_the_minimum() -> None:
    # capped at max_seconds (40 s): 40 / (4 executions x 0.5 s + 0.25 s start-up) = 17 processes, not 20
    assert plan_timing(FULLISH, probe_s=0.5, allowance_s=100.0).processes == 17
    slow = plan_timing(QUICKISH, probe_s=1.0, allowance_s=0.5)
    assert (slow.processes, slow.values, slow.loops) == (1, 2, 1)
    assert plan_timing(FULLISH, probe_s=10.0, allowance_s=-5.0).processes == 3


def test_processes_fit_the_allowance() -> None:
    for allowance in (1.0, 3.0, 8.0, 20.0):
        settings = plan_timing(FULLISH, probe_s=0.2, allowance_s=allowance)
        per_process = 4 * 0.2 + 0.25
        assert settings.processes == max(3, min(20, math.floor(allowance / per_process)))


def test_full_asks_for_pyperfs_own_defaults() -> None:
    full = SUITE_SPECS["full"].timing
    assert (full.processes, full.values, full.warmups, full.min_time, full.calibrate) == (20, 3, 1, 0.1, True)
