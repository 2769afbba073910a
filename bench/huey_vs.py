"""Our queue against huey's SqliteHuey on SQLite: time per job to add and to run, alternated in one run, pinned.

    python -m bench.huey_vs [--jobs 2000] [--rounds 3] [--cpu 1]      (needs the extra: pip install -e '.[huey]')

Each round times, in a rotating order, huey and every layout of ours on a fresh SQLite file: ``add`` (N jobs one at
a time: huey's task call, our ``Queue.add``) and ``run`` (huey: ``dequeue`` + ``execute`` until empty, as its
consumer does; ours: one Worker at concurrency 1 and at 8 until idle). Handlers do nothing, so the queue's own cost
is what is timed. The process (and with it the SQLite threads) is pinned to one CPU, and every round measures every
contender, so machine load falls on all of them alike; the ratios are ours / huey's within a round, median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from queue_impls.jobs import LAYOUTS, Queue, Worker
from queue_impls.jobs.model import Job
from queue_impls.kv import open_kv

from .run.affinity import pin

#: (layout, concurrency) contenders of ours; huey runs with one consumer thread's loop (dequeue + execute).
CONCURRENCIES = (1, 8)


def time_huey(path: Path, jobs: int, *, synchronous_normal: bool = True) -> tuple[float, float]:
    """Seconds per job to add and to run with SqliteHuey. Ours runs WAL with synchronous=NORMAL (no fsync per
    commit); huey's default leaves SQLite's FULL (an fsync per commit), so by default huey gets NORMAL too."""
    try:
        from huey import SqliteHuey  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit("huey is not installed: pip install -e '.[huey]' (a bench-only extra)") from None
    huey = SqliteHuey(filename=str(path))
    if synchronous_normal:
        huey.storage.conn.execute("pragma synchronous=1")  # the connection of this thread, the one we use

    @huey.task()  # type: ignore[untyped-decorator,misc,unused-ignore]
    def noop(i: int) -> None:
        return None

    start = time.perf_counter()
    for i in range(jobs):
        noop(i)
    added = time.perf_counter()
    ran = 0
    while (task := huey.dequeue()) is not None:
        huey.execute(task)
        ran += 1
    end = time.perf_counter()
    if ran != jobs:
        raise SystemExit(f"huey ran {ran} jobs, expected {jobs}")
    return (added - start) / jobs, (end - added) / jobs


async def time_ours(path: Path, layout: str, concurrency: int, jobs: int) -> tuple[float, float]:
    """Seconds per job to add and to run with our queue on SQLite."""

    async def noop(job: Job) -> None:
        return None

    async with await open_kv(f"sqlite:{path}") as kv:
        queue = Queue(kv, layout)
        start = time.perf_counter()
        for i in range(jobs):
            await queue.add("noop", i)
        added = time.perf_counter()
        done = await Worker(queue, {"noop": noop}, concurrency=concurrency).run_until_idle()
        end = time.perf_counter()
    if done != jobs:
        raise SystemExit(f"{layout} ran {done} jobs, expected {jobs}")
    return (added - start) / jobs, (end - added) / jobs


async def time_floor(path: Path, jobs: int) -> tuple[float, float]:
    """The floor under our add: one set() per job (a one-mutation commit through the SQLite backend, about the
    job's size); and under a run: one get_many (a read) plus one set() per job, the least a claim and a completion
    could cost as separate round trips on this store."""
    value = {"i": 0, "pad": "x" * 400}
    async with await open_kv(f"sqlite:{path}") as kv:
        start = time.perf_counter()
        for i in range(jobs):
            await kv.set(("floor", i), value)
        added = time.perf_counter()
        for i in range(jobs):
            await kv.get_many([("floor", i)])
            await kv.set(("floor", i), value)
        end = time.perf_counter()
    return (added - start) / jobs, (end - added) / jobs


def run(jobs: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    contenders = [
        "huey",
        "huey-default-fsync",
        "floor",
        *(f"{layout}/c{c}" for layout in LAYOUTS for c in CONCURRENCIES),
    ]
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = contenders[r % len(contenders) :] + contenders[: r % len(contenders)]
            for name in order:
                path = Path(tmp) / f"{name.replace('/', '-')}-{r}.db"
                if name.startswith("huey"):
                    times[name].append(time_huey(path, jobs, synchronous_normal=name == "huey"))
                elif name == "floor":
                    times[name].append(asyncio.run(time_floor(path, jobs)))
                else:
                    layout, c = name.split("/c")
                    times[name].append(asyncio.run(time_ours(path, layout, int(c), jobs)))
    return times


def report(times: dict[str, list[tuple[float, float]]], jobs: int, rounds: int, cpu: str) -> str:
    huey = times["huey"]
    lines = [
        f"{jobs} jobs, {rounds} rounds alternated, pinned to CPU {cpu}; per job (median over rounds), ratio = ours / huey",
        "huey: SqliteHuey with synchronous=NORMAL as ours; huey-default-fsync: its default (SQLite's FULL);",
        "floor: our store alone, add = one set() per job, run = one get_many + one set() per job (see time_floor)",
        "",
        "| contender | add | run | add / huey | run / huey |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, values in times.items():
        add = statistics.median(v[0] for v in values)
        run_ = statistics.median(v[1] for v in values)
        add_ratio = statistics.median(v[0] / h[0] for v, h in zip(values, huey, strict=True))
        run_ratio = statistics.median(v[1] / h[1] for v, h in zip(values, huey, strict=True))
        lines.append(f"| {name} | {add * 1e6:.0f} us | {run_ * 1e6:.0f} us | {add_ratio:.2f}x | {run_ratio:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time add and run per job: our layouts vs huey's SqliteHuey.")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per contender and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each times every contender")
    parser.add_argument("--cpu", default="1", help="pin to these CPUs (pyperf syntax), before any store opens")
    args = parser.parse_args(argv)
    pin(args.cpu)
    times = run(args.jobs, args.rounds)
    sys.stdout.write(report(times, args.jobs, args.rounds, args.cpu))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
