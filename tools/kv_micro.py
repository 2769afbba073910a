"""KV micro-benchmark: each basic operation on each store, timed by pyperf, beside its single-hop SQL floor.

``python -m tools.kv_micro [--fast] [-o results.json] [any pyperf option]`` prints op x store in microseconds and the
comparison columns, all measured in one run. Stores, comparisons and targets are registries: one line adds a column.
``python -m tools.kv_micro --interleaved [--blocks 30] [--block-calls N] [--stores ...] [--ops ...]`` measures every
comparison instead as alternating blocks of calls on its two stores in one process (tools/kv_interleaved.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyperf

from tools import kv_interleaved, kv_stores
from tools.harness import Op, SelfTimed, csv, grid
from tools.kv_stores import OPS, STORES, Comparison, Store, Workload, check, target_lines

# ------------------------------------------------------------------------------------------------------ table

Results = Mapping[tuple[str, str], float]  # (store, op) -> seconds per call (one statistic of the values)

#: How a benchmark's values become one figure. The median is the default; on a loaded machine ``min`` shows the
#: uncontended cost (every value is already a mean over many loops), and its ratios stay comparable.
STATS: dict[str, Callable[[Any], float]] = {
    "median": lambda bench: float(bench.median()),
    "mean": lambda bench: float(bench.mean()),
    "min": lambda bench: float(min(bench.get_values())),
}


def bench_name(store: str, op: str) -> str:
    return f"{store} :: {op}"


def results_from(benchmarks: Iterable[Any], stat: str = "median") -> dict[tuple[str, str], float]:
    """pyperf Benchmark objects (from a run or a suite JSON) -> (store, op) -> seconds (``stat`` of the values)."""
    out: dict[tuple[str, str], float] = {}
    for bench in benchmarks:
        store, _, op = bench.get_name().partition(" :: ")
        out[store, op] = STATS[stat](bench)
    return out


def _cell(results: Results, store: str, op: str) -> str:
    value = results.get((store, op))
    return "-" if value is None else f"{value * 1e6:.1f}"


def comparison_value(results: Results, comparison: Comparison, op: str) -> float | None:
    a, b = results.get((comparison.a, op)), results.get((comparison.b, op))
    return None if a is None or b is None else comparison.of(a, b)


def column_value(results: Results, column: str, op: str) -> float | None:
    """A store's time in us, or a comparison's value, for ``op``; None when not measured."""
    for comparison in kv_stores.COMPARISONS:
        if comparison.label == column:
            return comparison_value(results, comparison, op)
    value = results.get((column, op))
    return None if value is None else value * 1e6


def format_table(results: Results, stat: str = "median") -> str:
    stores = [s for s in STORES if any(key[0] == s for key in results)]
    stores += sorted({s for s, _ in results} - set(stores))
    ops = [op for op in OPS if any(key[1] == op for key in results)]
    lines = [f"Time per call, microseconds, {stat} of the values (lower is better):", ""]
    lines += grid(["op", *stores], [[op, *(_cell(results, s, op) for s in stores)] for op in ops])
    comparisons = [c for c in kv_stores.COMPARISONS if c.a in stores and c.b in stores]
    if comparisons:
        rows = []
        for op in ops:
            values = [comparison_value(results, c, op) for c in comparisons]
            rows.append([op, *("-" if v is None else c.format(v) for c, v in zip(comparisons, values, strict=True))])
        lines += ["", "Side by side, same run:", "", *grid(["op", *(c.label for c in comparisons)], rows)]
    return "\n".join(lines + target_lines(functools.partial(column_value, results)))


# ------------------------------------------------------------------------------------------------------ runner


class _KeptLoop(asyncio.SelectorEventLoop):
    """An event loop that survives pyperf's per-value ``loop.close()``.

    bench_async_func makes a new loop for every value and closes it; a store is opened once per worker (aiosqlite's
    thread, a deno subprocess bound to its loop), so every value must run on the loop that opened it.
    """

    def close(self) -> None:
        pass

    def shutdown(self) -> None:
        super().close()


def make_runner(argv: Sequence[str]) -> Any:
    fast = "--fast" in argv  # pyperf's flag: with these defaults it means 3 processes x 2 values
    runner = pyperf.Runner(
        processes=6 if fast else 12,
        values=3,
        min_time=0.05 if fast else 0.1,
        program_args=("-m", "tools.kv_micro"),
        add_cmdline_args=_forward_args,
    )
    parser = runner.argparser
    parser.add_argument(
        "--entries", type=int, default=None, help="entries seeded per store (default 10000, 1000 --fast)"
    )
    parser.add_argument("--stores", type=csv, default=None, help=f"comma-separated subset of: {', '.join(STORES)}")
    parser.add_argument("--ops", type=csv, default=None, help=f"comma-separated subset of: {', '.join(OPS)}")
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved pyperf JSON file and exit")
    parser.add_argument(
        "--stat", choices=list(STATS), default="median", help="statistic the table shows (default median)"
    )
    parser.add_argument("--plan-digest", default=None, help="(set by the manager for its workers)")
    return runner


def _forward_args(cmd: list[str], args: Any) -> None:
    """Workers re-run this module: give them the same workload and plan (benchmarks are matched by index)."""
    cmd += ["--entries", str(args.entries)]
    if args.stores:
        cmd += ["--stores", ",".join(args.stores)]
    if args.ops:
        cmd += ["--ops", ",".join(args.ops)]
    cmd += ["--plan-digest", args.plan_digest]


def plan(args: Any) -> list[tuple[Store, list[str]]]:
    """The stores to run and their ops, in table order; the same in the manager and every worker."""
    chosen = []
    for name in args.stores or STORES:
        if name not in STORES:
            sys.exit(f"unknown store {name!r}: choose from {', '.join(STORES)}")
        store = STORES[name]
        reason = store.unavailable()
        if reason:
            if not args.worker:
                print(f"skipping {name}: {reason}")
            continue
        chosen.append((store, [op for op in OPS if op in store.ops and (not args.ops or op in args.ops)]))
    return chosen


def checked_plan(args: Any) -> list[tuple[Store, list[str]]]:
    """The plan, refused if it is not the one the manager started with (the script was edited during the run)."""
    chosen = plan(args)
    names = "\n".join(bench_name(store.name, op) for store, ops in chosen for op in ops)
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    if args.plan_digest not in (None, digest):
        sys.exit("tools/kv_micro.py's plan changed since this run started: refusing to time the wrong benchmark")
    args.plan_digest = digest
    return chosen


def _bench_one(runner: Any, loop: _KeptLoop, name: str, op: Op | SelfTimed | None) -> Any:
    if isinstance(op, SelfTimed):
        run = op.run
        return runner.bench_time_func(name, lambda loops: loop.run_until_complete(run(loops)))
    return runner.bench_async_func(name, op or _not_here, loop_factory=lambda: loop)


async def _once(fn: Op) -> object:
    """One call of ``fn`` on the running loop (an op may create its future when called)."""
    return await fn()


async def _not_here() -> None:
    raise AssertionError("a benchmark ran in a process that did not open its store")


def run_store(
    runner: Any, loop: _KeptLoop, store: Store, ops: list[str], first_task: int, workload: Workload
) -> list[Any]:
    """Benchmark ``ops`` of one store; open (and seed) it only if one of them runs in this process."""
    args = runner.args
    here = (args.worker or args.in_process) and (
        args.worker_task is None or first_task <= args.worker_task < first_task + len(ops)
    )
    if not here:
        return [_bench_one(runner, loop, bench_name(store.name, op), None) for op in ops]
    with tempfile.TemporaryDirectory(prefix="kv_micro-") as tmp, contextlib.ExitStack() as closing:
        stack = contextlib.AsyncExitStack()
        closing.callback(lambda: loop.run_until_complete(stack.aclose()))
        opset = loop.run_until_complete(stack.enter_async_context(store.open(Path(tmp), workload)))
        benches = []
        for op in ops:
            fn = opset[op]
            if not isinstance(fn, SelfTimed):
                check(store.name, op, loop.run_until_complete(_once(fn)), workload.expected_rows(op))
            benches.append(_bench_one(runner, loop, bench_name(store.name, op), fn))
        return benches


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--interleaved" in argv:  # no pyperf: every comparison timed A,B,A,B in this process (tools/kv_interleaved.py)
        kv_interleaved.main(argv)
        return
    runner = make_runner(argv)
    args = runner.parse_args(list(argv))
    if args.table:
        suite = pyperf.BenchmarkSuite.load(args.table)
        print(format_table(results_from(suite.get_benchmarks(), args.stat), args.stat))
        return
    if args.entries is None:
        args.entries = 1000 if args.fast else 10_000
    workload = Workload(entries=args.entries)
    loop = _KeptLoop()
    benches: list[Any] = []
    try:
        for store, ops in checked_plan(args):
            benches += run_store(runner, loop, store, ops, len(benches), workload)
    finally:
        loop.shutdown()
    if not args.worker:
        print()
        print(format_table(results_from((b for b in benches if b is not None), args.stat), args.stat))


if __name__ == "__main__":
    main()
