"""Concurrency across processes: 2,000 jobs, 8 workers in 2 processes on one SQLite file.

Every job runs exactly once (so never twice at once), none is lost, and the store is consistent afterwards.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections import Counter
from pathlib import Path

import pytest

from queue_impls.jobs import JobStatus, Queue, check_integrity
from queue_impls.kv import open_kv

from .jobs_support import run_worker_process

JOBS = 2000
PROCESSES = 2
WORKERS_PER_PROCESS = 4
LAYOUT = "indexed"  # the most mutations per commit: the heaviest contention


async def add_jobs(db: Path) -> list[str]:
    async with await open_kv(f"sqlite:{db}") as kv:
        q = Queue(kv, LAYOUT)
        return [await q.add("job", {"n": n}, priority=n % 3) for n in range(JOBS)]


async def final_state(db: Path) -> tuple[dict[str, int], list[int], list[object]]:
    async with await open_kv(f"sqlite:{db}") as kv:
        q = Queue(kv, LAYOUT)
        jobs = await q.list_jobs(limit=JOBS + 1)
        return (
            await q.stats(),
            [j.attempts for j in jobs if j.status == JobStatus.COMPLETED],
            await check_integrity(kv, LAYOUT),
        )


@pytest.mark.slow
def test_two_processes_run_every_job_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "queue.db"
    ids = asyncio.run(add_jobs(db))
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    outs = [tmp_path / f"runs-{i}.jsonl" for i in range(PROCESSES)]
    procs = [
        ctx.Process(target=run_worker_process, args=(str(db), LAYOUT, WORKERS_PER_PROCESS, 2, barrier, str(out)))
        for out in outs
    ]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join(timeout=90)
            assert proc.exitcode == 0, f"worker process exited with {proc.exitcode}"
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    elapsed = time.perf_counter() - started
    lines = [json.loads(line) for out in outs for line in out.read_text().splitlines()]
    runs = [line for line in lines if "id" in line]
    assert sum(line["lost"] for line in lines if "lost" in line) == 0
    runs_per_job = Counter(run["id"] for run in runs)
    assert set(runs_per_job) == set(ids), "every job ran, none unknown"
    assert set(runs_per_job.values()) == {1}, "no job ran twice"
    per_process = Counter(run["pid"] for run in runs)
    assert len(per_process) == PROCESSES, f"both processes took jobs: {per_process}"
    stats, attempts, problems = asyncio.run(final_state(db))
    assert stats == {"pending": 0, "running": 0, "completed": JOBS, "failed": 0}
    assert attempts == [1] * JOBS
    assert problems == []
    print(f"{JOBS} jobs, {PROCESSES} processes x {WORKERS_PER_PROCESS} workers: {elapsed:.1f} s, {dict(per_process)}")
