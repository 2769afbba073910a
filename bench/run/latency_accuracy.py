"""The latency injector's own error: measured against predicted time of round trips under ``LatencyModel(rtt_ms=r)``.

``python -m bench.run.latency_accuracy [--rtt 0.1,0.2,...] [--blocks 7] [--concurrency 4] [--store memory|sqlite]
[--affinity CPU] [--with-asyncio-sleep]`` prints, per RTT, for one caller (serial) and for ``--concurrency`` callers
on one event loop (concurrent), each making a chain of gets through ``CountingKv``:

- predicted = the model's ``predict(counts)`` (the chain's serial round trips x RTT) + the local work of one
  caller's chain, measured with ``LatencyModel(rtt_ms=0)`` (the same code path, no waiting);
- measured/predicted, and the error per round trip in microseconds.

Each block runs the local chain, the injected one (and, with ``--with-asyncio-sleep``, the old injector that slept
each half with ``asyncio.sleep``) one after the other in one process, and the blocks go round all points in turn, so
machine load hits them alike; each figure is the median over every round trip timed.
``qbench run`` records the same measurement in the results file (``kvq_latency_model``) for the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from queue_impls.kv import Kv, open_kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import CountingKv, KvCounts, LatencyModel, RoundTrip, predict

from .affinity import pin

RTTS_MS: Final = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 20.0, 100.0)
#: Target of one block's chain, in seconds of injected time; its length is clamped to CHAIN.
BLOCK_S: Final = 0.05
CHAIN: Final = (3, 200)
KEYS: Final = 10


@dataclass(frozen=True)
class Point:
    """One RTT and mode, per round trip of a caller's chain, in seconds (medians over every round trip measured)."""

    rtt_ms: float
    mode: str  # "serial" or "concurrent"
    callers: int
    #: Serial round trips of one block (the count ``predict`` multiplies by the RTT) and round trips timed in all.
    round_trips: int
    samples: int
    measured_s: float
    #: The mean, which keeps what the median leaves out: the machine's preemptions of the whole process.
    mean_s: float
    local_s: float
    asyncio_sleep_s: float | None = None  # the old injector, when measured

    @property
    def predicted_s(self) -> float:
        return self.rtt_ms / 1000 + self.local_s

    @property
    def ratio(self) -> float:
        return self.measured_s / self.predicted_s

    @property
    def error_us(self) -> float:
        """Measured minus predicted, per round trip, in microseconds."""
        return (self.measured_s - self.predicted_s) * 1e6

    def to_json(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}


def chain_length(rtt_ms: float) -> int:
    return min(max(math.ceil(BLOCK_S / (rtt_ms / 1000)), CHAIN[0]), CHAIN[1])


class _AsyncioSleepModel(LatencyModel):
    """The injector as it was before the precise timer: each half an ``asyncio.sleep``, for comparison."""

    def start(self, rng: Any, sent_bytes: int = 0) -> RoundTrip:
        return _AsyncioSleepTrip(self, asyncio.get_running_loop(), self.round_trip_ms(rng), sent_bytes)


class _AsyncioSleepTrip(RoundTrip):
    __slots__ = ()

    async def send(self) -> None:
        await asyncio.sleep(self.request_end - self.issued)

    async def receive(self, received_bytes: int = 0) -> None:
        await asyncio.sleep(self.response_end(received_bytes) - self.request_end)


@contextlib.asynccontextmanager
async def _store(kind: str) -> AsyncIterator[Kv]:
    if kind == "memory":
        kv: Kv = MemoryKv()
        try:
            yield kv
        finally:
            await kv.close()
        return
    with tempfile.TemporaryDirectory(prefix="kvq-latency-") as tmp:
        kv = await open_kv(f"sqlite:{os.path.join(tmp, 'kv.db')}")
        try:
            yield kv
        finally:
            await kv.close()


async def _chain(kv: CountingKv, n: int, cycles: list[float]) -> None:
    """``n`` gets one after the other, recording each cycle: the get's round trip and the caller's own work."""
    clock = time.perf_counter
    before = clock()
    for i in range(n):
        await kv.get(("k", i % KEYS))
        after = clock()
        cycles.append(after - before)
        before = after


async def _run(inner: Kv, model: LatencyModel, callers: int, n: int, cycles: list[float]) -> int:
    """``callers`` concurrent chains of ``n`` gets; returns the serial round trips counted."""
    kv = CountingKv(inner, latency=model, owns_inner=False)
    async with kv.measure() as m:
        if callers == 1:
            await _chain(kv, n, cycles)
        else:
            await asyncio.gather(*(_chain(kv, n, cycles) for _ in range(callers)))
    return m.counts.serial_round_trips


