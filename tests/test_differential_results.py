"""What each call gives, on every store, is what the real Deno KV gives, called directly with nothing of ours in front.

test_differential.py compares our stores with each other (the deno: backend among them, behind our own checks and
key encoding); here the oracle is tests/deno_oracle.ts, which hands Deno the key parts and options as JavaScript
values. So Deno encodes and orders the keys itself, computes the cursors itself and reads the options itself: the
keys listed, their order, the entries read, the cursors (the strings, resumed on the same or another selector, in
either direction) and the order of the versionstamps must match, for key parts at the edges of every type
(-0.0, NaN, infinities, ints past 64 bits, bytes and strings with 00/FF/NUL and characters past the BMP) and for
option values that JavaScript reads loosely (a `reverse` that is not a bool: only `true` reverses, as in Deno); and what
commits give (checks of every kind, upper-case versionstamps among them, and sets, deletes and sum/min/max).

A list also makes as many reads as Deno's own iterator: the real Deno client lists through our KV Connect server,
which counts its reads, and our list() is counted on the store behind it.
"""

from __future__ import annotations

import asyncio
import math
import os
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from queue_impls.kv import Kv, KvEntry, KvError, KvU64
from queue_impls.kv.backends.deno import find_deno
from queue_impls.kvconnect import KvConnectServer

from . import test_differential_errors as errors_test
from .kv_vectors import spy_reads
from .test_differential_errors import Oracle, deno_class, empty, enc_key

pytestmark = pytest.mark.deno

# The errors test's fixtures: the real Deno behind tests/deno_oracle.ts, and every store of tests/backends.py.
oracle = errors_test.oracle
stores = errors_test.stores

parts = st.sampled_from(
    ["", "a", "a\x00", "\x00\xff", "\U0001f600", "\uffff", "\xe9", b"", b"\x00", b"\xff", b"\x00\xff", 0, -1, 1, 255,
     2**64, -(2**64), 2**64 - 1, 2**200, 0.0, -0.0, 1.5, -1e300, math.inf, -math.inf, math.nan, 5e-324, True, False]
)  # fmt: skip
keys = st.builds(lambda head, rest: (head, *rest), st.sampled_from(["a", "b"]), st.lists(parts, max_size=2))
heads = st.sampled_from([(), ("a",), ("b",)])
selectors = st.one_of(
    st.builds(lambda p: (p, None, None), st.one_of(heads, keys)),
    st.builds(lambda p, s: (p, (*p, *s), None), heads, st.lists(parts, min_size=1, max_size=2)),
    st.builds(lambda p, e: (p, None, (*p, *e)), heads, st.lists(parts, min_size=1, max_size=2)),
    st.builds(lambda s, e: (None, s, e), keys, keys),  # start may be after end: an error, as in Deno
)
list_options = st.fixed_dictionaries(
    {
        "limit": st.one_of(st.none(), st.integers(1, 6)),
        "batch_size": st.one_of(st.none(), st.integers(1, 4)),
        # JavaScript reads `reverse` loosely: only `true` reverses (1, "yes" and {} list forward)
        "reverse": st.sampled_from([False, True, True, None, 0, 1, "yes"]),
        "consistency": st.sampled_from(["strong", "eventual"]),
    }
)
takes = st.one_of(st.none(), st.integers(0, 4))  # how many entries to take (None: all), then read it.cursor
operations = st.one_of(
    st.tuples(st.just("set"), keys, st.integers(0, 99)),
    st.tuples(st.just("fill"), st.lists(keys, min_size=1, max_size=12)),
    st.tuples(st.just("delete"), keys),
    st.tuples(st.just("get"), keys),
    st.tuples(st.just("get_many"), st.lists(keys, max_size=11)),
    st.tuples(st.just("watch"), st.lists(keys, max_size=3)),
    # a list, then a second one resuming from its cursor, on the same selector or another, with other options
    st.tuples(
        st.just("list"), selectors, list_options, takes, st.one_of(st.none(), st.tuples(selectors, list_options))
    ),
    st.tuples(st.just("list"), selectors, list_options, takes, st.none()),
)
# Commits: checks of every kind, sets, deletes and sum/min/max. KvU64 values live under "u" only, so that no
# sum/min/max meets another value (Deno's local backend keeps the mutations before such a failure: docs/kv.md).
u64_keys = st.builds(lambda rest: ("u", *rest), st.lists(parts, max_size=1))
u64s = st.sampled_from([0, 1, 7, 2**63, 2**64 - 1])
mutations = st.one_of(
    st.tuples(st.just("set"), keys, st.integers(0, 99)),
    st.tuples(st.just("set"), u64_keys, u64s.map(KvU64)),
    st.tuples(st.just("delete"), st.one_of(keys, u64_keys), st.none()),
    st.tuples(st.sampled_from(["sum", "min", "max"]), u64_keys, u64s),
)
# a check's versionstamp: none (must not exist), the key's current one (read first, as given or in upper case), or
# one it cannot have
check_kinds = st.sampled_from(["missing", "current", "upper", "stale"])
operations = st.one_of(
    operations,
    st.tuples(
        st.just("atomic"),
        st.lists(st.tuples(st.one_of(keys, u64_keys), check_kinds), max_size=3),
        st.lists(mutations, max_size=4),
    ),
)
fills = st.tuples(st.just("fill"), st.lists(keys, min_size=4, max_size=16))
STALE = "00000000000000000001"

