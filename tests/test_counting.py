"""CountingKv counts exactly, on every backend: calls, round trips, serial waves, entries, bytes, writes."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from queue_impls.kv import InvalidKeyError, Kv, KvClosedError, TooManyRangesError, encode_key, encode_value
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import OPS, CountingKv, KvCounts, detect_n_plus_one


@pytest.fixture
async def ckv(kv: Kv) -> CountingKv:
    return CountingKv(kv, owns_inner=False)  # the kv fixture closes its own store


def entry_bytes(key: tuple, value: object) -> int:  # type: ignore[type-arg]
    return len(encode_key(key)) + len(encode_value(value)[0])


async def fill(kv: Kv, n: int, prefix: str = "idx") -> None:
    for start in range(0, n, 500):
        op = kv.atomic()
        for i in range(start, min(n, start + 500)):
            op.set((prefix, i), f"v{i}")
        await op.commit()


async def test_get_counts_one_call_one_round_trip_and_the_entry_bytes(ckv: CountingKv) -> None:
    await ckv.inner.set(("jobs", "a1"), {"id": "a1"})
    ckv.counts.reset()
    assert (await ckv.get(("jobs", "a1"))).value == {"id": "a1"}
    assert (await ckv.get(("jobs", "missing"))).value is None
    c = ckv.counts
    assert c.calls["get"] == 2 and c.total_calls == 2
    assert (c.round_trips, c.serial_round_trips, c.entries_read) == (2, 2, 1)
    assert c.bytes_read == entry_bytes(("jobs", "a1"), {"id": "a1"})


async def test_get_many_is_one_call_and_one_round_trip(ckv: CountingKv) -> None:
    await fill(ckv.inner, 10)
    ckv.counts.reset()
    entries = await ckv.get_many([("idx", i) for i in range(10)])
    assert [e.value for e in entries] == [f"v{i}" for i in range(10)]
    c = ckv.counts
    assert (c.calls["get_many"], c.round_trips, c.entries_read) == (1, 1, 10)
    assert c.bytes_read == sum(entry_bytes(("idx", i), f"v{i}") for i in range(10))


async def test_list_of_1000_without_limit_is_one_call_and_11_round_trips(ckv: CountingKv) -> None:
    await fill(ckv.inner, 1000)
    ckv.counts.reset()
    entries = await ckv.list(prefix=("idx",)).collect()
    assert len(entries) == 1000
    c = ckv.counts
    assert (c.calls["list"], c.total_calls, c.round_trips, c.serial_round_trips) == (1, 1, 11, 11)
    assert c.entries_read == 1000
    assert c.bytes_read == sum(entry_bytes(("idx", i), f"v{i}") for i in range(1000))


@pytest.mark.parametrize(
    ("options", "round_trips", "entries"),
    [({"limit": 50}, 1, 50), ({"limit": 50, "batch_size": 500}, 1, 500), ({"batch_size": 300}, 4, 1000)],
    ids=["limit-50", "limit-50-batch-500", "batch-300"],
)
async def test_a_batch_counts_whole_consumed_or_not(
    ckv: CountingKv, options: dict[str, Any], round_trips: int, entries: int
) -> None:
    await fill(ckv.inner, 1000)
    ckv.counts.reset()
    await ckv.list(prefix=("idx",), **options).collect()
    assert (ckv.counts.round_trips, ckv.counts.entries_read) == (round_trips, entries)


async def test_breaking_out_of_a_list_stops_the_reads(ckv: CountingKv) -> None:
    await fill(ckv.inner, 1000)
    ckv.counts.reset()
    async for entry in ckv.list(prefix=("idx",)):
        if entry.key == ("idx", 150):
            break
    assert (ckv.counts.round_trips, ckv.counts.entries_read) == (2, 200)


async def test_writes_count_mutations_checks_and_bytes(ckv: CountingKv) -> None:
    await ckv.set(("a",), "x")
    await ckv.delete(("b",))
    entry = await ckv.get(("a",))
    result = await ckv.atomic().check(entry).set(("a",), "y").delete(("c",)).sum(("n",), 5).commit()
    assert result.ok
    c = ckv.counts
    assert {op: c.calls[op] for op in ("set", "delete", "commit", "get")} == {
        "set": 1,
        "delete": 1,
        "commit": 1,
        "get": 1,
    }
    assert (c.round_trips, c.mutations, c.checks) == (4, 5, 1)
    key = len(encode_key(("a",)))
    expected = (key + len(encode_value("x")[0])) + len(encode_key(("b",)))
    expected += (key + len(encode_value("y")[0])) + len(encode_key(("c",))) + len(encode_key(("n",))) + 8
    assert c.bytes_written == expected


async def test_a_failed_check_still_costs_a_round_trip_and_sends_its_mutations(ckv: CountingKv) -> None:
    await ckv.set(("a",), 1)
    ckv.counts.reset()
    result = await ckv.atomic().check(("a",), None).set(("a",), 2).commit()
    assert not result.ok
    assert (ckv.counts.calls["commit"], ckv.counts.round_trips, ckv.counts.mutations, ckv.counts.checks) == (1, 1, 1, 1)
    assert (await ckv.inner.get(("a",))).value == 1


async def test_a_rejected_call_counts_as_a_call_but_reaches_no_store(ckv: CountingKv) -> None:
    with pytest.raises(TooManyRangesError):
        await ckv.get_many([("k", i) for i in range(11)])
    with pytest.raises(InvalidKeyError):
        await ckv.set((), 1)
    assert (ckv.counts.calls["get_many"], ckv.counts.calls["set"]) == (1, 1)
    assert ckv.counts.round_trips == ckv.counts.serial_round_trips == 0


async def test_results_are_exactly_the_inner_stores(ckv: CountingKv) -> None:
    await fill(ckv.inner, 30)
    await ckv.set(("idx", 3), {"changed": [1, 2.5, b"\x00"]})
    assert await ckv.get(("idx", 3)) == await ckv.inner.get(("idx", 3))
    keys = [("idx", 1), ("nope",), ("idx", 1)]
    assert await ckv.get_many(keys) == await ckv.inner.get_many(keys)
    mine, theirs = (
        ckv.list(prefix=("idx",), reverse=True, limit=7),
        ckv.inner.list(prefix=("idx",), reverse=True, limit=7),
    )
    assert await mine.collect() == await theirs.collect()
    assert mine.cursor == theirs.cursor


async def test_reset_snapshot_since_and_measure(ckv: CountingKv) -> None:
    await ckv.set(("a",), 1)
    snap = ckv.counts.snapshot()
    await ckv.get(("a",))
    delta = ckv.counts.since(snap)
    assert (delta.calls["get"], delta.calls["set"], delta.round_trips) == (1, 0, 1)
    async with ckv.measure() as m:
        await ckv.get(("a",))
        await ckv.get(("a",))
        assert m.counts.round_trips == 2  # live inside the block
    await ckv.get(("a",))
    assert (m.counts.total_calls, m.counts.round_trips, m.counts.serial_round_trips) == (2, 2, 2)
    ckv.counts.reset()
    assert ckv.counts == KvCounts() and set(ckv.counts.calls) == set(OPS)
    assert "round trips 0" in str(ckv.counts) and ckv.counts.as_dict()["calls.get"] == 0


async def test_concurrent_gets_are_one_serial_wave(ckv: CountingKv) -> None:
    async with ckv.measure() as m:
        await asyncio.gather(*(ckv.get(("k", i)) for i in range(10)))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (10, 1)


async def test_serial_gets_are_serial(ckv: CountingKv) -> None:
    async with ckv.measure() as m:
        for i in range(10):
            await ckv.get(("k", i))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (10, 10)


async def test_the_critical_path_of_concurrent_chains_is_the_longest_chain(ckv: CountingKv) -> None:
    async def chain(n: int) -> None:
        for i in range(n):
            await ckv.get(("chain", n, i))

    async with ckv.measure() as m:
        await ckv.get(("first",))
        await asyncio.gather(chain(2), chain(3), chain(1))
        await ckv.get(("last",))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (8, 5)


async def test_list_then_concurrent_gets_is_two_waves_per_batch(ckv: CountingKv) -> None:
    await fill(ckv.inner, 30)
    async with ckv.measure() as m:
        entries = await ckv.list(prefix=("idx",)).collect()
        await asyncio.gather(*(ckv.get(e.key) for e in entries))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (31, 2)


async def test_task_group_children_share_a_wave(ckv: CountingKv) -> None:
    async with ckv.measure() as m:
        async with asyncio.TaskGroup() as tg:
            for i in range(4):
                tg.create_task(ckv.get_many([("k", i)]))
        await ckv.get(("after",))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (5, 2)


async def test_consecutive_gathers_are_consecutive_waves(ckv: CountingKv) -> None:
    # A child starts where its creator's next round trip would: after what the creator's finished children did.
    async with ckv.measure() as m:
        await asyncio.gather(ckv.get(("a",)), ckv.get(("b",)))
        await asyncio.gather(ckv.get(("c",)))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (3, 2)
    async with ckv.measure() as m:
        await ckv.get(("first",))
        await asyncio.gather(ckv.get(("a",)))
        await asyncio.gather(ckv.get(("b",)))
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (3, 3)


async def test_a_task_continues_after_its_children_even_before_its_own_first_round_trip(ckv: CountingKv) -> None:
    async def middle() -> None:  # its first round trip comes after a gather of its own
        await asyncio.gather(ckv.get(("child",)))
        await ckv.get(("own",))

    async with ckv.measure() as m:
        await ckv.get(("first",))
        await asyncio.create_task(middle())
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (3, 3)


async def test_a_task_starts_from_its_creators_clock_at_creation(ckv: CountingKv) -> None:
    async with ckv.measure() as m:
        child = asyncio.create_task(ckv.get(("child",)))  # created before the creator's own round trip...
        await ckv.get(("creator",))  # ...which it therefore does not wait for
        await child
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (2, 1)
    async with ckv.measure() as m:
        await ckv.get(("creator",))
        await asyncio.create_task(ckv.get(("child",)))  # created after it
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (2, 2)


async def test_a_task_factory_already_on_the_loop_keeps_being_used() -> None:
    loop = asyncio.get_running_loop()
    made: list[str] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        made.append(coro.__qualname__)
        return asyncio.Task(coro, loop=loop, **kwargs)

    previous = loop.get_task_factory()
    loop.set_task_factory(factory)
    try:
        ckv = CountingKv(MemoryKv())
        async with ckv.measure() as m:
            await ckv.get(("first",))
            await asyncio.gather(ckv.get(("a",)), ckv.get(("b",)))
            await ckv.get(("last",))
        assert (m.counts.round_trips, m.counts.serial_round_trips) == (4, 3)
        assert made.count("CountingKv.get") == 2
    finally:
        loop.set_task_factory(previous)


async def test_a_task_given_its_own_context_starts_from_its_creators_clock_then() -> None:
    import contextvars

    ckv = CountingKv(MemoryKv())
    loop = asyncio.get_running_loop()
    async with ckv.measure() as m:
        await ckv.get(("first",))
        context = contextvars.copy_context()  # holds the creator's lane...
        await ckv.get(("second",))  # ...which moves on before the task is created
        task = loop.create_task(ckv.get(("child",)), context=context)
        await ckv.get(("third",))
        await task
    assert (m.counts.round_trips, m.counts.serial_round_trips) == (4, 3)


async def test_a_task_created_inside_the_context_it_is_given_is_created_as_usual() -> None:
    import contextvars

    ckv = CountingKv(MemoryKv())
    await ckv.get(("a",))  # the loop has the wrapper's task factory now
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    # Entered while the task is created, so the factory cannot fork lanes into it; the task still runs there.
    task = context.run(lambda: loop.create_task(ckv.get(("b",)), context=context))
    assert (await task).key == ("b",)
    assert ckv.counts.round_trips == 2


async def test_a_closed_wrapper_no_longer_forks_its_lanes_into_new_tasks() -> None:
    from queue_impls.meter import serial_clock

    ckv = CountingKv(MemoryKv())
    await ckv.get(("a",))
    assert id(ckv._clock) in serial_clock._CLOCKS
    await ckv.close()
    assert id(ckv._clock) not in serial_clock._CLOCKS
    forgotten = CountingKv(MemoryKv())  # never closed: leaves when collected
    await forgotten.get(("a",))
    key = id(forgotten._clock)
    assert key in serial_clock._CLOCKS
    del forgotten
    await asyncio.sleep(0)  # the root pass's callback holds the clock until the loop runs it
    gc.collect()
    assert key not in serial_clock._CLOCKS


async def test_a_reference_held_to_the_counts_stays_current(ckv: CountingKv) -> None:
    await ckv.inner.set(("a",), "v")
    c = ckv.counts  # held across every kind of call below, never re-read from the wrapper
    c.reset()
    await ckv.get(("a",))
    await ckv.get(("missing",))
    await asyncio.gather(ckv.get(("a",)), ckv.get_many([("a",), ("b",)]))
    await ckv.list(prefix=("a",)).collect()
    await ckv.set(("b",), 1)
    assert c.calls == {"get": 3, "get_many": 1, "list": 1, "set": 1, "delete": 0, "commit": 0}
    assert (c.round_trips, c.serial_round_trips, c.entries_read) == (6, 5, 3)  # ("a",) is not under prefix ("a",)
    assert c.bytes_read == 3 * entry_bytes(("a",), "v")
    assert (c.mutations, c.bytes_written) == (1, entry_bytes(("b",), 1))


async def test_calls_reads_as_a_copy_current_when_read(ckv: CountingKv) -> None:
    held = ckv.counts.calls
    await ckv.get(("a",))
    assert held["get"] == 0 and ckv.counts.calls["get"] == 1
    held["get"] = 99  # changing a copy changes nothing
    assert ckv.counts.calls["get"] == 1


async def test_reset_drops_what_was_counted_but_not_yet_read(ckv: CountingKv) -> None:
    await ckv.get(("a",))
    await ckv.get(("a",))
    ckv.counts.reset()  # the two gets were never read before the reset
    assert ckv.counts == KvCounts()
    await ckv.get(("a",))
    assert (ckv.counts.calls["get"], ckv.counts.round_trips, ckv.counts.serial_round_trips) == (1, 1, 1)


async def test_a_get_whose_read_fails_counts_its_call_and_round_trip_but_no_entry(
    ckv: CountingKv, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ckv.inner.set(("a",), 1)
    ckv.counts.reset()

    async def failing(*args: Any) -> Any:
        raise RuntimeError("the store went away")

    monkeypatch.setattr(ckv.inner, "_snapshot_read", failing)
    with pytest.raises(RuntimeError):
        await ckv.get(("a",))
    c = ckv.counts
    assert (c.calls["get"], c.round_trips, c.entries_read, c.bytes_read) == (1, 1, 0, 0)


async def test_close_closes_the_inner_store_unless_told_not_to() -> None:
    inner = MemoryKv()
    async with CountingKv(inner) as ckv:
        await ckv.set(("a",), 1)
    assert ckv.closed and inner.closed
    with pytest.raises(KvClosedError):
        await ckv.get(("a",))
    kept = MemoryKv()
    await CountingKv(kept, owns_inner=False).close()
    assert not kept.closed


async def test_capability_flags_are_the_inner_stores(kv: Kv) -> None:
    ckv = CountingKv(kv, owns_inner=False)
    flags = [name for name, value in vars(Kv).items() if isinstance(value, bool)]
    assert {"multi_process", "persistent"} <= set(flags)
    assert all(getattr(ckv, name) == getattr(kv, name) for name in flags)


async def test_a_nested_wrapper_counts_round_trips_but_not_calls() -> None:
    inner = CountingKv(MemoryKv(), trace=True)
    outer = CountingKv(inner, trace=True)
    await outer.set(("a",), 1)
    await outer.list(prefix=()).collect()
    assert (outer.counts.total_calls, outer.counts.round_trips) == (2, 2)
    assert (inner.counts.total_calls, inner.counts.round_trips, inner.counts.entries_read) == (0, 2, 1)
    assert inner.trace == [] and len(outer.trace) == 2
    await outer.close()
    assert inner.closed


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("naive (list + get per entry)", (1001, 1011, 1011, 2000, 1)),
        ("batched (list + get_many per 10)", (101, 111, 111, 2000, 0)),
        ("denormalised (list only)", (1, 11, 11, 1000, 0)),
    ],
)
async def test_the_worked_example_of_the_docs(pattern: str, expected: tuple[int, ...]) -> None:
    from queue_impls.counting_example import measure

    m = await measure(pattern, 1000)
    c = m.counts
    findings = detect_n_plus_one(m.trace)
    assert (c.total_calls, c.round_trips, c.serial_round_trips, c.entries_read, len(findings)) == expected
