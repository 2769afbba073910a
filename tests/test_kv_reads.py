"""get and get_many: one read each, missing keys, input order, duplicates, the 10-key limit, closed stores."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from queue_impls.kv import InvalidArgumentError, Kv, KvClosedError, KvEntry, KvU64, TooManyRangesError, open_kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.kv.backends.sqlite import SqliteKv
from queue_impls.kv.codec import decode_key, decode_value, encode_key
from queue_impls.kv.types import Consistency, RawEntry, ReadRange, StoredValue
from queue_impls.meter import CountingKv

from .kv_vectors import spy_reads


async def test_get_missing_key_is_an_entry_with_nones(kv: Kv) -> None:
    assert await kv.get(("nope", 1)) == KvEntry(("nope", 1), None, None)


async def test_get_returns_value_and_versionstamp_of_the_last_write(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    await kv.set(("a",), "old")
    res = await kv.set(("a",), "new")
    reads = spy_reads(kv, monkeypatch)
    entry = await kv.get(("a",))
    assert entry == KvEntry(("a",), "new", res.versionstamp)
    assert len(reads) == 1 and len(reads[0]) == 1


async def test_get_accepts_a_list_key_and_the_empty_key(kv: Kv) -> None:
    await kv.set(("a", 1), 1)
    assert (await kv.get(["a", 1])).value == 1  # type: ignore[arg-type]
    assert (await kv.get(())).value is None


async def test_consistency_none_reads_as_strong_as_denos_null(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    # Deno 2 takes {consistency: null} (and undefined) as "strong"; "" or "STRONG" throw (test_bad_arguments)
    await kv.set(("a",), 1)
    reads = spy_reads(kv, monkeypatch)
    assert (await kv.get(("a",), consistency=None)).value == 1
    assert [e.value for e in await kv.get_many([("a",)], consistency=None)] == [1]
    assert [e.value for e in await kv.list(prefix=(), consistency=None).collect()] == [1]
    assert len(reads) == 3


async def test_get_does_not_match_prefixes_or_extensions(kv: Kv) -> None:
    await kv.set(("a", "b"), 1)
    assert (await kv.get(("a",))).value is None
    assert (await kv.get(("a", "b", "c"))).value is None
    assert (await kv.get(("a", "b\0"))).value is None


async def test_get_many_is_one_read_in_input_order_with_duplicates(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    await kv.set(("p",), 1)
    await kv.set(("q",), KvU64(2))
    reads = spy_reads(kv, monkeypatch)
    got = await kv.get_many([("q",), ("p",), ("q",), ("nope",)])
    assert [(e.key, e.value) for e in got] == [(("q",), KvU64(2)), (("p",), 1), (("q",), KvU64(2)), (("nope",), None)]
    assert got[0].versionstamp == got[2].versionstamp is not None and got[3].versionstamp is None
    assert len(reads) == 1 and len(reads[0]) == 4


async def test_get_many_gives_a_key_asked_twice_two_distinct_values(kv: Kv) -> None:
    await kv.set(("d",), {"n": [1]})
    first, second = await kv.get_many([("d",), ("d",)])
    assert first.value == second.value == {"n": [1]}
    first.value["n"].append(2)  # mutating one result must not change the other, as in Deno
    assert second.value == {"n": [1]}


async def test_get_many_takes_at_most_ten_keys(kv: Kv) -> None:
    ten = [("k", i) for i in range(10)]
    await kv.set(("k", 9), "nine")
    got = await kv.get_many(ten)
    assert [e.key for e in got] == ten and got[9].value == "nine"
    with pytest.raises(TooManyRangesError, match=re.escape("Too many ranges (max 10)")):
        await kv.get_many([*ten, ("k", 10)])


async def test_get_many_of_nothing_is_empty(kv: Kv) -> None:
    assert await kv.get_many([]) == []


async def test_eventual_consistency_is_accepted_and_anything_else_rejected(kv: Kv) -> None:
    await kv.set(("a",), 1)
    assert (await kv.get(("a",), consistency="eventual")).value == 1
    assert [e.value for e in await kv.get_many([("a",)], consistency="eventual")] == [1]
    with pytest.raises(InvalidArgumentError, match="bogus"):
        await kv.get(("a",), consistency="bogus")  # type: ignore[arg-type]


async def test_closed_store_raises(kv: Kv) -> None:
    await kv.set(("a",), 1)
    await kv.close()
    assert kv.closed
    with pytest.raises(KvClosedError):
        await kv.get(("a",))
    with pytest.raises(KvClosedError):
        await kv.get_many([("a",)])
    with pytest.raises(KvClosedError):
        await kv.list(prefix=()).collect()
    with pytest.raises(KvClosedError):
        await kv.set(("a",), 2)
    with pytest.raises(KvClosedError):
        await kv.delete(("a",))
    with pytest.raises(KvClosedError):
        await kv.atomic().commit()
    await kv.close()  # closing twice is harmless


async def test_async_with_closes_the_store(kv: Kv) -> None:
    async with kv as same:
        assert same is kv
    with pytest.raises(KvClosedError):
        await kv.get(("a",))


async def test_reads_on_the_loop_where_offered_see_what_was_written_before_and_after(kv: Kv) -> None:
    """Every store answers read_on_loop(); where it says True (a SQLite file), reads still see every commit."""
    await kv.set(("a",), 1)
    assert isinstance(kv.read_on_loop(), bool)
    await kv.set(("b",), 2)
    assert [e.value for e in await kv.get_many([("a",), ("b",)])] == [1, 2]


_STORED_READS = [
    [ReadRange(encode_key(("v", "json")), encode_key(("v", "json")) + b"\x00", 1)],  # a get
    [ReadRange(encode_key(k), encode_key(k) + b"\x00", 1) for k in (("v", "u64"), ("nope",), ("v", "bytes"))],  # many
    [ReadRange(encode_key(("v",)) + b"\x00", encode_key(("v",)) + b"\xff", 10)],  # a list page
    [ReadRange(encode_key(("v",)) + b"\x00", encode_key(("v",)) + b"\xff", 2, reverse=True)],
    [ReadRange(encode_key(("v", "tagged")), encode_key(("v", "tagged")) + b"\x00", 1)],
]


async def _check_stored_reads(kv: Kv) -> list[Any]:
    """``_snapshot_read_stored`` against ``_snapshot_read``: the same entries, each value the same or left as stored
    (a ``StoredValue`` whose payload decodes to it). Returns the values the stored reads gave."""
    await kv.set(("v", "json"), {"a": [1, "x"]})
    await kv.set(("v", "u64"), KvU64(7))
    await kv.set(("v", "bytes"), b"\x00\xff")
    await kv.set(("v", "tagged"), {"b": b"\x01", "n": 2**70})  # this codec writes it tagged (T)
    given = []
    for ranges in _STORED_READS:
        decoded = await kv._snapshot_read(ranges, "strong")
        stored = await kv._snapshot_read_stored(ranges, "strong")
        assert [[(r.key, r.versionstamp, r.size) for r in rows] for rows in stored] == [
            [(r.key, r.versionstamp, r.size) for r in rows] for rows in decoded
        ]
        for s_rows, d_rows in zip(stored, decoded, strict=True):
            for s, d in zip(s_rows, d_rows, strict=True):
                value = decode_value(*s.value) if isinstance(s.value, StoredValue) else s.value
                assert value == d.value and type(value) is type(d.value)
                given.append(s.value)
    return given


async def test_a_stored_read_gives_the_entries_of_a_read_with_values_as_stored(kv: Kv) -> None:
    """What the KV Connect server reads with: memory and SQLite leave every value as stored (never decoded)."""
    given = await _check_stored_reads(kv)
    inner = kv
    while isinstance(inner, CountingKv):
        inner = inner.inner
    if isinstance(inner, MemoryKv | SqliteKv):
        assert given and all(isinstance(v, StoredValue) for v in given)


async def test_a_stored_read_of_sqlite_read_on_the_loop(tmp_path: Path) -> None:
    async with await open_kv(f"sqlite:{tmp_path / 'kv.db'}") as kv:
        assert kv.read_on_loop()
        given = await _check_stored_reads(kv)
        assert given and all(isinstance(v, StoredValue) for v in given)


async def test_a_store_that_overrides_its_read_is_read_through_it_by_the_stored_read(tmp_path: Path) -> None:
    """A subclass that rewrites what its parent reads, and says nothing of the stored read, must not have the
    KV Connect server (which reads with ``_snapshot_read_stored``) serve the parent's entries past the override."""

    class Hiding(MemoryKv):
        async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
            rows = await super()._snapshot_read(ranges, consistency)
            return [[r for r in found if r.key != encode_key(("secret",))] for found in rows]

    kv = Hiding()
    await kv.set(("secret",), 1)
    await kv.set(("shown",), 2)
    everything = [ReadRange(b"", b"\xff", 10)]
    [stored] = await kv._snapshot_read_stored(everything, "strong")
    assert [decode_key(r.key) for r in stored] == [("shown",)]
    [plain] = await MemoryKv()._snapshot_read_stored(everything, "strong")  # the parent keeps its own
    assert plain == []
    await kv.close()
