"""Code sites: the trace and the N+1 detector name the line of the caller's code that issued each call.

The caller is the first frame outside the KV layer, asyncio and the standard library, in the task that made the call;
for a task that runs a KV coroutine itself (``gather(kv.get(k), ...)``), the line that created the task.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import queue_impls.jobs
from queue_impls.kv import Kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import CountingKv, detect_n_plus_one
from queue_impls.meter.trace import is_toolkit_frame

HERE = "tests/test_counting_sites.py"


def site_of(marker: str) -> str:
    with open(__file__) as f:
        return f"{HERE}:{next(i for i, line in enumerate(f, 1) if line.rstrip().endswith('# ' + marker))}"


@pytest.fixture
async def ckv() -> CountingKv:
    kv = CountingKv(MemoryKv(), trace=True)
    for i in range(5):
        await kv.inner.set(("index", i), f"id-{i}")
        await kv.inner.set(("jobs", f"id-{i}"), {"n": i})
    return kv


def sites(ckv: CountingKv, op: str = "get") -> set[str]:
    return {e.site for e in ckv.trace if e.op == op}


async def test_a_direct_call(ckv: CountingKv) -> None:
    await ckv.get(("jobs", "id-1"))  # direct
    await ckv.get_many([("jobs", "id-1")])  # direct get_many
    await ckv.list(prefix=("index",)).collect()  # direct list
    assert [e.site for e in ckv.trace] == [site_of("direct"), site_of("direct get_many"), site_of("direct list")]


async def test_gather_of_the_callers_own_coroutines(ckv: CountingKv) -> None:
    async def fetch(i: int) -> object:
        return (await ckv.get(("jobs", f"id-{i}"))).value  # in fetch

    await asyncio.gather(*(fetch(i) for i in range(3)))
    assert sites(ckv) == {site_of("in fetch")}


async def test_gather_of_kv_coroutines(ckv: CountingKv) -> None:
    await asyncio.gather(*(ckv.get(("jobs", f"id-{i}")) for i in range(3)))  # gather
    await asyncio.gather(ckv.get_many([("jobs", "id-1")]), ckv.list(prefix=("index",)).collect())  # gather others
    assert sites(ckv) == {site_of("gather")}
    assert sites(ckv, "get_many") == sites(ckv, "list") == {site_of("gather others")}


async def test_create_task_of_a_kv_coroutine(ckv: CountingKv) -> None:
    task = asyncio.create_task(ckv.get(("jobs", "id-1")))  # create_task
    await asyncio.sleep(0)
    await ckv.get(("jobs", "id-2"))  # meanwhile
    await task
    assert [e.site for e in ckv.trace] == [site_of("create_task"), site_of("meanwhile")]


async def test_task_group_of_kv_coroutines(ckv: CountingKv) -> None:
    async with asyncio.TaskGroup() as group:
        for i in range(3):
            group.create_task(ckv.get(("jobs", f"id-{i}")))  # task group
    assert sites(ckv) == {site_of("task group")}


async def test_wait_for_a_kv_coroutine(ckv: CountingKv) -> None:
    await asyncio.wait_for(ckv.get(("jobs", "id-1")), timeout=10)  # wait_for
    assert sites(ckv) == {site_of("wait_for")}


async def test_an_async_generator(ckv: CountingKv) -> None:
    async def jobs() -> AsyncIterator[object]:
        async for entry in ckv.list(prefix=("index",)):  # generator's list
            yield (await ckv.get(("jobs", entry.value))).value  # in the generator

    assert len([job async for job in jobs()]) == 5
    assert sites(ckv) == {site_of("in the generator")} and sites(ckv, "list") == {site_of("generator's list")}


async def test_an_async_generator_drained_in_tasks(ckv: CountingKv) -> None:
    async def jobs(ids: list[str]) -> AsyncIterator[object]:
        for job_id in ids:
            yield (await ckv.get(("jobs", job_id))).value  # in a drained generator

    async def drain(ids: list[str]) -> list[object]:
        return [job async for job in jobs(ids)]

    async with asyncio.TaskGroup() as group:
        group.create_task(drain(["id-1", "id-2"]))
        group.create_task(drain(["id-3"]))
    assert sites(ckv) == {site_of("in a drained generator")}


async def test_a_task_made_inside_a_task_of_the_standard_library(ckv: CountingKv) -> None:
    # wait_for runs in a task of its own here and makes one more for the get: neither holds a line of the caller's
    await asyncio.create_task(asyncio.wait_for(ckv.get(("jobs", "id-1")), timeout=10))  # two tasks deep
    assert sites(ckv) == {site_of("two tasks deep")}


async def test_the_n_plus_one_detector_names_the_line_of_a_gather(ckv: CountingKv) -> None:
    ids = [entry.value for entry in await ckv.list(prefix=("index",)).collect()]
    await asyncio.gather(*(ckv.get(("jobs", job_id)) for job_id in ids))  # the gathered N+1
    [finding] = detect_n_plus_one(ckv.trace)
    assert (finding.count, finding.waves, finding.site) == (5, 1, site_of("the gathered N+1"))
    assert f"at {site_of('the gathered N+1')} (in 1 serial waves)" in str(finding)


async def test_on_every_backend_a_gather_names_its_line(kv: Kv) -> None:
    ckv = CountingKv(kv, trace=True, owns_inner=False)
    await asyncio.gather(*(ckv.get(("k", i)) for i in range(3)))  # every backend
    assert sites(ckv) == {site_of("every backend")}


def test_what_a_site_looks_through() -> None:
    stdlib, third_party = json.__file__, pytest.__file__
    toolkit = [stdlib, asyncio.__file__, str(Path(CountingKv.__module__.replace(".", os.sep)).resolve()) + ".py"]
    assert [is_toolkit_frame(f) for f in toolkit] == [True, True, True]
    assert not is_toolkit_frame(third_party) and not is_toolkit_frame(__file__)
    assert not is_toolkit_frame(queue_impls.jobs.__file__)  # the job queue is a user of the KV layer


def test_what_qbench_measures_is_named_at_the_queues_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every call of every smoke benchmark is sited in the job queue (a user of the KV layer), never in the harness
    that ran it; the N+1 of the naive layout at its own line."""
    import bench.run.measure
    from bench.run.seeding import ensure_seeds
    from bench.run.stores import StoreSource, prepare_source
    from bench.scenarios import LAYOUTS, build_cases

    sites: set[str] = set()
    traced = bench.run.measure._traced_execution

    async def spy(case: Any, kv: CountingKv, operation: Any) -> Any:
        measured = await traced(case, kv, operation)
        sites.update(event.site for event in kv.trace)
        return measured

    monkeypatch.setattr(bench.run.measure, "_traced_execution", spy)
    cases = build_cases(suite="smoke", layouts=tuple(LAYOUTS), rtt_ms=(1.0,))
    specs = list(dict.fromkeys(case.seed for case in cases if case.seed is not None))
    seeds = ensure_seeds(specs, cache_dir=tmp_path / "cache")
    sources = {spec: asyncio.run(prepare_source(backend="memory", seed_file=seeds[spec], run_dir=tmp_path))
               for spec in specs}  # fmt: skip
    naive = _line_in(Path("queue_impls/jobs/layouts/naive.py"), "await kv.get(")
    for case in cases:
        source = sources[case.seed] if case.seed is not None else StoreSource("memory", None)
        measured = asyncio.run(bench.run.measure.measure_case(case, source, private_dir=tmp_path / "measure"))
        assert {f["site"] for f in measured.nplus1} <= {naive}, case.name
        if case.layout == "naive" and case.scenario in ("list_by_name", "rtt_sweep", "seed_case"):
            assert [f["site"] for f in measured.nplus1] == [naive], case.name
    assert sites and all(site.startswith("queue_impls/jobs/") for site in sites), sorted(sites)


def _line_in(path: Path, text: str) -> str:
    with open(path) as f:
        return f"{path}:{next(i for i, line in enumerate(f, 1) if text in line)}"
