"""Calls with several invalid arguments at once raise the error the real Deno KV raises, on every store.

Deno checks arguments in a fixed order (docs/kv.md, "Which error wins"); a call that breaks several rules gets the
first. Here the oracle is the real Deno, called directly by tests/deno_oracle.ts with no checks of ours in front;
every store in tests/backends.py (the deno: backend included, whose Python side checks before Deno sees anything)
must raise the same error class, from the same place for list() and watch() (the call itself or the first next()).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from queue_impls.kv import Kv, KvError
from queue_impls.kv.backends.deno import find_deno

from .backends import BACKENDS

pytestmark = pytest.mark.deno

ORACLE = Path(__file__).with_name("deno_oracle.ts")


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT = _Sentinel("ABSENT")  # the option is not given
NOT_A_PART = _Sentinel("NOT_A_PART")  # an object where a key part should be
NOT_CLONEABLE = _Sentinel("NOT_CLONEABLE")  # a value neither side can serialise (a function in Deno)
BIG_VALUE = _Sentinel("BIG_VALUE")  # "y" * 70000: over the value limit on both sides

# ------------------------------------------------------------------------------------------- generators

write_keys = st.sampled_from([("a",), ("a", 1), ("b", "x"), (), ("a", NOT_A_PART), ("x" * 2100,), ("a", 2**2100), 1])
list_keys = st.sampled_from(
    [ABSENT, ("a",), ("a", 1), ("a", 5), ("b",), (), ("a", NOT_A_PART), ("x" * 2100,), ("a", "x" * 2044)]
)
consistencies = st.sampled_from(["strong", "eventual", "bogus"])
limits = st.sampled_from([ABSENT, 1, 3, 2.0, 0, -1, 1.5, True, "3", math.nan])
batch_sizes = st.sampled_from([ABSENT, 2, 1000, 0, -2, 1.5, 1001, 2000, "x"])
cursors = st.sampled_from([ABSENT, "", "!!", "AA", "AB==", 123, "FAA=", "AmIA"])
values = st.sampled_from([1, "s", None, [1, "x"], NOT_CLONEABLE, BIG_VALUE])
expire_ins = st.sampled_from([ABSENT, 1000, 0, -1, 1.5, 2**53, 2**60, True])
versionstamps = st.sampled_from(
    [None, "00000000000000000001", "0000000000000000000A", "zz", "0" * 19, "0" * 19 + "1\n", 5]
)
operands = st.sampled_from([1, 0, 2**64 - 1, -1, 2**64, 1.5])
pads = st.sampled_from(["none", "none", "checks101", "mutations1001", "total"])

mutations = st.one_of(
    st.tuples(st.just("set"), write_keys, values, expire_ins),
    st.tuples(st.just("delete"), write_keys, st.none(), st.just(ABSENT)),
    st.tuples(st.sampled_from(["sum", "min", "max"]), write_keys, operands, st.just(ABSENT)),
)
operations = st.one_of(
    st.tuples(st.just("get"), write_keys, consistencies),
    st.tuples(st.just("get_many"), st.lists(write_keys, max_size=12), consistencies),
    st.tuples(st.just("delete"), write_keys),
    st.tuples(st.just("set"), write_keys, values, expire_ins),
    st.tuples(st.just("watch"), st.lists(write_keys, max_size=12)),
    st.tuples(
        st.just("list"),
        list_keys,
        list_keys,
        list_keys,
        st.fixed_dictionaries(
            {
                "limit": limits,
                "batch_size": batch_sizes,
                "cursor": cursors,
                "reverse": st.booleans(),
                "consistency": st.sampled_from([ABSENT, "strong", "eventual", "bogus"]),
            }
        ),
    ),
    st.tuples(
        st.just("atomic"),
        st.lists(st.tuples(write_keys, versionstamps), max_size=3),
        st.lists(mutations, max_size=3),
        pads,
    ),
)

# ------------------------------------------------------------------------- the same call, both sides


def py_key(key: Any) -> Any:
    return tuple(object() if p is NOT_A_PART else p for p in key) if isinstance(key, tuple) else key


def py_value(value: Any) -> Any:
    if value is NOT_CLONEABLE:
        return len
    return "y" * 70_000 if value is BIG_VALUE else value


def padded(checks: list[Any], mutations: list[Any], pad: str) -> tuple[list[Any], list[Any]]:
    if pad == "checks101":
        checks = [*checks, *((("pad", i), None) for i in range(101))]
    elif pad == "mutations1001":
        mutations = [*mutations, *(("delete", ("pad", i), None, ABSENT) for i in range(1001))]
    elif pad == "total":
        mutations = [*mutations, *(("set", ("pad", i), "y" * 65_000, ABSENT) for i in range(13))]
    return checks, mutations


async def run_python(kv: Kv, op: tuple[Any, ...]) -> list[Any]:
    phase = "call"
    try:
        kind = op[0]
        if kind == "get":
            await kv.get(py_key(op[1]), consistency=op[2])
        elif kind == "get_many":
            await kv.get_many([py_key(k) for k in op[1]], consistency=op[2])
        elif kind == "delete":
            await kv.delete(py_key(op[1]))
        elif kind == "set":
            await kv.set(py_key(op[1]), py_value(op[2]), **_given(expire_in=op[3]))
        elif kind == "watch":
            stream = kv.watch([py_key(k) for k in op[1]])
            phase = "next"
            try:
                with contextlib.suppress(StopAsyncIteration):
                    await anext(stream)
            finally:
                await stream.aclose()  # type: ignore[attr-defined]
        elif kind == "list":
            selector = _given(prefix=py_key(op[1]), start=py_key(op[2]), end=py_key(op[3]))
            it = kv.list(**selector, **_given(**op[4]))
            phase = "next"
            with contextlib.suppress(StopAsyncIteration):
                await it.__anext__()
        else:
            checks, muts = padded(op[1], op[2], op[3])
            atomic = kv.atomic()
            for key, versionstamp in checks:
                atomic.check(py_key(key), versionstamp)
            for mkind, key, value, expire_in in muts:
                if mkind == "set":
                    atomic.set(py_key(key), py_value(value), **_given(expire_in=expire_in))
                elif mkind == "delete":
                    atomic.delete(py_key(key))
                else:
                    getattr(atomic, mkind)(py_key(key), value)
            await atomic.commit()
    except KvError as exc:
        return ["error", phase, type(exc).__name__]
    return ["ok"]


def _given(**options: Any) -> dict[str, Any]:
    return {name: value for name, value in options.items() if value is not ABSENT}


def enc_part(part: Any) -> dict[str, Any]:
    if part is NOT_A_PART:
        return {"obj": 1}
    if isinstance(part, bool):
        return {"t": part}
    if isinstance(part, str):
        return {"s": part}
    if isinstance(part, bytes):
        return {"b": part.hex()}
    if isinstance(part, int):
        return {"n": str(part)}
    return {"f": repr(part) if math.isfinite(part) else str(part).replace("inf", "Infinity").replace("nan", "NaN")}


def enc_key(key: Any) -> Any:
    if key is ABSENT:
        return None
    return {"key": [enc_part(p) for p in key]} if isinstance(key, tuple) else {"raw": key}


def enc_num(value: Any) -> Any:
    if value is ABSENT:
        return None
    if isinstance(value, bool | str):
        return {"raw": value}
    if isinstance(value, float) and math.isnan(value):
        return {"num": "NaN"}
    return {"num": str(value)}


def enc_value(value: Any) -> dict[str, Any]:
    if value is NOT_CLONEABLE:
        return {"fn": 1}
    if value is BIG_VALUE:
        return {"big": 70_000}
    if isinstance(value, str) and len(value) > 1000:
        return {"big": len(value)}
    return {"v": value}


def enc_operand(value: Any) -> dict[str, Any]:
    return {"bigint": str(value)} if isinstance(value, int) and not isinstance(value, bool) else {"num": str(value)}


def to_oracle(op: tuple[Any, ...]) -> list[Any]:
    kind = op[0]
    if kind == "get":
        return ["get", enc_key(op[1]), op[2]]
    if kind == "get_many":
        return ["get_many", [enc_key(k) for k in op[1]], op[2]]
    if kind == "watch":
        return ["watch", [enc_key(k) for k in op[1]]]
    if kind == "delete":
        return ["delete", enc_key(op[1])]
    if kind == "set":
        return ["set", enc_key(op[1]), enc_value(op[2]), enc_num(op[3])]
    if kind == "list":
        names = {"limit": "limit", "batch_size": "batchSize", "cursor": "cursor", "reverse": "reverse",
                 "consistency": "consistency"}  # fmt: skip
        options = {
            names[name]: enc_num(value) if name in ("limit", "batch_size") else {"raw": value}
            for name, value in op[4].items()
            if value is not ABSENT
        }
        return ["list", enc_key(op[1]), enc_key(op[2]), enc_key(op[3]), options]
    checks, muts = padded(op[1], op[2], op[3])
    wire_muts = [
        [mkind, enc_key(key), enc_value(value) if mkind == "set" else enc_operand(value), enc_num(expire)]
        for mkind, key, value, expire in muts
    ]
    return ["atomic", [[enc_key(k), vs] for k, vs in checks], wire_muts]


# Deno's messages -> the project's error classes (docs/kv.md's table of limits and messages).
DENO_ERRORS: list[tuple[str, str]] = [
    ("Limit must be a positive integer", "InvalidLimitError"),
    ("batchSize must be a positive integer", "InvalidLimitError"),
    ("Too many entries", "InvalidLimitError"),
    ("Selector ", "InvalidSelectorError"),
    ("Start key is", "InvalidSelectorError"),
    ("End key is", "InvalidSelectorError"),
    ("unknown variant", "InvalidArgumentError"),
    ("expected string, number, bigint", "InvalidKeyError"),
    ("serde_v8 error: invalid type; expected: array", "InvalidKeyError"),
    ("key cannot be empty", "InvalidKeyError"),
    ("Invalid mutation: BigUint", "InvalidKeyError"),
    ("BigUint requires more than 255 bytes", "InvalidKeyError"),
    ("Invalid mutation: expireIn is too large", "InvalidMutationError"),
    ("expireIn must be", "InvalidMutationError"),
    ("Key too large", "KeyTooLargeError"),
    ("Value too large", "ValueTooLargeError"),
    ("invalid cursor", "InvalidCursorError"),
    ("cursor out of bounds", "CursorOutOfBoundsError"),
    ("Too many ranges", "TooManyRangesError"),
    ("Too many keys", "TooManyRangesError"),  # watch()
    ("Too many checks", "TooManyChecksError"),
    ("Too many mutations", "TooManyMutationsError"),
    ("Total mutation size too large", "TotalMutationSizeError"),
    ("Total key size too large", "TotalKeySizeError"),
    ("Invalid check", "InvalidCheckError"),
    ("Value must ", "InvalidMutationError"),  # a sum/min/max operand (Deno.KvU64's own checks)
    ("Failed to perform", "MutationTypeError"),
]


def deno_class(kind: str, message: str) -> str:
    if message.startswith("serde_v8 error: invalid type; expected: string"):  # a cursor or a versionstamp
        return "InvalidCursorError" if kind == "list" else "InvalidCheckError"
    if message.endswith("could not be cloned."):  # V8's serializer: "<the value> could not be cloned."
        return "InvalidValueError"
    for prefix, name in DENO_ERRORS:
        if message.startswith(prefix):
            return name
    return f"unmapped Deno error: {message}"


class Oracle:
    """The real Deno KV behind tests/deno_oracle.ts, one request at a time."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def ask(self, request: list[Any]) -> list[Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), 60)
        assert line, "the Deno oracle exited"
        reply: list[Any] = json.loads(line)
        return reply

    async def run(self, op: tuple[Any, ...]) -> list[Any]:
        reply = await self.ask(to_oracle(op))
        if reply[0] == "ok":
            return ["ok"]  # what the call gave: test_differential_results.py compares that
        return ["error", reply[1] if op[0] in ("list", "watch") else "call", deno_class(op[0], reply[2])]


