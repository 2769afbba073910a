"""Every limit, with Deno's message text, at its exact boundary; a rejected commit writes nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from queue_impls.kv import (
    AtomicOperation,
    InvalidKeyError,
    KeyTooLargeError,
    Kv,
    KvU64,
    TooManyChecksError,
    TooManyMutationsError,
    TotalKeySizeError,
    TotalMutationSizeError,
    ValueTooLargeError,
    encode_key,
    encode_value,
    open_kv,
)

WROTE = ("wrote",)
WROTE_VALUE = b"w"  # raw bytes: the same size in every backend's value encoding


def key_of_size(size: int, i: int = 1) -> tuple[str, int]:
    """A distinct key (for 1 <= i < 256) whose encoding is exactly ``size`` bytes: a string part and a 2-byte int."""
    key = ("k" * (size - 4), i)
    assert len(encode_key(key)) == size
    return key


async def rejected(kv: Kv, error: type[Exception], message: str, build: Callable[[AtomicOperation], Any]) -> None:
    """The commit raises ``error`` with Deno's ``message``, and the valid mutation before the bad one is not written."""
    op = kv.atomic().set(WROTE, WROTE_VALUE)
    build(op)
    with pytest.raises(error, match=re.escape(message)):
        await op.commit()
    assert (await kv.get(WROTE)).value is None


# -- keys ----------------------------------------------------------------------------------------------------------

WRITE_MSG = "Key too large for write (max 2048 bytes)"
READ_MSG = "Key too large for read (max 2049 bytes)"


async def test_write_key_2048_bytes_is_the_limit(kv: Kv) -> None:
    assert (await kv.set(key_of_size(2048), 1)).ok
    assert (await kv.get(key_of_size(2048))).value == 1
    await rejected(kv, KeyTooLargeError, WRITE_MSG, lambda op: op.set(key_of_size(2049), 1))


@pytest.mark.parametrize("kind", ["delete", "sum", "min", "max", "check"])
async def test_write_key_limit_applies_to_every_written_and_checked_key(kv: Kv, kind: str) -> None:
    def build(op: AtomicOperation) -> None:
        if kind == "check":
            op.check(key_of_size(2049), None)
        elif kind == "delete":
            op.delete(key_of_size(2049))
        else:
            getattr(op, kind)(key_of_size(2049), KvU64(1))

    await rejected(kv, KeyTooLargeError, WRITE_MSG, build)
    assert (await kv.atomic().check(key_of_size(2048), None).delete(key_of_size(2048)).commit()).ok


async def test_read_key_limit_is_on_the_range_bound(kv: Kv) -> None:
    await kv.get(key_of_size(2048))  # reads [key, key + 0x00): a 2049-byte bound
    await kv.get_many([key_of_size(2048)])
    with pytest.raises(KeyTooLargeError, match=re.escape(READ_MSG)):
        await kv.get(key_of_size(2049))
    with pytest.raises(KeyTooLargeError, match=re.escape(READ_MSG)):
        await kv.get_many([("a",), key_of_size(2049)])


async def test_empty_key_cannot_be_written(kv: Kv) -> None:
    await rejected(kv, InvalidKeyError, "key cannot be empty", lambda op: op.set((), 1))
    await rejected(kv, InvalidKeyError, "key cannot be empty", lambda op: op.check((), None))


async def test_bigint_part_over_255_bytes(kv: Kv) -> None:
    assert (await kv.set(("b", 2**2039), 1)).ok  # 255 magnitude bytes
    assert (await kv.get(("b", 2**2039))).value == 1
    message = "Invalid mutation: BigUint requires more than 255 bytes to be represented"
    await rejected(kv, InvalidKeyError, message, lambda op: op.set(("b", 2**2040), 1))
    await rejected(kv, InvalidKeyError, message, lambda op: op.set(("b", -(2**2040)), 1))


# -- values --------------------------------------------------------------------------------------------------------

VALUE_MSG = "Value too large (max 65536 bytes)"


async def test_value_limit_on_raw_bytes_is_exact(kv: Kv) -> None:
    assert (await kv.set(("v",), b"x" * 65536)).ok
    assert (await kv.get(("v",))).value == b"x" * 65536
    await rejected(kv, ValueTooLargeError, VALUE_MSG, lambda op: op.set(("v2",), b"x" * 65537))


async def test_value_limit_on_serialised_values(kv: Kv) -> None:
    """Each backend counts its own serialisation: this project's (str: 3 bytes over), Deno's V8 (6 bytes over).

    "x" * 65530 is 65536 bytes in V8 (Deno 2.9.6 accepts it, rejects 65531) and 65533 in ours; "x" * 65534 is over
    the limit in both, and the commit is rejected before anything is written.
    """
    assert (await kv.set(("s",), "x" * 65530)).ok
    assert (await kv.get(("s",))).value == "x" * 65530
    await rejected(kv, ValueTooLargeError, VALUE_MSG, lambda op: op.set(("s2",), "x" * 65534))
    await rejected(kv, ValueTooLargeError, VALUE_MSG, lambda op: op.set(("s2",), {"a": ["x" * 65536]}))


