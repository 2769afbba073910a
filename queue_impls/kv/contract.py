"""The KV contract, written once: every public call built on two backend primitives.

A backend implements ``_snapshot_read`` (one consistent read of up to 10 key ranges) and ``_atomic_write``
(checks + mutations, all or nothing). One primitive call is one round trip, on every backend.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, ClassVar, NamedTuple, Self

from .atomic import AtomicOperation
from .codec import Key, decode_key, encode_key
from .commit_order import check_key_type
from .errors import (
    InvalidArgumentError,
    InvalidCursorError,
    InvalidKeyError,
    InvalidLimitError,
    InvalidSelectorError,
    KvClosedError,
    KvValidationError,
    TooManyRangesError,
)
from .limits import (
    CONSISTENCIES,
    DEFAULT_BATCH_SIZE,
    MAX_DEFAULT_BATCH_SIZE,
    MAX_READ_ENTRIES,
    MAX_READ_RANGES,
    check_consistency,
    check_read_bound,
    positive_int,
)
from .selectors import Selector
from .types import Check, CommitResult, Consistency, KvEntry, Mutation, RawEntry, ReadRange, new_entry


def _as_key(key: Any) -> Key:
    if isinstance(key, tuple):
        return key
    if isinstance(key, list):
        return tuple(key)
    raise InvalidKeyError(f"A key must be a tuple (or list) of parts, got {type(key).__name__}")


def _point_read(key: Any, consistency: Any) -> tuple[Key, ReadRange]:
    """A get's key and read range, checked in Deno's order: the key's part types, the consistency, the key's
    encoding (an int part over 255 bytes) and size."""
    key = _as_key(key)
    try:
        bound = encode_key(key) + b"\x00"
    except InvalidKeyError:
        check_key_type(key)
        check_consistency(consistency)
        raise
    if consistency not in CONSISTENCIES:
        check_consistency(consistency)
    check_read_bound(bound)
    return key, ReadRange(bound[:-1], bound, 1)


def _many_keys(keys: Any) -> list[Key]:
    if not isinstance(keys, list | tuple):
        raise InvalidArgumentError(
            f"get_many takes a list of at most {MAX_READ_RANGES} keys, got {type(keys).__name__}"
        )
    return [_as_key(k) for k in keys]


def _point_bound(encoded: bytes) -> ReadRange:
    bound = encoded + b"\x00"
    check_read_bound(bound)
    return ReadRange(encoded, bound, 1)


#: What a watch yields: the watched keys' entries, in order (a name outside Kv, whose ``list`` method shadows it).
WatchEntries = list[KvEntry]

#: How often a watch looks again on a backend that cannot signal changes (and SQLite, for other processes' commits).
WATCH_POLL_S = 0.05


def _watched_keys(keys: Any) -> list[Key]:
    """The keys of a watch, checked when watch() is called, as Deno's kv.watch() checks them before it returns: every
    key's part types, the count (10), every key's encoding (an int part over 255 bytes), then every key's size. The
    read limit (2049 bytes) applies to the key itself, not to key + 0x00 as for get."""
    tuples = [_as_key(k) for k in keys]
    for key in tuples:
        check_key_type(key)
    if len(tuples) > MAX_READ_RANGES:
        raise TooManyRangesError(f"Too many keys (max {MAX_READ_RANGES}): got {len(tuples)} keys")
    for encoded in [encode_key(key) for key in tuples]:
        check_read_bound(encoded)
    return tuples


def _watch_range(key: Key) -> ReadRange:
    """A watched key is read like a get (its size was checked by watch())."""
    encoded = encode_key(key)
    return ReadRange(encoded, encoded + b"\x00", 1)


def _point_entry(key: Key, rows: list[RawEntry]) -> KvEntry:
    """The entry a point read gives: its row, or value and versionstamp None when the key is missing."""
    if not rows:
        return new_entry(key, None, None)
    raw = rows[0]
    return new_entry(key, raw.value, raw.versionstamp)


class Kv(abc.ABC):
    """A Deno-KV-style store. Subclasses implement the primitives and ``_close``; nothing else."""

    #: Short name used in URLs and on the command line.
    name: ClassVar[str] = "abstract"
    #: Several processes may open the same store and stay consistent.
    multi_process: ClassVar[bool] = False
    #: Data outlives the process.
    persistent: ClassVar[bool] = False
    #: Reads never return an entry after its expire_in deadline (Deno's local backend purges late: False there).
    exact_expiry: ClassVar[bool] = True
    #: A KvU64 may sit inside a list/dict value (Deno clones a nested one into a plain object: False there).
    nested_u64_values: ClassVar[bool] = True

    def __init__(self) -> None:
        self._closed = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass that overrides ``_snapshot_read`` but not ``_snapshot_read_stored`` (say, a store that filters
        or rewrites what it reads) gets the default stored read, which goes through its ``_snapshot_read``: an
        inherited stored read would serve its parent's entries past the override."""
        super().__init_subclass__(**kwargs)
        if "_snapshot_read" in cls.__dict__ and "_snapshot_read_stored" not in cls.__dict__:
            cls._snapshot_read_stored = Kv._snapshot_read_stored  # type: ignore[method-assign]

    # -- primitives --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        """Read every range from one snapshot; each range returns at most ``limit`` live entries."""

    async def _snapshot_read_stored(
        self, ranges: Sequence[ReadRange], consistency: Consistency
    ) -> list[list[RawEntry]]:
        """``_snapshot_read``, where a backend may leave each value as it holds it: a ``StoredValue`` instead of the
        decoded value, for a caller that only passes values on. Default: the decoded values of ``_snapshot_read``."""
        return await self._snapshot_read(ranges, consistency)

    @abc.abstractmethod
    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        """Apply all mutations if all checks hold; return the new versionstamp, or None if a check failed.

        Raises MutationTypeError (writing nothing) when sum/min/max meets a non-U64 value.
        """

    @abc.abstractmethod
    async def _close(self) -> None:
        """Release the backend's resources."""

    # -- lifecycle ---------------------------------------------------------------------------------

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def read_on_loop(self) -> bool:
        """From now on, read on the calling thread (the event loop's) where the backend would otherwise hand reads to
        a thread of its own: for a server, whose every read would pay that hop there and back. True when reads now run
        there; False, and nothing changes, for a backend that cannot (or has no such thread)."""
        return False

    def commits_on_loop(self) -> bool:
        """True when this store reads and commits on the calling thread (the event loop's), with no hop to a thread of
        its own; such a store never makes the loop wait for a lock another connection holds (it hands that call to
        its thread instead). False for a store that always hands its calls over, or has no thread."""
        return False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise KvClosedError(f"The {self.name} store is closed")

    def _read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> Awaitable[list[list[RawEntry]]]:
        # A plain function handing back the primitive's coroutine: no coroutine frame of its own to step through
        # on every suspension and resumption of a read (see docs/performance.md).
        if self._closed:
            self._check_open()
        return self._snapshot_read(ranges, consistency)

    async def _commit(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> CommitResult:
        self._check_open()
        versionstamp = await self._atomic_write(checks, mutations)
        return CommitResult(ok=versionstamp is not None, versionstamp=versionstamp)

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    # -- reads -------------------------------------------------------------------------------------

    async def get(self, key: Key, *, consistency: Consistency | None = "strong") -> KvEntry:
        """One read. A missing key gives an entry whose value and versionstamp are None. ``consistency`` None is
        "strong", as Deno reads ``consistency: null``."""
        consistency = "strong" if consistency is None else consistency
        key, point = _point_read(key, consistency)
        [rows] = await self._read([point], consistency)
        return _point_entry(key, rows)

    async def get_many(self, keys: Sequence[Key], *, consistency: Consistency | None = "strong") -> list[KvEntry]:
        """At most 10 keys in one read; results in input order, duplicates allowed (``consistency`` None: "strong")."""
        consistency = "strong" if consistency is None else consistency
        tuples = _many_keys(keys)
        for key in tuples:  # Deno's order: every key's part types, consistency, count, each key's encoding and size
            check_key_type(key)
        check_consistency(consistency)
        if len(tuples) > MAX_READ_RANGES:
            raise TooManyRangesError(f"Too many ranges (max {MAX_READ_RANGES}): got {len(tuples)} keys")
        ranges = [_point_bound(encode_key(key)) for key in tuples]
        if not ranges:
            return []
        results = await self._read(ranges, consistency)
        return [_point_entry(key, rows) for key, rows in zip(tuples, results, strict=True)]

    def list(
        self,
        *,
        prefix: Key | None = None,
        start: Key | None = None,
        end: Key | None = None,
        limit: int | None = None,
        reverse: bool = False,
        cursor: str | None = None,
        batch_size: int | None = None,
        consistency: Consistency | None = "strong",
    ) -> KvListIterator:
        """Entries of a selector in key order, pulled in batches as Deno does (see docs/kv.md).

        Raises here, in Deno's order: limit, batch_size, the selector's shape. Everything else (consistency, key
        parts, bounds, cursor, key sizes, batch_size over 1000) raises on the first iteration, as in Deno.
        ``consistency`` None is "strong", as Deno reads ``consistency: null``.
        """
        consistency = "strong" if consistency is None else consistency
        if limit is not None:
            limit = positive_int(limit, "Limit")
        if batch_size is not None:
            batch_size = positive_int(batch_size, "batchSize")
        else:
            batch_size = min(limit or DEFAULT_BATCH_SIZE, MAX_DEFAULT_BATCH_SIZE)
        selector: Selector | _DeferredKeyError
        try:
            selector = Selector.from_keys(prefix, start, end)
        except InvalidSelectorError:
            raise
        except KvValidationError as exc:  # a key that is not a key: Deno finds it on the first next()
            selector = _DeferredKeyError(exc, (prefix, start, end))
        # Only True reverses: Deno reads the option as a bool that only JavaScript's `true` sets (1 lists forward)
        return KvListIterator(self, selector, limit, reverse is True, batch_size, cursor, consistency)

    # -- watch -------------------------------------------------------------------------------------

    def watch(self, keys: Sequence[Key]) -> AsyncIterator[WatchEntries]:
        """Deno's ``kv.watch(keys)``: yields the entries of ``keys`` (in order, missing ones included) at once, then
        again whenever any of their versionstamps changed (a rewrite of the same value too; changes close together
        may come as one yield). At most 10 keys, each at most 2049 encoded bytes, checked here as Deno checks them;
        no keys: ends at once. ``aclose()`` the iterator to stop."""
        return self._watch(_watched_keys(keys))

    async def _watch(self, keys: Sequence[Key]) -> AsyncIterator[WatchEntries]:
        """Re-read the keys after every change the backend signals; yield when a versionstamp moved. The re-reads
        are the store's own work (as Deno's server does it), so only the yields are counted as reads."""
        if not keys:
            return
        ranges = [_watch_range(key) for key in keys]
        last: object = None
        while True:
            self._check_open()
            token = await self._change_token()
            rows = await self._snapshot_read(ranges, "strong")
            entries = [_point_entry(key, found) for key, found in zip(keys, rows, strict=True)]
            stamps = [entry.versionstamp for entry in entries]
            if stamps != last:
                last = stamps
                yield entries
            await self._wait_change(token)

    async def _change_token(self) -> object:
        """Something that moves with every commit (taken before a watch reads); None: the backend cannot tell."""
        return None

    async def _wait_change(self, token: object) -> None:
        """Return once the store may have changed since ``token``. Without a signal: look again after 50 ms."""
        await asyncio.sleep(WATCH_POLL_S)

    # -- writes ------------------------------------------------------------------------------------

    def atomic(self) -> AtomicOperation:
        return AtomicOperation(self)

    # set() and delete() are calls of their own in Deno, not atomic() builders: a store overriding atomic() (the
    # counting store counts each commit of one) does not see them as commits.

    async def set(self, key: Key, value: Any, *, expire_in: int | None = None) -> CommitResult:
        return await AtomicOperation(self).set(key, value, expire_in=expire_in).commit()

    async def delete(self, key: Key) -> None:
        await AtomicOperation(self).delete(key).commit()


class _DeferredKeyError(NamedTuple):
    """A list() key that could not be encoded, with the keys as given: raised on the first next(), as in Deno."""

    error: KvValidationError
    keys: tuple[Any, Any, Any]


class KvListIterator(AsyncIterator[KvEntry]):
    """Deno's KvListIterator: checks the limit before each pull, stops after a short batch."""

    def __init__(
        self,
        kv: Kv,
        selector: Selector | _DeferredKeyError,
        limit: int | None,
        reverse: bool,
        batch_size: int,
        cursor: str | None,
        consistency: Consistency,
    ) -> None:
        self._kv = kv
        self._key_error: _DeferredKeyError | None = None
        if isinstance(selector, _DeferredKeyError):  # raised by the first pull, in Deno's order
            self._key_error, selector = selector, Selector(b"", None, None)
        self._selector = selector
        self._limit = limit
        self._reverse = reverse
        self._batch_size = batch_size
        self._start_cursor = cursor or None  # Deno ignores an empty cursor
        self._consistency = consistency
        self._buffer: list[RawEntry] = []  # the batch being returned, reversed: pop() gives the next in key order
        self._entries: list[KvEntry] | None = []  # its entries, built in one pass when the batch arrives (reversed)
        self._last_key: bytes | None = None
        self._last_batch = False
        self._done = False
        self._count = 0
        # Every key under a prefix selector starts with the encoded prefix, whole parts: decode that part once.
        self._prefix_len = len(selector.prefix) if selector.prefix else 0
        self._prefix_key = decode_key(selector.prefix) if selector.prefix else ()

    @property
    def cursor(self) -> str:
        """Where to resume: the last returned key's cursor, "" once exhausted."""
        if self._done:
            return ""
        if self._last_key is not None:
            return self._selector.cursor_for(self._last_key)
        if self._start_cursor is not None:
            return self._start_cursor
        raise InvalidCursorError("Cannot get cursor before first iteration")

    def __aiter__(self) -> KvListIterator:
        return self

    async def __anext__(self) -> KvEntry:
        if self._done or (self._limit is not None and self._count >= self._limit):
            raise StopAsyncIteration
        if not self._buffer and not self._last_batch:
            self._take(await self._pull())
        if not self._buffer:
            self._done = True
            raise StopAsyncIteration
        raw = self._buffer.pop()
        self._last_key = raw.key
        self._count += 1
        entries = self._entries
        return entries.pop() if entries is not None else self._entry(raw)

    def _take(self, batch: list[RawEntry]) -> None:
        batch.reverse()  # pop() from the end in key order
        self._buffer = batch
        if len(batch) < self._batch_size:
            self._last_batch = True
        prefix_key, prefix_len = self._prefix_key, self._prefix_len
        try:  # one pass over the batch costs less than one call per entry
            self._entries = [new_entry(prefix_key + decode_key(k[prefix_len:]), v, vs) for k, v, vs, _ in batch]
        except Exception:  # a malformed key: decode entry by entry, so its error comes on its own turn as before
            self._entries = None

    def _entry(self, raw: RawEntry) -> KvEntry:
        return KvEntry(self._prefix_key + decode_key(raw.key[self._prefix_len :]), raw.value, raw.versionstamp)

    async def _pull(self) -> list[RawEntry]:
        if self._last_key is None:
            self._first_pull_checks()
            first, last = self._selector.bounds(self._reverse, self._start_cursor)
            if self._batch_size > MAX_READ_ENTRIES:
                raise InvalidLimitError(f"Too many entries (max {MAX_READ_ENTRIES}): batchSize {self._batch_size}")
        else:
            first, last = self._selector.after(self._reverse, self._last_key)
        [rows] = await self._kv._read([ReadRange(first, last, self._batch_size, self._reverse)], self._consistency)
        return rows

    def _first_pull_checks(self) -> None:
        """Deno's order on the first next(): the types of the keys and of the cursor, the consistency, the keys'
        encoding, the selector's bounds (then, in bounds(), the cursor, its bounds and the key sizes)."""
        if self._key_error is not None:
            for key in self._key_error.keys:
                if key is not None:
                    check_key_type(key)
        if self._start_cursor is not None and not isinstance(self._start_cursor, str):
            raise InvalidCursorError(f"invalid cursor: a cursor is a str, got {type(self._start_cursor).__name__}")
        check_consistency(self._consistency)
        if self._key_error is not None:
            raise self._key_error.error
        self._selector.validate()

    async def collect(self) -> list[KvEntry]:
        """All remaining entries as a list."""
        return [entry async for entry in self]