# -------------------------------------------------------------------------- one shape for both sides' results


def canonical_part(part: Any) -> Any:
    if isinstance(part, dict):  # Deno's tagged part
        tag, text = next(iter(part.items()))
        if tag == "f":
            return canonical_part(float(text))
        return (tag, text)
    if isinstance(part, bool):
        return ("t", part)
    if isinstance(part, str):
        return ("s", part)
    if isinstance(part, bytes):
        return ("b", part.hex())
    if isinstance(part, int):
        return ("n", str(part))
    return ("f", "NaN" if math.isnan(part) else struct.pack(">d", part).hex())  # keeps -0.0 apart from 0.0


def canonical_entry(entry: Any) -> Any:
    if isinstance(entry, KvEntry):
        value = None if entry.versionstamp is None else str(entry.value)
        if isinstance(entry.value, KvU64):
            value = f"u64:{entry.value.value}"
        return ([canonical_part(p) for p in entry.key], value, ("vs", entry.versionstamp))
    parts, value, versionstamp = entry
    return ([canonical_part(p) for p in parts], value, ("vs", versionstamp))


def canonical(kind: str, result: Any) -> Any:
    if kind == "get":
        return canonical_entry(result)
    if kind in ("get_many", "watch"):
        return None if result is None else [canonical_entry(e) for e in result]
    if kind == "list":
        entries, cursor = result
        return [canonical_entry(e) for e in entries], cursor
    if kind in ("set", "fill", "atomic"):
        return result[0], ("vs", result[1])
    return None


def ranked(results: list[Any]) -> list[Any]:
    """Versionstamps replaced by their rank among the run's own: two stores' stamps differ, their order must not."""
    stamps: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, tuple) and len(node) == 2 and node[0] == "vs":
            if node[1] is not None:
                stamps.add(node[1])
        elif isinstance(node, list | tuple):
            for child in node:
                collect(child)

    collect(results)
    ranks = {stamp: i for i, stamp in enumerate(sorted(stamps))}

    def rank(node: Any) -> Any:
        if isinstance(node, tuple) and len(node) == 2 and node[0] == "vs":
            return ("vs", None if node[1] is None else ranks[node[1]])
        if isinstance(node, list | tuple):
            return type(node)(rank(child) for child in node)
        return node

    return [rank(r) for r in results]


# ----------------------------------------------------------------------------------------- the two sides


def _selector(selector: tuple[Any, Any, Any]) -> dict[str, Any]:
    return {name: key for name, key in zip(("prefix", "start", "end"), selector, strict=True) if key is not None}


