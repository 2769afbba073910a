# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""The job queue's behaviour, on every layout x backend: adding, reading, ordering, delays, retries, dead letters."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from queue_impls.jobs import (
    Backoff,
    FakeClock,
    Job,
    JobEventType,
    JobNotFoundError,
    JobStateError,
    JobStatus,
    Queue,
    Worker,
    check_integrity,
)
from queue_impls.jobs.claims import read_candidates
from queue_impls.jobs.keys import expiry_key, lease_key
from queue_impls.kv import Kv

from .jobs_support import clock, failing, kv_factory, layout, queue, recorder  # noqa: F401


async def assert_consistent(q: Queue, clock: FakeClock) -> None:
    assert await check_integrity(q.kv, q.layout, now=clock.now()) == []


async def test_add_then_get_job_returns_the_job(queue: Queue, clock: FakeClock) -> None:
    job_id = await queue.add("email", {"to": "a@example.com"}, priority=2, max_attempts=5)
    job = await queue.get_job(job_id)
    assert job is not None
    assert (job.id, job.name, job.data, job.status) == (job_id, "email", {"to": "a@example.com"}, JobStatus.PENDING)
    assert (job.priority, job.attempts, job.max_attempts, job.created_at, job.run_at) == (
        2,
        0,
        5,
        clock.now(),
        clock.now(),
    )
    assert await queue.get_job("no-such-id") is None
    await assert_consistent(queue, clock)


async def test_list_jobs_filters_by_name_and_status_in_creation_order(queue: Queue, clock: FakeClock) -> None:
    ids = [await queue.add("a" if i % 2 else "b", i) for i in range(6)]
    [lease] = await queue.claim("w", ["b"])
    await queue.complete(lease)
    assert [j.id for j in await queue.list_jobs()] == ids
    assert [j.id for j in await queue.list_jobs(name="a")] == ids[1::2]
    assert [j.id for j in await queue.list_jobs(name="b", limit=2, offset=1)] == [ids[2], ids[4]]
    assert [j.id for j in await queue.list_jobs(status="completed")] == [ids[0]]
    assert [j.id for j in await queue.list_jobs(status=JobStatus.PENDING, name="b")] == [ids[2], ids[4]]
    assert await queue.list_jobs(status="failed") == []
    assert await queue.stats() == {"pending": 5, "running": 0, "completed": 1, "failed": 0}


async def test_list_jobs_page_walks_every_job_once(queue: Queue) -> None:
    ids = [await queue.add("a", i) for i in range(7)]
    seen, cursor = [], None
    for _ in range(5):
        page = await queue.list_jobs_page(name="a", limit=3, cursor=cursor)
        seen += [j.id for j in page.jobs]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == ids


async def test_claims_take_higher_priority_first_then_oldest(queue: Queue) -> None:
    low = await queue.add("a", priority=0)
    high1 = await queue.add("a", priority=5)
    mid = await queue.add("a", priority=1)
    high2 = await queue.add("a", priority=5)
    order = []
    for _ in range(4):
        [lease] = await queue.claim("w")
        order.append(lease.job.id)
    assert order == [high1, high2, mid, low]
    assert await queue.claim("w") == []


async def test_delayed_job_never_starts_early_and_starts_when_due(queue: Queue, clock: FakeClock) -> None:
    """A started worker sleeps until the next delayed job is due (it read the due time), not poll by poll."""
    seen, handler = recorder()
    job_id = await queue.add("a", delay=10.0)
    worker = Worker(queue, {"a": handler}, poll_interval=1.0)
    await worker.start()
    try:
        await clock.wait_for_sleepers()  # first poll done, asleep until the job is due
        await clock.advance(9.999)
        await clock.wait_for_sleepers()
        assert seen == []
        assert (await queue.get_job(job_id)).status == JobStatus.PENDING  # type: ignore[union-attr]
        await clock.advance(0.001)  # due now: the worker wakes, promotes and runs it
        await clock.wait_for_sleepers()
    finally:
        await worker.stop()
    assert [j.id for j in seen] == [job_id]
    assert seen[0].started_at is not None and seen[0].started_at - seen[0].created_at == 10.0


