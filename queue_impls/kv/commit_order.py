"""Which error a commit with several invalid parts raises: the first in the order Deno's own checks run.

Deno (ext/kv/lib.rs, measured on 2.9.6) checks a commit in stages, each over the whole commit before the next:
the type of every key and versionstamp; the counts of checks and mutations; each check (its key's encoding and its
versionstamp: "Invalid check"); each mutation (its key's encoding, a set's expiry); every key's emptiness and size,
checks first; every value's size; the totals. A value is serialised, and refused, when set() is called.
"""

from __future__ import annotations

import re
from typing import Any

from .codec import encode_key
from .errors import (
    InvalidCheckError,
    InvalidKeyError,
    InvalidMutationError,
    KvValidationError,
    TooManyChecksError,
    TooManyMutationsError,
    short_repr,
)
from .limits import MAX_CHECKS, MAX_EXPIRE_AT_MS, MAX_MUTATIONS, check_value_size, check_write_key

_HEX20 = re.compile(r"[0-9a-fA-F]{20}")  # fullmatch: "$" alone would let a trailing newline through
_PART_TYPES = (bytes, str, int, float, bool)


def check_key_type(key: Any) -> None:
    """Deno's first check of a key: an array of parts of the five key types (sizes and encoding come later)."""
    if not isinstance(key, tuple | list):
        raise InvalidKeyError(f"A key must be a tuple of parts, got {type(key).__name__}")
    for part in key:
        if not isinstance(part, _PART_TYPES):
            raise InvalidKeyError(
                f"Invalid key part {short_repr(part)}: expected bytes, str, int, float or bool, "
                f"got {type(part).__name__}"
            )
        if isinstance(part, str) and not part.isascii():
            encode_key((part,))  # a lone surrogate: refused here, as a part type (Deno would store U+FFFD)


def raise_first_commit_error(raw_checks: list[tuple[Any, Any]], raw_mutations: list[Any]) -> None:
    """Raise the error Deno raises first for this commit; return if the stages find none."""
    for key, versionstamp in raw_checks:
        check_key_type(key)
        if versionstamp is not None and not isinstance(versionstamp, str):
            raise InvalidCheckError(
                f"Invalid check: versionstamp must be a str or None, got {short_repr(versionstamp)}"
            )
    for m in raw_mutations:
        check_key_type(m[1])
    if len(raw_checks) > MAX_CHECKS:
        raise TooManyChecksError(f"Too many checks (max {MAX_CHECKS}): got {len(raw_checks)}")
    if len(raw_mutations) > MAX_MUTATIONS:
        raise TooManyMutationsError(f"Too many mutations (max {MAX_MUTATIONS}): got {len(raw_mutations)}")
    encoded_checks = [_check_stage(key, versionstamp) for key, versionstamp in raw_checks]
    encoded_mutations = [_mutation_stage(m) for m in raw_mutations]
    for (key, _), encoded in zip(raw_checks, encoded_checks, strict=True):
        _key_stage(key, encoded)
    for m, encoded in zip(raw_mutations, encoded_mutations, strict=True):
        _key_stage(m[1], encoded)
    for m in raw_mutations:
        if m[0] != "delete":
            check_value_size(len(m[4][0]), tuple(m[1]))


def _check_stage(key: Any, versionstamp: Any) -> bytes:
    try:
        encoded = encode_key(tuple(key))
    except KvValidationError as exc:
        raise InvalidCheckError(f"Invalid check: {exc}") from None
    if versionstamp is not None and not _HEX20.fullmatch(versionstamp):
        raise InvalidCheckError(
            f"Invalid check: versionstamp must be 20 hex characters, got {short_repr(versionstamp)}"
        )
    return encoded


def _mutation_stage(m: Any) -> bytes:
    encoded = encode_key(tuple(m[1]))
    if m[0] == "set" and m[3] is not None and m[3] > MAX_EXPIRE_AT_MS:
        raise InvalidMutationError(f"Invalid mutation: expireIn is too large: {short_repr(m[5])}")
    return encoded


def _key_stage(key: Any, encoded: bytes) -> None:
    if len(key) == 0:
        raise InvalidKeyError("key cannot be empty")
    check_write_key(encoded, tuple(key))
