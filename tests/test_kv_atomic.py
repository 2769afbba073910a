"""Atomic commits: checks (None, stale, an entry), set/delete/sum/min/max, versionstamps, all-or-nothing."""

from __future__ import annotations

import re
from typing import Any

import pytest

from queue_impls.kv import CommitResult, InvalidCheckError, InvalidMutationError, Kv, KvU64, MutationTypeError

from .kv_vectors import expect_error, spy_reads

HEX20 = re.compile(r"^[0-9a-f]{20}$")
U64_MAX = 2**64 - 1


async def test_set_returns_ok_and_a_versionstamp_delete_returns_none(kv: Kv) -> None:
    res = await kv.set(("a",), 1)
    assert res.ok and res.versionstamp is not None and HEX20.match(res.versionstamp)
    await kv.delete(("a",))
    assert (await kv.get(("a",))).value is None
    await kv.delete(("never",))  # deleting a missing key is fine
    assert (await kv.get(("never",))).versionstamp is None


async def test_versionstamps_are_strictly_increasing(kv: Kv) -> None:
    stamps = [str((await kv.set(("k", i % 3), i)).versionstamp) for i in range(10)]
    stamps.append(str((await kv.atomic().delete(("k", 0)).commit()).versionstamp))
    assert all(HEX20.match(s) for s in stamps)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


async def test_one_commit_shares_its_versionstamp(kv: Kv) -> None:
    await kv.set(("old",), 1)
    res = await kv.atomic().set(("a",), 1).set(("b",), "x").sum(("c",), KvU64(1)).max(("d",), 3).commit()
    entries = await kv.get_many([("a",), ("b",), ("c",), ("d",), ("old",)])
    assert {e.versionstamp for e in entries[:4]} == {res.versionstamp}
    assert entries[4].versionstamp is not None and entries[4].versionstamp < str(res.versionstamp)


async def test_empty_commit_succeeds_with_a_new_versionstamp(kv: Kv) -> None:
    first = await kv.set(("a",), 1)
    empty = await kv.atomic().commit()
    assert empty.ok and empty.versionstamp is not None and HEX20.match(empty.versionstamp)
    assert empty.versionstamp > str(first.versionstamp)
    assert str((await kv.set(("a",), 2)).versionstamp) > empty.versionstamp


