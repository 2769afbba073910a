"""Seeding and the in-process measurement of exact counts, on every smoke case (no pyperf)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.run.measure import measure_case
from bench.run.seeding import code_version, ensure_seeds, planned_status, seed, seed_path
from bench.run.stores import StoreSource, prepare_source
from bench.scenarios import LAYOUTS, Case, SeedSpec, build_cases, get_scenario
from bench.scenarios.seed_case import SEED_POINT
from queue_impls.jobs import JobStatus, Queue, check_integrity
from queue_impls.kv import open_kv


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("seeds")


def smoke_cases() -> list[Case]:
    return build_cases(suite="smoke", layouts=LAYOUTS, rtt_ms=None)


async def source_for(case: Case, cache_dir: Path, run_dir: Path, backend: str = "sqlite") -> StoreSource:
    if case.seed is None:
        return StoreSource(backend, None)
    # Seeding runs its own event loop (asyncio.run), so from an async test it goes to a thread.
    [path] = (await asyncio.to_thread(ensure_seeds, [case.seed], cache_dir=cache_dir)).values()
    return await prepare_source(backend=backend, seed_file=path, run_dir=run_dir)


def test_planned_statuses_are_1_percent_failed_and_half_pending() -> None:
    statuses = [planned_status(j) for j in range(1000)]
    assert statuses.count(JobStatus.FAILED) == 10
    assert statuses.count(JobStatus.PENDING) == 500
    assert statuses.count(JobStatus.COMPLETED) == 490


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_a_seed_has_the_planned_statuses_per_name_and_is_consistent(layout: str) -> None:
    async with await open_kv("memory:") as kv:
        await seed(kv, SeedSpec(N=200, K=2, layout=layout))
        queue = Queue(kv, layout)
        assert await queue.stats() == {"pending": 100, "running": 0, "completed": 98, "failed": 2}
        failed = await queue.list_jobs(status="failed", name="email-1", limit=100)
        assert len(failed) == 1
        assert await check_integrity(kv, layout) == []


def test_seeds_are_cached_by_parameters_and_code_version(cache_dir: Path) -> None:
    spec = SeedSpec(N=20, K=1, layout="naive")
    first = ensure_seeds([spec], cache_dir=cache_dir)[spec]
    inode = first.stat().st_ino
    again = ensure_seeds([spec], cache_dir=cache_dir)[spec]
    assert again == first == seed_path(spec, cache_dir, code_version())
    assert again.stat().st_ino == inode  # not rebuilt (a rebuild is moved into place as a new file)
    assert seed_path(spec, cache_dir, "another version") != first


def test_a_new_seed_replaces_an_unused_one_of_another_code_version_but_not_one_in_use(tmp_path: Path) -> None:
    """Another checkout (the other tree of --against, a second worktree) may be copying its seed right now."""
    stale = tmp_path / "seed-N20-K1-naive-0123456789abcdef.db"
    in_use = tmp_path / "seed-N20-K1-naive-fedcba9876543210.db"
    other = tmp_path / "seed-N20-K10-naive-0123456789abcdef.db"
    for path, text in ((stale, b"old"), (in_use, b"another checkout's"), (other, b"other parameters")):
        path.write_bytes(text)
    two_days_ago = time.time() - 2 * 86_400
    os.utime(stale, (two_days_ago, two_days_ago))
    [path] = ensure_seeds([SeedSpec(N=20, K=1, layout="naive")], cache_dir=tmp_path).values()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, in_use.name, other.name])
    os.utime(path, (two_days_ago, two_days_ago))
    ensure_seeds([SeedSpec(N=20, K=1, layout="naive")], cache_dir=tmp_path)
    assert path.stat().st_mtime > two_days_ago  # a seed found in the cache is marked as used


@pytest.mark.parametrize(("layout", "calls"), [("naive", 101), ("optimized", 1), ("batched", 11), ("indexed", 1)])
async def test_the_seed_case_costs_what_the_seed_document_says(
    layout: str, calls: int, cache_dir: Path, tmp_path: Path
) -> None:
    case = Case.make(get_scenario("seed_case"), layout, SEED_POINT)
    measured = await measure_case(case, await source_for(case, cache_dir, tmp_path), private_dir=tmp_path)
    assert measured.counts["total_calls"] == calls
    if layout == "naive":
        assert measured.counts["calls"] == {**dict.fromkeys(measured.counts["calls"], 0), "list": 1, "get": 100}
        [finding] = measured.nplus1
        assert (finding["fingerprint"], finding["count"]) == ('get ("jobs", ?)', 100)
        assert finding["source"].startswith("list ")
    else:
        assert measured.nplus1 == []


async def test_every_smoke_case_runs_and_reports_its_counts(cache_dir: Path, tmp_path: Path) -> None:
    for case in smoke_cases():
        measured = await measure_case(case, await source_for(case, cache_dir, tmp_path), private_dir=tmp_path)
        counts = measured.counts
        assert counts["total_calls"] > 0, case.name
        assert counts["round_trips"] >= counts["serial_round_trips"] > 0, case.name
        assert measured.probe_s > 0
        if case.scenario == "write_path":
            assert counts["calls"]["commit"] == 1 and counts["bytes_written"] > 0, case.name
        if case.scenario == "rtt_sweep":
            rtt_s = case.params["rtt_ms"] / 1000
            assert measured.derived == {"predicted_s": pytest.approx(counts["serial_round_trips"] * rtt_s)}
        if case.scenario == "mixed":
            assert set(measured.derived) == {
                "read_round_trips_per_page",
                "write_round_trips_per_job",
                "read_bytes_per_page",
                "write_bytes_per_job",
            }


async def test_worker_throughput_counts_are_per_job(tmp_path: Path) -> None:
    async def per_job(n: int, concurrency: int) -> dict[str, Any]:
        case = Case.make(get_scenario("worker_throughput"), "optimized", {"N": n, "concurrency": concurrency})
        return (await measure_case(case, StoreSource("sqlite", None), private_dir=tmp_path)).counts

    one, five, five_at_8 = await per_job(1, 1), await per_job(5, 1), await per_job(5, 8)
    # A job's successor claimed in the commit that ends it shares its counter sums (netted: queue.Sums), as do jobs
    # that end together and their successors (group commit): more jobs per commit, fewer mutations per job.
    assert one["mutations"] > five["mutations"] > five_at_8["mutations"] > 0
    assert five["total_calls"] < one["total_calls"]  # the polls that find nothing are shared by more jobs
    assert five_at_8["serial_round_trips"] < five["serial_round_trips"]  # claims of 8 slots at once


async def test_the_memory_backend_loads_the_seed_into_each_process(cache_dir: Path, tmp_path: Path) -> None:
    case = Case.make(get_scenario("seed_case"), "naive", SEED_POINT)
    source = await source_for(case, cache_dir, tmp_path, backend="memory")
    assert source.backend == "memory"
    measured = await measure_case(case, source, private_dir=tmp_path)
    assert measured.counts["total_calls"] == 101


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_write_path_counts_are_the_same_every_time(layout: str, tmp_path: Path) -> None:
    # The gate compares exact counts between runs: a retry's jittered delay lands in the stored job, so the
    # operation's rng must be seeded or bytes_written moves by a few bytes from run to run.
    case = Case.make(get_scenario("write_path"), layout, {"op": "fail_retry"})
    runs = [
        (await measure_case(case, StoreSource("sqlite", None), private_dir=tmp_path / str(i))).counts for i in range(3)
    ]
    assert runs[0]["bytes_written"] > 0
    assert runs[0] == runs[1] == runs[2]


async def test_worker_path_under_an_rtt_counts_the_same_and_predicts_its_network_time(tmp_path: Path) -> None:
    # The same work at RTT 0 and 5 ms: the counts do not depend on the network, and the prediction is the serial
    # round trips of the whole run times the RTT (counts are per job: N of them).
    def case(rtt_ms: float) -> Case:
        params = {"N": 5, "concurrency": 8, "batch": 1, "rtt_ms": rtt_ms}
        return Case.make(get_scenario("worker_path"), "naive", params)

    local = await measure_case(case(0.0), StoreSource("sqlite", None), private_dir=tmp_path)
    remote = await measure_case(case(5.0), StoreSource("sqlite", None), private_dir=tmp_path)
    assert remote.counts == local.counts and "predicted_s" not in local.derived
    serial = remote.counts["serial_round_trips"] * 5
    assert remote.derived["predicted_s"] == pytest.approx(serial * 0.005)
    assert remote.probe_s >= remote.derived["predicted_s"] > 0


def test_worker_path_takes_the_rtts_of_rtt_only_when_given() -> None:
    def names(rtt_ms: tuple[float, ...] | None) -> list[str]:
        cases = build_cases(suite="quick", layouts=("naive",), scenarios=("worker_path",), rtt_ms=rtt_ms)
        return [c.name for c in cases]

    assert all(name.endswith(",rtt_ms=0") for name in names(None)) and len(names(None)) == 3
    swept = names((0.0, 20.0))
    assert len(swept) == 6 and sum(name.endswith(",rtt_ms=20") for name in swept) == 3
