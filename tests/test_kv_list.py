"""list(): every selector form, which errors raise from list() and which on the first iteration, limit/reverse, batching."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import pytest

from queue_impls.kv import (
    InvalidArgumentError,
    InvalidKeyError,
    InvalidLimitError,
    InvalidSelectorError,
    Key,
    KeyTooLargeError,
    Kv,
    KvEntry,
    encode_key,
)
from queue_impls.kv.types import RawEntry

from .kv_vectors import expect_error, fill, spy_reads

KEYS: list[Key] = [("a",), ("a", "z"), ("a", 1), ("a", 2), ("a", 3), ("a", 3, "x"), ("b",), ("b", 1)]  # str < int


async def keys_of(kv: Kv, **options: Any) -> list[Key]:
    return [e.key for e in await kv.list(**options).collect()]


@pytest.fixture
async def filled(kv: Kv) -> Kv:
    await fill(kv, KEYS)
    return kv


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"prefix": ("a",)}, KEYS[1:6]),  # the prefix key itself is not listed
        ({"prefix": ()}, KEYS),  # the empty prefix lists everything
        ({"prefix": ("a", 3)}, [("a", 3, "x")]),
        ({"prefix": ("c",)}, []),
        ({"prefix": ("a",), "start": ("a", 2)}, KEYS[3:6]),  # start inclusive
        ({"prefix": ("a",), "end": ("a", 3)}, KEYS[1:4]),  # end exclusive
        ({"start": ("a", 1), "end": ("b", 1)}, KEYS[2:7]),
        ({"start": ("a",), "end": ("a",)}, []),  # start == end: empty, no error
        ({"start": ("a", 1), "end": ("a", 1, 0)}, [("a", 1)]),
        ({"start": (), "end": ("a", 2)}, KEYS[:3]),  # the empty key is a start (Deno: every key before end)
    ],
    ids=[
        "prefix",
        "empty-prefix",
        "nested-prefix",
        "no-match",
        "prefix+start",
        "prefix+end",
        "start+end",
        "start==end",
        "one-key-range",
        "empty-start",
    ],
)
async def test_selector_forms(filled: Kv, options: dict[str, Any], expected: list[Key]) -> None:
    assert await keys_of(filled, **options) == expected
    assert await keys_of(filled, reverse=True, **options) == expected[::-1]


async def test_limit_and_reverse(filled: Kv) -> None:
    assert await keys_of(filled, prefix=("a",), limit=2) == [("a", "z"), ("a", 1)]
    assert await keys_of(filled, prefix=("a",), limit=2, reverse=True) == [("a", 3, "x"), ("a", 3)]
    assert await keys_of(filled, prefix=("a",), limit=2.0) == [("a", "z"), ("a", 1)]  # an integral float is accepted
    assert await keys_of(filled, prefix=("a",), limit=100) == KEYS[1:6]
    assert await keys_of(filled, prefix=("a",), limit=1, batch_size=1000) == [("a", "z")]


async def test_entries_carry_decoded_keys_values_and_versionstamps(kv: Kv) -> None:
    res = await kv.set(("k", b"\x00", -5, 2.5, True), {"v": [1]})
    [entry] = await kv.list(prefix=("k",)).collect()
    assert (entry.key, entry.value, entry.versionstamp) == (("k", b"\x00", -5, 2.5, True), {"v": [1]}, res.versionstamp)


async def test_listed_entries_are_ordinary_frozen_kv_entries(kv: Kv) -> None:
    res = await kv.set(("q", 1), {"v": 1})
    [entry] = await kv.list(prefix=("q",)).collect()
    expected = KvEntry(("q", 1), {"v": 1}, res.versionstamp)
    assert type(entry) is KvEntry and entry == expected and repr(entry) == repr(expected)
    assert dataclasses.replace(entry, value=2) == KvEntry(("q", 1), 2, res.versionstamp)
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.value = 2  # type: ignore[misc]


async def test_a_malformed_stored_key_fails_on_its_own_turn(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys of a batch are decoded together; one that cannot be decoded still fails only when its turn comes."""
    await kv.set(("p", "a"), 1)
    await kv.set(("p", "b"), 2)
    read = kv._read

    async def read_with_a_bad_key(ranges: Any, consistency: Any) -> list[list[RawEntry]]:
        [rows] = await read(ranges, consistency)
        return [[*rows, RawEntry(encode_key(("p",)) + b"\x50", 3, rows[-1].versionstamp, 1)]]

    monkeypatch.setattr(kv, "_read", read_with_a_bad_key)
    entries = kv.list(prefix=("p",))
    assert [(await anext(entries)).key, (await anext(entries)).key] == [("p", "a"), ("p", "b")]
    with pytest.raises(InvalidKeyError, match="unknown type tag 0x50"):
        await anext(entries)


