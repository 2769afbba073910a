"""The one harness the diagnostics time with: contenders measured side by side in one run, pinned, in rotating rounds.

On a shared machine two runs minutes apart differ more than the contenders do, so no figure here is a time compared
with another run's. Each round times one block of calls of every contender, the order rotated by one every round
(A,B then B,A for two), in one process pinned to one CPU (its threads and subprocesses inherit the pinning): load
falls on every contender alike, and a comparison is the median of its per-round values (a ratio a/b or a difference
a-b), printed with a distribution-free 95% interval and the run's load average. Tables print through ``grid``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bench.run.affinity import parse_cpus

#: One timed call: a block awaits it ``calls`` times.
Op = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class SelfTimed:
    """An op that times itself (e.g. inside another runtime): ``run(calls)`` returns the seconds the calls took."""

    run: Callable[[int], Awaitable[float]]


Timed = Op | SelfTimed


@dataclass
class Rounds:
    """Seconds per call of each contender, one value per round in round order: wall time, and the event loop thread's
    CPU time (``time.thread_time``: the caller's own work, not other threads' or processes'; none for a self-timed
    op, whose time is spent elsewhere)."""

    wall: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)


async def block(fn: Timed, calls: int) -> tuple[float, float | None]:
    """(wall, loop-thread CPU) seconds per call over ``calls`` calls of ``fn``; a self-timed op reports its own."""
    if isinstance(fn, SelfTimed):
        return await fn.run(calls) / calls, None
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - wall) / calls, (time.thread_time() - cpu) / calls


async def calibrate(fns: Sequence[Timed], block_seconds: float) -> int:
    """Calls per block so that a block of the slowest of ``fns`` (median of 3 short tries) lasts ``block_seconds``."""
    per_call = 0.0
    for fn in fns:
        await block(fn, 5)
        per_call = max(per_call, statistics.median([(await block(fn, 10))[0] for _ in range(3)]))
    return max(1, round(block_seconds / per_call))


def rotation(names: Sequence[str], round_: int) -> list[str]:
    """The order of round ``round_``: ``names`` rotated by one more every round."""
    shift = round_ % len(names) if names else 0
    return [*names[shift:], *names[:shift]]


async def rotating_blocks(ops: Mapping[str, Timed], calls: int | Mapping[str, int], rounds: int) -> Rounds:
    """A warm-up block (a quarter of the calls) of each op, then ``rounds`` rounds of one block each, rotated."""
    per_op = dict.fromkeys(ops, calls) if isinstance(calls, int) else dict(calls)
    for name, fn in ops.items():
        await block(fn, max(1, per_op[name] // 4))
    out = Rounds({name: [] for name in ops}, {name: [] for name in ops})
    for round_ in range(rounds):
        for name in rotation(list(ops), round_):
            wall, cpu = await block(ops[name], per_op[name])
            out.wall[name].append(wall)
            if cpu is not None:
                out.cpu[name].append(cpu)
    return out


# ------------------------------------------------------------------------------------------------ the figures


@dataclass(frozen=True)
class Interval:
    """The median of per-round values, with the order-statistic (sign test) 95% interval of that median.

    With fewer than 6 rounds no pair of order statistics covers 95%: the interval is then the whole range."""

    median: float
    low: float
    high: float
    minimum: float
    n: int


def median_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """The median of ``values`` and the widest-ranked pair of order statistics that still covers it with
    ``confidence`` (exact binomial: each value falls below the true median with probability 1/2, whatever the noise
    of the machine's other jobs does to the values' distribution)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("no values: at least one round is needed")
    # The i-th smallest (from 0) lies above the true median only if at most i values fall below it: the lower bound is
    # the largest i with P(B <= i) <= (1 - confidence) / 2, B ~ Binomial(n, 1/2); the upper bound mirrors it.
    tail, below, k = (1 - confidence) / 2, 0.0, 0
    for i in range(n):
        below += math.comb(n, i) / 2**n
        if below > tail:
            k = max(i - 1, 0)  # i = 0: too few values for this confidence, the whole range
            break
    k = min(k, (n - 1) // 2)
    return Interval(statistics.median(ordered), ordered[k], ordered[n - 1 - k], ordered[0], n)


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a/b of each round."""
    return [x / y for x, y in zip(a, b, strict=True)]


def differences(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """a-b of each round."""
    return [x - y for x, y in zip(a, b, strict=True)]


def format_ratio(interval: Interval) -> str:
    return f"{interval.median:.2f}x [{interval.low:.2f}, {interval.high:.2f}]"


def format_us(interval: Interval, scale: float = 1e6) -> str:
    """A difference in seconds (``scale`` 1e6) or already in microseconds (``scale`` 1), signed, with its interval."""
    m, low, high = (v * scale for v in (interval.median, interval.low, interval.high))
    return f"{m:+.1f} us [{low:+.1f}, {high:+.1f}]"


def grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: the first column left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


# ------------------------------------------------------------------------------------------- pinning, the run


def add_cpu_option(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """``--cpu CPUS|none``; ``default`` None means the last CPU this process may use."""
    parser.add_argument(
        "--cpu",
        default=default if default is not None else str(max(os.sched_getaffinity(0))),
        help="pin the run (and the threads and subprocesses it starts) to these CPUs, e.g. 1, 0,2 or 0-3, or 'none'"
        " (default %(default)s): unpinned, where the scheduler puts a store's database thread changes its hop cost"
        " 2-3x for seconds at a time",
    )


def pin(cpus: str) -> str:
    """Pin this process to ``cpus`` ("none": leave it) before it starts any thread or subprocess; says where it runs."""
    if cpus == "none":
        return "unpinned"
    chosen = parse_cpus(cpus)
    os.sched_setaffinity(0, chosen)
    return f"pinned to CPU {','.join(map(str, sorted(chosen)))}"


def csv(text: str) -> list[str]:
    """A comma-separated option's items."""
    return [part.strip() for part in text.split(",") if part.strip()]


def load() -> str:
    """When, and under what load: a timing is read against the machine's load average at the time."""
    one, five, fifteen = os.getloadavg()
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {one:.2f} {five:.2f} {fifteen:.2f}"


def banner(method: str, where: str) -> str:
    """The line every side-by-side report starts with: how its figures were measured, where, when, under what load."""
    return f"Measured side by side in one run ({method}); {where}; {load()} at the start."
