"""``KvU64``: Deno KV's unsigned 64-bit integer value (its own value encoding; sum/min/max operate on it).

A module of its own so both value codecs (codec.py, v8.py) use it without importing each other.
"""

from __future__ import annotations

from typing import Final

from .errors import InvalidValueError, short_repr

_U64_MAX: Final = 2**64 - 1


class KvU64:
    """An unsigned 64-bit integer value, the operand and result type of sum/min/max."""

    __slots__ = ("_value",)

    def __init__(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValueError(f"KvU64 value must be an int, got {type(value).__name__}")
        if not 0 <= value <= _U64_MAX:
            raise InvalidValueError(f"KvU64 value must be in 0..2**64-1, got {short_repr(value)}")
        self._value = value

    @property
    def value(self) -> int:
        return self._value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KvU64) and other._value == self._value

    def __hash__(self) -> int:
        return hash((KvU64, self._value))

    def __repr__(self) -> str:
        return f"KvU64({self._value})"
