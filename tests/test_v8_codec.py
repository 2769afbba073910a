"""The V8 value codec: reads what the real Deno KV stored, writes what Deno reads back, refuses what it cannot say."""

from __future__ import annotations

import array
import asyncio
import json
import math
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_impls.kv import KvU64
from queue_impls.kv.backends.deno import find_deno
from queue_impls.kv.codec import ENC_SERIALIZED, decode_value
from queue_impls.kv.errors import InvalidValueError
from queue_impls.kv.v8 import UNDEFINED, JsMap, JsRegExp, Uint8ClampedArray, v8_dumps, v8_loads

# name -> (JavaScript expression, the Python value it reads as)
CASES: dict[str, tuple[str, Any]] = {
    "undefined": ("undefined", UNDEFINED),
    "null": ("null", None),
    "true": ("true", True),
    "false": ("false", False),
    "smi": ("1", 1.0),
    "negative": ("-5", -5.0),
    "int32 edge": ("2 ** 30", float(2**30)),
    "double": ("1.5", 1.5),
    "negative zero": ("-0", -0.0),
    "infinity": ("-Infinity", -math.inf),
    "bigint 0": ("0n", 0),
    "bigint": ("-1n", -1),
    "bigint 2**70": ("2n ** 70n", 2**70),
    "latin-1 string": ('"caf\\u00e9"', "café"),
    "two-byte string": ('"\\u20acx"', "€x"),
    "emoji": ('"a\\u{1F600}"', "a😀"),
    "empty string": ('""', ""),
    "array": ('[1, "a", null]', [1.0, "a", None]),
    "object": ('{b: 1, "1": 2, a: [true]}', {"1": 2.0, "b": 1.0, "a": [True]}),
    "nested": ("{x: {y: [{z: 1n}]}}", {"x": {"y": [{"z": 1}]}}),
    "date": ("new Date(1700000000123)", datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)),
    "regexp": ("/ab+c/gimsuyd", JsRegExp("ab+c", "dgimsuy")),
    "map": ('new Map([["k", 1], [2, "v"]])', JsMap({"k": 1.0, 2.0: "v"})),
    "set": ('new Set([1, "x"])', {1.0, "x"}),
    "uint8array nested": ("{x: new Uint8Array([1, 2, 3])}", {"x": b"\x01\x02\x03"}),
    "int16array": ("new Int16Array([1, -2])", array.array("h", [1, -2])),
    "float64array": ("new Float64Array([1.5])", array.array("d", [1.5])),
    "biguint64array": ("new BigUint64Array([5n])", array.array("Q", [5])),
    "clamped": ("new Uint8ClampedArray([255])", Uint8ClampedArray(b"\xff")),
    "arraybuffer": ("new ArrayBuffer(2)", bytearray(2)),
}


@pytest.fixture(scope="module")
def deno_written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each case's JavaScript value as the real Deno KV stored it (read straight from its SQLite file)."""
    path = tmp_path_factory.mktemp("v8") / "kv.sqlite"
    lines = [f"await kv.set([{json.dumps(name)}], {expr});" for name, (expr, _) in CASES.items()]
    script = f"const kv = await Deno.openKv({json.dumps(str(path))});\n" + "\n".join(lines) + "\nkv.close();\n"
    subprocess.run([find_deno(), "run", "--unstable-kv", "-A", "-"], input=script, text=True, check=True, timeout=120)
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT k, v, v_encoding FROM kv").fetchall()
    assert all(encoding == 1 for _, _, encoding in rows)  # every case is V8-serialised, not raw bytes
    return {k[1:-1].decode(): v for k, v, _ in rows}


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1.0 vs 1, -0.0 vs 0.0, NaN equal to NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.mark.deno
@pytest.mark.parametrize("name", list(CASES))
def test_reads_what_deno_wrote_and_writes_the_same_bytes(deno_written: dict[str, bytes], name: str) -> None:
    payload = deno_written[name]
    value = v8_loads(payload)
    assert same(value, CASES[name][1]), value
    if isinstance(value, set):  # a Python set keeps no insertion order: the same members, in its own order
        assert v8_loads(v8_dumps(value)) == value
    else:
        assert v8_dumps(value) == payload  # byte for byte what V8 wrote (two-byte padding, ids, zigzag...)
    assert same(decode_value(payload, ENC_SERIALIZED), value)  # the stores' decoder recognises V8 payloads


