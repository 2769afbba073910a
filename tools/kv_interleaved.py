"""kv_micro's interleaved mode: every comparison measured A,B,A,B... in one process, so drift cancels.

``python -m tools.kv_micro --interleaved [--blocks 30] [--block-calls N | --block-ms 40] [--cpu N|none] [--stores ...]``

Sequential pyperf benchmarks time one store, then the next: on a shared machine the comparison columns then compare
the machine's phases as much as the stores. Here, for each comparison (``COMPARISONS``) and op, both stores are open
(seeded identically, untimed), warmed up, then timed in alternating blocks of the same number of calls, the order
rotated every round (A,B then B,A: tools/harness.py). Each block's mean per call is one value; a comparison's value
per round is the ratio (or difference) of its two adjacent blocks. The report gives the min and median of those
per-round values with the median's 95% interval, the A and B medians, and the targets computed from the medians. No
pyperf workers: one process, one event loop.
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
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tools import kv_stores
from tools.harness import SelfTimed, Timed, add_cpu_option, banner, calibrate, csv, grid, pin, rotating_blocks
from tools.kv_stores import OPS, STORES, Comparison, OpSet, Store, Workload, check, target_lines


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


async def measure(pair: Pair, fa: Timed, fb: Timed, blocks: int) -> Pair:
    """A warm-up block of each side, then ``blocks`` rounds A,B / B,A (the harness's rotating blocks)."""
    rounds = await rotating_blocks({"a": fa, "b": fb}, pair.calls, blocks)
    pair.a.extend(rounds.wall["a"])
    pair.b.extend(rounds.wall["b"])
    return pair


@dataclass(frozen=True)
class Settings:
    blocks: int = 30
    block_calls: int | None = None
    block_seconds: float = 0.04
    entries: int = 10_000
    #: Where the process (its database threads, its Deno subprocesses) runs: "pinned to CPU 1", or "unpinned".
    where: str = "unpinned"


def chosen_comparisons(stores: Sequence[str] | None) -> tuple[list[Comparison], list[str]]:
    """Comparisons whose two stores are chosen and available here, and one message per one that is skipped."""
    known = set(STORES)
    for name in stores or ():
        if name not in known:
            raise SystemExit(f"unknown store {name!r}: choose from {', '.join(STORES)}")
    wanted = set(stores or STORES)
    comparisons, skipped = [], []
    for comparison in kv_stores.COMPARISONS:
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
                check(name, op, await fn(), workload.expected_rows(op))
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
    header = ["comparison", "op", "a median us", "b median us", "min", "median", "95% interval", "calls/block"]
    rows = []
    for pair in pairs:
        c, values = pair.comparison, pair.values()
        interval = c.per_round(pair.a, pair.b)
        rows.append(
            [
                f"{c.label} ({c.a} vs {c.b})",
                pair.op,
                f"{statistics.median(pair.a) * 1e6:.1f}",
                f"{statistics.median(pair.b) * 1e6:.1f}",
                c.format(min(values)),
                c.format(statistics.median(values)),
                f"[{c.format(interval.low)}, {c.format(interval.high)}]",
                str(pair.calls),
            ]
        )
    title = (
        f"Interleaved A/B in one process, {settings.blocks} rounds of one block each side (order rotated every round),"
        f" {settings.entries} entries, {settings.where}; min and median of the per-round values (ratio a/b, or delta"
        " a-b in us) and the median's 95% interval, medians of a's and b's blocks:"
    )
    lines = [title, "", *grid(header, rows)]
    return "\n".join(lines + target_lines(lambda column, op: interleaved_value(pairs, column, op)))


def interleaved_value(pairs: Sequence[Pair], column: str, op: str) -> float | None:
    """A comparison's median per-round value, or a store's median us, for ``op``; None when not measured."""
    for pair in pairs:
        if pair.comparison.label == column and pair.op == op:
            return statistics.median(pair.values())
    seconds = store_medians(pairs).get((column, op))
    return None if seconds is None else seconds * 1e6


# -------------------------------------------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.kv_micro", description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--interleaved", action="store_true", help="(this mode; implied by python -m tools.kv_interleaved)"
    )
    parser.add_argument("--blocks", type=int, default=30, help="rounds of A,B blocks per comparison and op")
    parser.add_argument("--block-calls", type=int, default=None, help="calls per block (default: calibrated)")
    parser.add_argument("--block-ms", type=float, default=40.0, help="calibrated block length, ms (default 40)")
    parser.add_argument("--entries", type=int, default=10_000, help="entries seeded per store (default 10000)")
    add_cpu_option(parser)
    parser.add_argument("--stores", type=csv, default=None, help=f"subset of: {', '.join(STORES)}")
    parser.add_argument("--ops", type=csv, default=None, help=f"subset of: {', '.join(OPS)}")
    args = parser.parse_args(list(argv))
    for name, value in (("--blocks", args.blocks), ("--block-calls", args.block_calls or 1)):
        if value < 1:
            parser.error(f"{name} must be at least 1, got {value}")
    for op in args.ops or ():
        if op not in OPS:
            parser.error(f"unknown op {op!r}: choose from {', '.join(OPS)}")
    return args


def main(argv: Sequence[str]) -> None:
    """``argv`` as kv_micro passes it (with ``--interleaved``)."""
    args = parse(argv)
    where = pin(args.cpu)  # before any thread or subprocess starts: they inherit it
    settings = Settings(args.blocks, args.block_calls, args.block_ms / 1000, args.entries, where)
    comparisons, skipped = chosen_comparisons(args.stores)
    for message in skipped:
        print(message)
    if not comparisons:
        raise SystemExit("no comparison has both of its stores among the chosen, available stores")
    ops = [op for op in OPS if not args.ops or op in args.ops]
    print(banner("alternating A/B blocks per comparison and op", where))
    pairs = asyncio.run(run_pairs(comparisons, ops, settings))
    print(format_report(pairs, settings))


if __name__ == "__main__":
    import sys

    main(["--interleaved", *sys.argv[1:]])
