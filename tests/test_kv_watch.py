"""kv.watch(keys) as Deno has it (measured on Deno 2.9.6): the current entries at once, then a yield whenever a
watched key's versionstamp moves (a rewrite of the same value too), none for other keys or failed commits; at most
10 keys, each key at most 2049 bytes (both checked when watch() is called, as Deno does); no keys: ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from queue_impls.kv import InvalidKeyError, KeyTooLargeError, Kv, KvEntry, TooManyRangesError
from queue_impls.meter import CountingKv

QUIET_S = 0.3  # longer than the 50 ms a store without a change signal waits between looks


class Watcher:
    """Consumes a watch in a task of its own (a timed-out anext would cancel, and so end, the generator)."""

    def __init__(self, stream: AsyncIterator[list[KvEntry]]) -> None:
        self.stream = stream
        self.yields: asyncio.Queue[list[KvEntry]] = asyncio.Queue()
        self.task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        async for entries in self.stream:
            await self.yields.put(entries)

    async def next(self, timeout: float = 5.0) -> list[KvEntry] | None:
        """The next yield, or None if none came within ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(self.yields.get(), timeout)
        except TimeoutError:
            return None

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def values(entries: list[KvEntry] | None) -> list[object]:
    assert entries is not None, "the watch did not yield"
    return [e.value for e in entries]


async def test_yields_the_current_entries_at_once_missing_ones_included(kv: Kv) -> None:
    await kv.set(("a",), 1)
    stream = Watcher(kv.watch([("a",), ("b",), ("a",)]))
    try:
        first = await stream.next()
        assert first is not None and [e.key for e in first] == [("a",), ("b",), ("a",)]
        assert values(first) == [1, None, 1] and first[1].versionstamp is None
    finally:
        await stream.close()


async def test_yields_on_change_of_any_watched_key_and_only_then(kv: Kv) -> None:
    stream = Watcher(kv.watch([("a",), ("b",)]))
    try:
        await stream.next()
        await kv.set(("b",), 2)
        assert values(await stream.next()) == [None, 2]
        await kv.set(("other",), 1)  # not watched
        await kv.atomic().check(("a",), "00000000000000990000").set(("a",), 5).commit()  # fails: writes nothing
        assert await stream.next(QUIET_S) is None
        res = await kv.set(("b",), 2)  # the same value: a new versionstamp all the same
        again = await stream.next()
        assert values(again) == [None, 2] and again is not None and again[1].versionstamp == res.versionstamp
        await kv.delete(("b",))
        assert values(await stream.next()) == [None, None]
    finally:
        await stream.close()


async def test_at_most_ten_keys_checked_at_the_call_and_no_keys_ends_at_once(kv: Kv) -> None:
    with pytest.raises(TooManyRangesError, match=r"Too many keys \(max 10\)"):
        kv.watch([("k", i) for i in range(11)])
    assert [entries async for entries in kv.watch([])] == []


async def test_a_key_may_be_2049_bytes_checked_at_the_call(kv: Kv) -> None:
    ok = kv.watch([("x" * 2047,)])  # 1 + 2047 + 1 bytes encoded
    assert values(await anext(ok)) == [None]
    await ok.aclose()  # type: ignore[attr-defined]
    with pytest.raises(KeyTooLargeError, match=r"Key too large for read \(max 2049 bytes\)"):
        kv.watch([("x" * 2048,)])


async def test_bad_keys_are_refused_at_the_call_in_denos_order(kv: Kv) -> None:
    """Deno's kv.watch() throws before it returns: every key's part types, the count, every key's encoding (an int
    part over 255 bytes), then every key's size, whatever the keys' order."""
    ten = [("k", i) for i in range(10)]
    with pytest.raises(InvalidKeyError, match="Invalid key part"):
        kv.watch([*ten, ("k", object())])
    with pytest.raises(TooManyRangesError, match=r"Too many keys \(max 10\)"):
        kv.watch([*ten, ("x" * 2048,)])
    with pytest.raises(InvalidKeyError, match="BigUint requires more than 255 bytes"):
        kv.watch([("x" * 2048,), ("k", 2**2048)])
    with pytest.raises(InvalidKeyError, match="Invalid key part"):
        kv.watch([("k", 2**2048), ("k", object())])


async def test_a_counting_wrapper_counts_each_yield_as_one_read(kv: Kv) -> None:
    counting = CountingKv(kv, owns_inner=False)
    stream = Watcher(counting.watch([("a",), ("b",)]))
    try:
        async with counting.measure() as m:
            await stream.next()
            await kv.set(("x",), 1)  # wakes the store's watch machinery, yields nothing: not counted
            assert await stream.next(QUIET_S) is None
            await kv.set(("a",), "v")
            assert values(await stream.next()) == ["v", None]
        assert m.counts.round_trips == 2 and m.counts.entries_read == 1
    finally:
        await stream.close()


async def test_closing_a_counting_wrapper_watch_closes_the_stores_watch_at_once(kv: Kv) -> None:
    """aclose() of the wrapper's watch ends the store's own watch then, not whenever the garbage collector gets to
    it: until then the store keeps watching (the Deno bridge keeps Deno's watch open and goes on sending its yields)."""
    ended: list[bool] = []
    watch = kv._watch

    async def spy(keys: list[Any]) -> AsyncIterator[list[KvEntry]]:
        try:
            async for entries in watch(keys):
                yield entries
        finally:
            ended.append(True)

    kv._watch = spy  # type: ignore[method-assign]
    stream = CountingKv(kv, owns_inner=False).watch([("a",)])
    assert values(await anext(stream)) == [None]
    await stream.aclose()  # type: ignore[attr-defined]
    assert ended == [True]
