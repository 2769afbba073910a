"""Worker processes killed with SIGKILL in the middle of their jobs lose none: once the leases expire every job
completes, none completes twice, no attempt runs twice, and the store is consistent."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path

import pytest

from queue_impls.jobs import JobStatus, Queue, Worker, check_integrity
from queue_impls.kv import open_kv

from .jobs_support import recording_handler, run_killable_worker

LAYOUT = "indexed"
JOBS = 60
SLOW = 2  # jobs that sleep 30 s on their first attempt: claimed first, so a process dies with each of them running
LEASE = 0.5


def runs(path: Path) -> list[list[object]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


async def add_jobs(db: Path) -> list[str]:
    async with await open_kv(f"sqlite:{db}") as kv:
        q = Queue(kv, LAYOUT)
        slow = [await q.add("job", "slow", priority=1, backoff={"base": 0.0}) for _ in range(SLOW)]
        return slow + [await q.add("job", n, backoff={"base": 0.0}) for n in range(JOBS - SLOW)]


async def drain(db: Path, runs_path: Path) -> tuple[dict[str, int], list[object], dict[str, tuple[JobStatus, int]]]:
    async with await open_kv(f"sqlite:{db}") as kv:
        q = Queue(kv, LAYOUT)
        await Worker(q, {"job": recording_handler(str(runs_path))}, concurrency=4).run_until_idle()
        jobs = {job.id: (job.status, job.attempts) for job in await q.list_jobs(limit=JOBS + 1)}
        return await q.stats(), await check_integrity(kv, LAYOUT), jobs


def wait_for(predicate: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
def test_worker_processes_killed_mid_job_lose_nothing(tmp_path: Path) -> None:
    db, runs_path = tmp_path / "queue.db", tmp_path / "runs.jsonl"
    ids = asyncio.run(add_jobs(db))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    args = (str(db), LAYOUT, str(runs_path), LEASE, barrier)
    procs = [ctx.Process(target=run_killable_worker, args=args) for _ in "ab"]
    try:
        for proc in procs:
            proc.start()
        wait_for(lambda: len({r[3] for r in runs(runs_path)}) == 2 and sum(r[0] == "E" for r in runs(runs_path)) >= 6)
        procs[0].kill()  # with jobs running: a slow one, or one of 20 ms
        procs[0].join()
        ended = sum(r[0] == "E" for r in runs(runs_path))
        wait_for(lambda: sum(r[0] == "E" for r in runs(runs_path)) >= ended + 4)  # the other goes on alone
    finally:
        for proc in procs:
            proc.kill()
            proc.join()
    time.sleep(LEASE + 0.1)
    stats, problems, jobs = asyncio.run(drain(db, runs_path))
    assert problems == []
    assert stats == {"pending": 0, "running": 0, "completed": JOBS, "failed": 0}
    assert set(jobs) == set(ids) and {status for status, _ in jobs.values()} == {JobStatus.COMPLETED}
    lines = runs(runs_path)
    starts = Counter((r[1], r[2]) for r in lines if r[0] == "S")
    assert max(starts.values()) == 1, "no attempt was claimed twice"
    ok = {(r[1], r[2]) for r in lines if r[0] == "E"}
    for job_id, (_, attempts) in jobs.items():
        assert (job_id, attempts) in ok, "the completed attempt is one whose handler returned"
        assert all(attempt <= attempts for j, attempt in starts if j == job_id), "nothing ran after it completed"
    assert all(jobs[i][1] >= 2 for i in ids[:SLOW]), "each slow job was killed, then ran again"
