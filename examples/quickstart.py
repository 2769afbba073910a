"""The README's worked example: the seed's listing before and after the fix, counted; then a worker runs the jobs.

Run from the repository: ``.venv/bin/python examples/quickstart.py``.
"""

import asyncio

from queue_impls.jobs import Job, Queue, Worker
from queue_impls.kv import open_kv
from queue_impls.meter import CountingKv, detect_n_plus_one


async def send_email(job: Job) -> None:
    """A handler: whatever the job's name stands for (here, nothing)."""


async def list_and_run(layout: str) -> None:
    kv = CountingKv(await open_kv("sqlite::memory:"), trace=True)
    queue = Queue(kv, layout=layout)
    for i in range(100):
        await queue.add("email", {"to": f"user{i}@example.com"})
    async with kv.measure() as m:
        jobs = await queue.list_jobs(name="email", limit=100)
    print(f"{layout}: {len(jobs)} jobs in {m.counts.total_calls} KV calls, {m.counts.round_trips} round trips")
    for finding in detect_n_plus_one(m.trace):
        print(f"  {finding}")
    worker = Worker(queue, handlers={"email": send_email}, concurrency=8)
    await worker.run_until_idle()
    print(f"  ran {worker.processed} jobs")
    await kv.close()


async def main() -> None:
    for layout in ("naive", "optimized"):
        await list_and_run(layout)


asyncio.run(main())
