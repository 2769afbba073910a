"""Our queue against huey's SqliteHuey on SQLite: time per job to add and to run, alternated in one run, pinned.

    python -m tools.huey_vs [--jobs 2000] [--rounds 3] [--cpu N|none]      (needs the extra: pip install -e '.[huey]')

Each round times, in a rotating order, huey and every layout of ours on a fresh SQLite file: ``add`` (N jobs one at
a time: huey's task call, our ``Queue.add``) and ``run`` (huey: ``dequeue`` + ``execute`` until empty, as its
consumer does; ours: one Worker at concurrency 1 and at 8 until idle). Handlers do nothing, so the queue's own cost
is what is timed. The process (and with it the SQLite threads) is pinned to one CPU, and every round measures every
contender, so machine load falls on all of them alike (tools/harness.py); the ratios are ours / huey's within a
round, median over rounds with its 95% interval.
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
from typing import Any

from queue_impls.jobs import LAYOUTS, Queue, Worker
from queue_impls.jobs.model import Job, JobStatus, new_job_id
from queue_impls.kv import open_kv
from tools.harness import add_cpu_option, banner, format_ratio, grid, median_interval, pin, ratios, rotation

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
    """The floor under any queue on this store: add = one set() per job of the record ``Queue.add`` would write
    (one one-mutation commit through the SQLite backend: a job must be written at least once); run = one set()
    per job of its completed record (its outcome must be written at least once; finding and claiming it, which
    every queue must also do, are left out, so the floor errs low)."""
    record = _record(0)
    done = {**record, "status": "completed", "attempts": 1, "completed_at": record["created_at"]}
    async with await open_kv(f"sqlite:{path}") as kv:
        start = time.perf_counter()
        for i in range(jobs):
            await kv.set(("floor", i), {**record, "data": i})
        added = time.perf_counter()
        for i in range(jobs):
            await kv.set(("floor", i), {**done, "data": i})
        end = time.perf_counter()
    return (added - start) / jobs, (end - added) / jobs


def _record(data: int) -> dict[str, Any]:
    """The record our add() writes for a job of this benchmark (name "noop", ``data`` its number)."""
    now = time.time()
    return Job(new_job_id(), "noop", data, JobStatus.PENDING, 0, 3, now, now).to_value()


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
            for name in rotation(contenders, r):
                path = Path(tmp) / f"{name.replace('/', '-')}-{r}.db"
                if name.startswith("huey"):
                    times[name].append(time_huey(path, jobs, synchronous_normal=name == "huey"))
                elif name == "floor":
                    times[name].append(asyncio.run(time_floor(path, jobs)))
                else:
                    layout, c = name.split("/c")
                    times[name].append(asyncio.run(time_ours(path, layout, int(c), jobs)))
    return times


def report(times: dict[str, list[tuple[float, float]]], jobs: int, rounds: int) -> str:
    huey = times["huey"]
    lines = [
        f"{jobs} jobs, {rounds} rounds; per job (median over rounds); ratio = ours / huey per round, median [95% interval]",
        "huey: SqliteHuey with synchronous=NORMAL as ours; huey-default-fsync: its default (SQLite's FULL);",
        "floor: our store alone, add = one set() of the job's record, run = one set() of its outcome (see time_floor)",
        "",
    ]
    rows = []
    for name, values in times.items():
        add = statistics.median(v[0] for v in values)
        run_ = statistics.median(v[1] for v in values)
        add_ratio = median_interval(ratios([v[0] for v in values], [h[0] for h in huey]))
        run_ratio = median_interval(ratios([v[1] for v in values], [h[1] for h in huey]))
        rows.append(
            [name, f"{add * 1e6:.0f} us", f"{run_ * 1e6:.0f} us", format_ratio(add_ratio), format_ratio(run_ratio)]
        )
    lines += grid(["contender", "add", "run", "add / huey", "run / huey"], rows)
    return "\n".join([*lines, "", *goals(times)]) + "\n"


def goals(times: dict[str, list[tuple[float, float]]]) -> list[str]:
    """The worker path's two goals, judged on the medians: every layout at most 1.0x huey to add and to run, and a
    job's run at concurrency 8 never slower than at 1 (c8 / c1 within each round, median [95% interval])."""
    huey = times["huey"]
    lines = []
    for name, values in times.items():
        if "/c" not in name:
            continue
        for phase, i in (("add", 0), ("run", 1)):
            ratio = median_interval(ratios([v[i] for v in values], [h[i] for h in huey]))
            met = "   met" if ratio.median <= 1.0 else "MISSED"
            lines.append(f"[{met}] {name} {phase} at most 1.0x huey: {format_ratio(ratio)}")
    for layout in dict.fromkeys(name.split("/c")[0] for name in times if "/c" in name):
        c1, c8 = times.get(f"{layout}/c1"), times.get(f"{layout}/c8")
        if c1 and c8:
            ratio = median_interval(ratios([v[1] for v in c8], [v[1] for v in c1]))
            met = "   met" if ratio.median <= 1.0 else "MISSED"
            lines.append(f"[{met}] {layout} run at concurrency 8 not slower than at 1: c8 / c1 {format_ratio(ratio)}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time add and run per job: our layouts vs huey's SqliteHuey.")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per contender and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each times every contender")
    add_cpu_option(parser)
    args = parser.parse_args(argv)
    where = pin(args.cpu)  # before any store opens: its database thread inherits it
    sys.stdout.write(banner("every contender once per round, the order rotated", where) + "\n")
    times = run(args.jobs, args.rounds)
    sys.stdout.write(report(times, args.jobs, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
