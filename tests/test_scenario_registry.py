"""The scenario registry: every registered scenario is covered here (and no test names one the registry lacks), a new
scenario is one module plus one registry line, and a user's scenario joins through register_scenario, an entry point
or function_scenario."""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bench.scenarios as registry
from bench.errors import UsageError
from bench.report.complexity import slice_keys
from bench.results import columns
from bench.run.measure import measure_case
from bench.run.runner import select_cases
from bench.run.seeding import ensure_seeds
from bench.run.stores import StoreSource, prepare_source
from bench.scenarios import (
    BUILTIN,
    BUILTIN_MODULES,
    LAYOUTS,
    Case,
    ScenarioPluginError,
    build_cases,
    function_scenario,
    get_scenario,
    register_scenario,
    scenario_names,
)
from queue_impls.kv import Kv

#: What each registered scenario is, as the tests expect it: (per, seeded, mutates, runs in these layouts or None for
#: every layout, opt-in). A scenario added to the registry without a line here fails the first test, and so does a
#: line here for a scenario the registry does not have.
EXPECTED: dict[str, tuple[str, bool, bool, tuple[str, ...] | None, bool]] = {
    "list_by_name": ("call", True, False, None, False),
    "seed_case": ("call", True, False, None, False),
    "write_path": ("call", False, True, None, False),
    "worker_throughput": ("job", False, True, None, False),
    "worker_path": ("job", False, True, None, False),
    "rtt_sweep": ("call", True, False, None, False),
    "mixed": ("call", True, True, None, False),
    "deno_seed_case": ("call", False, False, ("naive", "optimized"), True),
}
#: Scenarios whose benchmark is not a Python operation: covered by the test named here instead of the one below.
RUN_ELSEWHERE = {"deno_seed_case": "tests/test_deno_seed.py (needs the real Deno)"}


@pytest.fixture
def restore_registry() -> Iterator[None]:
    saved = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


def test_the_registry_and_these_tests_name_the_same_scenarios() -> None:
    assert set(scenario_names()) == set(EXPECTED), "a scenario is registered but untested, or tested but unregistered"
    assert tuple(s.name for s in BUILTIN) == BUILTIN_MODULES
    for name, (per, seeded, mutates, layouts, opt_in) in EXPECTED.items():
        spec = get_scenario(name)
        assert (spec.per, spec.seeded, spec.mutates, spec.layouts, spec.opt_in) == (
            per,
            seeded,
            mutates,
            layouts,
            opt_in,
        )
    for name in RUN_ELSEWHERE:
        assert get_scenario(name).run_case is not None and not get_scenario(name).counted


@pytest.fixture(scope="module")
def smoke_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Case, StoreSource]]:
    """The first smoke benchmark of every Python scenario in the optimized layout, with its store on memory."""
    tmp = tmp_path_factory.mktemp("registry")
    names = [n for n in scenario_names() if n not in RUN_ELSEWHERE]
    cases = {n: build_cases(suite="smoke", layouts=("optimized",), scenarios=(n,))[0] for n in names}
    specs = [case.seed for case in cases.values() if case.seed is not None]
    seeds = ensure_seeds(specs, cache_dir=tmp / "cache")
    out = {}
    for name, case in cases.items():
        source = StoreSource("memory", None)
        if case.seed is not None:
            source = asyncio.run(prepare_source(backend="memory", seed_file=seeds[case.seed], run_dir=tmp))
        out[name] = (case, source)
    return out


@pytest.mark.parametrize("name", [n for n in EXPECTED if n not in RUN_ELSEWHERE])
def test_every_python_scenario_measures_counts_on_its_first_smoke_point(
    name: str, smoke_sources: dict[str, tuple[Case, StoreSource]], tmp_path: Path
) -> None:
    case, source = smoke_sources[name]
    measured = asyncio.run(measure_case(case, source, private_dir=tmp_path))
    assert measured.counts["total_calls"] > 0 and measured.counts["round_trips"] > 0
    assert measured.probe_s > 0
    assert set(measured.derived) <= {*case.spec.derived_units, "claim_read_round_trips_per_job",
                                     "commit_round_trips_per_job"}  # fmt: skip


# -- a new scenario: one module and one registry line ----------------------------------------------------------

NEW_MODULE = """
from typing import Any

from bench.scenarios.base import Param, QueueOperation, Scenario


class CountJobs(QueueOperation):
    async def execute(self) -> None:
        await self.queue.stats()


def points(suite: str) -> list[dict[str, Any]]:
    return [{"N": n, "K": 1, "shard": "a"} for n in (20, 40)]


SCENARIO = Scenario(
    name="stats_call",
    summary="queue.stats() on a seeded store",
    params=(Param("N"), Param("K"), Param("shard", text=True)),
    points=points,
    operation=CountJobs,
    seeded=True,
)
"""