async def test_an_idle_worker_learns_of_a_new_delayed_job_and_starts_it_when_due(
    queue: Queue, clock: FakeClock
) -> None:
    seen, handler = recorder()
    worker = Worker(queue, {"a": handler}, poll_interval=1.0, idle_check=60.0)
    await worker.start()
    try:
        await clock.wait_for_sleepers()
        job_id = await queue.add("a", delay=5.0)  # wakes the worker through the version key
        for _ in range(500):  # until it has read the new due time and sleeps again
            await asyncio.sleep(0.01)
            if queue.next_due is not None and queue.next_due < float("inf") and clock.sleepers:
                break
        await clock.advance(4.999)
        await clock.wait_for_sleepers()
        assert seen == []
        await clock.advance(0.001)
        await clock.wait_for_sleepers()
    finally:
        await worker.stop()
    assert [j.id for j in seen] == [job_id]


async def test_an_idle_worker_wakes_on_add_without_polling(queue: Queue, clock: FakeClock) -> None:
    """Time does not move: only the queue-version key (watched) can wake the worker."""
    seen, handler = recorder()
    worker = Worker(queue, {"a": handler}, poll_interval=1.0)
    await worker.start()
    try:
        await clock.wait_for_sleepers()
        job_id = await queue.add("a")
        for _ in range(500):
            if seen:
                break
            await asyncio.sleep(0.01)
    finally:
        await worker.stop()
    assert [j.id for j in seen] == [job_id]


async def test_a_delayed_backlog_does_not_hide_ready_jobs(queue: Queue) -> None:
    for _ in range(30):
        await queue.add("a", delay=60.0, priority=9)
    ready = await queue.add("a")
    [lease] = await queue.claim("w")
    assert lease.job.id == ready


async def test_run_at_is_an_absolute_time(queue: Queue, clock: FakeClock) -> None:
    job_id = await queue.add("a", run_at=clock.now() + 5)
    assert await queue.promote_due() == 0
    await clock.advance(5)
    assert await queue.promote_due() == 1
    [lease] = await queue.claim("w")
    assert lease.job.id == job_id


async def test_two_claims_of_one_job_at_once_only_one_wins(queue: Queue) -> None:
    job_id = await queue.add("a")
    results = await asyncio.gather(queue.claim("w1"), queue.claim("w2"))
    winners = [lease for claimed in results for lease in claimed]
    assert [lease.job.id for lease in winners] == [job_id]
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.RUNNING and job.attempts == 1


async def test_jobs_of_two_names_claimed_in_one_commit_each_get_their_own_lease_and_expiry(queue: Queue) -> None:
    """A claim commit serialises each name's lease and expiry values once for all its jobs: every job's lease
    still names its own job's name, the worker and the lease's end, and its expiry entry holds its name."""
    ids = {await queue.add(name): name for name in ("a", "b", "a", "b", "a")}
    leases = await queue.claim("w9", lease=20.0, max_jobs=5)
    assert sorted(lease.job.id for lease in leases) == sorted(ids)
    assert len({lease.lease_versionstamp for lease in leases}) == 1  # one commit
    for lease in leases:
        name = ids[lease.job.id]
        entry = await queue.kv.get(lease_key(lease.job.id))
        assert entry.value == {"worker": "w9", "until_ms": lease.until_ms, "name": name}
        assert (await queue.kv.get(expiry_key(lease.until_ms, lease.job.id))).value == name


