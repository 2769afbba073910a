"""In-memory backend: a sorted key list for ranges plus a dict for point lookups."""

from __future__ import annotations

import asyncio
from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ..atomic import apply_u64
from ..codec import ENC_U64, decode_value
from ..contract import Kv
from ..errors import InvalidArgumentError
from ..types import Check, Consistency, Mutation, RawEntry, ReadRange, StoredValue, versionstamp_suffix

_Value = Callable[[bytes, int], Any]  # (payload, encoding) -> what a read returns as the entry's value


class _Stored(NamedTuple):
    payload: bytes
    encoding: int
    versionstamp: str
    expire_at_ms: int | None


class MemoryKv(Kv):
    """Ordered in-memory store: get in O(log n), a range of k entries in O(log n + k)."""

    name = "memory"

    def __init__(self) -> None:
        super().__init__()
        self._keys: list[bytes] = []
        self._data: dict[bytes, _Stored] = {}
        self._version = 0
        self._changed: asyncio.Event | None = None  # set and replaced by every commit while a watch waits

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        return self._read_with(ranges, decode_value)

    async def _snapshot_read_stored(
        self, ranges: Sequence[ReadRange], consistency: Consistency
    ) -> list[list[RawEntry]]:
        return self._read_with(ranges, StoredValue)

    def _read_with(self, ranges: Sequence[ReadRange], value: _Value) -> list[list[RawEntry]]:
        now = self._now_ms()
        expired: list[bytes] = []
        results = [self._read_range(r, now, expired, value) for r in ranges]
        for key in expired:  # lazy purge of what the read stepped over
            self._remove(key)
        return results

    def _read_range(self, r: ReadRange, now: int, expired: list[bytes], value: _Value) -> list[RawEntry]:
        if r.end == r.start + b"\x00":  # a point read (get, get_many): one dict lookup, no bisection
            return self._read_point(r.start, now, expired, value)
        keys, data = self._keys, self._data
        lo, hi = bisect_left(keys, r.start), bisect_left(keys, r.end)
        indexes = range(hi - 1, lo - 1, -1) if r.reverse else range(lo, hi)
        out: list[RawEntry] = []
        for i in indexes:
            key = keys[i]
            stored = data[key]
            if stored.expire_at_ms is not None and stored.expire_at_ms <= now:
                expired.append(key)
                continue
            out.append(
                RawEntry(
                    key,
                    value(stored.payload, stored.encoding),
                    stored.versionstamp,
                    len(stored.payload),
                )
            )
            if len(out) >= r.limit:
                break
        return out

    def _read_point(self, key: bytes, now: int, expired: list[bytes], value: _Value) -> list[RawEntry]:
        stored = self._data.get(key)
        if stored is None:
            return []
        if stored.expire_at_ms is not None and stored.expire_at_ms <= now:
            expired.append(key)
            return []
        return [RawEntry(key, value(stored.payload, stored.encoding), stored.versionstamp, len(stored.payload))]

    def _live(self, key: bytes, now: int) -> _Stored | None:
        stored = self._data.get(key)
        if stored is None or (stored.expire_at_ms is not None and stored.expire_at_ms <= now):
            return None
        return stored

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        now = self._now_ms()
        for check in checks:
            current = self._live(check.key, now)
            if (current.versionstamp if current else None) != check.versionstamp:
                return None
        versionstamp = f"{self._version + 1:016x}0000"
        staged: dict[bytes, _Stored | None] = {}
        for m in mutations:  # stage first: a failing sum/min/max leaves the store untouched
            if m.kind == "set":
                staged[m.key] = _Stored(m.payload, m.encoding, versionstamp, m.expire_at_ms)
            elif m.kind == "set_suffix_versionstamp":
                staged[m.key + versionstamp_suffix(versionstamp)] = _Stored(
                    m.payload, m.encoding, versionstamp, m.expire_at_ms
                )
            elif m.kind == "delete":
                staged[m.key] = None
            else:
                old = staged[m.key] if m.key in staged else self._live(m.key, now)
                operand = (old.payload, old.encoding) if old is not None else None
                staged[m.key] = _Stored(apply_u64(m.kind, operand, m.value), ENC_U64, versionstamp, None)
        self._version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        for key, stored in staged.items():
            if stored is None:
                self._remove(key)
            else:
                if key not in self._data:
                    insort(self._keys, key)
                self._data[key] = stored
        return versionstamp

    async def _change_token(self) -> object:
        return self._version

    async def _wait_change(self, token: object) -> None:
        while self._version == token and not self._closed:
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def _remove(self, key: bytes) -> None:
        if self._data.pop(key, None) is not None:
            del self._keys[bisect_left(self._keys, key)]

    async def _close(self) -> None:
        if self._changed is not None:
            self._changed.set()  # a waiting watch wakes and finds the store closed
        self._keys.clear()
        self._data.clear()


async def open_memory(rest: str) -> MemoryKv:
    if rest:
        raise InvalidArgumentError(f"memory: takes no path, got {rest!r}")
    return MemoryKv()


def engine_version() -> str:
    return "memory (in-process)"