@pytest.mark.deno
def test_deno_reads_back_what_python_wrote(tmp_path: Path) -> None:
    """Python writes V8 bytes into a Deno KV file; the real Deno reads the values JavaScript expects."""
    path = tmp_path / "kv.sqlite"
    asyncio.run(_create_deno_file(path))
    with sqlite3.connect(path) as db:
        for name, (_, value) in CASES.items():
            key = b"\x02" + name.encode() + b"\x00"
            db.execute("INSERT INTO kv (k, v, v_encoding, version) VALUES (?, ?, 1, 1)", (key, v8_dumps(value)))
    checks = " && ".join(
        f"same((await kv.get([{json.dumps(n)}])).value, {expr})" for n, (expr, _) in CASES.items() if n != "regexp"
    )
    script = f"""
const kv = await Deno.openKv({json.dumps(str(path))});
// A Set read into Python comes back with its members in Python's order: compare Sets as sets.
const canon = (v) => v instanceof Set ? new Set([...v].map((m) => Deno.inspect(m)).sort()) : v;
const same = (a, b) => Deno.inspect(canon(a), {{depth: 9}}) === Deno.inspect(canon(b), {{depth: 9}});
const re = (await kv.get(["regexp"])).value;
console.log(({checks}) && re.source === "ab+c" && re.flags === "dgimsuy");
kv.close();
"""
    out = subprocess.run([find_deno(), "run", "--unstable-kv", "-A", "-"], input=script, text=True, capture_output=True)
    assert out.stdout.strip() == "true", out.stderr


async def _create_deno_file(path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        find_deno(), "eval", "--unstable-kv", f"(await Deno.openKv({json.dumps(str(path))})).close()"
    )
    assert await proc.wait() == 0


def test_shared_and_cyclic_containers_keep_their_identity() -> None:
    shared = {"a": 1.0}
    value = v8_loads(v8_dumps([shared, shared]))
    assert value[0] is value[1]
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    again = v8_loads(v8_dumps(cyclic))
    assert again[0] is again


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (KvU64(1), "KvU64 can only be a whole value"),
        ([KvU64(1)], "KvU64 can only be a whole value"),
        ({1: "x"}, "Dict keys in values must be str"),
        (datetime(2020, 1, 1), "timezone-aware"),
        (datetime(2020, 1, 1, 0, 0, 0, 1, tzinfo=UTC), "whole milliseconds"),
        (JsRegExp("a", "q"), "Invalid RegExp flags"),
        (array.array("u", "x"), "has no JavaScript typed array"),
        (object(), "Unsupported value type object"),
    ],
)
def test_what_javascript_cannot_hold_is_refused_with_a_typed_error(value: Any, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        v8_dumps(value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\xff\x10D" + b"\x00" * 6 + b"\xf8\x7f", "Invalid Date"),  # new Date(NaN)
        (b"\xff\x10'I\x02Z\x02\x01\x00\x00\x00\x00\x00\x00\x00,\x02", "Set whose members are equal"),  # {1, 1n}
        (b"\xff\x10n" + b"\x00" * 8, "Number object"),
        (b'\xff\x10"\x05ab', "5 bytes announced"),
        (b"\xff\x10_\x00_", "bytes after the value"),
        (b"\xff\x10\x7f", "unknown tag 0x7f"),
        (b"J1", "not the version tag"),
    ],
)
def test_what_python_cannot_hold_is_refused_with_a_typed_error(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidValueError, match=message):
        v8_loads(payload)


scalars = st.one_of(
    st.none(),
    st.just(UNDEFINED),
    st.booleans(),
    st.integers(-(2**130), 2**130),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values)
def test_every_python_value_round_trips(value: Any) -> None:
    assert same(v8_loads(v8_dumps(value)), value)
