"""Cursors: strings equal to Deno's (vectors produced by Deno 2.9.6), resuming forward and in reverse, and their errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from queue_impls.kv import CursorOutOfBoundsError, InvalidCursorError, Key, Kv

from .kv_vectors import (
    CURSORS_EMPTY_PREFIX,
    CURSORS_PREFIX_START,
    CURSORS_PREFIX_U,
    CURSORS_START_END_U_A_C,
    CURSORS_START_END_U_W,
    OTHER_KEYS,
    U_KEYS_IN_DENO_ORDER,
    expect_error,
    fill,
)

U = U_KEYS_IN_DENO_ORDER


@pytest.fixture
async def filled(kv: Kv) -> Kv:
    await fill(kv, U + OTHER_KEYS)
    return kv


async def walk(kv: Kv, **options: Any) -> tuple[list[Key], list[str]]:
    """List one entry per call, resuming from the cursor each time, as the Deno run that made the vectors did."""
    keys: list[Key] = []
    cursors: list[str] = []
    cursor = None
    while True:
        it = kv.list(limit=1, cursor=cursor, **options)
        got = await it.collect()
        if not got:
            assert it.cursor == ""  # ran out of entries
            return keys, cursors
        keys.append(got[0].key)
        cursor = it.cursor
        cursors.append(cursor)


@pytest.mark.parametrize(
    ("options", "keys", "cursors"),
    [
        ({"prefix": ("u",)}, U, CURSORS_PREFIX_U),
        ({"start": ("u", "a"), "end": ("u", "c")}, U[1:4], CURSORS_START_END_U_A_C),
        ({"start": ("u",), "end": ("w",)}, [*U, OTHER_KEYS[0]], CURSORS_START_END_U_W),
        ({"prefix": ("u",), "start": ("u", 0.0)}, U[-3:], CURSORS_PREFIX_START),
        ({"prefix": ()}, U + OTHER_KEYS, CURSORS_EMPTY_PREFIX),
    ],
    ids=["prefix", "start-end-narrow", "start-end-wide", "prefix-start", "empty-prefix"],
)
async def test_cursor_strings_equal_denos(
    filled: Kv, options: dict[str, Any], keys: list[Key], cursors: list[str]
) -> None:
    got_keys, got_cursors = await walk(filled, **options)
    assert got_cursors == cursors
    assert got_keys == keys


async def test_reverse_cursors_equal_denos(filled: Kv) -> None:
    got_keys, got_cursors = await walk(filled, prefix=("u",), reverse=True)
    assert got_cursors == CURSORS_PREFIX_U[::-1]
    assert got_keys == U[::-1]
    keys, cursors = await walk(filled, prefix=("u",), end=("u", 2.5), reverse=True)  # Deno: every key before 2.5
    assert cursors == CURSORS_PREFIX_U[-3::-1] and keys == U[-3::-1]


async def test_semantics_doc_example(kv: Kv) -> None:
    await kv.set(("u", "bb"), 1)
    it = kv.list(prefix=("u",))
    await it.collect()
    it = kv.list(prefix=("u",), limit=1)
    await it.collect()
    assert it.cursor == "AmJiAA=="


async def test_resume_forward_and_reverse_complement_each_other(filled: Kv) -> None:
    for split in (0, 1, 6, 12):
        it = filled.list(prefix=("u",), limit=split + 1)
        head = [e.key for e in await it.collect()]
        tail = [e.key for e in await filled.list(prefix=("u",), cursor=it.cursor).collect()]
        before = [e.key for e in await filled.list(prefix=("u",), cursor=it.cursor, reverse=True).collect()]
        assert head + tail == U, split
        assert before == head[:-1][::-1], split  # reverse resume stops before the cursor key, exclusive


async def test_resume_across_batches_matches_one_pass(kv: Kv) -> None:
    keys: list[Key] = [("n", i) for i in range(25)]
    await fill(kv, keys)
    pages: list[Key] = []
    cursor = ""
    for _ in range(10):
        it = kv.list(prefix=("n",), limit=7, batch_size=3, cursor=cursor, reverse=True)
        pages += [e.key for e in await it.collect()]
        cursor = it.cursor
        if not cursor:
            break
    assert pages == keys[::-1]


async def test_cursor_states(filled: Kv) -> None:
    it = filled.list(prefix=("u",))
    with pytest.raises(InvalidCursorError, match="Cannot get cursor before first iteration"):
        _ = it.cursor
    given = filled.list(prefix=("u",), cursor="AmJiAA==")
    assert given.cursor == "AmJiAA=="  # before the first iteration, the cursor given
    exhausted = filled.list(prefix=("v",))
    await exhausted.collect()
    assert exhausted.cursor == ""
    at_limit = filled.list(prefix=("v",), limit=1)  # stopped at the limit, even with nothing left
    await at_limit.collect()
    assert at_limit.cursor == "FQE="
    over_limit = filled.list(prefix=("v",), limit=2)
    await over_limit.collect()
    assert over_limit.cursor == ""


async def test_cursor_after_break(filled: Kv) -> None:
    it = filled.list(prefix=("u",), batch_size=2)
    n = 0
    async for _ in it:
        n += 1
        if n == 3:
            break
    assert it.cursor == "AmEA_2IA"  # Deno 2.9.6, same keys


async def test_empty_cursor_is_ignored(filled: Kv) -> None:
    assert [e.key for e in await filled.list(prefix=("u",), cursor="").collect()] == U


async def test_cursor_past_a_prefix_is_not_an_error(filled: Kv) -> None:
    beyond = "Kg=="  # 0x2a: after every key under ("u",)
    assert await filled.list(prefix=("u",), cursor=beyond).collect() == []
    assert len(await filled.list(prefix=("u",), cursor=beyond, reverse=True).collect()) == len(U)


async def test_invalid_cursor_raises_on_first_iteration(filled: Kv) -> None:
    cases = {
        "alphabet": "!!",
        "no-pad": "AmJiAA",
        "non-canonical": "AmJiAB==",
        "std-alphabet": "+/+/",
        "space": "AmJi AA=",
        "bad-length": "A===",
    }  # each one rejected by Deno 2.9.6
    for case, cursor in cases.items():
        it = filled.list(prefix=("u",), cursor=cursor)
        await expect_error(case, InvalidCursorError, "invalid cursor", it.__anext__)


async def test_cursor_out_of_bounds(filled: Kv) -> None:
    """Every case checked against Deno 2.9.6."""
    below = CURSORS_PREFIX_U[0]  # ("u", b"\x00\x01"), before the start below
    it = filled.list(prefix=("u",), start=("u", "bb"), cursor=below)
    with pytest.raises(CursorOutOfBoundsError, match=re.escape("cursor out of bounds")):
        await anext(it)
    # Deno checks only the bound the cursor moves: a reverse read ending below start is just empty
    assert await filled.list(prefix=("u",), start=("u", "bb"), cursor=below, reverse=True).collect() == []
    above = CURSORS_START_END_U_A_C[-1]  # ("u", "bb"), above the end ("u", "b") below
    it = filled.list(start=("u", "a"), end=("u", "b"), cursor=above, reverse=True)
    with pytest.raises(CursorOutOfBoundsError, match=re.escape("cursor out of bounds")):
        await anext(it)
    assert await filled.list(start=("u", "a"), end=("u", "b"), cursor=above).collect() == []
    it = filled.list(prefix=("u",), end=("u", "bb"), cursor="FQE=", reverse=True)  # ("u", 1) is above the end
    with pytest.raises(CursorOutOfBoundsError, match=re.escape("cursor out of bounds")):
        await anext(it)
