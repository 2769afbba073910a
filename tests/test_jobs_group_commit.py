# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""Group commit, on every layout x backend: outcomes ready together are written in one commit that claims as many
next jobs; concurrency 1 pays nothing for it; a lost lease or a taken candidate costs only its own outcome's
commit; a group over Deno's commit limits is split."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from queue_impls.jobs import FakeClock, Job, JobStatus, Lease, Queue, Worker
from queue_impls.jobs.claims import read_candidates
from queue_impls.jobs.queue import FINISH_SHARE
from queue_impls.kv import Kv, ValueTooLargeError
from queue_impls.kv.limits import MAX_CHECKS
from queue_impls.meter import CountingKv

from .jobs_support import clock, kv_factory, layout, queue  # noqa: F401


@pytest.fixture
async def counted(kv: Kv, layout: str, clock: FakeClock) -> AsyncIterator[tuple[CountingKv, Queue]]:
    ckv = CountingKv(kv)
    yield ckv, Queue(ckv, layout, clock)


async def noop(job: Job) -> None:
    return None


async def statuses(q: Queue, ids: list[str]) -> list[JobStatus]:
    return [job.status for job in [await q.get_job(i) for i in ids] if job is not None]


async def test_jobs_ending_together_share_one_commit(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    ids = [await q.add("a", i) for i in range(64)]
    worker = Worker(q, {"a": noop}, concurrency=8)
    async with ckv.measure() as m:
        assert await worker.run_until_idle() == 64
    # One commit per 8 outcomes (each claiming the next 8) and the first claim: 9; one per job was 65.
    assert m.counts.calls["commit"] == 9
    assert await statuses(q, ids) == [JobStatus.COMPLETED] * 64


async def test_concurrency_1_commits_at_once_as_before(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    for i in range(64):
        await q.add("a", i)
    async with ckv.measure() as m:
        assert await Worker(q, {"a": noop}, concurrency=1).run_until_idle() == 64
    # One commit per job (outcome + next claim) and the first claim; a list per 3 jobs, the sweeps: as before.
    assert (m.counts.calls["commit"], m.counts.round_trips) == (65, 88)


@pytest.mark.parametrize("jobs", [1, 2])
async def test_a_group_waits_one_loop_pass_only_while_other_jobs_run(
    counted: tuple[CountingKv, Queue], jobs: int
) -> None:
    _, q = counted
    loop = asyncio.get_running_loop()
    one_pass, release = asyncio.Event(), asyncio.Event()
    passed_before_write: list[bool] = []

    async def handler(job: Job) -> None:
        if job.data == 1:  # the second job runs on while the first one's outcome is written
            await release.wait()
            return
        loop.call_soon(one_pass.set)  # runs once the loop has made one more pass

    worker = Worker(q, {"a": handler}, concurrency=2)
    record = worker._record

    async def spy(outcomes: list[tuple[Lease, Job]]) -> None:
        passed_before_write.append(one_pass.is_set())
        release.set()
        await record(outcomes)

    worker._record = spy  # type: ignore[method-assign]
    for i in range(jobs):
        await q.add("a", i)
    assert await worker.run_until_idle() == jobs
    # Alone, the first job's outcome is written at once; with another job running, after one loop pass for it.
    assert passed_before_write[0] is (jobs == 2)


async def test_a_lost_lease_in_a_group_loses_only_its_own_outcome(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    ids = [await q.add("a", i) for i in range(8)]
    gate, waiting = asyncio.Event(), []

    async def held(job: Job) -> None:
        waiting.append(job.id)
        await gate.wait()

    worker = Worker(q, {"a": held}, concurrency=8)
    run = asyncio.create_task(worker.run_until_idle())
    while len(waiting) < 8:
        await asyncio.sleep(0)
    assert await q.delete(ids[3])  # its worker is fenced: its outcome can never be written
    async with ckv.measure() as m:
        gate.set()  # all eight end in the same turn: one group
        assert await run == 7
    assert (worker.processed, worker.lost) == (7, 1)
    assert await statuses(q, ids[:3] + ids[4:]) == [JobStatus.COMPLETED] * 7
    assert await q.get_job(ids[3]) is None
    # The group's commit, the outcomes alone in one, then each on its own (the lost one among them).
    assert m.counts.calls["commit"] == 2 + 8
    assert await q.stats() == {"pending": 0, "running": 0, "completed": 7, "failed": 0}


async def test_nothing_to_finish_and_nothing_to_claim_makes_no_commit(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    await q.add("b", 1)
    candidates = await read_candidates(q.kv, None, 8)
    async with ckv.measure() as m:
        assert await q.finish_and_claim([], "w") == await q.finish_and_claim([], "w", candidates, max_jobs=0)
        done = await q.finish_and_claim([], "w", candidates, ["a"])  # no candidate of the worker's names
    assert (done.claimed, done.lost, done.failed) == ([], [], [])
    assert m.counts.round_trips == 0
    claimed = (await q.finish_and_claim([], "w", candidates, ["b"])).claimed  # a claim alone still commits
    assert [held.job.name for held in claimed] == ["b"]


async def test_a_taken_candidate_costs_one_more_commit_not_one_per_outcome(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    ids = [await q.add("a", i) for i in range(16)]
    leases = await q.claim("w", max_jobs=8)
    candidates = await read_candidates(q.kv, None, 8)
    assert [c.job.id for c in candidates] == ids[8:]
    [taken] = await q.claim("other", max_jobs=1)  # another worker takes the best candidate
    outcomes = [(lease, q.outcome(lease, None)) for lease in leases]
    async with ckv.measure() as m:
        done = await q.finish_and_claim(outcomes, "w", candidates, max_jobs=8)
    assert (done.claimed, done.lost, done.failed) == ([], [], [])
    assert m.counts.calls["commit"] == 2  # the group (failed: a candidate was gone), the outcomes alone
    assert await statuses(q, ids[:8]) == [JobStatus.COMPLETED] * 8
    assert taken.job.id == ids[8]


async def test_an_outcome_too_large_to_write_is_returned_and_the_others_are_written(
    counted: tuple[CountingKv, Queue],
) -> None:
    _, q = counted
    ids = [await q.add("a", i) for i in range(4)]
    leases = await q.claim("w", max_jobs=4)
    edge = leases[2].job.id
    # An outcome past the value limit (add() keeps room for the error history: a job written by another program).
    outcomes = [(lease, q.outcome(lease, None)) for lease in leases]
    outcomes[2] = (leases[2], outcomes[2][1].replace(data="x" * 70_000))
    done = await q.finish_and_claim(outcomes, "w", max_jobs=0)
    [(held, _, exc)] = done.failed
    assert held.job.id == edge and isinstance(exc, ValueTooLargeError)
    assert (done.claimed, done.lost) == ([], [])
    assert await statuses(q, [i for i in ids if i != edge]) == [JobStatus.COMPLETED] * 3
    assert await statuses(q, [edge]) == [JobStatus.RUNNING]  # nothing of it written: the worker dead-letters it


async def test_a_group_over_the_check_limit_is_split(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    n = 2 * FINISH_SHARE
    ids = [await q.add("a", i) for i in range(2 * n)]
    leases = await q.claim("w", max_jobs=n)
    candidates = await read_candidates(q.kv, None, n)
    outcomes = [(lease, q.outcome(lease, None)) for lease in leases]
    async with ckv.measure() as m:
        done = await q.finish_and_claim(outcomes, "w", candidates, max_jobs=n)
    assert 2 * n + n > MAX_CHECKS  # in one commit it would be over Deno's check limit
    assert m.counts.calls["commit"] == 2
    assert sorted(lease.job.id for lease in done.claimed) == ids[n:]
    assert (done.lost, done.failed) == ([], [])
    assert await statuses(q, ids[:n]) == [JobStatus.COMPLETED] * n


async def test_a_group_over_the_size_limit_is_halved_until_it_fits(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    big = "x" * 20_000  # a job's copies (record, ready and index entries) of 20 kB: 20 of them fill 800 kB
    ids = [await q.add("a", big) for i in range(2 * FINISH_SHARE)]
    leases = await q.claim("w", max_jobs=FINISH_SHARE)
    candidates = await read_candidates(q.kv, None, FINISH_SHARE)
    outcomes = [(lease, q.outcome(lease, None)) for lease in leases]
    async with ckv.measure() as m:
        done = await q.finish_and_claim(outcomes, "w", candidates, max_jobs=FINISH_SHARE)
    assert 2 <= m.counts.calls["commit"] < FINISH_SHARE
    assert len(done.claimed) == FINISH_SHARE and (done.lost, done.failed) == ([], [])
    assert await statuses(q, ids[:FINISH_SHARE]) == [JobStatus.COMPLETED] * FINISH_SHARE


async def test_a_wide_worker_runs_every_job_within_the_limits(counted: tuple[CountingKv, Queue]) -> None:
    ckv, q = counted
    ids = [await q.add("a", i) for i in range(120)]
    async with ckv.measure() as m:
        assert await Worker(q, {"a": noop}, concurrency=60).run_until_idle() == 120
    assert m.counts.calls["commit"] <= 12  # each group of 60 in 3 commits of 20, the first claims in 1 or a few
    assert await statuses(q, ids) == [JobStatus.COMPLETED] * 120


async def test_batched_jobs_keep_their_slots_until_their_outcomes_commit(counted: tuple[CountingKv, Queue]) -> None:
    _, q = counted
    running, peak = 0, 0

    async def uneven(job: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(int(job.data) % 4 * 3):
            await asyncio.sleep(0)
        running -= 1

    for i in range(40):
        await q.add("a", i)
    worker = Worker(q, {"a": uneven}, concurrency=4, batch_size=4)
    assert await worker.run_until_idle() == 40
    assert peak <= 4


async def test_a_waiter_cancelled_before_the_write_leaves_the_others_waiting_for_it() -> None:
    from queue_impls.jobs.outcomes import Written

    written = Written()
    first, second = (asyncio.ensure_future(written.wait()) for _ in range(2))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done()
    written.set()
    await asyncio.sleep(0)
    assert second.done() and second.result() is None
    assert (await asyncio.wait_for(written.wait(), 1)) is None  # after the write: at once


async def test_a_batch_keeps_renewing_the_leases_of_its_jobs_that_ended_first(
    kv: Kv, layout: str, clock: FakeClock
) -> None:
    """The fast job's outcome waits for its slow batch-mate, four leases long, while another worker reaps expired
    leases: before, its renewals ended with its handler, so it was reaped, its outcome lost and it ran again."""
    q = Queue(kv, layout, clock)
    fast, slow = await q.add("a", "fast"), await q.add("a", "slow")
    runs: list[str] = []

    async def handler(job: Job) -> None:
        runs.append(job.data)
        if job.data == "slow":
            for _ in range(24):  # 12 s of a 3 s lease, renewed every second
                await clock.advance(0.5)
                await asyncio.sleep(0.002)  # renewals reach the store (a thread, a subprocess)
                await Queue(kv, layout, clock).reap_expired()

    worker = Worker(q, {"a": handler}, concurrency=2, batch_size=2, lease=3.0)
    assert await worker.run_until_idle() == 2
    assert worker.lost == 0 and sorted(runs) == ["fast", "slow"]
    jobs = [await q.get_job(i) for i in (fast, slow)]
    assert [(j.status, j.attempts) for j in jobs if j is not None] == [(JobStatus.COMPLETED, 1)] * 2


async def test_a_job_task_cancelled_before_it_ran_frees_its_slot(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job task frees its slot in its own last step: one cancelled before its first step never runs that step, and
    run_until_idle must not wait for it forever (its job stays claimed, left to its lease)."""
    ids = [await queue.add("a", i) for i in range(3)]
    worker = Worker(queue, {"a": noop}, concurrency=2)
    real_start = worker._start
    cancelled: list[asyncio.Task[None]] = []

    def start_then_cancel_the_first(leases: list[Lease]) -> None:
        before = set(worker._tasks)
        real_start(leases)
        if not cancelled:
            for task in worker._tasks - before:
                task.cancel()
                cancelled.append(task)
                break

    monkeypatch.setattr(worker, "_start", start_then_cancel_the_first)
    assert await asyncio.wait_for(worker.run_until_idle(), 10) == 2
    assert len(cancelled) == 1 and cancelled[0].cancelled() and not worker._tasks
    assert sorted(s.value for s in await statuses(queue, ids)) == ["completed", "completed", "running"]


async def test_an_unexpected_error_in_a_job_task_is_raised_by_run_until_idle_and_stop(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not a handler's error (that fails the attempt): an error of the worker's own writing of the outcome."""
    for i in range(4):
        await queue.add("a", i)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("outcome writer broke")

    worker = Worker(queue, {"a": noop}, concurrency=2)
    monkeypatch.setattr(queue, "finish_and_claim", broken)
    with pytest.raises(RuntimeError, match="outcome writer broke"):
        await asyncio.wait_for(worker.run_until_idle(), 10)
    started = Worker(queue, {"a": noop}, concurrency=2)  # the two jobs left, claimed by a started worker's poll
    await started.start()
    for _ in range(400):
        if started._crash is not None:
            break
        await asyncio.sleep(0.005)
    with pytest.raises(RuntimeError, match="outcome writer broke"):
        await asyncio.wait_for(started.stop(), 10)
