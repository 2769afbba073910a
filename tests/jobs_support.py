"""Fixtures and helpers of the job-queue suites: ``queue`` is every layout on every backend (via ``kv``).

Test modules import the fixtures they use from here (``from .jobs_support import clock, kv_factory, layout, queue``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from queue_impls.jobs import LAYOUTS, FakeClock, Job, Queue
from queue_impls.kv import Kv

from .backends import KvFactory, backend_params

#: The stores the queue suites run on: one of each kind (the KV suites cover the wrappers and in-memory variants).
JOB_BACKENDS = ("memory", "sqlite", "deno-file")


@pytest.fixture(params=[p for p in backend_params() if p.id in JOB_BACKENDS])
def kv_factory(request: pytest.FixtureRequest) -> KvFactory:
    """Overrides tests/conftest.py's kv_factory in the modules that import it, so ``kv`` is one store of each kind."""
    factory: KvFactory = request.param
    return factory


@pytest.fixture(params=LAYOUTS, ids=[f"layout={name}" for name in LAYOUTS])
def layout(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(kv: Kv, layout: str, clock: FakeClock) -> Queue:
    return Queue(kv, layout, clock, rng=random.Random(1234))


def recorder() -> tuple[list[Job], Callable[[Job], Any]]:
    """A handler that records the jobs it ran."""
    seen: list[Job] = []

    async def handler(job: Job) -> None:
        seen.append(job)

    return seen, handler


def failing(message: str = "boom") -> Callable[[Job], Any]:
    async def handler(job: Job) -> None:
        raise RuntimeError(message)

    return handler


def run_worker_process(db_path: str, layout: str, workers: int, concurrency: int, barrier: Any, out_path: str) -> None:
    """A child process of the multi-process test: ``workers`` Workers on one SQLite file, until idle.

    Writes one JSON line per handler run (job id, pid, start, end) and a last line with the workers' lost leases.
    """
    import asyncio
    import json
    import os
    import time

    from queue_impls.jobs import Worker
    from queue_impls.kv import open_kv

    runs: list[dict[str, Any]] = []

    async def handler(job: Job) -> None:
        start = time.time()
        await asyncio.sleep(0)
        runs.append({"id": job.id, "pid": os.getpid(), "start": start, "end": time.time()})

    async def main() -> int:
        async with await open_kv(f"sqlite:{db_path}") as kv:
            q = Queue(kv, layout)
            pool = [
                Worker(q, {"job": handler}, concurrency=concurrency, poll_interval=0.05, worker_id=f"{os.getpid()}-{i}")
                for i in range(workers)
            ]
            barrier.wait(timeout=60)  # both processes start claiming together
            await asyncio.gather(*(w.run_until_idle() for w in pool))
            return sum(w.lost for w in pool)

    lost = asyncio.run(main())
    with open(out_path, "w") as out:
        for run in runs:
            out.write(json.dumps(run) + "\n")
        out.write(json.dumps({"lost": lost}) + "\n")


def record_run(path: str, kind: str, job: Job, outcome: str = "") -> None:
    """One line per handler start ("S") or end ("E", outcome "ok"), written and fsynced before the handler goes on:
    what a process killed a moment later did is on disk."""
    import json
    import os

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps([kind, job.id, job.attempts, os.getpid(), outcome]) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def recording_handler(path: str) -> Callable[[Job], Any]:
    """Records each run (record_run); a job whose data is "slow" sleeps 30 s on its first attempt (a process is
    killed under it), every other run 20 ms."""
    import asyncio

    async def handler(job: Job) -> None:
        record_run(path, "S", job)
        await asyncio.sleep(30.0 if job.data == "slow" and job.attempts == 1 else 0.02)
        record_run(path, "E", job, "ok")

    return handler


def run_killable_worker(db_path: str, layout: str, runs_path: str, lease: float, barrier: Any) -> None:
    """A child process of the kill test: a started Worker (concurrency 3: both slow jobs leave it a slot) on one
    SQLite file, until it is killed."""
    import asyncio

    from queue_impls.jobs import Worker
    from queue_impls.kv import open_kv

    async def main() -> None:
        async with await open_kv(f"sqlite:{db_path}") as kv:
            handlers = {"job": recording_handler(runs_path)}
            worker = Worker(Queue(kv, layout), handlers, concurrency=3, lease=lease, poll_interval=0.05, idle_check=0.2)
            barrier.wait(timeout=60)  # both processes start claiming together
            await worker.start()
            await asyncio.Event().wait()

    asyncio.run(main())
