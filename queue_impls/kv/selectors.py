"""List selectors and cursors, as Deno's ext/kv/lib.rs defines them (RawSelector, encode/decode_cursor)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from .codec import Key, encode_key
from .errors import CursorOutOfBoundsError, InvalidCursorError, InvalidKeyError, InvalidSelectorError, short_repr
from .limits import check_read_bound

_URLSAFE_B64 = re.compile(r"^[A-Za-z0-9_-]*={0,2}$")


@dataclass(frozen=True, slots=True)
class Selector:
    """An encoded selector: ``prefix`` with optional ``start`` or ``end``, or a ``start``/``end`` range."""

    prefix: bytes | None
    start: bytes | None
    end: bytes | None

    @classmethod
    def from_keys(cls, prefix: Key | None, start: Key | None, end: Key | None) -> Selector:
        """Shape checks that Deno makes when list() is called."""
        if prefix is not None:
            if start is not None and end is not None:
                raise InvalidSelectorError(
                    "Selector can not specify both 'start' and 'end' key when specifying 'prefix'"
                )
        elif start is None or end is None:
            raise InvalidSelectorError("Selector must specify either 'prefix' or both 'start' and 'end' key")
        return cls(
            None if prefix is None else encode_key(_key(prefix, "prefix")),
            None if start is None else encode_key(_key(start, "start")),
            None if end is None else encode_key(_key(end, "end")),
        )

    def validate(self) -> None:
        """Bound checks that Deno makes on the first read."""
        p = self.prefix
        if p is not None and self.start is not None and (not self.start.startswith(p) or self.start == p):
            raise InvalidSelectorError("Start key is not in the keyspace defined by prefix")
        if p is not None and self.end is not None and (not self.end.startswith(p) or self.end == p):
            raise InvalidSelectorError("End key is not in the keyspace defined by prefix")
        if p is None and self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidSelectorError("Start key is greater than end key")

    @property
    def common_prefix(self) -> bytes:
        if self.prefix is not None:
            return self.prefix
        assert self.start is not None and self.end is not None
        n = 0
        for a, b in zip(self.start, self.end, strict=False):
            if a != b:
                break
            n += 1
        return self.start[:n]

    @property
    def range_start(self) -> bytes:
        if self.start is not None:
            return self.start
        assert self.prefix is not None
        return self.prefix + b"\x00"

    @property
    def range_end(self) -> bytes:
        if self.end is not None:
            return self.end
        assert self.prefix is not None
        return self.prefix + b"\xff"

    def bounds(self, reverse: bool, cursor: str | None) -> tuple[bytes, bytes]:
        """The [start, end) of the next read, resuming after ``cursor`` when one is given."""
        if cursor is None:
            first, last = self.range_start, self.range_end
        else:
            boundary = self.common_prefix + decode_cursor(cursor)
            first, last = (self.range_start, boundary) if reverse else (boundary + b"\x00", self.range_end)
            if (self.start is not None and first < self.start) or (self.end is not None and last > self.end):
                raise CursorOutOfBoundsError("cursor out of bounds")
        check_read_bound(first)
        check_read_bound(last)
        return first, last

    def after(self, reverse: bool, last_key: bytes) -> tuple[bytes, bytes]:
        """Bounds of the read that follows a batch ending at ``last_key`` (inside the range by construction)."""
        if reverse:
            return self.range_start, last_key
        return last_key + b"\x00", self.range_end

    def cursor_for(self, key: bytes) -> str:
        return base64.urlsafe_b64encode(key[len(self.common_prefix) :]).decode("ascii")


def _key(key: Any, what: str) -> Key:
    if isinstance(key, tuple):
        return key
    if isinstance(key, list):
        return tuple(key)
    raise InvalidKeyError(f"list() {what} must be a key (a tuple or list of parts), got {short_repr(key)}")


def decode_cursor(cursor: str) -> bytes:
    """Strict URL-safe base64 with padding and canonical trailing bits, as Deno's decoder."""
    if not isinstance(cursor, str) or len(cursor) % 4 or not _URLSAFE_B64.match(cursor):
        raise InvalidCursorError(f"invalid cursor: {short_repr(cursor)}")
    try:
        raw = base64.urlsafe_b64decode(cursor)
    except (binascii.Error, ValueError):
        raise InvalidCursorError(f"invalid cursor: {short_repr(cursor)}") from None
    if base64.urlsafe_b64encode(raw).decode("ascii") != cursor:
        raise InvalidCursorError(f"invalid cursor: {short_repr(cursor)} (non-canonical encoding)")
    return raw