async def ours(kv: Kv, kind: str, args: tuple[Any, ...], cursor: str | None = None) -> Any:
    """One call on our store, as ["ok", result] or ["error", phase, class name]."""
    phase = "call"
    try:
        if kind == "set":
            result: Any = await kv.set(args[0], args[1])
            return ["ok", (result.ok, result.versionstamp)]
        if kind == "fill":
            op = kv.atomic()
            for i, key in enumerate(args[0]):
                op.set(key, i)
            result = await op.commit()
            return ["ok", (result.ok, result.versionstamp)]
        if kind == "atomic":
            op = kv.atomic()
            for key, check in args[0]:
                op.check(key, checked(check, (await kv.get(key)).versionstamp))
            for mutation, key, value in args[1]:
                if mutation == "delete":
                    op.delete(key)
                else:
                    getattr(op, mutation)(key, value)
            result = await op.commit()
            return ["ok", (result.ok, result.versionstamp)]
        if kind == "delete":
            return ["ok", await kv.delete(args[0])]
        if kind == "get":
            return ["ok", await kv.get(args[0])]
        if kind == "get_many":
            return ["ok", await kv.get_many(args[0])]
        if kind == "watch":
            stream = kv.watch(args[0])
            phase = "next"
            try:
                return ["ok", await anext(stream, None)]
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        selector, options, take = args
        it = kv.list(**_selector(selector), **options, cursor=cursor)
        phase = "next"
        entries = []
        while take is None or len(entries) < take:
            try:
                entries.append(await anext(it))
            except StopAsyncIteration:
                break
        try:
            now = it.cursor
        except KvError:
            now = None
        return ["ok", (entries, now)]
    except KvError as exc:
        return ["error", phase, type(exc).__name__]


def checked(kind: str, current: str | None) -> str | None:
    """The versionstamp a check of this kind passes, given the key's current one."""
    if kind == "missing":
        return None
    if kind == "stale":
        return STALE
    return current.upper() if current is not None and kind == "upper" else current


def enc_value(value: Any) -> dict[str, str]:
    return {"u64": str(value.value)} if isinstance(value, KvU64) else {"bigint": str(value)}


def to_oracle(kind: str, args: tuple[Any, ...], cursor: str | None = None) -> list[Any]:
    if kind == "set":
        return ["set", enc_key(args[0]), {"bigint": str(args[1])}, None]
    if kind == "fill":
        return ["atomic", [], [["set", enc_key(key), {"bigint": str(i)}, None] for i, key in enumerate(args[0])]]
    if kind in ("delete", "get"):
        return [kind, enc_key(args[0])] + ([None] if kind == "get" else [])
    if kind == "get_many":
        return ["get_many", [enc_key(k) for k in args[0]], None]
    if kind == "watch":
        return ["watch", [enc_key(k) for k in args[0]]]
    (prefix, start, end), options, take = args
    names = {"limit": "limit", "batch_size": "batchSize", "reverse": "reverse", "consistency": "consistency"}
    wire = {names[n]: {"num": str(v)} if n in ("limit", "batch_size") else {"raw": v} for n, v in options.items()}
    wire = {n: v for n, v in wire.items() if v != {"num": "None"}}
    if cursor is not None:
        wire["cursor"] = {"raw": cursor}
    return ["list", *(None if k is None else enc_key(k) for k in (prefix, start, end)), wire, take]


async def theirs(oracle: Oracle, kind: str, args: tuple[Any, ...], cursor: str | None = None) -> Any:
    if kind == "atomic":
        checks = []
        for key, check in args[0]:
            current = await oracle.ask(["get", enc_key(key), None])
            checks.append([enc_key(key), checked(check, current[1][2])])
        muts = [[m, enc_key(key), None if m == "delete" else enc_value(v), None] for m, key, v in args[1]]
        request = ["atomic", checks, muts]
    else:
        request = to_oracle(kind, args, cursor)
    reply = await oracle.ask(request)
    if reply[0] == "ok":
        return reply
    return ["error", reply[1], deno_class(kind, reply[2])]


def calls(op: tuple[Any, ...]) -> list[tuple[str, tuple[Any, ...], bool]]:
    """The calls of one operation: (kind, arguments, resumes from the previous call's cursor)."""
    if op[0] != "list":
        return [(op[0], op[1:], False)]
    _, selector, options, take, then = op
    first = ("list", (selector, options, take), False)
    if then is None:
        return [first]
    return [first, ("list", (then[0], then[1], None), True)]


