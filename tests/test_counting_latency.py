"""LatencyModel: real sleeps per round trip that overlap under concurrency; predict() is the floor for serial code."""

from __future__ import annotations

import asyncio
import gc
import random
import statistics
import threading
import time
import weakref

import pytest

from queue_impls.kv import InvalidArgumentError, Kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    PRESETS,
    CountingKv,
    KvCounts,
    LatencyModel,
    RoundTrip,
    predict,
    sleep_until,
)
from queue_impls.meter import latency as latency_module

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
    trips: list[tuple[float, float]] = []  # per round trip: issued, response deadline
    receive = RoundTrip.receive

    async def record(self: RoundTrip, received_bytes: int = 0) -> None:
        trips.append((self.issued, self.response_end(received_bytes)))
        await receive(self, received_bytes)

    monkeypatch.setattr(RoundTrip, "receive", record)
    model = LatencyModel(rtt_ms=RTT_MS, per_kib_ms=2.0)
    ckv = CountingKv(MemoryKv(), latency=model)
    await ckv.set(("blob",), b"x" * 4096)
    async with ckv.measure() as m:
        await ckv.get(("blob",))
        await ckv.list(prefix=()).collect()
        await ckv.atomic().set(("a",), 1).delete(("b",)).commit()
    assert len(trips) == 4 and m.counts.serial_round_trips == 3
    network_ms = sum(end - issued for issued, end in trips[1:]) * 1000  # [0] is the seeding set's
    assert network_ms == pytest.approx(predict(m.counts, model))


async def test_a_round_trip_is_scheduled_from_when_it_was_issued(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both deadlines fixed from the issue time: RTT/2 + request transfer, then RTT/2 + response transfer, with the
    RTT drawn once (jitter) for the whole round trip; a store that answers late does not move the end."""
    deadlines: list[float] = []

    async def record(deadline: float) -> None:
        deadlines.append(deadline)

    monkeypatch.setattr(latency_module, "sleep_until", record)
    model = LatencyModel(rtt_ms=10.0, per_kib_ms=4.0, jitter=0.5, seed=1)
    loop = asyncio.get_running_loop()
    trip = model.start(random.Random(1), sent_bytes=512)
    rtt = 10.0 * (1 + random.Random(1).uniform(0, 0.5))
    assert trip.request_end == pytest.approx(trip.issued + (rtt / 2 + 2.0) / 1000)
    await trip.send()
    await asyncio.sleep(0.003)  # the store's own time
    await trip.receive(received_bytes=2048)
    assert deadlines == [trip.request_end, pytest.approx(trip.issued + (rtt + 2.0 + 8.0) / 1000)]
    assert trip.issued <= loop.time()


async def test_a_store_slower_than_the_response_half_adds_the_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    class SlowKv(MemoryKv):
        async def _snapshot_read(self, ranges, consistency):  # type: ignore[no-untyped-def]
            await asyncio.sleep(0.012)
            return await super()._snapshot_read(ranges, consistency)

    waits: list[tuple[float, float]] = []  # (deadline, when the wait began)
    real = latency_module.sleep_until

    async def record(deadline: float) -> None:
        waits.append((deadline, asyncio.get_running_loop().time()))
        await real(deadline)

    monkeypatch.setattr(latency_module, "sleep_until", record)
    await CountingKv(SlowKv(), latency=LatencyModel(rtt_ms=2.0)).get(("k",))
    (request_end, _), (response_end, reached) = waits
    assert response_end == pytest.approx(request_end + 0.001)
    assert reached >= response_end  # the store took longer than the response half: nothing left to wait


async def test_round_trips_take_their_rtt_not_a_rounded_up_millisecond() -> None:
    """asyncio.sleep waits whole milliseconds on Linux (epoll), so an RTT of 0.5 ms slept as two halves took 2 ms or
    more per round trip. The median of 40 serial round trips must stay under 1.5 x the RTT: robust to a loaded
    machine (a median), and 25% under what the rounding alone costs."""
    ckv = CountingKv(MemoryKv(), latency=LatencyModel(rtt_ms=0.5))
    cycles = []
    for i in range(40):
        started = time.perf_counter()
        await ckv.get(("k", i))
        cycles.append(time.perf_counter() - started)
    assert 0.5e-3 <= statistics.median(cycles) < 0.75e-3


async def test_concurrent_callers_each_keep_their_rtt() -> None:
    ckv = CountingKv(MemoryKv(), latency=LatencyModel(rtt_ms=0.5))
    cycles: list[float] = []

    async def chain() -> None:
        for i in range(20):
            started = time.perf_counter()
            await ckv.get(("k", i))
            cycles.append(time.perf_counter() - started)

    async with ckv.measure() as m:
        await asyncio.gather(*(chain() for _ in range(4)))
    assert m.counts.serial_round_trips == 20 and len(cycles) == 80
    assert 0.5e-3 <= statistics.median(cycles) < 0.75e-3


async def test_the_precise_timer_wakes_each_waiter_at_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    late: list[float] = []

    async def waiter(delay_s: float) -> None:
        deadline = loop.time() + delay_s
        await sleep_until(deadline)
        late.append(loop.time() - deadline)

    for _ in range(10):  # waiters with interleaved deadlines, some under a millisecond, one past already
        await asyncio.gather(*(waiter(d) for d in (0.0003, 0.0021, 0.0001, 0.0012, -0.001)))
    assert min(late) >= -1e-9 and statistics.median(late) < 0.25e-3  # asyncio.sleep: up to 1 ms late


def test_the_alarm_thread_ends_when_idle_and_lets_its_loop_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(latency_module, "_ALARM_IDLE_S", 0.02)

    async def wait() -> None:
        await sleep_until(asyncio.get_running_loop().time() + 0.003)

    def alarms() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "kvq-latency-alarm"]

    async def cancelled() -> None:  # a wait cancelled half way leaves no timer behind either
        task = asyncio.ensure_future(sleep_until(asyncio.get_running_loop().time() + 0.5))
        await asyncio.sleep(0.002)
        task.cancel()

    loop = asyncio.new_event_loop()
    loop.run_until_complete(wait())
    loop.run_until_complete(cancelled())
    assert alarms()
    loop.close()
    deadline = time.monotonic() + 5.0
    while alarms() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alarms()
    ref = weakref.ref(loop)
    del loop
    gc.collect()
    assert ref() is None  # the timer's thread held it weakly


async def test_a_cancelled_wait_leaves_the_others_on_time() -> None:
    loop = asyncio.get_running_loop()
    cancelled = asyncio.ensure_future(sleep_until(loop.time() + 0.001))
    await asyncio.sleep(0)
    cancelled.cancel()
    deadline = loop.time() + 0.002
    await sleep_until(deadline)
    assert loop.time() >= deadline and cancelled.cancelled()


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
