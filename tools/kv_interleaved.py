"""kv_micro's interleaved mode: every comparison measured A,B,A,B... in one process, so drift cancels.

``python -m tools.kv_micro --interleaved [--blocks 30] [--block-calls N | --block-ms 40] [--cpu N|none] [--stores ...]``

Sequential pyperf benchmarks time one store, then the next: on a shared machine the comparison columns then compare
the machine's phases as much as the stores. Here, for each comparison (``COMPARISONS``) and op, both stores are open
(seeded identically, untimed), warmed up, then timed in alternating blocks of the same number of calls, the order
rotated every round (A,B then B,A). Each block's mean per call is one value; a comparison's value per round is the
ratio (or difference) of its two adjacent blocks. The report gives the min and median of those per-round values, the
A and B medians, and the targets computed from the medians. No pyperf workers: one process, one event loop.
An op that times itself elsewhere (``SelfTimed``: the Deno in-process script) is one block per request, and its block
time is the seconds the script reports (excluding the pipe), so the bridge overhead interleaves like the rest.
Each comparison opens its own two stores (closed after it), and the run is pinned to one CPU unless ``--cpu none``:
unpinned on this 2-core VM, a store's database thread ran 40 us or 150 us per get hop for seconds at a time depending
on where the scheduler put it, which no interleaving cancels. Pinned, both sides pay the same one-core hop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools import kv_micro
from tools.kv_micro import OPS, STORES, Comparison, Op, OpSet, SelfTimed, Store, Workload


@dataclass
class Pair:
    """One comparison on one op: the per-block seconds per call of each side, in round order."""

    comparison: Comparison
    op: str
    calls: int
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)

    def values(self) -> list[float]:
        return [self.comparison.of(a, b) for a, b in zip(self.a, self.b, strict=True)]


async def block(fn: Op | SelfTimed, calls: int) -> float:
    """Seconds per call over ``calls`` calls of ``fn`` (a self-timed op reports its own seconds)."""
    if isinstance(fn, SelfTimed):
        return await fn.run(calls) / calls
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls


async def rotating_blocks(
    ops: Mapping[str, Op | SelfTimed], calls: Mapping[str, int], rounds: int
) -> dict[str, list[float]]:
    """Seconds per call of each op in each round: one block of ``calls[name]`` calls per op, the order rotated by one
    every round (kv_bounds and counting_variants time more than two ops side by side this way)."""
    times: dict[str, list[float]] = {name: [] for name in ops}
    names = list(ops)
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(await block(ops[name], calls[name]))
    return times


async def calibrate(fns: Sequence[Op | SelfTimed], block_seconds: float) -> int:
    """Calls per block so that a block of the slower side (median of 3 short tries) lasts about ``block_seconds``."""
    per_call = 0.0
    for fn in fns:
        await block(fn, 5)
        per_call = max(per_call, statistics.median([await block(fn, 10) for _ in range(3)]))
    return max(1, round(block_seconds / per_call))


async def measure(pair: Pair, fa: Op | SelfTimed, fb: Op | SelfTimed, blocks: int) -> Pair:
    """Alternate blocks A,B / B,A for ``blocks`` rounds."""
    await block(fa, max(1, pair.calls // 4))
    await block(fb, max(1, pair.calls // 4))
    for round_ in range(blocks):
        if round_ % 2 == 0:
            pair.a.append(await block(fa, pair.calls))
            pair.b.append(await block(fb, pair.calls))
        else:
            pair.b.append(await block(fb, pair.calls))
            pair.a.append(await block(fa, pair.calls))
    return pair


@dataclass(frozen=True)
class Settings:
    blocks: int = 30
    block_calls: int | None = None
    block_seconds: float = 0.04
    entries: int = 10_000
    #: The one CPU the process (its aiosqlite threads, its Deno subprocesses) is pinned to, or None for no pinning.
    cpu: int | None = None


def chosen_comparisons(stores: Sequence[str] | None) -> tuple[list[Comparison], list[str]]:
    """Comparisons whose two stores are chosen and available here, and one message per one that is skipped."""
    known = set(STORES)
    for name in stores or ():
        if name not in known:
            raise SystemExit(f"unknown store {name!r}: choose from {', '.join(STORES)}")
    wanted = set(stores or STORES)
    comparisons, skipped = [], []
    for comparison in kv_micro.COMPARISONS:
        if comparison.a not in wanted or comparison.b not in wanted:
            continue
        reasons = [r for r in (STORES[comparison.a].unavailable(), STORES[comparison.b].unavailable()) if r]
        if reasons:
            skipped.append(f"skipping {comparison.label}: {reasons[0]}")
        else:
            comparisons.append(comparison)
    return comparisons, skipped


async def open_stores(
    stack: contextlib.AsyncExitStack, names: Sequence[str], tmp: Path, workload: Workload
) -> dict[str, OpSet]:
    """Open (and seed) each store once, each in its own directory, and check that every op does its work."""
    opened: dict[str, OpSet] = {}
    for name in names:
        store: Store = STORES[name]
        (tmp / str(len(opened))).mkdir()
        opened[name] = await stack.enter_async_context(store.open(tmp / str(len(opened)), workload))
        for op, fn in opened[name].items():
            if not isinstance(fn, SelfTimed):
                kv_micro._check(name, op, await fn(), workload.expected_rows(op))
    return opened


async def run_pairs(comparisons: Sequence[Comparison], ops: Sequence[str], settings: Settings) -> list[Pair]:
    """Each comparison on its own two freshly opened stores (closed after), so one process holds two at a time."""
    workload = Workload(entries=settings.entries)
    pairs = []
    for comparison in comparisons:
        with tempfile.TemporaryDirectory(prefix="kv_interleaved-") as tmp:
            async with contextlib.AsyncExitStack() as stack:
                opened = await open_stores(stack, [comparison.a, comparison.b], Path(tmp), workload)
                for op in ops:
                    fa, fb = opened[comparison.a].get(op), opened[comparison.b].get(op)
                    if fa is None or fb is None:
                        continue
                    gc.collect()
                    calls = settings.block_calls or await calibrate([fa, fb], settings.block_seconds)
                    pairs.append(await measure(Pair(comparison, op, calls), fa, fb, settings.blocks))
    return pairs


# ------------------------------------------------------------------------------------------------------ report


def store_medians(pairs: Sequence[Pair]) -> dict[tuple[str, str], float]:
    """(store, op) -> median seconds per call over every block of that store in the run."""
    blocks: dict[tuple[str, str], list[float]] = {}
    for pair in pairs:
        blocks.setdefault((pair.comparison.a, pair.op), []).extend(pair.a)
        blocks.setdefault((pair.comparison.b, pair.op), []).extend(pair.b)
    return {key: statistics.median(values) for key, values in blocks.items()}


def format_report(pairs: Sequence[Pair], settings: Settings) -> str:
    header = ["comparison", "op", "a median us", "b median us", "min", "median", "calls/block"]
    rows = []
    for pair in pairs:
        c, values = pair.comparison, pair.values()
        rows.append(
            [
                f"{c.label} ({c.a} vs {c.b})",
                pair.op,
                f"{statistics.median(pair.a) * 1e6:.1f}",
                f"{statistics.median(pair.b) * 1e6:.1f}",
                c.format(min(values)),
                c.format(statistics.median(values)),
                str(pair.calls),
            ]
        )
    title = (
        f"Interleaved A/B in one process, {settings.blocks} rounds of one block each side (order rotated every round),"
        f" {settings.entries} entries, {'unpinned' if settings.cpu is None else f'pinned to CPU {settings.cpu}'};"
        " min and median of the per-round values (ratio a/b, or delta a-b in us), medians of a's and b's blocks:"
    )
    lines = [title, "", *kv_micro._grid(header, rows)]
    return "\n".join(lines + kv_micro.target_lines(lambda column, op: interleaved_value(pairs, column, op)))


def interleaved_value(pairs: Sequence[Pair], column: str, op: str) -> float | None:
    """A comparison's median per-round value, or a store's median us, for ``op``; None when not measured."""
    for pair in pairs:
        if pair.comparison.label == column and pair.op == op:
            return statistics.median(pair.values())
    seconds = store_medians(pairs).get((column, op))
    return None if seconds is None else seconds * 1e6


# -------------------------------------------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.kv_micro", description=__doc__.split("\n")[0])
    parser.add_argument("--interleaved", action="store_true", required=True)
    parser.add_argument("--blocks", type=int, default=30, help="rounds of A,B blocks per comparison and op")
    parser.add_argument("--block-calls", type=int, default=None, help="calls per block (default: calibrated)")
    parser.add_argument("--block-ms", type=float, default=40.0, help="calibrated block length, ms (default 40)")
    parser.add_argument("--entries", type=int, default=10_000, help="entries seeded per store (default 10000)")
    parser.add_argument(
        "--cpu",
        default=str(max(os.sched_getaffinity(0))),
        help="pin the run to this CPU, or 'none' (default: the last CPU): unpinned, where the scheduler puts each"
        " store's database thread changes its hop cost by 2-3x for seconds at a time, per thread",
    )
    parser.add_argument("--stores", type=kv_micro._csv, default=None, help=f"subset of: {', '.join(STORES)}")
    parser.add_argument("--ops", type=kv_micro._csv, default=None, help=f"subset of: {', '.join(OPS)}")
    args = parser.parse_args(list(argv))
    for name, value in (("--blocks", args.blocks), ("--block-calls", args.block_calls or 1)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    for op in args.ops or ():
        if op not in OPS:
            parser.error(f"unknown op {op!r}: choose from {', '.join(OPS)}")
    return args


def main(argv: Sequence[str]) -> None:
    args = parse(argv)
    cpu = None if args.cpu == "none" else int(args.cpu)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})  # before any thread or subprocess starts: they inherit it
    settings = Settings(args.blocks, args.block_calls, args.block_ms / 1000, args.entries, cpu)
    comparisons, skipped = chosen_comparisons(args.stores)
    for message in skipped:
        print(message)
    if not comparisons:
        raise SystemExit("no comparison has both of its stores among the chosen, available stores")
    ops = [op for op in OPS if not args.ops or op in args.ops]
    pairs = asyncio.run(run_pairs(comparisons, ops, settings))
    print(format_report(pairs, settings))
