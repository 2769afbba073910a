"""LatencyModel: real sleeps per round trip that overlap under concurrency; predict() is the floor for serial code."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from queue_impls.kv import InvalidArgumentError, Kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.kv.counting import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    PRESETS,
    CountingKv,
    KvCounts,
    LatencyModel,
    predict,
)

RTT_MS = 20.0  # large against scheduling noise, small enough to keep the suite fast


async def test_measured_time_is_at_least_the_prediction(kv: Kv) -> None:
    ckv = CountingKv(kv, latency=LatencyModel(rtt_ms=RTT_MS, per_kib_ms=2.0), owns_inner=False)
    await ckv.set(("blob",), b"x" * 4096)
    async with ckv.measure() as m:
        await ckv.get(("blob",))
        await ckv.set(("other",), 1)
        await ckv.get(("missing",))
    expected = 3 * RTT_MS + (m.counts.bytes_read + m.counts.bytes_written) / 1024 * 2.0
    assert predict(m.counts, ckv.latency) == pytest.approx(expected)  # type: ignore[arg-type]
    assert expected >= 3 * RTT_MS + 8.0  # the 4 KiB value was read once
    assert m.elapsed_ms >= expected


async def test_the_sleeps_add_up_to_the_prediction_for_serial_code(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def record(self: LatencyModel, ms: float) -> None:
        slept.append(ms)

    monkeypatch.setattr(LatencyModel, "sleep", record)
    model = LatencyModel(rtt_ms=RTT_MS, per_kib_ms=2.0)
    ckv = CountingKv(MemoryKv(), latency=model)
    await ckv.set(("blob",), b"x" * 4096)
    async with ckv.measure() as m:
        await ckv.get(("blob",))
        await ckv.list(prefix=()).collect()
        await ckv.atomic().set(("a",), 1).delete(("b",)).commit()
    assert len(slept) == 2 * 4 and m.counts.serial_round_trips == 3
    assert sum(slept[2:]) == pytest.approx(predict(m.counts, model))  # the first two are the seeding set's


async def test_concurrent_round_trips_overlap() -> None:
    ckv = CountingKv(MemoryKv(), latency=LatencyModel(rtt_ms=RTT_MS))
    async with ckv.measure() as m:
        await asyncio.gather(*(ckv.get(("k", i)) for i in range(10)))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (10, 1)
    assert predict(m.counts, ckv.latency) == RTT_MS  # type: ignore[arg-type]
    assert RTT_MS <= m.elapsed_ms < 8 * RTT_MS  # ten serial round trips would take 10 x RTT


async def test_jitter_is_seeded_and_only_adds() -> None:
    model = LatencyModel(rtt_ms=10.0, jitter=0.5, seed=7)
    rng_a, rng_b = model.rng(), model.rng()
    first = [model.round_trip_ms(rng_a) for _ in range(20)]
    again = [model.round_trip_ms(rng_b) for _ in range(20)]
    assert first == again and len(set(again)) > 1
    assert all(10.0 <= ms <= 15.0 for ms in again)
    assert LatencyModel(rtt_ms=10.0).round_trip_ms(random.Random(1)) == 10.0


async def test_two_wrappers_with_one_model_draw_the_same_jitter() -> None:
    model = LatencyModel(rtt_ms=1.0, jitter=1.0, seed=3)
    a, b = CountingKv(MemoryKv(), latency=model), CountingKv(MemoryKv(), latency=model)
    assert a._rng.random() == b._rng.random()


def test_predict_from_counts() -> None:
    counts = KvCounts(serial_round_trips=11, round_trips=1011, bytes_read=2048, bytes_written=1024)
    assert predict(counts, LatencyModel(rtt_ms=7.0, per_kib_ms=0.5)) == pytest.approx(11 * 7.0 + 3 * 0.5)


def test_presets_are_deno_deploys_published_read_latencies() -> None:
    assert DENO_DEPLOY_SAME_REGION.rtt_ms == 7.0
    assert DENO_DEPLOY_CROSS_REGION_STRONG.rtt_ms == 94.0
    assert PRESETS == {"same-region": DENO_DEPLOY_SAME_REGION, "cross-region-strong": DENO_DEPLOY_CROSS_REGION_STRONG}


@pytest.mark.parametrize("bad", [{"rtt_ms": -1.0}, {"per_kib_ms": float("nan")}, {"jitter": True}, {"rtt_ms": "5"}])
def test_a_bad_model_is_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError, match="must be a non-negative number"):
        LatencyModel(**bad)  # type: ignore[arg-type]


async def test_no_latency_adds_no_sleep() -> None:
    ckv = CountingKv(MemoryKv())
    started = time.perf_counter()
    for i in range(200):
        await ckv.get(("k", i))
    assert time.perf_counter() - started < 1.0  # 200 sleeps of the default 5 ms would take a second