@pytest.fixture
async def oracle() -> AsyncIterator[Oracle]:
    argv = [find_deno(), "run", "--unstable-kv", "--quiet", "--no-prompt", "--no-config", "--no-lock", str(ORACLE)]
    process = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        yield Oracle(process)
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[dict[str, Kv]]:
    async with contextlib.AsyncExitStack() as stack:
        opened = {}
        for name, factory, _ in BACKENDS:
            directory = tmp_path / name.replace("(", "_").replace(")", "_")
            directory.mkdir()
            opened[name] = await stack.enter_async_context(factory(directory))
        yield opened


async def empty(kv: Kv) -> None:
    keys = [e.key for e in await kv.list(prefix=()).collect()]
    for i in range(0, len(keys), 500):
        op = kv.atomic()
        for key in keys[i : i + 500]:
            op.delete(key)
        await op.commit()


BAD_KEYS = [(), ("a", NOT_A_PART), ("x" * 2100,), ("a", 2**2100), 1]
BAD_LIST_KEYS = [("a", NOT_A_PART), ("x" * 2100,)]
BAD_OPTIONS: dict[str, list[Any]] = {
    "consistency": ["bogus"],
    "limit": [0, -1, 1.5, True, "3"],
    "batch_size": [0, -2, 1.5, 1001, 2000, "x"],
    "cursor": ["!!", "AA", "AB==", 123],
}


