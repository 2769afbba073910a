"""The atomic-operation builder and the validation of a commit against Deno's limits."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Self

from .codec import ENC_U64, Key, encode_key, encode_value
from .commit_order import raise_first_commit_error
from .errors import (
    InvalidCheckError,
    InvalidKeyError,
    InvalidMutationError,
    KvValidationError,
    MutationTypeError,
    TooManyChecksError,
    TooManyMutationsError,
    TotalKeySizeError,
    TotalMutationSizeError,
    short_repr,
)
from .limits import (
    MAX_CHECKS,
    MAX_EXPIRE_AT_MS,
    MAX_MUTATIONS,
    MAX_TOTAL_KEY_SIZE,
    MAX_TOTAL_MUTATION_SIZE,
    MAX_VALUE_SIZE,
    MAX_WRITE_KEY_SIZE,
    check_value_size,
    check_write_key,
)
from .types import Check, CommitResult, KvEntry, Mutation, MutationKind
from .u64 import KvU64

if TYPE_CHECKING:
    from .contract import Kv

_HEX20 = re.compile(r"[0-9a-fA-F]{20}")  # fullmatch: "$" alone would let a trailing newline through
_U64 = 2**64
_UNSET: Any = object()
_NO_VALUE: tuple[bytes, int] = (b"", 0)

#: A mutation as the builder records it: (kind, key, value, expire_at_ms, (payload, encoding), expire_in).
RawMutation = tuple[MutationKind, Any, Any, int | None, tuple[bytes, int], Any]


def u64_operand(value: Any) -> int:
    if isinstance(value, KvU64):
        return value.value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _U64:
        return value
    raise InvalidMutationError(f"sum/min/max operand must be a KvU64 or an int in 0..2**64-1, got {short_repr(value)}")


def apply_u64(kind: MutationKind, old: tuple[bytes, int] | None, operand: int) -> bytes:
    """New 8-byte payload of a sum/min/max over the stored (payload, encoding), or None if missing."""
    if old is None:
        result = operand
    else:
        payload, encoding = old
        if encoding != ENC_U64:
            raise MutationTypeError(f"Failed to perform '{kind}' mutation on a non-U64 value in the database")
        current = int.from_bytes(payload, "little")
        if kind == "sum":
            result = (current + operand) % _U64
        elif kind == "min":
            result = min(current, operand)
        else:
            result = max(current, operand)
    return result.to_bytes(8, "little")


def expire_at(expire_in: Any) -> int | None:
    """The expiry time in unix ms of a set with ``expire_in`` ms (checked as Deno checks it when set() is called)."""
    if expire_in is None:
        return None
    integral = isinstance(expire_in, int) or (isinstance(expire_in, float) and expire_in.is_integer())
    if isinstance(expire_in, bool) or not integral or expire_in < 0:  # Deno accepts 2.0, not 1.5 or true
        raise InvalidMutationError(
            f"expireIn must be a non-negative integer: received {short_repr(expire_in)} (expire_in, in milliseconds)"
        )
    return int(time.time() * 1000) + int(expire_in)


def check_expire_at(expire_at_ms: int | None, expire_in: Any) -> None:
    """Deno's commit-time check: the expiry must be a time its clock type can hold (MAX_EXPIRE_AT_MS)."""
    if expire_at_ms is not None and expire_at_ms > MAX_EXPIRE_AT_MS:
        raise InvalidMutationError(
            f"Invalid mutation: expireIn is too large: {short_repr(expire_in)} (expire_in, in milliseconds: "
            f"now + expire_in may be at most {MAX_EXPIRE_AT_MS}, the end of year 262143)"
        )


class AtomicOperation:
    """Checks plus mutations, committed all-or-nothing. Each method changes the builder and returns it."""

    def __init__(self, kv: Kv) -> None:
        self._kv = kv
        self._checks: list[tuple[Any, Any]] = []
        # (kind, key, value, expire_at_ms, encoded value, expire_in as given): a set's value is encoded (and refused)
        # when set() is called, as Deno serialises it then; keys are checked at commit, as Deno does.
        self._mutations: list[RawMutation] = []

    def check(self, key_or_entry: Key | KvEntry, versionstamp: str | None = _UNSET) -> Self:
        """Require ``key`` to be at ``versionstamp`` (None: must not exist); pass a read entry to use its own."""
        if isinstance(key_or_entry, KvEntry):
            if versionstamp is not _UNSET:
                raise InvalidCheckError("Invalid check: pass either an entry or a key and a versionstamp")
            self._checks.append((key_or_entry.key, key_or_entry.versionstamp))
        else:
            if versionstamp is _UNSET:
                raise InvalidCheckError("Invalid check: a key needs a versionstamp (or None for 'must not exist')")
            self._checks.append((key_or_entry, versionstamp))
        return self

    def set(self, key: Key, value: Any, *, expire_in: int | None = None) -> Self:
        expire = None if expire_in is None else expire_at(expire_in)
        self._mutations.append(("set", key, value, expire, encode_value(value), expire_in))
        return self

    def set_each(self, keys: Sequence[Key], value: Any, *, expire_in: int | None = None) -> Self:
        """``set(key, value)`` for each of ``keys`` in order, the value serialised once: a record and its index
        copies cost one serialisation, not one per key."""
        set_each_encoded(self, keys, value, encode_value(value), expire_in)
        return self

    def delete(self, key: Key) -> Self:
        self._mutations.append(("delete", key, None, None, _NO_VALUE, None))
        return self

    def sum(self, key: Key, n: KvU64 | int) -> Self:
        operand = u64_operand(n)
        self._mutations.append(("sum", key, operand, None, (operand.to_bytes(8, "little"), ENC_U64), None))
        return self

    def min(self, key: Key, n: KvU64 | int) -> Self:
        operand = u64_operand(n)
        self._mutations.append(("min", key, operand, None, (operand.to_bytes(8, "little"), ENC_U64), None))
        return self

    def max(self, key: Key, n: KvU64 | int) -> Self:
        operand = u64_operand(n)
        self._mutations.append(("max", key, operand, None, (operand.to_bytes(8, "little"), ENC_U64), None))
        return self

    async def commit(self) -> CommitResult:
        checks, mutations = prepare_commit(self._checks, self._mutations)
        return await self._kv._commit(checks, mutations)