@settings(
    max_examples=int(os.environ.get("KVQ_DIFF_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.builds(lambda first, rest: [first, *rest], fills, st.lists(operations, max_size=12)))
async def test_every_store_gives_what_deno_gives(oracle: Oracle, stores: dict[str, Kv], ops: list[Any]) -> None:
    await oracle.ask(["reset"])
    plan = [call for op in ops for call in calls(op)]
    want: list[Any] = []
    cursor: str | None = None
    for kind, args, resumes in plan:
        reply = await theirs(oracle, kind, args, cursor if resumes else None)
        if resumes and cursor is None:  # the first list raised or gave no cursor: nothing to resume from
            reply = ["skipped"]
        cursor = reply[1][1] if reply[0] == "ok" and kind == "list" else None
        event(f"{kind}{' resumed' if resumes else ''}: Deno {reply[0]}")
        if kind == "list" and reply[0] == "ok":
            event(f"list: {'no' if not reply[1][0] else 'some'} entries")
        if kind == "atomic" and reply[0] == "ok":
            event(f"atomic: {'committed' if reply[1][0] else 'a check failed'}")
        want.append(reply)
    for name, kv in stores.items():
        await empty(kv)
        got: list[Any] = []
        cursor = None
        for kind, args, resumes in plan:
            reply = await ours(kv, kind, args, cursor if resumes else None)
            if resumes and cursor is None:
                reply = ["skipped"]
            cursor = reply[1][1] if reply[0] == "ok" and kind == "list" else None
            got.append(reply)
        normal = [ranked([canonical(k, r[1]) if r[0] == "ok" else r for (k, _, _), r in zip(plan, rs, strict=True)])
                  for rs in (want, got)]  # fmt: skip
        for i, (expected, actual) in enumerate(zip(*normal, strict=True)):
            assert actual == expected, f"{name} differs from Deno at call {i}: {plan[i]!r}"


# ------------------------------------------------------------------------------- as many reads as Deno's list

#: (limit, batch_size, reverse, entries taken before stopping) over 1,000 entries: the batching rules' edges.
LIST_CASES = [
    (None, None, False, None), (None, None, True, None), (50, None, False, None), (50, 500, False, None),
    (None, 500, False, None), (1000, None, False, None), (150, None, True, None), (150, 100, False, None),
    (None, 1000, False, None), (999, 7, False, None), (1001, 1000, True, None), (None, None, False, 100),
    (None, 100, False, 250), (None, 7, True, 1), (5, 2, False, None), (600, None, False, 500),
]  # fmt: skip


async def test_a_list_makes_as_many_reads_as_denos_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with KvConnectServer.running("memory:", trace=False) as server:
        store = server.kv.inner
        op = store.atomic()
        for i in range(1000):
            op.set(("n", i), i)
        await op.commit()
        reads = spy_reads(store, monkeypatch)
        ours = [await _listed_and_reads(store, reads, *case) for case in LIST_CASES]
        deno = await asyncio.create_subprocess_exec(
            find_deno(), "run", "--unstable-kv", "-A", "--quiet", "--no-config", "--no-lock", str(errors_test.ORACLE),
            server.url, env={**os.environ, "DENO_KV_ACCESS_TOKEN": server.token, "NO_COLOR": "1"},
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        theirs = []
        try:
            for limit, batch, reverse, stop in LIST_CASES:
                before = server.recorder.requests["snapshot_read"]
                options = {"limit": {"raw": limit}, "batchSize": {"raw": batch}, "reverse": {"raw": reverse}}
                options = {name: v for name, v in options.items() if v["raw"] is not None}
                reply = await Oracle(deno).ask(["list", enc_key(("n",)), None, None, options, stop])
                assert reply[0] == "ok", reply
                theirs.append((len(reply[1][0]), server.recorder.requests["snapshot_read"] - before))
        finally:
            assert deno.stdin is not None
            deno.stdin.close()
            await asyncio.wait_for(deno.wait(), 30)
    assert ours == theirs, [(case, o, t) for case, o, t in zip(LIST_CASES, ours, theirs, strict=True) if o != t]


async def _listed_and_reads(
    kv: Kv, reads: list[Any], limit: int | None, batch: int | None, reverse: bool, stop: int | None
) -> tuple[int, int]:
    """(entries listed, reads made) by our list() with these options, stopped after ``stop`` entries; ``reads`` is
    ``spy_reads``' record of the store's reads."""
    before = len(reads)
    listed = 0
    async for _ in kv.list(prefix=("n",), limit=limit, batch_size=batch, reverse=reverse):
        listed += 1
        if listed == stop:
            break
    return listed, len(reads) - before
