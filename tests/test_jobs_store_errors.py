# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""A store that fails a commit (BackendError: on Deno, "database is locked" when processes share a file) fails no
job: an add is committed again, an outcome is written again or left to its lease, the reaper sweeps again, a started
worker goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from queue_impls.jobs import FakeClock, Job, JobStatus, Queue, Worker, check_integrity
from queue_impls.jobs import queue as queue_module
from queue_impls.jobs import worker as worker_module
from queue_impls.kv import BackendError, DenoBridgeError, Kv

from .jobs_support import clock, kv_factory, layout, queue  # noqa: F401


class Locked:
    """Makes the store's next ``n`` commits (and next ``reads`` reads) raise BackendError, as Deno's "database is
    locked" does."""

    def __init__(self, kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = self.reads = 0
        real_write, real_read = kv._atomic_write, kv._snapshot_read

        async def write(checks: Sequence[Any], mutations: Sequence[Any]) -> str | None:
            if self.n > 0:
                self.n -= 1
                raise BackendError("Deno KV raised TypeError: database is locked")
            return await real_write(checks, mutations)

        async def read(ranges: Sequence[Any], consistency: Any) -> Any:
            if self.reads > 0:
                self.reads -= 1
                raise BackendError("Deno KV raised TypeError: database is locked")
            return await real_read(ranges, consistency)

        monkeypatch.setattr(kv, "_atomic_write", write)
        monkeypatch.setattr(kv, "_snapshot_read", read)


@pytest.fixture
def locked(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> Locked:
    monkeypatch.setattr(worker_module, "OUTCOME_RETRY_PAUSES", (0.0, 0.0, 0.0))
    monkeypatch.setattr(worker_module, "POLL_RETRY_PAUSES", (0.0, 0.0, 0.0, 0.0))
    monkeypatch.setattr(queue_module, "ADD_RETRY_PAUSES", (0.0, 0.0, 0.0))
    return Locked(queue.kv, monkeypatch)


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_an_outcome_the_store_fails_to_write_is_written_again(
    queue: Queue, locked: Locked, concurrency: int
) -> None:
    """The group's commit and the outcome's own commit fail: before, the job that completed was dead-lettered."""
    ids = [await queue.add("a", i) for i in range(concurrency)]

    async def handler(job: Job) -> None:
        if job.data == concurrency - 1:
            locked.n = 2

    worker = Worker(queue, {"a": handler}, concurrency=concurrency, batch_size=concurrency)
    assert await worker.run_until_idle() == concurrency
    jobs = [await queue.get_job(i) for i in ids]
    assert [(j.status, j.attempts) for j in jobs if j is not None] == [(JobStatus.COMPLETED, 1)] * concurrency
    assert (worker.dead_lettered, worker.lost) == (0, 0)
    assert await queue.list_dead_letters() == []
    assert await check_integrity(queue.kv, queue.layout) == []


async def test_a_store_that_keeps_failing_leaves_the_job_to_its_lease(
    queue: Queue, locked: Locked, clock: FakeClock
) -> None:
    job_id = await queue.add("a", None, max_attempts=2, backoff={"base": 0.0})

    async def handler(job: Job) -> None:
        locked.n = 100 if job.attempts == 1 else 0

    worker = Worker(queue, {"a": handler}, lease=5.0)
    assert await worker.run_until_idle() == 0
    assert worker.lost == 1 and worker.dead_lettered == 0
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.RUNNING
    locked.n = 0
    await clock.advance(10.0)
    assert await Worker(queue, {"a": handler}).run_until_idle() == 1
    job = await queue.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == (JobStatus.COMPLETED, 2)
    assert "expired" in str(job.errors)


async def test_the_reaper_sweeps_again_after_a_store_error(queue: Queue, locked: Locked, clock: FakeClock) -> None:
    """Before, the job whose lease expired was dead-lettered for the store's error."""
    job_id = await queue.add("a", None)
    await queue.claim("dead-worker", lease=5.0)
    await clock.advance(10.0)
    locked.n = 1
    with pytest.raises(BackendError):
        await queue.reap_expired()
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.RUNNING
    assert await queue.reap_expired() == 1
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.PENDING and "expired" in str(job.error)
    assert await queue.list_dead_letters() == []


async def test_a_started_worker_goes_on_after_a_store_error(queue: Queue, locked: Locked, clock: FakeClock) -> None:
    """Before, the poll loop ended at the error and the worker never claimed again."""
    job_id = await queue.add("a", None)
    done = asyncio.Event()
    worker = Worker(queue, {"a": lambda job: done.set()}, poll_interval=1.0)
    locked.n = 1  # the claim
    await worker.start()
    for _ in range(200):
        if done.is_set():
            break
        await asyncio.sleep(0.005)
        await clock.advance(0.5)
    await worker.stop()
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.COMPLETED


async def test_an_outcome_is_written_when_the_read_for_the_next_claim_fails(queue: Queue, locked: Locked) -> None:
    """Before, the outcome was dropped (the job left to its lease) and run_until_idle raised the read's error."""
    ids = [await queue.add("a", i) for i in range(2)]

    async def handler(job: Job) -> None:
        if job.data == 0:
            locked.reads = 1

    worker = Worker(queue, {"a": handler}, concurrency=1)
    assert await worker.run_until_idle() == 2
    assert [j.status for j in [await queue.get_job(i) for i in ids] if j is not None] == [JobStatus.COMPLETED] * 2


async def test_run_until_idle_polls_again_after_a_store_error(queue: Queue, locked: Locked) -> None:
    """Before, the claim's error ended run_until_idle."""
    job_id = await queue.add("a", None)
    locked.n = 2  # the claim, and the claim again
    assert await Worker(queue, {"a": lambda job: None}).run_until_idle() == 1
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.COMPLETED


async def test_run_until_idle_raises_a_lasting_store_error_once_its_jobs_have_ended(
    queue: Queue, locked: Locked
) -> None:
    """Before, it raised with the slow job still running: its outcome was never written and it would run again."""
    slow, fast = await queue.add("a", "slow"), await queue.add("a", "fast")

    async def handler(job: Job) -> None:
        if job.data == "fast":
            locked.reads = 10_000  # every poll from now on fails
        else:
            await asyncio.sleep(0.05)

    with pytest.raises(BackendError):
        await Worker(queue, {"a": handler}, concurrency=2).run_until_idle()
    locked.reads = 0
    jobs = [await queue.get_job(i) for i in (slow, fast)]
    assert [j.status for j in jobs if j is not None] == [JobStatus.COMPLETED] * 2


async def test_a_renewal_the_store_fails_is_tried_again_at_once(
    queue: Queue, locked: Locked, clock: FakeClock, layout: str
) -> None:
    """Three renewals in a row fail: before, each was tried again only a third of the lease later, so the lease
    expired under the running handler, another worker reaped the job and its outcome was lost."""
    job_id = await queue.add("a", None)

    async def handler(job: Job) -> None:
        locked.n = 3
        for _ in range(7):  # 3.5 s of a 3 s lease
            await clock.advance(0.5)
            await asyncio.sleep(0.002)  # renewals reach the store (a thread, a subprocess)
        await Queue(queue.kv, layout, clock).reap_expired()  # another worker's sweep

    worker = Worker(queue, {"a": handler}, lease=3.0)
    assert await worker.run_until_idle() == 1
    job = await queue.get_job(job_id)
    assert worker.lost == 0 and job is not None and (job.status, job.attempts) == (JobStatus.COMPLETED, 1)


async def test_an_add_the_store_fails_is_committed_again(queue: Queue, locked: Locked) -> None:
    locked.n = 3  # the first commit and two of the three tries again: the last lands
    job_id = await queue.add("a", 1)
    job = await queue.get_job(job_id)
    assert job is not None and job.status is JobStatus.PENDING
    assert (await queue.stats())["pending"] == 1
    assert await check_integrity(queue.kv, queue.layout) == []


async def test_an_add_the_store_keeps_failing_raises_its_error_and_writes_nothing(queue: Queue, locked: Locked) -> None:
    locked.n = 4  # the first commit and all three tries again
    with pytest.raises(BackendError, match="database is locked"):
        await queue.add("a", 1)
    assert locked.n == 0
    assert (await queue.stats())["pending"] == 0
    assert await queue.list_jobs() == []
    assert await check_integrity(queue.kv, queue.layout) == []


async def test_an_add_that_landed_although_the_store_failed_is_not_written_twice(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store wrote the job, then failed to say so (a reply lost with its process): the try again finds the record
    there, under the add's new id, and the job is added once."""
    monkeypatch.setattr(queue_module, "ADD_RETRY_PAUSES", (0.0, 0.0, 0.0))
    kv = queue.kv
    real_write = kv._atomic_write
    lost = [1]

    async def write(checks: Sequence[Any], mutations: Sequence[Any]) -> str | None:
        stamp = await real_write(checks, mutations)
        if lost[0]:
            lost[0] -= 1
            raise BackendError("the store's reply was lost")
        return stamp

    monkeypatch.setattr(kv, "_atomic_write", write)
    job_id = await queue.add("a", 1)
    assert lost == [0] and [job.id for job in await queue.list_jobs()] == [job_id]
    assert (await queue.stats())["pending"] == 1
    assert await check_integrity(queue.kv, queue.layout) == []


async def test_an_add_on_a_store_gone_for_good_is_not_tried_again(
    queue: Queue, locked: Locked, monkeypatch: pytest.MonkeyPatch
) -> None:
    kv = queue.kv
    calls = []

    async def dead(checks: Sequence[Any], mutations: Sequence[Any]) -> str | None:
        calls.append(1)
        raise DenoBridgeError("the deno subprocess died")

    monkeypatch.setattr(kv, "_atomic_write", dead)
    with pytest.raises(DenoBridgeError):
        await queue.add("a", 1)
    assert calls == [1]