def set_each_encoded(
    op: AtomicOperation, keys: Sequence[Key], value: Any, encoded: tuple[bytes, int], expire_in: int | None = None
) -> AtomicOperation:
    """``op.set_each(keys, value)`` for a caller that has just serialised ``value`` itself (``encoded`` is
    ``encode_value(value)``, e.g. to check its size first): the value is not serialised a second time."""
    expire = None if expire_in is None else expire_at(expire_in)
    if len(keys) == 1:
        op._mutations.append(("set", keys[0], value, expire, encoded, expire_in))
    else:
        op._mutations += [("set", key, value, expire, encoded, expire_in) for key in keys]
    return op


def _encode_write_key(key: Any) -> bytes:
    if type(key) is not tuple:
        if not isinstance(key, tuple | list):
            raise InvalidKeyError(f"A key must be a tuple of parts, got {type(key).__name__}")
        key = tuple(key)
    if not key:
        raise InvalidKeyError("key cannot be empty")
    encoded = encode_key(key)
    if len(encoded) > MAX_WRITE_KEY_SIZE:
        check_write_key(encoded, key)
    return encoded


def _check_versionstamp(versionstamp: Any) -> None:
    if not isinstance(versionstamp, str) or not _HEX20.fullmatch(versionstamp):
        raise InvalidCheckError(
            f"Invalid check: versionstamp must be 20 hex characters, got {short_repr(versionstamp)}"
        )


def prepare_commit(
    raw_checks: list[tuple[Any, Any]], raw_mutations: list[RawMutation]
) -> tuple[list[Check], list[Mutation]]:
    """Encode and validate a whole commit before anything is written.

    With several errors in one commit, the one raised is the one Deno raises (see commit_order.py); finding it
    costs a second pass, made only when there is an error.
    """
    try:
        return _prepare_commit(raw_checks, raw_mutations)
    except KvValidationError:
        raise_first_commit_error(raw_checks, raw_mutations)
        raise


def _prepare_commit(
    raw_checks: list[tuple[Any, Any]], raw_mutations: list[RawMutation]
) -> tuple[list[Check], list[Mutation]]:
    if len(raw_checks) > MAX_CHECKS:
        raise TooManyChecksError(f"Too many checks (max {MAX_CHECKS}): got {len(raw_checks)}")
    if len(raw_mutations) > MAX_MUTATIONS:
        raise TooManyMutationsError(f"Too many mutations (max {MAX_MUTATIONS}): got {len(raw_mutations)}")
    # Each check and mutation prepared and the totals summed in one pass: a pass less per commit (a job's run commits
    # ~11 keys).
    new = tuple.__new__
    checks: list[Check] = []
    total = 0
    checked: Any = None  # the last versionstamp validated, and its lower case: the jobs claimed in one commit share
    lowered = None  # one versionstamp object (record and lease), so most checks of a commit skip the regex
    for key, versionstamp in raw_checks:
        encoded = _encode_write_key(key)
        if versionstamp is not None:
            if versionstamp is not checked:
                _check_versionstamp(versionstamp)
                checked, lowered = versionstamp, versionstamp.lower()
            versionstamp = lowered
        checks.append(new(Check, (encoded, versionstamp)))
        total += len(encoded)
    mutations: list[Mutation] = []
    key_total = 0
    for kind, key, value, expire, (payload, encoding), expire_in in raw_mutations:
        encoded = _encode_write_key(key)
        total += len(encoded)
        if kind == "delete":
            mutations.append(new(Mutation, ("delete", encoded, None, b"", 0, None)))
            continue
        if kind == "set":
            if expire is not None:
                check_expire_at(expire, expire_in)
            if len(payload) > MAX_VALUE_SIZE:
                check_value_size(len(payload), tuple(key))
        else:
            expire = None
        mutations.append(new(Mutation, (kind, encoded, value, payload, encoding, expire)))
        total += len(encoded) + len(payload)
        key_total += len(encoded)
    _check_total_sizes(total, key_total)
    return checks, mutations


def check_totals(checks: list[Check], mutations: list[Mutation]) -> None:
    """Deno's limits on a commit's total mutation size and total key size."""
    total = sum(len(c.key) for c in checks) + sum(len(m.key) for m in mutations)
    key_total = 0
    for m in mutations:
        if m.kind != "delete":
            total += len(m.key) + len(m.payload)
            key_total += len(m.key)
    _check_total_sizes(total, key_total)


def _check_total_sizes(total: int, key_total: int) -> None:
    if total > MAX_TOTAL_MUTATION_SIZE:
        raise TotalMutationSizeError(
            f"Total mutation size too large (max {MAX_TOTAL_MUTATION_SIZE} bytes): got {total} bytes"
        )
    if key_total > MAX_TOTAL_KEY_SIZE:
        raise TotalKeySizeError(f"Total key size too large (max {MAX_TOTAL_KEY_SIZE} bytes): got {key_total} bytes")
