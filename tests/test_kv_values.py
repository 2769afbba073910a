"""Values: every supported type round-trips unchanged (int stays int, float stays float, bool stays bool); the codec's limits."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_impls.kv import InvalidValueError, Kv, KvU64, decode_value, encode_value

_text = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False),
    _text,
    st.binary(max_size=16),
    st.integers(min_value=0, max_value=2**64 - 1).map(KvU64),
)
values = st.recursive(
    scalars,
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
    {"a": {"b": [KvU64(7), {"c": b"x"}]}, "": 0},
    KvU64(0),
    KvU64(2**64 - 1),
]


@pytest.mark.parametrize("value", ROUND_TRIP_CASES, ids=[repr(v)[:30] for v in ROUND_TRIP_CASES])
async def test_value_round_trips_unchanged(kv: Kv, value: Any) -> None:
    await kv.set(("v",), value)
    got = (await kv.get(("v",))).value
    assert same(got, value), (got, value)
    [listed] = await kv.list(prefix=()).collect()
    assert same(listed.value, value)


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


@settings(max_examples=100)
@given(values)
def test_codec_inverts_itself(value: Any) -> None:
    assert same(decode_value(*encode_value(value)), value)


def test_bytes_and_u64_are_stored_as_deno_stores_them() -> None:
    assert encode_value(b"\x00\x01") == (b"\x00\x01", 2)
    assert encode_value(KvU64(1)) == (b"\x01" + bytes(7), 3)
    payload, encoding = encode_value({"a": 1})
    assert encoding == 1 and payload == b'J{"a":1}'


@pytest.mark.parametrize(
    "bad",
    [object(), {1: "int key"}, (1, 2), {"a": {1, 2}}, bytearray(b"x")],
    ids=["object", "int-dict-key", "tuple", "nested-set", "bytearray"],
)
async def test_unsupported_values_are_rejected_and_nothing_written(kv: Kv, bad: Any) -> None:
    with pytest.raises(InvalidValueError):
        await kv.atomic().set(("before",), 1).set(("bad",), bad).commit()
    assert (await kv.get(("before",))).value is None


@pytest.mark.parametrize("bad", [-1, 2**64, 1.0, True, "1"])
def test_kvu64_range_and_type(bad: Any) -> None:
    with pytest.raises(InvalidValueError):
        KvU64(bad)
    assert KvU64(5).value == 5 and KvU64(5) == KvU64(5) and KvU64(5) != 5
