"""Values: every supported type round-trips unchanged (int stays int, float stays float, bool stays bool); the codec's limits."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_impls.kv import InvalidValueError, Kv, KvU64, decode_value, encode_value
from queue_impls.kv.codec import MAX_VALUE_DEPTH, decode_values

from .kv_vectors import expect_error

_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53) | st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    _text,
    st.binary(max_size=16),
)
u64s = st.integers(min_value=0, max_value=2**64 - 1).map(KvU64)
# Containers mixing tagged nodes (bytes) with plain ones at every level, as the tagged format must keep them apart.
mixed = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(_text, inner, max_size=4)
        | st.tuples(st.binary(max_size=3), inner).map(list)
        | st.fixed_dictionaries({"b": st.binary(max_size=3), "v": inner})
    ),
    max_leaves=16,
)
# What every backend stores: a KvU64 only as a whole value (Deno clones a nested one into a plain object).
values = (
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
        max_leaves=12,
    )
    | u64s
    | mixed
)
# What this project's codec stores: a KvU64 anywhere (backends with nested_u64_values).
codec_values = st.recursive(
    scalars | u64s | mixed,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same type all the way down (so True != 1 != 1.0, and -0.0 != 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    return bool(a == b)


ROUND_TRIP_CASES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**53,
    2**53 + 1,
    2**64 + 1,
    -(2**70),
    0.0,
    -0.0,
    1.0,
    1.5,
    math.inf,
    -math.inf,
    "",
    "héllo \0 wörld",
    b"",
    b"\x00\xff",
    [],
    {},
    [1, 1.0, True, "1", b"1", None],
    {"a": {"b": [7, {"c": b"x"}]}, "": 0},
    "lone surrogate \ud800",
    KvU64(0),
    KvU64(2**64 - 1),
]


async def test_value_round_trips_unchanged(kv: Kv) -> None:
    keys = [("v", i) for i in range(len(ROUND_TRIP_CASES))]
    for key, value in zip(keys, ROUND_TRIP_CASES, strict=True):
        await kv.set(key, value)
    for i in range(0, len(keys), 10):
        for entry in await kv.get_many(keys[i : i + 10]):
            value = ROUND_TRIP_CASES[int(entry.key[1])]
            assert same(entry.value, value), f"get_many: stored {value!r}, read {entry.value!r}"
    listed = await kv.list(prefix=("v",)).collect()
    assert len(listed) == len(ROUND_TRIP_CASES)
    for entry in listed:
        value = ROUND_TRIP_CASES[int(entry.key[1])]
        assert same(entry.value, value), f"list: stored {value!r}, read {entry.value!r}"


async def test_nan_value_round_trips(kv: Kv) -> None:
    await kv.set(("nan",), [math.nan])
    [got] = (await kv.get(("nan",))).value
    assert isinstance(got, float) and math.isnan(got)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
async def test_value_round_trip_property(kv: Kv, value: Any) -> None:
    await kv.set(("p",), value)
    (entry,) = await kv.get_many([("p",)])
    assert same(entry.value, value), (entry.value, value)


def _nested_u64(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, KvU64) or _nested_u64(v) for v in value)
    if isinstance(value, dict):
        return _nested_u64(list(value.values()))
    return False


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=codec_values)
async def test_get_of_set_is_the_value_with_tagged_shapes_anywhere(kv: Kv, value: Any) -> None:
    """get(set(v)) == v for values mixing bytes and KvU64 into lists and dicts at any depth; a backend that cannot
    hold a nested KvU64 (Deno) refuses the value and keeps the old one."""
    await kv.set(("t",), "old")
    if _nested_u64(value) and not kv.nested_u64_values:
        with pytest.raises(InvalidValueError, match="KvU64"):
            await kv.set(("t",), value)
        assert (await kv.get(("t",))).value == "old"
        return
    await kv.set(("t",), value)
    assert same((await kv.get(("t",))).value, value)
    [many] = await kv.get_many([("t",)])
    assert same(many.value, value)


async def test_nested_u64_round_trips_or_is_rejected_per_capability(kv: Kv) -> None:
    value = {"n": [KvU64(7)]}
    if kv.nested_u64_values:
        await kv.set(("v",), value)
        assert same((await kv.get(("v",))).value, value)
    else:
        with pytest.raises(InvalidValueError, match="KvU64"):
            await kv.atomic().set(("before",), 1).set(("v",), value).commit()
        assert (await kv.get(("before",))).value is None


@settings(max_examples=100)
@given(codec_values)
def test_codec_inverts_itself(value: Any) -> None:
    assert same(decode_value(*encode_value(value)), value)


@settings(max_examples=100)
@given(values)
def test_the_prebuilt_json_encoder_writes_what_json_dumps_writes(value: Any) -> None:
    import json

    from queue_impls.kv.codec import _dumps

    payload, encoding = encode_value(value)
    if encoding == 1 and payload[:1] == b"J":
        assert _dumps(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


def test_bytes_and_u64_are_stored_as_deno_stores_them() -> None:
    assert encode_value(b"\x00\x01") == (b"\x00\x01", 2)
    assert encode_value(KvU64(1)) == (b"\x01" + bytes(7), 3)
    payload, encoding = encode_value({"a": 1})
    assert encoding == 1 and payload == b'J{"a":1}'


def _deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


_cycle: list[Any] = []
_cycle.append(_cycle)
# (value, where the refusal points, what it names): what the codec cannot read back unchanged is refused whole,
# even after a bytes or KvU64 has made the value tagged.
REFUSED: dict[str, tuple[Any, str, str]] = {
    "object": (object(), "value ", "object"),
    "int-dict-key": ({1: "x"}, "value ", "dict key of type int"),
    "tuple": ((1, 2), "value ", "tuple"),
    "nested-set": ({"a": {1}}, "value['a'] ", "set"),
    "bytearray": (bytearray(b"x"), "value ", "bytearray"),
    "tuple-after-bytes": ([b"x", (7, 8)], "value[1] ", "tuple"),
    "tuple-pair-after-bytes": ([b"x", ("b", "AAAA")], "value[1] ", "tuple"),
    "tuple-in-dict-with-bytes": ({"blob": b"\x00", "pair": (3,)}, "value['pair'] ", "tuple"),
    "set-after-u64": ([KvU64(1), {2}], "value[1] ", "set"),
    "key-after-bytes": ([b"x", {3: 4}], "value[1] ", "dict key of type int"),
    "object-deep-after-bytes": ({"a": [b"", {"b": [object()]}]}, "value['a'][1]['b'][0] ", "object"),
    "huge-int": (10**5000, "value ", "more than 4300 digits"),
    "huge-int-after-bytes": ([b"", -(10**5000)], "value[1] ", "more than 4300 digits"),
    "too-deep": (_deep(MAX_VALUE_DEPTH + 1), "levels deep", f"max {MAX_VALUE_DEPTH}"),
    "too-deep-tagged": ([b"", _deep(MAX_VALUE_DEPTH)], "levels deep", f"max {MAX_VALUE_DEPTH}"),
    "cycle": (_cycle, "levels deep", f"max {MAX_VALUE_DEPTH}"),
    "function": (len, "value ", "builtin_function_or_method"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_codec_refuses_what_it_cannot_read_back_naming_path_and_type(case: str) -> None:
    value, path, what = REFUSED[case]
    with pytest.raises(InvalidValueError) as caught:
        encode_value(value)
    message = str(caught.value)
    assert path in message and what in message and "\n" not in message and len(message) < 400, message


def test_the_deepest_value_allowed_round_trips() -> None:
    for value in (_deep(MAX_VALUE_DEPTH), [b"x", _deep(MAX_VALUE_DEPTH - 1)], {"u": [KvU64(1), _deep(98)]}):
        assert same(decode_value(*encode_value(value)), value)


async def test_unsupported_values_are_rejected_and_nothing_written(kv: Kv) -> None:
    await kv.set(("kept",), [b"old", 1])
    before = [(e.key, e.value, e.versionstamp) for e in await kv.list(prefix=()).collect()]
    for case, (bad, _, what) in REFUSED.items():
        # refused when set() is called (as Deno serialises it then), with the rest of the commit never sent
        await expect_error(
            case, InvalidValueError, what, lambda bad=bad: kv.atomic().set(("before",), 1).set(("bad",), bad)
        )
        await expect_error(case, InvalidValueError, what, lambda bad=bad: kv.set(("kept",), bad))
    after = [(e.key, e.value, e.versionstamp) for e in await kv.list(prefix=()).collect()]
    assert after == before


@pytest.mark.parametrize("bad", [-1, 2**64, 1.0, True, "1"])
def test_kvu64_range_and_type(bad: Any) -> None:
    with pytest.raises(InvalidValueError):
        KvU64(bad)
    assert KvU64(5).value == 5 and KvU64(5) == KvU64(5) and KvU64(5) != 5


@settings(max_examples=100)
@given(st.lists(codec_values, max_size=12))
def test_batch_decode_equals_decoding_each_row(batch: list[Any]) -> None:
    rows = [encode_value(value) for value in batch]
    decoded = decode_values(rows)
    assert len(decoded) == len(batch)
    for got, value in zip(decoded, batch, strict=True):
        assert same(got, value)


async def test_a_list_batch_of_plain_json_values_round_trips(kv: Kv) -> None:
    # every row plain JSON: SQLite's list batch takes the one-array parse (codec.decode_values)
    plain = [v for v in ROUND_TRIP_CASES if encode_value(v)[0][:1] == b"J"]
    assert len(plain) > 10
    for i, value in enumerate(plain):
        await kv.set(("plain", i), value)
    listed = await kv.list(prefix=("plain",)).collect()
    assert [entry.key[1] for entry in listed] == list(range(len(plain)))
    for entry in listed:
        assert same(entry.value, plain[int(entry.key[1])])


def test_batch_decode_falls_back_row_by_row_on_a_bad_row() -> None:
    good = encode_value({"a": 1})
    # "[" + "[1" + "," + "2]" + "]" parses, but as one value for two rows: each row is decoded alone, and fails alone
    with pytest.raises(ValueError):
        decode_values([good, (b"J[1", 1), (b"J2]", 1)])
    with pytest.raises(ValueError):
        decode_values([(b"J{", 1), good])
    assert decode_values([good, (b"\x01", 2)]) == [{"a": 1}, b"\x01"]