async def test_commit_is_one_write_round_trip(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[int] = []
    real = kv._atomic_write

    async def counting(checks, mutations):  # type: ignore[no-untyped-def]
        writes.append(len(mutations))
        return await real(checks, mutations)

    monkeypatch.setattr(kv, "_atomic_write", counting)
    reads = spy_reads(kv, monkeypatch)
    await kv.atomic().check(("a",), None).set(("a",), 1).sum(("n",), 2).delete(("z",)).commit()
    assert writes == [3] and reads == []


async def test_mutations_apply_in_order(kv: Kv) -> None:
    await kv.atomic().set(("a",), 1).delete(("a",)).set(("b",), 1).set(("b",), 2).commit()
    await kv.atomic().sum(("n",), 5).set(("n",), KvU64(100)).sum(("n",), 1).commit()
    assert [e.value for e in await kv.get_many([("a",), ("b",), ("n",)])] == [None, 2, KvU64(101)]


async def test_builder_changes_in_place_and_chains(kv: Kv) -> None:
    op = kv.atomic()
    assert op.set(("a",), 1) is op
    op.set(("b",), 2)
    assert (await op.commit()).ok
    assert [e.value for e in await kv.get_many([("a",), ("b",)])] == [1, 2]


# -- checks --------------------------------------------------------------------------------------------------------


async def test_check_none_means_must_not_exist(kv: Kv) -> None:
    assert (await kv.atomic().check(("a",), None).set(("a",), 1).commit()).ok
    res = await kv.atomic().check(("a",), None).set(("a",), 2).set(("other",), 1).commit()
    assert res == CommitResult(ok=False, versionstamp=None)
    assert [e.value for e in await kv.get_many([("a",), ("other",)])] == [1, None]


async def test_stale_versionstamp_fails_and_writes_nothing(kv: Kv) -> None:
    first = await kv.set(("a",), 1)
    second = await kv.set(("a",), 2)
    assert not (await kv.atomic().check(("a",), first.versionstamp).set(("a",), 3).set(("b",), 3).commit()).ok
    assert [e.value for e in await kv.get_many([("a",), ("b",)])] == [2, None]
    assert (await kv.atomic().check(("a",), second.versionstamp).set(("a",), 3).commit()).ok
    assert (await kv.get(("a",))).value == 3


async def test_check_on_a_missing_key_with_a_versionstamp_fails(kv: Kv) -> None:
    res = await kv.set(("elsewhere",), 1)
    assert not (await kv.atomic().check(("missing",), res.versionstamp).commit()).ok


async def test_check_takes_an_entry(kv: Kv) -> None:
    await kv.set(("a",), 1)
    entry = await kv.get(("a",))
    assert (await kv.atomic().check(entry).set(("a",), 2).commit()).ok
    assert not (await kv.atomic().check(entry).set(("a",), 3).commit()).ok  # the entry is now stale
    missing = await kv.get(("b",))
    assert (await kv.atomic().check(missing).set(("b",), 1).commit()).ok  # a missing entry checks "must not exist"
    assert not (await kv.atomic().check(missing).set(("b",), 2).commit()).ok
    assert [e.value for e in await kv.get_many([("a",), ("b",)])] == [2, 1]


async def test_check_versionstamp_is_compared_as_hex(kv: Kv) -> None:
    res = await kv.set(("a",), 1)
    assert (await kv.atomic().check(("a",), str(res.versionstamp).upper()).commit()).ok


async def test_several_checks_all_must_hold(kv: Kv) -> None:
    a, b = await kv.set(("a",), 1), await kv.set(("b",), 1)
    assert not (
        await kv.atomic().check(("a",), a.versionstamp).check(("b",), a.versionstamp).set(("c",), 1).commit()
    ).ok
    assert (await kv.atomic().check(("a",), a.versionstamp).check(("b",), b.versionstamp).set(("c",), 1).commit()).ok


async def test_invalid_check_versionstamp(kv: Kv) -> None:
    cases: dict[str, Any] = {"short": "xyz", "19": "0" * 19, "21": "0" * 21, "not-hex": "g" * 20, "int": 12345,
                             "trailing newline": "0" * 19 + "1\n"}  # fmt: skip
    for case, bad in cases.items():
        op = kv.atomic().check(("a",), bad).set(("wrote",), 1)
        await expect_error(case, InvalidCheckError, "Invalid check", op.commit)
    assert (await kv.get(("wrote",))).value is None


# -- sum / min / max -----------------------------------------------------------------------------------------------


async def test_sum_stores_the_operand_on_a_missing_key_and_wraps_mod_2_64(kv: Kv) -> None:
    await kv.atomic().sum(("n",), KvU64(U64_MAX)).commit()
    assert (await kv.get(("n",))).value == KvU64(U64_MAX)
    await kv.atomic().sum(("n",), KvU64(2)).commit()
    assert (await kv.get(("n",))).value == KvU64(1)
    await kv.atomic().sum(("n",), 10).sum(("n",), 0).commit()  # a plain int operand is accepted
    assert (await kv.get(("n",))).value == KvU64(11)


async def test_min_and_max(kv: Kv) -> None:
    for n in (5, 7, 3, 4):
        await kv.atomic().min(("lo",), KvU64(n)).max(("hi",), KvU64(n)).commit()
    assert [e.value for e in await kv.get_many([("lo",), ("hi",)])] == [KvU64(3), KvU64(7)]
    await kv.atomic().max(("hi",), U64_MAX).min(("lo",), 0).commit()
    assert [e.value for e in await kv.get_many([("lo",), ("hi",)])] == [KvU64(0), KvU64(U64_MAX)]


async def test_sum_on_a_set_u64_value(kv: Kv) -> None:
    await kv.set(("n",), KvU64(40))
    await kv.atomic().sum(("n",), KvU64(2)).commit()
    assert (await kv.get(("n",))).value == KvU64(42)


@pytest.mark.parametrize("kind", ["sum", "min", "max"])
async def test_u64_mutation_on_a_non_u64_value_raises_and_writes_nothing(kv: Kv, kind: str) -> None:
    await kv.set(("keep",), "kept")
    message = f"Failed to perform '{kind}' mutation on a non-U64 value in the database"
    for case, stored in {"str": "str", "int": 1, "bytes8": b"\x00" * 8, "list": [1]}.items():
        res = await kv.set(("v",), stored)
        op = kv.atomic().set(("before",), 1).delete(("keep",))
        getattr(op, kind)(("v",), KvU64(1)).set(("after",), 1)
        await expect_error(case, MutationTypeError, message, op.commit)
        entries = await kv.get_many([("before",), ("keep",), ("v",), ("after",)])
        assert [e.value for e in entries] == [None, "kept", stored, None], case  # all-or-nothing (Deno keeps "before")
        assert entries[2].versionstamp == res.versionstamp, case


async def test_u64_operand_must_be_a_u64(kv: Kv) -> None:
    for bad in (-1, 2**64, 1.0, True, "1", None):
        for kind in ("sum", "min", "max"):
            op = kv.atomic()
            with pytest.raises(InvalidMutationError, match="KvU64"):
                getattr(op, kind)(("n",), bad)
            assert (await op.commit()).ok  # the rejected call queued nothing
    assert (await kv.get(("n",))).value is None


async def test_failed_commit_leaves_the_versionstamp_sequence_intact(kv: Kv) -> None:
    a = await kv.set(("a",), 1)
    assert not (await kv.atomic().check(("a",), None).set(("b",), 1).commit()).ok
    b = await kv.set(("b",), 2)
    assert str(b.versionstamp) > str(a.versionstamp)