def test_a_new_scenario_is_one_module_and_one_registry_line(
    tmp_path: Path, restore_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = Path(registry.__file__).parent
    module = package / "stats_call.py"
    assert not module.exists()
    try:
        module.write_text(NEW_MODULE)
        importlib.invalidate_caches()
        monkeypatch.setattr(registry, "BUILTIN_MODULES", (*registry.BUILTIN_MODULES, "stats_call"))
        register_scenario(registry._declared("stats_call"))  # what the one registry line does at import
    finally:
        module.unlink()
        sys.modules.pop("bench.scenarios.stats_call", None)
    planned = build_cases(suite="quick", layouts=LAYOUTS, scenarios=("stats_call",))
    assert [c.name for c in planned[:2]] == [
        "stats_call/naive/N=20,K=1,shard=a",
        "stats_call/optimized/N=20,K=1,shard=a",
    ]
    assert "shard" in columns() and "shard" in slice_keys()  # results columns and complexity slices follow
    assert "stats_call" in scenario_names(opt_in=False)


# -- a user's scenario -------------------------------------------------------------------------------------------


async def _seed_keys(kv: Kv, N: int) -> None:
    for i in range(N):
        await kv.set(("ids", i), i)
        await kv.set(("k", i), i)


async def read_each(kv: Kv, N: int) -> None:
    """List N ids, then read their keys one by one."""
    async for entry in kv.list(prefix=("ids",)):
        await kv.get(("k", entry.value))


def test_function_scenario_counts_a_users_function_with_its_n_plus_one(restore_registry: None, tmp_path: Path) -> None:
    spec = register_scenario(function_scenario(read_each, seed=_seed_keys, points=[{"N": 5}, {"N": 12}]))
    assert spec.summary == "List N ids, then read their keys one by one." and spec.param_names == ("N",)
    planned = build_cases(suite="smoke", layouts=LAYOUTS, scenarios=("read_each",))
    assert [c.name for c in planned] == ["read_each/store/N=5", "read_each/store/N=12"]  # one case, not one per layout
    measured = asyncio.run(measure_case(planned[1], StoreSource("memory", None), private_dir=tmp_path))
    assert (measured.counts["total_calls"], measured.counts["mutations"]) == (13, 0)  # seeding is not counted
    assert [(f["count"], f["fingerprint"]) for f in measured.nplus1] == [(12, 'get ("k", ?)')]


def test_function_scenario_per_layout_passes_the_layout(restore_registry: None, tmp_path: Path) -> None:
    seen: list[str] = []

    async def list_page(kv: Kv, limit: int, layout: str) -> None:
        from queue_impls.jobs import Queue

        seen.append(layout)
        await Queue(kv, layout).list_jobs(limit=limit)

    register_scenario(function_scenario(list_page, points=[{"limit": 5}], layouts=None))
    planned = build_cases(suite="quick", layouts=("naive", "indexed"), scenarios=("list_page",))
    assert [c.name for c in planned] == ["list_page/naive/limit=5", "list_page/indexed/limit=5"]
    asyncio.run(measure_case(planned[1], StoreSource("memory", None), private_dir=tmp_path))
    assert seen == ["indexed"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": [{"N": 1}, {"M": 2}]}, "every point must name the same parameters"),
        ({"points": [{"N": [1]}]}, "must be a number or a string"),
        ({"points": [{"layout": "x"}]}, "other than layout"),
        ({"points": []}, "no points"),
        ({"points": [{"M": 1}], "per": "job"}, "needs a parameter N"),
    ],
)
def test_function_scenario_refuses_bad_declarations(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        function_scenario(read_each, **kwargs)


def test_function_scenario_takes_async_functions_only() -> None:
    with pytest.raises(UsageError, match="async function"):
        function_scenario(print)  # type: ignore[arg-type]


def test_register_scenario_refuses_a_taken_name_and_non_scenarios(restore_registry: None) -> None:
    with pytest.raises(ScenarioPluginError, match="'seed_case' is taken"):
        register_scenario(function_scenario(read_each, name="seed_case"))
    with pytest.raises(ScenarioPluginError, match="takes a Scenario"):
        register_scenario("seed_case")  # type: ignore[arg-type]
    assert register_scenario(get_scenario("seed_case")) is get_scenario("seed_case")  # the same one: a no-op


def test_entry_points_register_scenarios_on_first_lookup(
    restore_registry: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = function_scenario(read_each, name="from_entry_point", points=[{"N": 1}])

    class Point:
        name, value = "from_entry_point", "somewhere:SCENARIO"

        def load(self) -> Any:
            return spec

    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    monkeypatch.setattr(
        registry.importlib.metadata,
        "entry_points",
        lambda group: [Point()] if group == registry.ENTRY_POINT_GROUP else [],
    )
    assert get_scenario("from_entry_point") is spec
    assert "from_entry_point" in scenario_names()


def test_unknown_scenarios_are_answered_with_the_closest_name() -> None:
    with pytest.raises(UsageError, match=r"Unknown scenario 'seed_cas' \(did you mean 'seed_case'\?\)"):
        get_scenario("seed_cas")


def test_k_selects_by_substring_or_pattern_and_names_the_closest_when_nothing_matches() -> None:
    planned = build_cases(suite="smoke", layouts=LAYOUTS)
    assert {c.scenario for c in select_cases(planned, ["seed_case"])} == {"seed_case"}
    assert [c.name for c in select_cases(planned, ["write_path/*/op=add"])] == [
        f"write_path/{layout}/op=add" for layout in LAYOUTS
    ]
    assert len(select_cases(planned, ["op=add", "op=claim"])) == 2 * len(LAYOUTS)
    with pytest.raises(UsageError, match=r"no benchmark of the \d+ planned matches; closest: seed_case") as info:
        select_cases(planned, ["seed_cose"])
    assert "-k seed_cose" in str(info.value)