def _bad(value: Any, bad: list[Any]) -> bool:
    return any(value is b or (type(value) is type(b) and value == b) for b in bad) or (
        isinstance(value, float) and math.isnan(value)
    )


def invalid_arguments(op: tuple[Any, ...]) -> int:
    """How many of the call's arguments are invalid on their own (a lower bound: bounds and cursors that fall
    outside a valid selector are not counted)."""
    kind = op[0]
    if kind == "get":
        return _bad(op[1], [k for k in BAD_KEYS if k != ()]) + (op[2] == "bogus")
    if kind == "get_many":
        return sum(_bad(k, [k for k in BAD_KEYS if k != ()]) for k in op[1]) + (len(op[1]) > 10) + (op[2] == "bogus")
    if kind == "watch":
        return sum(_bad(k, [k for k in BAD_KEYS if k != ()]) for k in op[1]) + (len(op[1]) > 10)
    if kind == "delete":
        return int(_bad(op[1], BAD_KEYS))
    if kind == "set":
        return (
            _bad(op[1], BAD_KEYS) + _bad(op[2], [NOT_CLONEABLE, BIG_VALUE]) + _bad(op[3], [-1, 1.5, 2**53, 2**60, True])
        )
    if kind == "list":
        prefix, start, end = op[1:4]
        shape = (prefix is not ABSENT and start is not ABSENT and end is not ABSENT) or (
            prefix is ABSENT and (start is ABSENT or end is ABSENT)
        )
        keys = sum(_bad(k, BAD_LIST_KEYS) for k in (prefix, start, end))
        return shape + keys + sum(_bad(op[4][name], bad) for name, bad in BAD_OPTIONS.items())
    checks = sum(_bad(k, BAD_KEYS) + _bad(vs, ["zz", "0" * 19, 5]) for k, vs in op[1])
    muts = sum(
        _bad(k, BAD_KEYS)
        + (_bad(v, [NOT_CLONEABLE, BIG_VALUE]) if m == "set" else _bad(v, [-1, 2**64, 1.5]))
        + (m == "set" and _bad(e, [-1, 1.5, 2**53, 2**60, True]))
        for m, k, v, e in op[2]
    )
    return checks + muts + (op[3] != "none")


@settings(
    max_examples=int(os.environ.get("KVQ_DIFF_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(operations, min_size=1, max_size=8))
async def test_every_store_raises_the_error_deno_raises(
    oracle: Oracle, stores: dict[str, Kv], ops: list[tuple[Any, ...]]
) -> None:
    await oracle.ask(["reset"])
    for kv in stores.values():
        await empty(kv)
    for i, op in enumerate(ops):
        want = await oracle.run(op)
        invalid = invalid_arguments(op)
        event(f"{op[0]}: {'2+' if invalid >= 2 else invalid} invalid arguments, Deno {want[0]}")
        for name, kv in stores.items():
            got = await run_python(kv, op)
            assert got == want, f"{name} differs from Deno at op {i}: {op!r}"
