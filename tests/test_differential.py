"""Differential test: random operation sequences give identical results on memory, SQLite and the real Deno KV.

Values, keys, order, ok flags, cursors and error types must match; versionstamps are compared by their order.
List calls mix invalid options in with valid ones. Which error a call with several invalid arguments raises is
checked against the real Deno, called directly with no checks of ours in front, by test_differential_errors.py.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_impls.kv import Kv, KvEntry, KvError, KvU64, encode_key, open_kv

pytestmark = pytest.mark.deno

STORES = ("memory:", "sqlite:{dir}/kv.db", "deno::memory:", "deno:{dir}/kv.sqlite")

# A small key universe, so that reads, checks and sum/min/max meet what earlier operations wrote.
parts = st.sampled_from(["x", "", "x\x00", 0, -1, 256, 1.5, -0.0, b"\x00", True])
keys = st.builds(lambda head, rest: (head, *rest), st.sampled_from(["a", "b"]), st.lists(parts, max_size=2))
prefixes = st.one_of(st.just(()), st.tuples(st.sampled_from(["a", "b"])), keys)
u64s = st.sampled_from([0, 1, 2, 7, 2**63, 2**64 - 1])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.binary(max_size=5),
)
values = st.one_of(
    u64s.map(KvU64),
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
        max_leaves=6,
    ),
)
mutations = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("delete"), keys, st.none()),
    st.tuples(st.sampled_from(["sum", "min", "max"]), keys, u64s),
)
checks = st.tuples(keys, st.sampled_from(["missing", "current", "stale"]))
list_options = st.fixed_dictionaries(
    {
        "limit": st.one_of(st.none(), st.integers(1, 6), st.sampled_from([0, -1, 1.5, 2.0])),
        "reverse": st.booleans(),
        "batch_size": st.one_of(st.none(), st.integers(1, 4), st.sampled_from([0, 1.5, 1001])),
        "consistency": st.sampled_from(["strong", "strong", "eventual", "bogus"]),
    }
)
heads = st.sampled_from([(), ("a",), ("b",)])
inside = st.builds(lambda head, rest: (*head, *rest), heads, st.lists(parts, min_size=1, max_size=2))
selectors = st.one_of(
    st.builds(lambda p: {"prefix": p}, heads),
    st.builds(lambda p, s: {"prefix": p, "start": (*p, *s)}, heads, st.lists(parts, min_size=1, max_size=2)),
    st.builds(lambda p, e: {"prefix": p, "end": (*p, *e)}, heads, st.lists(parts, min_size=1, max_size=2)),
    st.builds(lambda s, e: {"start": min(s, e, key=encode_key), "end": max(s, e, key=encode_key)}, inside, inside),
    st.builds(lambda p, s, e: {"prefix": p, "start": s, "end": e}, prefixes, keys, keys),  # malformed
    st.builds(lambda p, s: {"prefix": p, "start": s}, prefixes, keys),  # often outside the prefix
    st.builds(lambda s, e: {"start": s, "end": e}, keys, keys),  # start may be after end
)
fill = st.tuples(st.just("fill"), st.lists(keys, min_size=4, max_size=16))
operations = st.one_of(
    st.tuples(st.just("set"), keys, values),
    st.tuples(st.just("fill"), st.lists(keys, min_size=1, max_size=12)),
    st.tuples(st.just("list"), selectors, list_options, st.booleans()),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("atomic"), st.lists(checks, max_size=3), st.lists(mutations, max_size=4)),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("get_many"), st.lists(keys, max_size=11)),
    st.tuples(st.just("list"), selectors, list_options, st.booleans()),
)


class Run:
    """Applies operations to one store and records normalised results; versionstamps are kept for ranking."""

    def __init__(self, kv: Kv) -> None:
        self.kv = kv
        self.stamps: list[str] = []

    def stamp(self, versionstamp: str | None) -> Any:
        if versionstamp is None:
            return None
        self.stamps.append(versionstamp)
        return ("vs", versionstamp)

    def entry(self, e: KvEntry) -> Any:
        return (e.key, typed(e.value), self.stamp(e.versionstamp))

    async def apply(self, op: tuple[Any, ...]) -> Any:
        try:
            return await getattr(self, "op_" + op[0])(*op[1:])
        except KvError as exc:
            return ("error", type(exc).__name__)

    async def op_set(self, key: Any, value: Any) -> Any:
        result = await self.kv.set(key, value)
        return (result.ok, self.stamp(result.versionstamp))

    async def op_fill(self, fill_keys: list[Any]) -> Any:
        op = self.kv.atomic()
        for i, key in enumerate(fill_keys):
            op.set(key, i)
        result = await op.commit()
        return (result.ok, self.stamp(result.versionstamp))

    async def op_delete(self, key: Any) -> Any:
        return await self.kv.delete(key)

    async def op_atomic(self, check_specs: list[Any], mutation_specs: list[Any]) -> Any:
        op = self.kv.atomic()
        for key, kind in check_specs:
            if kind == "current":
                op.check(await self.kv.get(key))
            else:
                op.check(key, None if kind == "missing" else "00000000000000000001")
        for kind, key, value in mutation_specs:
            getattr(op, kind)(key) if kind == "delete" else getattr(op, kind)(key, value)
        result = await op.commit()
        return (result.ok, self.stamp(result.versionstamp))

    async def op_get(self, key: Any) -> Any:
        return self.entry(await self.kv.get(key))

    async def op_get_many(self, keys: list[Any]) -> Any:
        return [self.entry(e) for e in await self.kv.get_many(keys)]

    async def op_list(self, selector: dict[str, Any], options: dict[str, Any], resume: bool) -> Any:
        it = self.kv.list(**selector, **options)
        first = [self.entry(e) async for e in it]
        if not resume:
            return first, it.cursor
        again = self.kv.list(**selector, **{**options, "limit": None}, cursor=it.cursor)
        return first, it.cursor, [self.entry(e) async for e in again], again.cursor


def typed(value: Any) -> Any:
    """The value with every scalar tagged by its type, so 1, 1.0 and True differ (and -0.0 from 0.0)."""
    if isinstance(value, list):
        return ["list", *(typed(v) for v in value)]
    if isinstance(value, dict):
        return ("dict", sorted((k, typed(v)) for k, v in value.items()))
    if isinstance(value, float):
        return ("float", value, math.copysign(1.0, value))
    return (type(value).__name__, value)


def ranked(result: Any, ranks: dict[str, int]) -> Any:
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "vs":
        return ("vs", ranks[result[1]])
    if isinstance(result, list | tuple):
        return type(result)(ranked(r, ranks) for r in result)
    return result


@pytest.fixture
async def kvs(tmp_path: Path) -> AsyncIterator[list[Kv]]:
    """The stores, opened once per test and emptied before each example (a deno start costs ~50 ms)."""
    opened: list[Kv] = []
    try:
        for url in STORES:
            opened.append(await open_kv(url.format(dir=tmp_path)))
        yield opened
    finally:
        for kv in opened:
            await kv.close()


async def empty(kv: Kv) -> None:
    entries = await kv.list(prefix=()).collect()
    for i in range(0, len(entries), 500):
        op = kv.atomic()
        for e in entries[i : i + 500]:
            op.delete(e.key)
        await op.commit()


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.builds(lambda first, rest: [first, *rest], fill, st.lists(operations, max_size=20)))
async def test_every_backend_gives_the_same_results(kvs: list[Kv], ops: list[tuple[Any, ...]]) -> None:
    runs = [Run(kv) for kv in kvs]
    results: list[list[Any]] = []
    for run in runs:
        await empty(run.kv)
        results.append([await run.apply(op) for op in ops])
    normalised = []
    for run, result in zip(runs, results, strict=True):
        ranks = {vs: i for i, vs in enumerate(sorted(set(run.stamps)))}
        normalised.append(ranked(result, ranks))
    for url, other in zip(STORES[1:], normalised[1:], strict=True):
        for i, (want, got) in enumerate(zip(normalised[0], other, strict=True)):
            assert got == want, f"{url} differs from memory: at op {i} {ops[i]!r}"