@dataclass
class _Samples:
    """What the blocks of one point measured, per round trip."""

    rtt_ms: float
    callers: int
    local: list[float] = field(default_factory=list)
    injected: list[float] = field(default_factory=list)
    old: list[float] = field(default_factory=list)
    serial: int = 0

    async def block(self, inner: Kv, with_asyncio_sleep: bool) -> None:
        """One block: the local chain (RTT 0), the injected chains (and the old injector's), one after the other."""
        n = chain_length(self.rtt_ms)
        await _run(inner, LatencyModel(rtt_ms=0.0), 1, n, self.local)
        self.serial = await _run(inner, LatencyModel(rtt_ms=self.rtt_ms), self.callers, n, self.injected)
        model = LatencyModel(rtt_ms=self.rtt_ms)
        if predict(KvCounts(serial_round_trips=self.serial), model) != n * self.rtt_ms or self.serial != n:
            raise AssertionError(f"{self.callers} chains of {n} gets counted {self.serial} serial round trips")
        if with_asyncio_sleep:
            await _run(inner, _AsyncioSleepModel(rtt_ms=self.rtt_ms), self.callers, n, self.old)

    def point(self) -> Point:
        return Point(
            rtt_ms=self.rtt_ms,
            mode="serial" if self.callers == 1 else "concurrent",
            callers=self.callers,
            round_trips=self.serial,
            samples=len(self.injected),
            measured_s=statistics.median(self.injected),
            mean_s=statistics.fmean(self.injected),
            local_s=statistics.median(self.local),
            asyncio_sleep_s=statistics.median(self.old) if self.old else None,
        )


async def measure(
    rtts_ms: Sequence[float] = RTTS_MS,
    *,
    concurrency: int = 4,
    blocks: int = 7,
    store: str = "memory",
    with_asyncio_sleep: bool = False,
) -> list[Point]:
    """Every RTT, serial and concurrent, on one store seeded with KEYS small entries. The blocks go round every
    point in turn (block 1 of each point, then block 2...), so a spell of machine load is shared by all points."""
    samples = [_Samples(rtt, callers) for rtt in rtts_ms for callers in (1, concurrency)]
    async with _store(store) as inner:
        for i in range(KEYS):
            await inner.set(("k", i), {"id": i, "payload": "x" * 64})
        for _ in range(blocks):
            for point in samples:
                await point.block(inner, with_asyncio_sleep)
    return [point.point() for point in samples]


#: What ``qbench run`` measures for its results file, per suite: the RTTs and the blocks per point.
SUITE_PLAN: Final[dict[str, tuple[tuple[float, ...], int]]] = {
    "smoke": ((1.0,), 1),
    "quick": (RTTS_MS, 3),
    "full": (RTTS_MS, 7),
}


def for_suite(suite: str) -> list[Point]:
    """The measurement ``qbench run`` records as ``kvq_latency_model`` on its rtt_sweep benchmarks."""
    rtts, blocks = SUITE_PLAN[suite]
    return asyncio.run(measure(rtts, blocks=blocks))


def table(points: Sequence[Point]) -> str:
    """One line per point, per round trip: local work, predicted, measured (median), the ratios, the error."""
    old = any(p.asyncio_sleep_s is not None for p in points)
    header = (
        f"{'RTT ms':>7} {'mode':<14} {'timed':>6} {'local':>8} {'predicted':>10} {'measured':>10} "
        f"{'meas/pred':>9} {'error':>9} {'mean/pred':>9}" + (f" {'asyncio.sleep/pred':>18}" if old else "")
    )
    lines = [header]
    for p in points:
        mode = p.mode if p.callers == 1 else f"{p.mode} x{p.callers}"
        line = (
            f"{p.rtt_ms:>7g} {mode:<14} {p.samples:>6} {p.local_s * 1e6:>6.1f}us {p.predicted_s * 1000:>8.4f}ms "
            f"{p.measured_s * 1000:>8.4f}ms {p.ratio:>9.3f} {p.error_us:>+7.1f}us {p.mean_s / p.predicted_s:>9.3f}"
        )
        if p.asyncio_sleep_s is not None:
            line += f" {p.asyncio_sleep_s / p.predicted_s:>18.2f}"
        lines.append(line)
    worst = max(points, key=lambda p: abs(p.ratio - 1))
    lines.append(f"worst meas/pred: {worst.ratio:.3f} at RTT {worst.rtt_ms:g} ms ({worst.mode})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run.latency_accuracy", description=__doc__.split("\n")[0])
    parser.add_argument("--rtt", default=",".join(f"{r:g}" for r in RTTS_MS), help="RTTs in ms, comma separated")
    parser.add_argument("--blocks", type=int, default=7, help="interleaved blocks per point (median)")
    parser.add_argument("--concurrency", type=int, default=4, help="callers in the concurrent mode")
    parser.add_argument("--store", choices=("memory", "sqlite"), default="memory", help="the store under the wrapper")
    parser.add_argument("--affinity", help="pin to these CPUs first (pyperf's syntax: 1, 0,2, 0-3)")
    parser.add_argument("--with-asyncio-sleep", action="store_true", help="also time the old asyncio.sleep injector")
    args = parser.parse_args(argv)
    try:
        rtts = [float(r) for r in args.rtt.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rtt {args.rtt!r}: expected comma-separated milliseconds")
    if not rtts or any(not (0 < r <= 1000) for r in rtts) or args.blocks < 1 or args.concurrency < 2:
        parser.error("each RTT must be in (0, 1000] ms, --blocks >= 1, --concurrency >= 2")
    pin(args.affinity)
    started = time.perf_counter()
    points = asyncio.run(
        measure(
            rtts,
            concurrency=args.concurrency,
            blocks=args.blocks,
            store=args.store,
            with_asyncio_sleep=args.with_asyncio_sleep,
        )
    )
    print(f"latency injector on {args.store}, {args.blocks} interleaved blocks per point (medians)")
    print(table(points))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
