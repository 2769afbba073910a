"""What an idle worker costs and how fast it wakes: KV reads per idle worker per minute, and add-to-handler latency.

    python -m tools.worker_idle [--minutes 10] [--jobs 200] [--backend sqlite|memory]

Reads are exact (CountingKv, a fake clock moved a minute at a time); the latency is wall-clock time from the call
to ``add`` to the handler starting, with the worker started and idle in the same process (the store's own
change signal wakes it; another process's add is seen within the SQLite watch's 50 ms look-again).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from queue_impls.jobs import Queue, Worker
from queue_impls.jobs.clock import FakeClock
from queue_impls.jobs.model import Job
from queue_impls.kv import Kv, open_kv
from queue_impls.meter import CountingKv
from tools.harness import load


async def _open(backend: str, directory: Path) -> Kv:
    return await open_kv(f"sqlite:{directory / 'idle.db'}" if backend == "sqlite" else "memory:")


async def idle_reads_per_minute(backend: str, minutes: int, directory: Path) -> tuple[float, float]:
    """(reads, entries read) per minute of an idle started worker, after its start-up reads."""
    kv = CountingKv(await _open(backend, directory))
    clock = FakeClock()
    queue = Queue(kv, "indexed", clock)

    async def handler(job: Job) -> None:
        return None

    worker = Worker(queue, {"email": handler})
    try:
        await worker.start()
        await clock.wait_for_sleepers()
        async with kv.measure() as m:
            for _ in range(minutes):
                await clock.advance(60.0)
                await clock.wait_for_sleepers()
        return m.counts.round_trips / minutes, m.counts.entries_read / minutes
    finally:
        await worker.stop()
        await kv.close()


async def add_to_handler_ms(backend: str, jobs: int, directory: Path) -> list[float]:
    """Milliseconds from add() to the handler starting, one job at a time, the worker idle in between."""
    kv = await _open(backend, directory)
    queue = Queue(kv, "indexed")
    started: asyncio.Queue[float] = asyncio.Queue()

    async def handler(job: Job) -> None:
        started.put_nowait(time.perf_counter())

    worker = Worker(queue, {"email": handler})
    latencies = []
    try:
        await worker.start()
        await asyncio.sleep(0.05)
        for i in range(jobs):
            before = time.perf_counter()
            await queue.add("email", i)
            latencies.append((await asyncio.wait_for(started.get(), 10.0) - before) * 1000)
            await asyncio.sleep(0.005)  # let the worker finish the job and go idle again
    finally:
        await worker.stop()
        await kv.close()
    return latencies


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="KV reads of an idle worker and its add-to-handler latency.")
    parser.add_argument("--minutes", type=int, default=10, help="idle minutes to count (fake clock)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs to time from add to handler")
    parser.add_argument("--backend", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args(argv)
    started = load()
    with tempfile.TemporaryDirectory() as tmp:
        reads, entries = asyncio.run(idle_reads_per_minute(args.backend, args.minutes, Path(tmp)))
        ms = asyncio.run(add_to_handler_ms(args.backend, args.jobs, Path(tmp)))
    quantiles = statistics.quantiles(ms, n=20)
    sys.stdout.write(
        f"backend {args.backend}, layout indexed; {started} at the start\n"
        f"idle worker: {reads:.2f} KV reads per minute ({entries:.2f} entries), over {args.minutes} idle minutes\n"
        f"add -> handler start: median {statistics.median(ms):.2f} ms, p95 {quantiles[18]:.2f} ms, "
        f"max {max(ms):.2f} ms over {len(ms)} jobs\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
