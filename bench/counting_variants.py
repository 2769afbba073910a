"""Where the counting wrapper's per-get cost goes: partial wrappers timed against the raw store, side by side.

``python -m bench.counting_variants [sqlite|memory] [--rounds 40] [--calls 500] [--cpu N|none]``

Each variant is a ``Kv`` around the same seeded store that does more of what ``CountingKv`` does on a get:

- ``pass-through``: a wrapper whose read primitive only awaits the inner one (the cost of the layer itself);
- ``counters only``: ``CountingKv.get``'s one-frame path with its call, round-trip, entry and byte counters, but no
  serial-round-trip clock (its ``serial_round_trips`` stay 0: a timing probe, nothing else);
- ``CountingKv``: the real wrapper, untraced (the counters and the clock).

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
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.kv_interleaved import rotating_blocks
from bench.kv_micro import Op, SelfTimed, Workload, seed
from queue_impls.kv import Kv, open_kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.kv.codec import Key
from queue_impls.kv.contract import _point_entry, _point_read
from queue_impls.kv.types import Check, Consistency, KvEntry, Mutation, RawEntry, ReadRange
from queue_impls.meter import CountingKv


class PassThrough(Kv):
    """The wrapper layer and nothing else."""

    def __init__(self, inner: Kv) -> None:
        super().__init__()
        self.inner = inner

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        return await self.inner._snapshot_read(ranges, consistency)

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        return await self.inner._atomic_write(checks, mutations)

    async def _close(self) -> None:
        pass


class CountersOnly(CountingKv):
    """CountingKv's get without the serial-round-trip clock (wrong serial counts: for timing only)."""

    async def get(self, key: Key, *, consistency: Consistency = "strong") -> KvEntry:
        key, point = _point_read(key, consistency)
        ranges = [point]
        inner = self.inner
        if inner._closed:
            inner._check_open()
        self._gets += 1
        [rows] = await inner._snapshot_read(ranges, consistency)
        if rows:
            raw = rows[0]
            self._entries += 1
            self._bytes_read += len(raw.key) + raw.size
        return _point_entry(key, rows)


VARIANTS: dict[str, Callable[[Kv], Kv]] = {
    "pass-through": PassThrough,
    "counters only": lambda kv: CountersOnly(kv, owns_inner=False),
    "CountingKv": lambda kv: CountingKv(kv, owns_inner=False),
}


def _timed(get: Op, cpu: list[float]) -> SelfTimed:
    """``get`` as a self-timed op: wall seconds returned, the loop thread's CPU seconds per call appended to ``cpu``."""

    async def run(calls: int) -> float:
        wall, thread = time.perf_counter(), time.thread_time()
        for _ in range(calls):
            await get()
        cpu.append((time.thread_time() - thread) / calls)
        return time.perf_counter() - wall

    return SelfTimed(run)


def _medians(seconds: dict[str, list[float]]) -> dict[str, float]:
    """Microseconds: key "raw" the raw store's median, each variant its median per-round difference from it."""
    times = {name: [s * 1e6 for s in values] for name, values in seconds.items()}
    raw = times.pop("raw")
    out = {"raw": statistics.median(raw)}
    out.update({name: statistics.median([v - r for v, r in zip(vs, raw, strict=True)]) for name, vs in times.items()})
    return out


async def measure(url: str, rounds: int, calls: int) -> tuple[dict[str, float], dict[str, float]]:
    """(wall, loop-thread CPU): each as ``_medians`` gives them."""
    workload = Workload(entries=10_000)
    async with await open_kv(url) as kv:
        await seed(kv, workload)
        key = workload.hot_key
        gets: dict[str, Op] = {"raw": functools.partial(kv.get, key)}
        gets.update({name: functools.partial(make(kv).get, key) for name, make in VARIANTS.items()})
        cpu: dict[str, list[float]] = {name: [] for name in gets}
        ops = {name: _timed(get, cpu[name]) for name, get in gets.items()}
        await rotating_blocks(ops, dict.fromkeys(ops, calls), 1)  # warm up
        cpu = {name: [] for name in gets}
        ops = {name: _timed(get, cpu[name]) for name, get in gets.items()}
        wall = await rotating_blocks(ops, dict.fromkeys(ops, calls), rounds)
    return _medians(wall), _medians(cpu)


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
        times = await rotating_blocks(ops, dict.fromkeys(ops, calls), rounds)
    finally:
        loop.set_task_factory(forking)
        await ckv.close()
    return statistics.median(times["default"]) * 1e6, statistics.median(times["forking"]) * 1e6


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.counting_variants", description=__doc__.split("\n")[0])
    parser.add_argument("store", nargs="?", default="sqlite", choices=("sqlite", "memory"))
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--calls", type=int, default=500, help="gets per block")
    parser.add_argument("--cpu", default=str(max(os.sched_getaffinity(0))), help="pin to this CPU, or 'none'")
    args = parser.parse_args(list(argv))
    if args.rounds < 1 or args.calls < 1:
        parser.error(f"--rounds and --calls must be at least 1, got {args.rounds} and {args.calls}")
    if args.cpu != "none":
        os.sched_setaffinity(0, {int(args.cpu)})
    with tempfile.TemporaryDirectory(prefix="counting_variants-") as tmp:
        url = f"sqlite:{tmp}/kv.db" if args.store == "sqlite" else "memory:"
        wall, cpu = asyncio.run(measure(url, args.rounds, args.calls))
    print(f"{args.store} get, raw store {wall['raw']:.1f} us wall, {cpu['raw']:.1f} us loop-thread CPU;")
    print("added per get (median of per-round differences), wall and loop-thread CPU:")
    for name in VARIANTS:
        print(f"  {name:<14} {wall[name]:+6.2f} us ({wall[name] / wall['raw']:+6.1%})  CPU {cpu[name]:+6.2f} us")
    default, forking = asyncio.run(task_creation(args.rounds, 2000))
    print(f"create_task + await: {default:.2f} us, {forking:.2f} us with the forking factory and one open wrapper")


if __name__ == "__main__":
    main(sys.argv[1:])
