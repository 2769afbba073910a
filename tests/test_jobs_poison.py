# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""One bad job never stops a worker: whatever breaks while handling, failing, backing off or reaping one job is
recorded on that job (in the dead-letter queue), and every healthy job still completes."""

from __future__ import annotations

from typing import Any

import pytest

from queue_impls.jobs import Backoff, FakeClock, Job, JobStatus, Queue, Worker, check_integrity
from queue_impls.jobs.poison import dead_letter

from .jobs_support import clock, kv_factory, layout, queue  # noqa: F401

HEALTHY = 4


def forged_backoff() -> Backoff:
    """A backoff past every limit, as a job written by an older version (or another program) may carry one:
    add() refuses it now, so it is built around the checks."""
    backoff = object.__new__(Backoff)
    for field, value in {"base": 1e308, "factor": 2.0, "cap": 1e308, "jitter": "none"}.items():
        object.__setattr__(backoff, field, value)
    return backoff


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ is broken too")


async def fail_with_backoff(job: Job) -> None:
    raise RuntimeError("the handler failed; the backoff cannot schedule it again")


async def unprintable(job: Job) -> None:
    raise Unprintable


async def huge_int_message(job: Job) -> None:
    raise ValueError(10**5000)  # str() of this exception raises: more than 4300 digits


async def ok(job: Job) -> None:
    return None


POISON: dict[str, tuple[Any, dict[str, Any], str]] = {
    # name: (handler, add() options, what the dead letter's error says)
    "backoff": (fail_with_backoff, {"backoff": forged_backoff(), "max_attempts": 3}, "could not be recorded"),
    "unprintable": (unprintable, {"max_attempts": 1}, "Unprintable: <the exception's message could not be read>"),
    "huge-int": (huge_int_message, {"max_attempts": 1}, "ValueError"),
}


async def assert_only_poison_dead(queue: Queue, poison_ids: dict[str, str], healthy_ids: list[str]) -> None:
    for job_id in healthy_ids:
        job = await queue.get_job(job_id)
        assert job is not None and job.status == JobStatus.COMPLETED, job
    dead = {job.id: job for job in await queue.list_dead_letters()}
    assert set(dead) == set(poison_ids.values())
    for kind, job_id in poison_ids.items():
        job = dead[job_id]
        assert job.status == JobStatus.FAILED and job.error is not None
        assert POISON[kind][2] in job.error, (kind, job.error)


async def test_poison_jobs_end_in_the_dead_letter_queue_and_healthy_jobs_complete(queue: Queue) -> None:
    handlers = {"ok": ok, **{kind: handler for kind, (handler, _, _) in POISON.items()}}
    healthy_ids = [await queue.add("ok", i) for i in range(HEALTHY // 2)]
    poison_ids = {kind: await queue.add(kind, None, **options) for kind, (_, options, _) in POISON.items()}
    healthy_ids += [await queue.add("ok", i) for i in range(HEALTHY // 2)]  # queued behind the poison
    worker = Worker(queue, handlers, concurrency=2)
    await worker.run_until_idle()
    await assert_only_poison_dead(queue, poison_ids, healthy_ids)
    assert worker.dead_lettered == 1  # the backoff one: the others failed the ordinary way, their last attempt
    stats = await queue.stats()
    assert stats == {"pending": 0, "running": 0, "completed": HEALTHY, "failed": len(POISON)}


async def test_the_reaper_dead_letters_a_job_it_cannot_put_back(queue: Queue, clock: FakeClock) -> None:
    """A worker died holding a job whose backoff is past every limit: reaping it cannot schedule it again."""
    poisoned = await queue.add("backoff", None, backoff=forged_backoff(), max_attempts=3)
    [lease] = await queue.claim("dead-worker", lease=5.0)
    assert lease.job.id == poisoned
    healthy_ids = [await queue.add("ok", i) for i in range(HEALTHY)]
    await clock.advance(10.0)
    worker = Worker(queue, {"ok": ok, "backoff": fail_with_backoff})
    await worker.run_until_idle()
    for job_id in healthy_ids:
        job = await queue.get_job(job_id)
        assert job is not None and job.status == JobStatus.COMPLETED
    [dead] = await queue.list_dead_letters()
    assert dead.id == poisoned and dead.error is not None
    assert "lease expired" in dead.error and "could not be scheduled again" in dead.error
    assert (await queue.stats())["running"] == 0


@pytest.mark.parametrize("delay", [0.0, 5.0])
async def test_a_pending_job_dead_lettered_leaves_no_queue_entry_behind(queue: Queue, delay: float) -> None:
    """dead_letter works on any status: a ready job's entry in its name's index went too (it was left, and a worker
    of that name then ran the failed job, the pending count wrapping below zero)."""
    job_id = await queue.add("ok", None, delay=delay)
    assert await dead_letter(queue, job_id, "given up")
    assert await check_integrity(queue.kv, queue.layout) == []
    ran: list[Job] = []
    assert await Worker(queue, {"ok": ran.append}).run_until_idle() == 0
    job = await queue.get_job(job_id)
    assert ran == [] and job is not None and job.status == JobStatus.FAILED
    assert await queue.stats() == {"pending": 0, "running": 0, "completed": 0, "failed": 1}