@pytest.mark.parametrize(
    "make",
    [lambda n: "x" * (n - 3), lambda n: ["x" * (n - 5)], lambda n: {"k": [b"ab", "x" * (n - 36)]}],
    ids=["str", "list", "tagged"],
)
async def test_this_projects_codec_is_what_the_local_backends_count(make: Callable[[int], Any]) -> None:
    assert len(encode_value(make(65536))[0]) == 65536 and len(encode_value(make(65537))[0]) == 65537
    async with await open_kv("memory:") as kv:
        assert (await kv.set(("v",), make(65536))).ok
        await rejected(kv, ValueTooLargeError, VALUE_MSG, lambda op: op.set(("v2",), make(65537)))


# -- commit counts and totals --------------------------------------------------------------------------------------


async def test_100_checks(kv: Kv) -> None:
    op = kv.atomic()
    for i in range(100):
        op.check(("c", i), None)
    assert (await op.commit()).ok

    def build(op: AtomicOperation) -> None:
        for i in range(101):
            op.check(("c", i), None)

    await rejected(kv, TooManyChecksError, "Too many checks (max 100)", build)


async def test_1000_mutations(kv: Kv) -> None:
    op = kv.atomic()
    for i in range(1000):
        op.delete(("m", i))
    assert (await op.commit()).ok
    await rejected(
        kv,
        TooManyMutationsError,
        "Too many mutations (max 1000)",
        lambda op: [op.delete(("m", i)) for i in range(1000)],
    )


def big_sets(op: AtomicOperation, extra: int) -> None:
    """13 sets of 5-byte keys: each counts its key twice plus its encoded value, 13*2*5 + 12*65536 + 32638 = 819200."""
    for i in range(1, 13):
        op.set(("m", i), b"x" * 65536)
    op.set(("m", 13), b"x" * (32638 + extra))


WROTE_SIZE = 2 * len(encode_key(WROTE)) + len(WROTE_VALUE)  # the set(WROTE, 1) that rejected() adds
MUTATION_MSG = "Total mutation size too large (max 819200 bytes)"


async def test_total_mutation_size_819200(kv: Kv) -> None:
    op = kv.atomic()
    big_sets(op, 0)
    assert (await op.commit()).ok
    await rejected(kv, TotalMutationSizeError, MUTATION_MSG, lambda op: big_sets(op, 1 - WROTE_SIZE))


@pytest.mark.parametrize(
    ("add", "size"),
    [
        (lambda op: op.check(("c",), None), 3),  # a check counts its key once
        (lambda op: op.delete(("c",)), 3),  # a delete counts its key once
        (lambda op: op.sum(("c",), 1), 3 + 3 + 8),  # sum/min/max: key, then key + 8-byte value again
        (lambda op: op.max(("c",), 1), 3 + 3 + 8),
    ],
    ids=["check", "delete", "sum", "max"],
)
async def test_every_key_counts_towards_the_total_mutation_size(
    kv: Kv, add: Callable[[AtomicOperation], Any], size: int
) -> None:
    room = -WROTE_SIZE - size  # exactly 819200 with WROTE's set and the added operation

    def one_over(op: AtomicOperation) -> None:
        big_sets(op, room + 1)
        add(op)

    await rejected(kv, TotalMutationSizeError, MUTATION_MSG, one_over)
    op = kv.atomic().set(WROTE, WROTE_VALUE)
    big_sets(op, room)
    add(op)
    assert (await op.commit()).ok


async def test_total_key_size_81920(kv: Kv) -> None:
    op = kv.atomic()
    for i in range(1, 41):
        op.set(key_of_size(2048, i), None)  # 40 * 2048 = 81920
    assert (await op.commit()).ok

    def build(op: AtomicOperation) -> None:  # 81920 + WROTE's 7 bytes
        for i in range(1, 41):
            op.set(key_of_size(2048, i), None)

    await rejected(kv, TotalKeySizeError, "Total key size too large (max 81920 bytes)", build)


async def test_deleted_and_checked_keys_do_not_count_towards_the_total_key_size(kv: Kv) -> None:
    op = kv.atomic().set(WROTE, 1)
    for i in range(1, 61):
        op.check(key_of_size(2048, i), None).delete(key_of_size(2048, i + 100))
    assert (await op.commit()).ok
    assert (await kv.get(WROTE)).value == 1


async def test_u64_mutation_keys_count_towards_the_total_key_size(kv: Kv) -> None:
    def build(op: AtomicOperation) -> None:
        for i in range(1, 41):
            op.sum(key_of_size(2048, i), 1)

    await rejected(kv, TotalKeySizeError, "Total key size too large (max 81920 bytes)", build)
