"""Deno KV's limits (deno ext/kv/config.rs defaults) and the checks that enforce them."""

from __future__ import annotations

from typing import Any, Final

from .codec import Key
from .errors import InvalidArgumentError, InvalidLimitError, KeyTooLargeError, ValueTooLargeError, short_repr

MAX_WRITE_KEY_SIZE: Final = 2048
MAX_READ_KEY_SIZE: Final = 2049
MAX_VALUE_SIZE: Final = 65536
MAX_READ_RANGES: Final = 10
MAX_READ_ENTRIES: Final = 1000
MAX_CHECKS: Final = 100
MAX_MUTATIONS: Final = 1000
MAX_TOTAL_MUTATION_SIZE: Final = 819200
MAX_TOTAL_KEY_SIZE: Final = 81920
DEFAULT_BATCH_SIZE: Final = 100
MAX_DEFAULT_BATCH_SIZE: Final = 500
CONSISTENCIES: Final = ("strong", "eventual")
#: The latest expiry a set may ask for, in unix ms: the end of year 262143, the last instant of Deno's clock type
#: (chrono). Deno refuses a later one with "Invalid mutation: expireIn is too large" (so even expireIn 2**53).
MAX_EXPIRE_AT_MS: Final = 8210266876799999


def check_write_key(encoded: bytes, key: Key) -> int:
    if len(encoded) > MAX_WRITE_KEY_SIZE:
        raise KeyTooLargeError(
            f"Key too large for write (max {MAX_WRITE_KEY_SIZE} bytes): got {len(encoded)} bytes for key {_short(key)}"
        )
    return len(encoded)


def check_read_bound(encoded: bytes) -> None:
    if len(encoded) > MAX_READ_KEY_SIZE:
        raise KeyTooLargeError(
            f"Key too large for read (max {MAX_READ_KEY_SIZE} bytes): a range bound of {len(encoded)} bytes"
        )


def check_value_size(size: int, key: Key) -> int:
    if size > MAX_VALUE_SIZE:
        raise ValueTooLargeError(
            f"Value too large (max {MAX_VALUE_SIZE} bytes): got {size} bytes for key {_short(key)}"
        )
    return size


def check_consistency(consistency: Any) -> None:
    if consistency not in CONSISTENCIES:
        raise InvalidArgumentError(f"consistency must be 'strong' or 'eventual', got {short_repr(consistency)}")


def positive_int(value: Any, what: str) -> int:
    """Deno's integer check: a positive integer, or an integral float such as 2.0; never a bool."""
    ok = not isinstance(value, bool) and (
        (isinstance(value, int) and value > 0) or (isinstance(value, float) and value.is_integer() and value > 0)
    )
    if not ok:
        raise InvalidLimitError(f"{what} must be a positive integer: received {short_repr(value)}")
    return int(value)


def _short(key: Key) -> str:
    return short_repr(key)
