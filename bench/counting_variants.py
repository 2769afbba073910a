"""Where the counting wrapper's per-get cost goes: partial wrappers timed against the raw store, side by side.

``python -m bench.counting_variants [sqlite|memory] [--rounds 40] [--calls 500] [--cpu N|none]``

Each variant is a ``Kv`` around the same seeded store that does one more piece of what ``CountingKv`` does on a read:

- ``pass-through``: a wrapper whose read primitive only awaits the inner one (the cost of the layer itself);
- ``+ context var``: also reads and sets a ContextVar, as the serial-round-trip clock does per round trip;
- ``+ lane check``: also asks whether the current task owns the lane (``counting._is_current``);
- ``counters only``: pass-through plus the round-trip, entry and byte counters, no serial clock;
- ``read path only``: CountingKv's read primitive (serial clock, counters) but the base class's ``get``;
- ``... no var set``: the same with the per-round-trip ``ContextVar.set`` of the clock made only once (its counts
  are wrong: a timing probe, nothing else);
- ``CountingKv``: the real wrapper, untraced.

The blocks of ``--calls`` gets rotate through the variants every round, in one process (pinned to one CPU unless
``--cpu none``); the report is each variant's median per-round difference from the raw store, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from typing import Any

from bench.kv_interleaved import block, rotating_blocks
from bench.kv_micro import Op, Workload, seed
from queue_impls.kv import Kv, open_kv
from queue_impls.kv.counting import CountingKv, _is_current, _Lane
from queue_impls.kv.types import Check, Consistency, Mutation, RawEntry, ReadRange


class PassThrough(Kv):
    """The wrapper layer and nothing else."""

    def __init__(self, inner: Kv) -> None:
        super().__init__()
        self.inner = inner
        self.var: ContextVar[tuple[int, int] | None] = ContextVar(f"variant_{id(self)}", default=None)
        self.lane: _Lane | None = None
        self.seen: object = None

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        return await self.inner._snapshot_read(ranges, consistency)

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        return await self.inner._atomic_write(checks, mutations)

    async def _close(self) -> None:
        pass


class WithContextVar(PassThrough):
    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        self.seen = self.var.get()
        self.var.set((1, 2))
        return await self.inner._snapshot_read(ranges, consistency)


class WithLaneCheck(PassThrough):
    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        if self.lane is None:
            self.lane = _Lane(asyncio.current_task(), None)
        self.seen = _is_current(self.lane)
        return await self.inner._snapshot_read(ranges, consistency)


class CountersOnly(PassThrough):
    def __init__(self, inner: Kv) -> None:
        super().__init__(inner)
        self.round_trips = self.entries = self.bytes = 0

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        self.round_trips += 1
        results = await self.inner._snapshot_read(ranges, consistency)
        for rows in results:
            self.entries += len(rows)
            for raw in rows:
                self.bytes += len(raw.key) + raw.size
        return results


class ReadPathOnly(CountingKv):
    """CountingKv's read primitive (serial clock and counters) without its public get (the per-call count)."""

    get = Kv.get


class _SetOnce:
    """Stands in for CountingKv's lane variable: reads pass through, only the first set is made."""

    def __init__(self, var: ContextVar[Any]) -> None:
        self.var = var
        self.made = False

    def get(self) -> Any:
        return self.var.get()

    def set(self, value: Any) -> None:
        if not self.made:
            self.made = True
            self.var.set(value)


class ClockNotStored(ReadPathOnly):
    """The read path with the per-round-trip ContextVar.set skipped (wrong counts: for timing only)."""

    def __init__(self, inner: Kv) -> None:
        super().__init__(inner, owns_inner=False)
        self._lane_var = _SetOnce(self._lane_var)  # type: ignore[assignment]


VARIANTS: dict[str, Callable[[Kv], Kv]] = {
    "pass-through": PassThrough,
    "+ context var": WithContextVar,
    "+ lane check": WithLaneCheck,
    "counters only": CountersOnly,
    "read path only": lambda kv: ReadPathOnly(kv, owns_inner=False),
    "... no var set": ClockNotStored,
    "CountingKv": lambda kv: CountingKv(kv, owns_inner=False),
}


async def measure(url: str, rounds: int, calls: int) -> dict[str, float]:
    """Median per-round microseconds of each variant minus the raw store (key "raw": the raw store's median)."""
    workload = Workload(entries=10_000)
    async with await open_kv(url) as kv:
        await seed(kv, workload)
        key = workload.hot_key
        gets: dict[str, Op] = {"raw": functools.partial(kv.get, key)}
        gets.update({name: functools.partial(make(kv).get, key) for name, make in VARIANTS.items()})
        for get in gets.values():  # warm up
            await block(get, calls)
        seconds = await rotating_blocks(gets, dict.fromkeys(gets, calls), rounds)
    times = {name: [s * 1e6 for s in values] for name, values in seconds.items()}
    raw = times.pop("raw")
    out = {"raw": statistics.median(raw)}
    out.update(
        {name: statistics.median([v - r for v, r in zip(values, raw, strict=True)]) for name, values in times.items()}
    )
    return out


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
        result = asyncio.run(measure(url, args.rounds, args.calls))
    print(f"{args.store} get, raw store {result.pop('raw'):.1f} us; added per get (median of per-round differences):")
    for name, delta in result.items():
        print(f"  {name:<14} {delta:+6.2f} us")


if __name__ == "__main__":
    main(sys.argv[1:])