async def test_expired_lease_goes_back_to_pending_and_the_old_worker_is_fenced(queue: Queue, clock: FakeClock) -> None:
    job_id = await queue.add("a", backoff=Backoff(jitter="none", base=0.0))
    [stale] = await queue.claim("w1", lease=10.0)
    await clock.advance(9.0)
    assert await queue.reap_expired() == 0
    await clock.advance(1.0)
    problems = await check_integrity(queue.kv, queue.layout, now=clock.now())
    assert [p.kind for p in problems] == ["expired_lease"]
    assert await queue.reap_expired() == 1
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.PENDING
    assert job.errors[-1]["error"] == "lease of worker w1 expired"
    [fresh] = await queue.claim("w2")
    with pytest.raises(Exception, match="lost its lease"):
        await queue.complete(stale)
    with pytest.raises(Exception, match="lost its lease"):
        await queue.renew(stale)
    await queue.complete(fresh)
    job = await queue.get_job(job_id)
    assert job is not None and (job.status, job.worker, job.attempts) == (JobStatus.COMPLETED, "w2", 2)
    await assert_consistent(queue, clock)


async def test_jobs_of_one_worker_are_each_renewed_on_its_one_timer(queue: Queue, clock: FakeClock) -> None:
    """Three jobs share the worker's renewal timer: each renewed every lease/3 while it runs, one ending early does
    not stop the others' renewals, and none leaves a timer behind once all have ended."""
    releases = {i: asyncio.Event() for i in range(3)}

    async def slow(job: Job) -> None:
        await releases[job.data].wait()

    ids = [await queue.add("a", i) for i in range(3)]
    worker = Worker(queue, {"a": slow}, lease=3.0, concurrency=3)
    run = asyncio.create_task(worker.run_until_idle())
    await clock.wait_for_sleepers()  # the handlers run, the renewal timer sleeps
    assert clock.sleepers == 1
    for second in range(8):  # 8 s of a 3 s lease: renewed every second
        if second == 3:
            releases[0].set()  # one ends between two renewals: the others are renewed all the same
            for _ in range(20):
                await asyncio.sleep(0)
        await clock.advance(1.0)
        await clock.wait_for_sleepers()
        assert await queue.reap_expired() == 0
    releases[1].set()
    releases[2].set()
    assert await run == 3
    assert clock.sleepers == 0
    assert [(await queue.get_job(i)).status for i in ids] == [JobStatus.COMPLETED] * 3  # type: ignore[union-attr]
    await assert_consistent(queue, clock)


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_jobs_run_back_to_back_share_one_renewal_timer_and_leave_none(
    queue: Queue, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    """Each job's successor is claimed by its outcome commit: the renewal timer stays armed across them (not cancelled
    and armed again per job), and none is left once the worker is idle."""
    armed = 0
    real_call_later = clock.call_later

    def counting_call_later(seconds: float, callback: Any) -> Any:
        nonlocal armed
        armed += 1
        return real_call_later(seconds, callback)

    monkeypatch.setattr(clock, "call_later", counting_call_later)
    for i in range(12):
        await queue.add("a", i)
    assert await Worker(queue, {"a": lambda job: None}, concurrency=concurrency).run_until_idle() == 12
    assert armed == 1
    assert clock.sleepers == 0
    await assert_consistent(queue, clock)


async def test_lease_is_renewed_while_the_handler_runs(queue: Queue, clock: FakeClock) -> None:
    release = asyncio.Event()

    async def slow(job: object) -> None:
        await release.wait()

    job_id = await queue.add("a")
    worker = Worker(queue, {"a": slow}, lease=3.0)
    run = asyncio.create_task(worker.run_until_idle())
    await clock.wait_for_sleepers()  # the renewer sleeps: the handler is running
    for _ in range(10):  # 10 s of a 3 s lease: renewed every second
        await clock.advance(1.0)
        await clock.wait_for_sleepers()
        assert await queue.reap_expired() == 0
    release.set()
    assert await run == 1
    job = await queue.get_job(job_id)
    assert job is not None and (job.status, job.attempts) == (JobStatus.COMPLETED, 1)
    await assert_consistent(queue, clock)


async def test_failures_back_off_then_dead_letter_then_retry_redrives(queue: Queue, clock: FakeClock) -> None:
    backoff = Backoff(base=2.0, factor=3.0, cap=10.0, jitter="none")
    job_id = await queue.add("a", max_attempts=3, backoff=backoff)
    worker = Worker(queue, {"a": failing("bad input")})
    delays = []
    for _ in range(3):
        await clock.advance(100.0)
        assert await worker.run_until_idle() == 1
        job = await queue.get_job(job_id)
        assert job is not None
        delays.append(round(job.run_at - clock.now(), 6))
    assert delays[:2] == [2.0, 6.0]  # min(cap, base * factor ** (attempt - 1)); the third attempt is the last
    assert job.status == JobStatus.FAILED and job.attempts == 3
    [dead] = await queue.list_dead_letters()
    assert dead.id == job_id and [e["error"] for e in dead.errors] == ["RuntimeError: bad input"] * 3
    assert [e["attempt"] for e in dead.errors] == [1, 2, 3]
    await queue.retry(job_id)
    job = await queue.get_job(job_id)
    assert job is not None and (job.status, job.attempts, job.error) == (JobStatus.PENDING, 0, None)
    assert await queue.list_dead_letters() == []
    with pytest.raises(JobStateError):
        await queue.retry(job_id)
    with pytest.raises(JobNotFoundError):
        await queue.retry("missing")
    await assert_consistent(queue, clock)


async def test_default_backoff_is_full_jitter_under_the_exponential_ceiling(kv: Kv, clock: FakeClock) -> None:
    q = Queue(kv, "indexed", clock, rng=random.Random(99))
    job_id = await q.add("a", max_attempts=5)
    expected = random.Random(99)
    for attempt in (1, 2, 3):
        [lease] = await q.claim("w")
        job = await q.fail(lease, "x")
        ceiling = Backoff().ceiling(attempt)
        assert job.run_at - clock.now() == pytest.approx(expected.uniform(0, ceiling))
        await clock.advance(ceiling + 1)
        await q.promote_due()
    assert (await q.get_job(job_id)).attempts == 3  # type: ignore[union-attr]


async def test_delete_removes_a_job_in_every_status(queue: Queue, clock: FakeClock) -> None:
    pending = await queue.add("a")
    delayed = await queue.add("a", delay=50)
    running = await queue.add("a")
    failed = await queue.add("a", max_attempts=1)
    [f] = await queue.claim("w")
    await queue.fail(f, "x")
    [r] = await queue.claim("w")
    assert {pending, running} == {r.job.id, pending} or r.job.id == running
    for job_id in (pending, delayed, running, failed):
        assert await queue.delete(job_id) is True
        assert await queue.get_job(job_id) is None
    assert await queue.delete(pending) is False
    with pytest.raises(Exception, match="lost its lease"):
        await queue.complete(r)
    assert await queue.list_jobs() == [] and await queue.list_dead_letters() == []
    assert await queue.stats() == dict.fromkeys(("pending", "running", "completed", "failed"), 0)
    await assert_consistent(queue, clock)


async def test_worker_runs_at_most_concurrency_jobs_at_once(queue: Queue) -> None:
    running, peak = 0, 0

    async def handler(job: object) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        running -= 1

    for i in range(10):
        await queue.add("a", i)
    assert await Worker(queue, {"a": handler}, concurrency=3).run_until_idle() == 10
    assert peak == 3


async def test_name_limit_holds_across_workers(queue: Queue, clock: FakeClock) -> None:
    running: dict[str, int] = {"x": 0, "y": 0}
    peak: dict[str, int] = {"x": 0, "y": 0}

    async def handler(job: object) -> None:
        name = job.name  # type: ignore[attr-defined]
        running[name] += 1
        peak[name] = max(peak[name], running[name])
        for _ in range(3):
            await asyncio.sleep(0)
        running[name] -= 1

    await queue.set_concurrency("x", 1)
    for i in range(6):
        await queue.add("x" if i % 2 else "y", i)
    workers = [Worker(queue, {"x": handler, "y": handler}, concurrency=3) for _ in range(2)]
    done = await asyncio.gather(*(w.run_until_idle() for w in workers))
    assert sum(done) == 6
    assert peak["x"] == 1 and peak["y"] >= 2
    await queue.set_concurrency("x", None)
    await assert_consistent(queue, clock)


async def test_a_worker_claims_only_names_it_has_handlers_for(queue: Queue) -> None:
    seen, handler = recorder()
    other = await queue.add("other")
    mine = await queue.add("mine")
    assert await Worker(queue, {"mine": handler}).run_until_idle() == 1
    assert [j.id for j in seen] == [mine]
    assert (await queue.get_job(other)).status == JobStatus.PENDING  # type: ignore[union-attr]


async def test_event_hook_sees_every_transition(kv: Kv, clock: FakeClock) -> None:
    events: list[tuple[str, str | None]] = []
    q = Queue(kv, "optimized", clock, on_event=lambda e: events.append((e.type.value, e.error)))
    await q.add("a", max_attempts=2, backoff={"base": 0.0, "jitter": "none"})
    worker = Worker(q, {"a": failing("no")})
    await worker.run_until_idle()
    await worker.run_until_idle()
    assert events == [
        ("added", None),
        ("started", None),
        ("retrying", "RuntimeError: no"),
        ("started", None),
        ("failed", "RuntimeError: no"),
    ]
    _, ok = recorder()
    await q.add("b")
    await Worker(q, {"b": ok}).run_until_idle()
    assert [e for e, _ in events[-3:]] == [JobEventType.ADDED, JobEventType.STARTED, JobEventType.COMPLETED]


async def test_a_broken_event_hook_does_not_undo_the_change(kv: Kv, clock: FakeClock) -> None:
    def hook(event: object) -> None:
        raise RuntimeError("listener down")

    q = Queue(kv, "naive", clock, on_event=hook)
    job_id = await q.add("a")
    assert (await q.get_job(job_id)) is not None


async def test_a_claim_reads_past_a_head_of_other_names(queue: Queue) -> None:
    for i in range(45):  # more than the first page (20) and the first two pages of a scan
        await queue.add("other", i)
    mine = await queue.add("mine")
    [lease] = await queue.claim("w", ["mine"])
    assert lease.job.id == mine


async def test_optimized_listing_drops_a_malformed_index_entry_as_the_seed_does(kv: Kv, clock: FakeClock) -> None:
    q = Queue(kv, "optimized", clock)
    first = await q.add("a", 1)
    await kv.set(("jobs_by_name", "a", "0-broken"), "not a job")
    second = await q.add("a", 2)
    assert [j.id for j in await q.list_jobs(name="a")] == [first, second]
    assert (await kv.get(("jobs_by_name", "a", "0-broken"))).value is None
    await assert_consistent(q, clock)


async def test_stop_lets_running_jobs_finish(queue: Queue, clock: FakeClock) -> None:
    release = asyncio.Event()
    done: list[str] = []

    async def handler(job: Job) -> None:
        await release.wait()
        done.append(job.id)

    job_id = await queue.add("a")
    worker = Worker(queue, {"a": handler})
    await worker.start()
    await clock.wait_for_sleepers()  # the handler runs, its lease renewer sleeps
    stopping = asyncio.create_task(worker.stop())
    await asyncio.sleep(0.01)
    assert not stopping.done()
    release.set()
    await stopping
    assert done == [job_id]
    assert (await queue.get_job(job_id)).status == JobStatus.COMPLETED  # type: ignore[union-attr]


async def test_an_expired_last_attempt_is_dead_lettered(queue: Queue, clock: FakeClock) -> None:
    job_id = await queue.add("a", max_attempts=1)
    await queue.claim("crashed", lease=5.0)
    await clock.advance(5.0)
    assert await queue.reap_expired() == 1
    [dead] = await queue.list_dead_letters()
    assert (dead.id, dead.status, dead.error) == (job_id, JobStatus.FAILED, "lease of worker crashed expired")
    assert await queue.stats() == {"pending": 0, "running": 0, "completed": 0, "failed": 1}
    await assert_consistent(queue, clock)


async def test_a_finish_and_claim_of_the_same_name_leaves_out_the_counter_sums_that_cancel(
    kv: Kv, layout: str, clock: FakeClock
) -> None:
    # The commit that ends one job and claims the next of its name: running -1 +1 and active -1 +1 net to nothing,
    # so neither counter is written; pending -1 and completed +1 are. A claim of another name keeps both active sums.
    from queue_impls.jobs.keys import active_key, count_key
    from queue_impls.meter import CountingKv

    counting = CountingKv(kv, trace=True)
    q = Queue(counting, layout, clock)
    for name in ("a", "a", "b"):
        await q.add(name, None)
    [held] = await q.claim("w", ["a"])
    sums = {"running": count_key("running"), "active a": active_key("a"), "active b": active_key("b")}

    def commit_keys() -> set[tuple[object, ...]]:
        [commit] = [e for e in counting.trace if e.op == "commit"][-1:]
        return set(commit.keys)

    candidates = await read_candidates(counting, None, 2)
    same = [c for c in candidates if c.job.name == "a"]
    done = await q.finish_and_claim([(held, q.outcome(held, None))], "w", same, ["a"])
    claimed = done.claimed
    assert (len(claimed), done.lost, done.failed) == (1, [], [])
    keys = commit_keys()
    assert sums["running"] not in keys and sums["active a"] not in keys
    assert {count_key("pending"), count_key("completed")} <= keys
    assert await q.stats() == {"pending": 1, "running": 1, "completed": 1, "failed": 0}

    other = [c for c in await read_candidates(counting, None, 2) if c.job.name == "b"]
    claimed_b = (await q.finish_and_claim([(claimed[0], q.outcome(claimed[0], None))], "w", other, ["b"])).claimed
    assert len(claimed_b) == 1 and {sums["active a"], sums["active b"]} <= commit_keys()
    assert await q.stats() == {"pending": 0, "running": 1, "completed": 2, "failed": 0}
    await assert_consistent(q, clock)


async def test_a_limited_name_keeps_its_limit_when_its_counter_sums_cancel(
    kv: Kv, layout: str, clock: FakeClock
) -> None:
    # Limit 2, one job running. A commit that ends it and claims the next (active -1 +1, left out) leaves the counter
    # as it was, so a claim by another worker that decided on that same value still commits, and then the name is
    # full: at most 2 ever run, whoever read the counter when.
    q1, q2, q3 = (Queue(kv, layout, clock) for _ in range(3))
    await q1.set_concurrency("a", 2)
    for _ in range(4):
        await q1.add("a", None)
    [held] = await q1.claim("w1", ["a"])
    for q in (q1, q2, q3):
        await q.limits.refresh(kv, ["a"])  # every worker knows active = 1 (one slot free)
    seen_by_2 = await read_candidates(kv, ["a"], 2)
    seen_by_3 = await read_candidates(kv, ["a"], 2)
    candidates = [c for c in await read_candidates(kv, ["a"], 2) if c.job.id != held.job.id]
    claimed = (await q1.finish_and_claim([(held, q1.outcome(held, None))], "w1", candidates, ["a"])).claimed
    assert len(claimed) == 1
    taken = {claimed[0].job.id}
    got_2 = await q2.claim_from("w2", [c for c in seen_by_2 if c.job.id not in taken], ["a"])
    assert len(got_2) == 1
    taken.add(got_2[0].job.id)
    assert await q3.claim_from("w3", [c for c in seen_by_3 if c.job.id not in taken], ["a"]) == []
    assert (await q1.stats())["running"] == 2
    await assert_consistent(q1, clock)