async def test_breaking_out_stops_the_reads(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    await fill(kv, [("n", i) for i in range(30)])
    reads = spy_reads(kv, monkeypatch)
    seen = 0
    async for _ in kv.list(prefix=("n",), batch_size=10):
        seen += 1
        if seen == 10:
            break
    assert len(reads) == 1


# -- errors: which raise from kv.list(...) itself and which on the first iteration, as in Deno 2.9.6 ----------------

SHAPE = "Selector must specify either 'prefix' or both 'start' and 'end' key"
LIST_CALL_ERRORS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "prefix+start+end",
        {"prefix": ("a",), "start": ("a", 1), "end": ("a", 2)},
        InvalidSelectorError,
        "Selector can not specify both 'start' and 'end' key when specifying 'prefix'",
    ),
    ("start-only", {"start": ("a",)}, InvalidSelectorError, SHAPE),
    ("end-only", {"end": ("a",)}, InvalidSelectorError, SHAPE),
    ("nothing", {}, InvalidSelectorError, SHAPE),
    ("limit-0", {"prefix": (), "limit": 0}, InvalidLimitError, "Limit must be a positive integer: received 0"),
    ("limit-neg", {"prefix": (), "limit": -1}, InvalidLimitError, "Limit must be a positive integer: received -1"),
    ("limit-frac", {"prefix": (), "limit": 1.5}, InvalidLimitError, "Limit must be a positive integer: received 1.5"),
    ("limit-bool", {"prefix": (), "limit": True}, InvalidLimitError, "Limit must be a positive integer: received True"),
    ("limit-str", {"prefix": (), "limit": "1"}, InvalidLimitError, "Limit must be a positive integer"),
    ("batch-0", {"prefix": (), "batch_size": 0}, InvalidLimitError, "batchSize must be a positive integer: received 0"),
    (
        "batch-frac",
        {"prefix": (), "batch_size": 2.5},
        InvalidLimitError,
        "batchSize must be a positive integer: received 2.5",
    ),
]

LONG = "x" * 2047  # ("x"*2047,) encodes to 2049 bytes
READ_MSG = "Key too large for read (max 2049 bytes)"
FIRST_ITERATION_ERRORS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "start==prefix",
        {"prefix": ("a",), "start": ("a",)},
        InvalidSelectorError,
        "Start key is not in the keyspace defined by prefix",
    ),
    (
        "start-outside",
        {"prefix": ("a",), "start": ("b", 1)},
        InvalidSelectorError,
        "Start key is not in the keyspace defined by prefix",
    ),
    (
        "end==prefix",
        {"prefix": ("a",), "end": ("a",)},
        InvalidSelectorError,
        "End key is not in the keyspace defined by prefix",
    ),
    (
        "end-outside",
        {"prefix": ("a",), "end": ("b", 1)},
        InvalidSelectorError,
        "End key is not in the keyspace defined by prefix",
    ),
    ("start>end", {"start": ("b",), "end": ("a",)}, InvalidSelectorError, "Start key is greater than end key"),
    ("batch-1001", {"prefix": (), "batch_size": 1001}, InvalidLimitError, "Too many entries (max 1000)"),
    ("consistency", {"prefix": (), "consistency": "bogus"}, InvalidArgumentError, "bogus"),
    ("prefix-2049", {"prefix": (LONG,)}, KeyTooLargeError, READ_MSG),
    ("start-2050", {"start": (LONG + "x",), "end": ("z",)}, KeyTooLargeError, READ_MSG),
    ("end-2050", {"start": ("a",), "end": (LONG + "x",)}, KeyTooLargeError, READ_MSG),
]


async def test_errors_raised_by_list_itself(kv: Kv) -> None:
    for case, options, error, message in LIST_CALL_ERRORS:
        await expect_error(case, error, message, functools.partial(kv.list, **options))


async def test_errors_raised_on_the_first_iteration(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = spy_reads(kv, monkeypatch)
    for case, options, error, message in FIRST_ITERATION_ERRORS:
        it = kv.list(**options)  # must not raise yet
        await expect_error(case, error, message, it.__anext__)
    assert reads == []  # rejected before any round trip


async def test_explicit_bounds_may_be_2049_bytes_and_a_prefix_2048(kv: Kv) -> None:
    assert await keys_of(kv, start=(LONG,), end=("z",)) == []
    assert await keys_of(kv, prefix=(LONG[:-1],)) == []
    assert await keys_of(kv, prefix=("a",), start=("a", LONG[:-3])) == []


async def test_limit_over_1000_is_fine_and_batch_size_1000_too(kv: Kv) -> None:
    assert await keys_of(kv, prefix=(), limit=1001) == []
    assert await keys_of(kv, prefix=(), batch_size=1000) == []


# -- batching: the number of primitive reads ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limit", "batch_size", "reads", "asked", "listed"),
    [
        (None, None, 11, 100, 1000),
        (50, None, 1, 50, 50),
        (50, 500, 1, 500, 50),
        (None, 500, 3, 500, 1000),
        (1000, None, 2, 500, 1000),
        (150, None, 1, 150, 150),
        (150, 100, 2, 100, 150),
        (None, 1000, 2, 1000, 1000),
        (999, 7, 143, 7, 999),
    ],
    ids=[
        "no-limit",
        "limit-50",
        "limit-50-batch-500",
        "batch-500",
        "limit-1000",
        "limit-150",
        "limit-150-batch-100",
        "batch-1000",
        "limit-999-batch-7",
    ],
)
async def test_list_batching_read_counts(
    kv: Kv,
    monkeypatch: pytest.MonkeyPatch,
    limit: int | None,
    batch_size: int | None,
    reads: int,
    asked: int,
    listed: int,
) -> None:
    await fill(kv, [("n", i) for i in range(1000)])
    calls = spy_reads(kv, monkeypatch)
    got = await kv.list(prefix=("n",), limit=limit, batch_size=batch_size).collect()
    assert [e.key for e in got] == [("n", i) for i in range(listed)]
    assert len(calls) == reads
    assert all(len(c) == 1 and c[0].limit == asked for c in calls)  # each pull asks for B entries


@pytest.mark.parametrize(("n", "reads"), [(0, 1), (99, 1), (100, 2), (101, 2), (250, 3)])
async def test_read_count_formula_no_limit(kv: Kv, monkeypatch: pytest.MonkeyPatch, n: int, reads: int) -> None:
    await fill(kv, [("n", i) for i in range(n)])
    calls = spy_reads(kv, monkeypatch)
    assert len(await kv.list(prefix=("n",), reverse=True).collect()) == n
    assert len(calls) == reads == n // 100 + 1
