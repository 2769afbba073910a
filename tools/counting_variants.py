"""Where the counting wrapper's per-get cost goes: partial wrappers timed against the raw store, side by side.

``python -m tools.counting_variants [sqlite|memory] [--rounds 40] [--calls 500] [--cpu N|none]``

Each variant holds the same seeded store and does more of what ``CountingKv`` does on a get:

- ``pass-through``: a layer whose ``get`` only awaits the store's ``get`` (the least any wrapper costs);
- ``CountingKv``: the real wrapper, untraced (the counters and the serial-round-trip clock);
- ``CountingKv traced``: the real wrapper recording its trace.

Only public APIs: how the wrapper's cost splits between its counters and its clock is not measured here (that
would take a copy of its private hot path); ``python -m tools.get_instructions`` counts each variant's instructions.

The blocks of ``--calls`` gets rotate through the variants every round, in one process (pinned to one CPU unless
``--cpu none``); the report is each variant's median per-round difference from the raw store, in microseconds, of
wall time and of the event loop thread's CPU time (``time.thread_time``: what the wrapper's own work costs there,
without the other thread's and other processes' time).

Last, the cost the wrapper puts on task creation: ``create_task`` + ``await`` of an empty coroutine with the loop's
default factory and with the wrapper's forking factory while one wrapper (whose lane the creating task owns) is
open, in rotating blocks on the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from queue_impls.kv import Key, Kv, KvEntry, open_kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import CountingKv
from tools.harness import (
    Interval,
    Op,
    SelfTimed,
    add_cpu_option,
    banner,
    differences,
    format_us,
    grid,
    median_interval,
    pin,
    rotating_blocks,
)
from tools.kv_stores import Workload, seed


class PassThrough:
    """A layer that forwards ``get`` to the store it holds and does nothing else."""

    def __init__(self, inner: Kv) -> None:
        self.inner = inner

    async def get(self, key: Key) -> KvEntry:
        return await self.inner.get(key)


#: Each variant around a store, in report order: its ``get`` is what is timed.
VARIANTS: dict[str, Callable[[Kv], PassThrough | Kv]] = {
    "pass-through": PassThrough,
    "CountingKv": lambda kv: CountingKv(kv, owns_inner=False),
    "CountingKv traced": lambda kv: CountingKv(kv, trace=True, owns_inner=False),
}


def _added(seconds: dict[str, list[float]]) -> dict[str, Interval]:
    """Microseconds: "raw" the raw store's per-round values, each variant its per-round difference from raw."""
    raw = seconds["raw"]
    out = {"raw": median_interval([r * 1e6 for r in raw])}
    for name, values in seconds.items():
        if name != "raw":
            out[name] = median_interval([d * 1e6 for d in differences(values, raw)])
    return out


async def measure(url: str, rounds: int, calls: int) -> tuple[dict[str, Interval], dict[str, Interval]]:
    """(wall, loop-thread CPU), each as ``_added`` gives them."""
    workload = Workload(entries=10_000)
    async with await open_kv(url) as kv:
        await seed(kv, workload)
        key = workload.hot_key
        gets: dict[str, Op] = {"raw": functools.partial(kv.get, key)}
        gets.update({name: functools.partial(make(kv).get, key) for name, make in VARIANTS.items()})
        times = await rotating_blocks(gets, calls, rounds)
    return _added(times.wall), _added(times.cpu)


async def _nothing() -> None:
    pass


async def task_creation(rounds: int, calls: int) -> tuple[float, float]:
    """Median microseconds per create_task + await: (the default factory, the forking factory with one wrapper)."""
    ckv = CountingKv(MemoryKv())
    await ckv.set(("a",), 1)  # this task owns a lane now, and the loop has the wrapper's factory
    loop = asyncio.get_running_loop()
    forking = loop.get_task_factory()

    async def spawn(factory: Any, calls: int) -> float:
        loop.set_task_factory(factory)
        start = time.perf_counter()
        for _ in range(calls):
            await asyncio.create_task(_nothing())
        return time.perf_counter() - start

    ops = {"default": SelfTimed(lambda n: spawn(None, n)), "forking": SelfTimed(lambda n: spawn(forking, n))}
    try:
        times = await rotating_blocks(ops, calls, rounds)
    finally:
        loop.set_task_factory(forking)
        await ckv.close()
    return statistics.median(times.wall["default"]) * 1e6, statistics.median(times.wall["forking"]) * 1e6


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.counting_variants", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("store", nargs="?", default="sqlite", choices=("sqlite", "memory"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=500, help="gets per block")
    add_cpu_option(parser)
    args = parser.parse_args(list(argv))
    if args.rounds < 1 or args.calls < 1:
        parser.error(f"--rounds and --calls must be at least 1, got {args.rounds} and {args.calls}")
    where = pin(args.cpu)
    print(banner(f"{args.rounds} rounds of rotating blocks of {args.calls} gets, one per variant", where))
    with tempfile.TemporaryDirectory(prefix="counting_variants-") as tmp:
        url = f"sqlite:{tmp}/kv.db" if args.store == "sqlite" else "memory:"
        wall, cpu = asyncio.run(measure(url, args.rounds, args.calls))
    raw = wall["raw"].median
    print(f"{args.store} get, raw store {raw:.1f} us wall, {cpu['raw'].median:.1f} us loop-thread CPU;")
    print("added per get (median of per-round differences, with its 95% interval), wall and loop-thread CPU:")
    rows = [
        [name, format_us(wall[name], scale=1), f"{wall[name].median / raw:+.1%}", format_us(cpu[name], scale=1)]
        for name in VARIANTS
    ]
    print("\n".join(grid(["variant", "wall", "of raw", "loop-thread CPU"], rows)))
    default, forking = asyncio.run(task_creation(args.rounds, 2000))
    print(f"create_task + await: {default:.2f} us, {forking:.2f} us with the forking factory and one open wrapper")


if __name__ == "__main__":
    main(sys.argv[1:])
