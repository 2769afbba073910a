"""Key encoding: Deno's byte-for-byte vectors, round trips, and order (property-tested against an independent comparator)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_impls.kv import InvalidKeyError, Key, Kv, decode_key, encode_key

from .kv_vectors import ENCODING_VECTORS, OTHER_KEYS, U_KEYS_IN_DENO_ORDER

parts = st.one_of(
    st.binary(max_size=8),
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8),
    st.integers(min_value=-(2**80), max_value=2**80) | st.integers(min_value=-300, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
keys = st.lists(parts, max_size=4).map(tuple)

_RANK = {bytes: 0, str: 1, int: 2, float: 3, bool: 4}


def _float_order(x: float) -> tuple[int, float, float]:
    """-NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN; every NaN of one sign is equal."""
    if math.isnan(x):
        return (-1 if math.copysign(1.0, x) < 0 else 1, 0.0, 0.0)
    return (0, x, math.copysign(1.0, x))


def _part_order(part: Any) -> tuple[int, Any]:
    rank = _RANK[type(part)]
    return (rank, _float_order(part) if isinstance(part, float) else part)


def _key_order(key: Key) -> list[tuple[int, Any]]:
    """The order Deno defines part by part: type (bytes < str < int < float < bool), then value; shorter first."""
    return [_part_order(p) for p in key]


def _sign(x: int) -> int:
    return (x > 0) - (x < 0)


@pytest.mark.parametrize(("key", "hex_bytes"), ENCODING_VECTORS, ids=[repr(k) for k, _ in ENCODING_VECTORS])
def test_encoding_vectors_byte_for_byte(key: Key, hex_bytes: str) -> None:
    assert encode_key(key).hex() == hex_bytes
    assert encode_key(decode_key(bytes.fromhex(hex_bytes))) == bytes.fromhex(hex_bytes)


def test_nan_is_normalised_and_sorts_outside_the_infinities() -> None:
    odd_nan = struct.unpack(">d", bytes.fromhex("7ff0000000000001"))[0]  # a NaN with another payload
    assert math.isnan(odd_nan)
    assert encode_key((odd_nan,)) == encode_key((math.nan,))
    ordered = [-math.nan, -math.inf, -1.0, -0.0, 0.0, 1.0, math.inf, math.nan]
    encoded = [encode_key((x,)) for x in ordered]
    assert encoded == sorted(encoded) and len(set(encoded)) == len(encoded)


def test_type_order_bytes_str_int_float_bool() -> None:
    encoded = [encode_key((p,)) for p in (b"\xff", "\U0010ffff", 2**100, math.nan, False)]
    assert encoded == sorted(encoded)


def test_bool_is_not_encoded_as_int() -> None:
    assert decode_key(encode_key((True, 1, False, 0))) == (True, 1, False, 0)
    assert [type(p) for p in decode_key(encode_key((True, 1, 1.0)))] == [bool, int, float]


@pytest.mark.parametrize(
    "bad",
    [(None,), ([1],), ({"a": 1},), (object(),), ("a\ud800",)],
    ids=["None", "list", "dict", "object", "lone-surrogate"],  # Deno would store U+FFFD for the lone surrogate
)
def test_unsupported_part_type_is_a_typed_error(bad: Key) -> None:
    with pytest.raises(InvalidKeyError, match="Invalid key part"):
        encode_key(bad)


def test_bigint_over_255_magnitude_bytes_is_rejected() -> None:
    assert len(encode_key((2**2039,))) == 257  # 255 magnitude bytes: tag, length, body
    assert len(encode_key((-(2**2039),))) == 257
    with pytest.raises(InvalidKeyError, match="BigUint requires more than 255 bytes to be represented"):
        encode_key((2**2040,))


@settings(max_examples=100)
@given(keys)
def test_decode_inverts_encode(key: Key) -> None:
    encoded = encode_key(key)
    decoded = decode_key(encoded)
    assert encode_key(decoded) == encoded  # compares NaN and -0.0 by their encoding
    assert [type(p) for p in decoded] == [type(p) for p in key]
    assert all(a == b or (isinstance(a, float) and math.isnan(a)) for a, b in zip(decoded, key, strict=True))


@settings(max_examples=100)
@given(keys, keys)
def test_encoded_byte_order_is_the_part_by_part_order(a: Key, b: Key) -> None:
    ea, eb = encode_key(a), encode_key(b)
    oa, ob = _key_order(a), _key_order(b)
    assert _sign((ea > eb) - (ea < eb)) == _sign((oa > ob) - (oa < ob))


@settings(max_examples=50)
@given(st.lists(keys, min_size=2, max_size=8))
def test_sorting_by_encoding_sorts_by_part_order(many: list[Key]) -> None:
    by_bytes = [encode_key(k) for k in sorted(many, key=encode_key)]
    by_parts = [encode_key(k) for k in sorted(many, key=_key_order)]
    assert by_bytes == by_parts


async def test_store_lists_keys_in_deno_order(kv: Kv) -> None:
    for key in reversed(U_KEYS_IN_DENO_ORDER + OTHER_KEYS):
        await kv.set(key, 1)
    listed = [e.key for e in await kv.list(prefix=()).collect()]
    assert [encode_key(k) for k in listed] == [encode_key(k) for k in U_KEYS_IN_DENO_ORDER + OTHER_KEYS]
    assert [type(p) for k in listed for p in k] == [type(p) for k in U_KEYS_IN_DENO_ORDER + OTHER_KEYS for p in k]


# The fast paths of encode_key (text parts joined in one call; text and ints of at most 8 bytes as latin-1 text)
# must give the general part-by-part encoder's bytes for every key, those at their edges included.
_edge_ints = st.sampled_from([0, 1, -1, 255, 256, -255, -256, 2**63, 2**64 - 1, 2**64, -(2**64 - 1), -(2**64)])
_fast_parts = st.one_of(
    st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=6),  # ASCII, NUL included
    st.text(alphabet="a\x00\xe9", max_size=4),  # NUL and non-ASCII: the fast paths must hand these over
    st.integers(min_value=-(2**70), max_value=2**70) | _edge_ints,
    st.booleans(),
)


@settings(max_examples=300)
@given(st.lists(_fast_parts, max_size=5).map(tuple) | keys)
def test_fast_paths_encode_as_the_general_encoder(key: Key) -> None:
    from queue_impls.kv.codec import _encode_key

    assert encode_key(key) == _encode_key(key)


def test_a_list_or_a_subclassed_part_is_encoded_as_before() -> None:
    from queue_impls.kv.codec import _encode_key

    class Text(str):
        pass

    assert encode_key(("a", Text("b"))) == encode_key(("a", "b")) == bytes.fromhex("02 61 00 02 62 00")
    assert encode_key((True, 1)) == bytes.fromhex("27 15 01")
    for key in [("", 1), (1, ""), ("a", "", 2, "", "b"), ("", -1, ""), ("a\x00", 3), (0, "b\x00c"), ("é", 1)]:
        assert encode_key(key) == _encode_key(key) and decode_key(encode_key(key)) == key, key
    with pytest.raises(InvalidKeyError):
        encode_key(["a", "b"])  # type: ignore[arg-type]
