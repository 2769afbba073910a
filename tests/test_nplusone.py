"""detect_n_plus_one: flags list -> one get per entry, stays silent for batched, denormalised and k-1 reads."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from queue_impls.kv import Kv
from queue_impls.meter import CountingKv, detect_n_plus_one

HERE = "tests/test_nplusone.py"


@pytest.fixture
async def ckv(kv: Kv) -> CountingKv:
    return CountingKv(kv, trace=True, owns_inner=False)


async def add_jobs(kv: Kv, name: str, n: int, *, denormalised: bool = False) -> list[str]:
    ids = [str(uuid.UUID(int=i + 1)) for i in range(n)]
    for job_id in ids:
        job = {"id": job_id, "name": name, "status": "pending"}
        index_value: Any = job if denormalised else job_id
        await kv.atomic().set(("jobs", job_id), job).set(("jobs_by_name", name, job_id), index_value).commit()
    return ids


async def list_jobs_naive(kv: Kv, name: str) -> list[Any]:
    jobs = []
    async for entry in kv.list(prefix=("jobs_by_name", name)):
        jobs.append((await kv.get(("jobs", entry.value))).value)  # the N+1 read
    return jobs


async def list_jobs_batched(kv: Kv, name: str) -> list[Any]:
    ids = [e.value for e in await kv.list(prefix=("jobs_by_name", name)).collect()]
    jobs = []
    for i in range(0, len(ids), 10):
        jobs += [e.value for e in await kv.get_many([("jobs", job_id) for job_id in ids[i : i + 10]])]
    return jobs


async def test_the_naive_list_jobs_is_flagged(ckv: CountingKv) -> None:
    await add_jobs(ckv.inner, "email", 25)
    jobs = await list_jobs_naive(ckv, "email")
    assert len(jobs) == 25
    [finding] = detect_n_plus_one(ckv.trace)
    assert finding.fingerprint == 'get ("jobs", ?)' and finding.count == 25
    assert finding.source.label == 'list ("jobs_by_name", "email", *)'
    assert finding.site == f"{HERE}:{_line_of('# the N+1 read')}" and finding.source.site.startswith(HERE)
    assert finding.waves == 25 and len(finding.reads) == 25
    assert 'N+1: 25 x get ("jobs", ?) at tests/test_nplusone.py:' in str(finding)


async def test_batched_denormalised_and_k_minus_1_are_silent(ckv: CountingKv) -> None:
    await add_jobs(ckv.inner, "email", 25)
    await add_jobs(ckv.inner, "sms", 2)
    await add_jobs(ckv, "report", 5, denormalised=True)
    assert len(await list_jobs_batched(ckv, "email")) == 25
    assert [e.value["name"] for e in await ckv.list(prefix=("jobs_by_name", "report")).collect()] == ["report"] * 5
    assert len(await list_jobs_naive(ckv, "sms")) == 2
    assert detect_n_plus_one(ckv.trace) == []
    assert len(detect_n_plus_one(ckv.trace, k=2)) == 1  # the two sms gets, once k allows it


async def test_exactly_k_reads_are_flagged(ckv: CountingKv) -> None:
    await add_jobs(ckv.inner, "email", 3)
    await list_jobs_naive(ckv, "email")
    assert [f.count for f in detect_n_plus_one(ckv.trace, k=3)] == [3]
    assert detect_n_plus_one(ckv.trace, k=4) == []


async def test_gets_whose_keys_did_not_come_from_a_read_are_not_flagged(ckv: CountingKv) -> None:
    ids = await add_jobs(ckv.inner, "email", 5)
    await ckv.list(prefix=("jobs_by_name", "email")).collect()
    for _ in range(5):
        await ckv.get(("config", "retries"))  # a constant key: repeated, but fed by nothing
    for i in range(5):
        await ckv.get(("jobs", str(uuid.UUID(int=1000 + i))))  # ids made up locally
    assert detect_n_plus_one(ckv.trace) == []
    assert ids


async def test_concurrent_follow_up_reads_are_still_n_plus_one_in_one_wave(ckv: CountingKv) -> None:
    await add_jobs(ckv.inner, "email", 12)
    entries = await ckv.list(prefix=("jobs_by_name", "email")).collect()
    await asyncio.gather(*(ckv.get(("jobs", e.value)) for e in entries))
    [finding] = detect_n_plus_one(ckv.trace)
    assert (finding.count, finding.waves) == (12, 1)


async def test_a_get_of_an_id_array_is_a_source_too(ckv: CountingKv) -> None:
    ids = await add_jobs(ckv.inner, "email", 4)
    await ckv.inner.set(("recent",), {"ids": ids})
    recent = (await ckv.get(("recent",))).value
    for job_id in recent["ids"]:
        await ckv.get(("jobs", job_id))
    [finding] = detect_n_plus_one(ckv.trace)
    assert finding.source.label == 'get ("recent",)' and finding.count == 4


async def test_each_read_is_credited_to_the_latest_source_that_fed_it(ckv: CountingKv) -> None:
    await add_jobs(ckv.inner, "a", 3)
    await list_jobs_naive(ckv, "a")
    await list_jobs_naive(ckv, "a")
    findings = detect_n_plus_one(ckv.trace)
    assert [(f.source.index, f.count) for f in findings] == [(0, 3), (4, 3)]


@pytest.mark.parametrize("k", [1, 0, True, 2.5])
def test_k_must_be_at_least_two(k: Any) -> None:
    with pytest.raises(ValueError, match="k must be an int >= 2"):
        detect_n_plus_one([], k=k)


def _line_of(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line and "_line_of" not in line)
