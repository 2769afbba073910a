"""expire_in: an expired entry is never returned (get, get_many, list, checks), and bad values are rejected."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from queue_impls.kv import InvalidMutationError, Kv, KvU64

from .kv_vectors import expect_error

TTL_MS = 100  # long enough for the read right after the write to come before the deadline on a loaded machine
PAST_TTL_S = 0.2  # sleep this long to be past TTL_MS


@pytest.fixture
def exact(kv: Kv) -> Kv:
    """The store, for tests of "never returned after the deadline"; skipped (with the reason) where that is not so."""
    if not kv.exact_expiry:
        pytest.skip(
            f"{kv.name}: exact_expiry is False (reads may return an entry past its deadline until it is purged)"
        )
    return kv


async def test_entry_is_returned_until_its_deadline_and_never_after(exact: Kv) -> None:
    await exact.set(("e", 1), "short", expire_in=TTL_MS)
    await exact.set(("e", 2), "long", expire_in=60_000)
    await exact.set(("e", 3), "forever")
    assert (await exact.get(("e", 1))).value == "short"
    await asyncio.sleep(PAST_TTL_S)
    missing = await exact.get(("e", 1))
    assert (missing.value, missing.versionstamp) == (None, None)
    assert [e.value for e in await exact.get_many([("e", 1), ("e", 2), ("e", 3)])] == [None, "long", "forever"]
    assert [e.key for e in await exact.list(prefix=("e",)).collect()] == [("e", 2), ("e", 3)]
    assert [e.key for e in await exact.list(prefix=("e",), reverse=True, batch_size=1).collect()] == [
        ("e", 3),
        ("e", 2),
    ]


async def test_expired_entries_do_not_fill_a_batch(exact: Kv) -> None:
    op = exact.atomic()
    for i in range(10):
        op.set(("x", i), i, expire_in=TTL_MS if i % 2 else None)
    await op.commit()
    await asyncio.sleep(PAST_TTL_S)
    it = exact.list(prefix=("x",), limit=3)
    assert [e.value for e in await it.collect()] == [0, 2, 4]
    assert [e.value for e in await exact.list(prefix=("x",), cursor=it.cursor).collect()] == [6, 8]


async def test_an_expired_key_checks_as_missing_and_can_be_recreated(exact: Kv) -> None:
    # Two commits must land before this deadline: 100 ms was missed once in clean-clone CI (the check committed).
    await exact.set(("lock",), "held", expire_in=10 * TTL_MS)
    assert not (await exact.atomic().check(("lock",), None).set(("lock",), "mine").commit()).ok
    await asyncio.sleep(10 * TTL_MS / 1000 + PAST_TTL_S)
    assert (await exact.atomic().check(("lock",), None).set(("lock",), "mine").commit()).ok
    assert (await exact.get(("lock",))).value == "mine"
    await asyncio.sleep(PAST_TTL_S)
    assert (await exact.get(("lock",))).value == "mine"  # a set without expire_in does not inherit the old deadline


async def test_sum_on_an_expired_key_starts_from_the_operand(exact: Kv) -> None:
    await exact.set(("n",), KvU64(100), expire_in=TTL_MS)
    await asyncio.sleep(PAST_TTL_S)
    await exact.atomic().sum(("n",), KvU64(1)).commit()
    assert (await exact.get(("n",))).value == KvU64(1)


async def test_sum_min_and_max_remove_the_deadline(exact: Kv) -> None:
    """As in Deno (test_deno_backend.py reads it in Deno's own file), even a min or max that leaves the value as it
    was."""
    for kind in ("sum", "min", "max"):
        await exact.set((kind,), KvU64(5), expire_in=10 * TTL_MS)
    await exact.atomic().sum(("sum",), KvU64(1)).min(("min",), KvU64(9)).max(("max",), KvU64(0)).commit()
    await asyncio.sleep(10 * TTL_MS / 1000 + PAST_TTL_S)
    assert [e.value for e in await exact.get_many([("sum",), ("min",), ("max",)])] == [KvU64(6), KvU64(5), KvU64(5)]


async def test_overwriting_removes_the_deadline(kv: Kv) -> None:
    await kv.set(("k",), 1, expire_in=TTL_MS)
    await kv.set(("k",), 2)
    await asyncio.sleep(PAST_TTL_S)
    assert (await kv.get(("k",))).value == 2


async def test_a_commit_of_several_sets_gives_each_its_own_deadline_or_none(exact: Kv) -> None:
    # Several sets in one commit (SQLite writes a run of them in one statement, and a run without expiries in
    # another): an overwrite without expire_in removes the deadline, one with it keeps its own, in any mix.
    op = exact.atomic()
    for i in range(4):
        op.set(("m", i), "old", expire_in=TTL_MS)
    await op.commit()
    await exact.atomic().set(("m", 0), "new").set(("m", 1), "new").commit()  # a run without expiries
    op = exact.atomic().set(("m", 2), "new").set(("m", 3), "short", expire_in=TTL_MS).set(("m", 4), "new")
    await op.commit()  # a run mixing both
    await asyncio.sleep(PAST_TTL_S)
    found = [(e.key, e.value) for e in await exact.list(prefix=("m",)).collect()]
    assert found == [(("m", 0), "new"), (("m", 1), "new"), (("m", 2), "new"), (("m", 4), "new")]


async def test_expire_in_zero_is_accepted(exact: Kv) -> None:
    assert (await exact.set(("z",), 1, expire_in=0)).ok
    await asyncio.sleep(0.01)
    assert (await exact.get(("z",))).value is None


async def test_integral_float_expire_in_is_accepted(kv: Kv) -> None:
    assert (await kv.set(("f",), 1, expire_in=60_000.0)).ok  # type: ignore[arg-type]
    assert (await kv.get(("f",))).value == 1


async def test_bad_expire_in_is_rejected_before_anything_is_written(kv: Kv) -> None:
    cases: dict[str, Any] = {"negative": -1, "fraction": 1.5, "bool": True, "str": "10"}
    for case, bad in cases.items():

        async def commit(bad: Any = bad) -> None:  # the builder may reject at set() or at commit()
            await kv.atomic().set(("before",), 1).set(("k",), 1, expire_in=bad).commit()

        await expect_error(case, InvalidMutationError, "expireIn must be a non-negative integer: received", commit)
    assert (await kv.get(("before",))).value is None
