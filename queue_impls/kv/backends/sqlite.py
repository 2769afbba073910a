"""SQLite backend (the embedded default): aiosqlite, encoded keys as BLOB primary keys, WAL.

Each primitive is one function run on aiosqlite's database thread: exactly one hop per round trip.
The versionstamp counter lives in the database, so processes sharing a file get unique, ordered stamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from ..atomic import apply_u64
from ..codec import ENC_U64, decode_value, decode_values
from ..contract import WATCH_POLL_S, Kv
from ..errors import BackendError, MutationTypeError
from ..types import Check, Consistency, Mutation, RawEntry, ReadRange, StoredValue, versionstamp_suffix

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    k   BLOB PRIMARY KEY,       -- encoded key: BLOB order (memcmp) is Deno's key order
    v   BLOB NOT NULL,          -- encoded value
    enc INTEGER NOT NULL,       -- 1 serialised, 2 raw bytes, 3 KvU64 (Deno's value encodings)
    vs  BLOB NOT NULL,          -- 10-byte versionstamp of the commit that wrote it
    exp INTEGER                 -- expiry, unix ms, or NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_exp ON kv (exp) WHERE exp IS NOT NULL;
CREATE TABLE IF NOT EXISTS kv_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO kv_meta VALUES ('version', 0);
"""
_LIVE = "(exp IS NULL OR exp > ?)"
_SELECT_FWD = f"SELECT k, v, enc, vs FROM kv WHERE k >= ? AND k < ? AND {_LIVE} ORDER BY k LIMIT ?"
_SELECT_REV = f"SELECT k, v, enc, vs FROM kv WHERE k >= ? AND k < ? AND {_LIVE} ORDER BY k DESC LIMIT ?"
_SELECT_ONE = f"SELECT v, enc, vs FROM kv WHERE k = ? AND {_LIVE}"
_UPSERT = (
    "INSERT INTO kv (k, v, enc, vs, exp) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, enc = excluded.enc, vs = excluded.vs, exp = excluded.exp"
)
_BUMP_VERSION = "UPDATE kv_meta SET value = value + 1 WHERE name = 'version' RETURNING value"
_PURGE = "DELETE FROM kv WHERE exp IS NOT NULL AND exp <= ?"
_DELETE = "DELETE FROM kv WHERE k = ?"
_PRAGMAS = ("busy_timeout = 30000",)  # every connection
_FILE_PRAGMAS = ("journal_mode = WAL", "synchronous = NORMAL")  # a database file's (not ":memory:")


#: Keys, values and versionstamps are bound as bytearray, not bytes: Python's sqlite3 binds str, int, float and
#: bytearray directly, but looks every other type up as an adapter first, and that look-up raises and clears an
#: AttributeError (~2,000 instructions per parameter, measured with callgrind). The column gets the same BLOB.
_blob = bytearray


def _select_points(n: int) -> str:
    return f"SELECT k, v, enc, vs FROM kv WHERE k IN ({','.join('?' * n)}) AND {_LIVE}"


@dataclass(frozen=True)
class SqliteStatements:
    """The SQL this backend runs, by role, exactly as it runs it. Keys and values are the codec's bytes, bound as
    ``bytearray`` (see ``_blob``); ``now`` is unix milliseconds (an entry whose ``exp`` has passed is not live); a
    write runs in ``BEGIN IMMEDIATE`` ... ``COMMIT``: ``bump_version``, one ``upsert``/``delete`` per mutation, then
    ``purge``."""

    pragmas: tuple[str, ...]  # run on every connection
    file_pragmas: tuple[str, ...]  # and on a database file's
    get: str  # (key, now) -> (v, enc, vs)
    list_forward: str  # (start, end, now, limit) -> (k, v, enc, vs) in key order
    list_reverse: str  # the same in reverse key order
    bump_version: str  # () -> (counter,): the commit's versionstamp is counter.to_bytes(8, "big") + b"\x00\x00"
    upsert: str  # (k, v, enc, vs, exp)
    delete: str  # (k,)
    purge: str  # (now,): expired entries, at every commit

    def get_many(self, n: int) -> str:
        """``n`` keys in one statement: (*keys, now) -> (k, v, enc, vs) of the live ones, in no order."""
        return _select_points(n)


#: Public so that a diagnostic can time these very statements on a bare connection (``tools/sqlite_floor.py``, the
#: single-hop floor) instead of a copy that could drift from them.
STATEMENTS: Final = SqliteStatements(
    _PRAGMAS, _FILE_PRAGMAS, _SELECT_ONE, _SELECT_FWD, _SELECT_REV, _BUMP_VERSION, _UPSERT, _DELETE, _PURGE
)


def _read_ranges(conn: sqlite3.Connection, ranges: Sequence[ReadRange], stored: bool = False) -> list[list[RawEntry]]:
    """``stored``: values as the file holds them (``StoredValue``), not decoded (``_snapshot_read_stored``)."""
    now = int(time.time() * 1000)
    if len(ranges) == 1:  # one statement is its own snapshot
        return [_read_range(conn, ranges[0], now, stored)]
    if all(r.end == r.start + b"\x00" for r in ranges):  # get_many: every range one key, so one IN (...) statement
        return _read_points(conn, ranges, now, stored)
    conn.execute("BEGIN")
    try:
        return [_read_range(conn, r, now, stored) for r in ranges]
    finally:
        conn.execute("COMMIT")


def _read_points(conn: sqlite3.Connection, ranges: Sequence[ReadRange], now: int, stored: bool) -> list[list[RawEntry]]:
    """Point reads of several keys in one statement (its own snapshot): results in range order, duplicates kept."""
    keys = list(dict.fromkeys(r.start for r in ranges))
    found = {row[0]: row for row in conn.execute(_select_points(len(keys)), (*map(_blob, keys), now)).fetchall()}
    per_range = [found.get(r.start) for r in ranges]
    # one decode per occurrence (a key asked twice gives two distinct values, as in Deno), the batch in one C call
    payloads = [(row[1], row[2]) for row in per_range if row is not None]
    values = iter([StoredValue(*p) for p in payloads] if stored else decode_values(payloads))
    new = tuple.__new__
    return [
        [] if row is None else [new(RawEntry, (row[0], next(values), row[3].hex(), len(row[1])))] for row in per_range
    ]


def _read_range(conn: sqlite3.Connection, r: ReadRange, now: int, stored: bool) -> list[RawEntry]:
    if r.start >= r.end:
        return []
    if r.end == r.start + b"\x00":  # a point read
        row = conn.execute(_SELECT_ONE, (_blob(r.start), now)).fetchone()
        if row is None:
            return []
        v = row[0]
        value = StoredValue(v, row[1]) if stored else decode_value(v, row[1])
        return [tuple.__new__(RawEntry, (r.start, value, row[2].hex(), len(v)))]
    params = (_blob(r.start), _blob(r.end), now, r.limit)
    rows = conn.execute(_SELECT_REV if r.reverse else _SELECT_FWD, params).fetchall()
    payloads = [(v, enc) for _, v, enc, _ in rows]
    values = [StoredValue(*p) for p in payloads] if stored else decode_values(payloads)  # JSON values: one C call
    # tuple.__new__ skips the NamedTuple's Python-level __new__: same RawEntry, 0.1 us less per entry
    new, raw = tuple.__new__, RawEntry
    return [new(raw, (k, value, vs.hex(), len(v))) for (k, v, _, vs), value in zip(rows, values, strict=True)]


def _write(conn: sqlite3.Connection, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
    now = int(time.time() * 1000)
    conn.execute("BEGIN IMMEDIATE")  # take the write lock first: checks and writes see one state
    try:
        for check in checks:
            row = conn.execute(_SELECT_ONE, (_blob(check.key), now)).fetchone()
            if (row[2].hex() if row else None) != check.versionstamp:
                conn.execute("ROLLBACK")
                return None
        (counter,) = conn.execute(_BUMP_VERSION).fetchone()
        stamp = counter.to_bytes(8, "big") + b"\x00\x00"
        blob_stamp = _blob(stamp)
        for m in mutations:
            _apply(conn, m, blob_stamp, now)
        conn.execute(_PURGE, (now,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    result: str = stamp.hex()
    return result


def _apply(conn: sqlite3.Connection, m: Mutation, stamp: bytearray, now: int) -> None:
    if m.kind == "set":
        conn.execute(_UPSERT, (_blob(m.key), _blob(m.payload), m.encoding, stamp, m.expire_at_ms))
    elif m.kind == "set_suffix_versionstamp":
        key = _blob(m.key + versionstamp_suffix(stamp.hex()))
        conn.execute(_UPSERT, (key, _blob(m.payload), m.encoding, stamp, m.expire_at_ms))
    elif m.kind == "delete":
        conn.execute(_DELETE, (_blob(m.key),))
    else:
        key = _blob(m.key)
        row = conn.execute(_SELECT_ONE, (key, now)).fetchone()
        payload = apply_u64(m.kind, (row[0], row[1]) if row else None, m.value)
        conn.execute(_UPSERT, (key, _blob(payload), ENC_U64, stamp, None))


def _setup(conn: sqlite3.Connection, in_memory: bool) -> None:
    for pragma in _PRAGMAS if in_memory else _PRAGMAS + _FILE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(_SCHEMA)


def _daemonize(conn: aiosqlite.Connection) -> None:
    """Make the connection's worker thread a daemon before it starts: a program that crashes or forgets to close the
    store then still exits (a non-daemon thread is joined at exit, and this one waits for work forever). Committed
    transactions are safe either way; one cut off at exit is rolled back by SQLite's journal on the next open."""
    thread = getattr(conn, "_thread", conn)  # aiosqlite 0.20-0.22: a Thread attribute (it was the Thread itself)
    if isinstance(thread, threading.Thread) and not thread.is_alive():
        thread.daemon = True


async def _stopped(conn: aiosqlite.Connection) -> None:
    """Wait (at most 5 s) for the worker thread of a connection that failed to open to finish: aiosqlite has asked it
    to stop, and it answers on this event loop, which must still be running when it does."""
    thread = getattr(conn, "_thread", conn)
    if isinstance(thread, threading.Thread):
        for _ in range(500):
            if not thread.is_alive():
                return
            await asyncio.sleep(0.01)


class SqliteKv(Kv):
    """The embedded default. Several processes may share one database file."""

    name = "sqlite"
    multi_process = True
    persistent = True

    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        super().__init__()
        self._conn = conn
        self.path = path
        self._commits = 0  # commits through this store object
        self._changed: asyncio.Event | None = None  # set by our commits while a watch waits
        self._reader: sqlite3.Connection | None = None  # see read_on_loop

    @classmethod
    async def open(cls, path: str) -> SqliteKv:
        conn = aiosqlite.connect(path, isolation_level=None, check_same_thread=False)
        _daemonize(conn)
        try:
            await conn
            await conn._execute(_setup, conn._conn, path == ":memory:")  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            await conn.close()
            await _stopped(conn)
            raise BackendError(f"Cannot open SQLite database {path!r}: {exc}") from exc
        except BaseException:
            # Cancelled or interrupted while opening (Ctrl-C in qbench): nobody will ever close this connection, and
            # its worker thread is not a daemon, so it would keep the process alive at exit. Stop it now.
            conn.stop()
            raise
        return cls(conn, path)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._conn._execute(fn, self._conn._conn, *args)  # type: ignore[no-untyped-call]
        except MutationTypeError:
            raise
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def read_on_loop(self) -> bool:
        """Reads go through a second connection to the file, on the calling thread; writes keep aiosqlite's thread,
        and WAL lets the reader see every committed write without waiting on one. False for an in-memory database
        (a second connection would be another database)."""
        if self.path == ":memory:" or self._reader is not None:
            return self._reader is not None
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            reader.execute(f"PRAGMA {pragma}")
        self._reader = reader
        return True

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        if self._reader is not None:
            try:
                return _read_ranges(self._reader, ranges)
            except sqlite3.Error as exc:
                raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        # _run inlined: one coroutine frame less on the hottest path (every get and list batch)
        conn = self._conn
        try:
            result: list[list[RawEntry]] = await conn._execute(_read_ranges, conn._conn, ranges)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        return result

    async def _snapshot_read_stored(
        self, ranges: Sequence[ReadRange], consistency: Consistency
    ) -> list[list[RawEntry]]:
        conn = self._conn
        try:
            if self._reader is not None:
                return _read_ranges(self._reader, ranges, True)
            result: list[list[RawEntry]] = await conn._execute(_read_ranges, conn._conn, ranges, True)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        return result

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        result: str | None = await self._run(_write, checks, mutations)
        if result is not None:
            self._commits += 1
            if self._changed is not None:
                self._changed.set()
                self._changed = None
        return result

    async def _change_token(self) -> object:
        # PRAGMA data_version moves with every commit of another connection (another process) to the file.
        return (self._commits, await self._run(_data_version))

    async def _wait_change(self, token: object) -> None:
        """Our own commits wake a watch at once; other processes' are seen within WATCH_POLL_S (a pragma, no rows)."""
        assert isinstance(token, tuple)
        while not self._closed and self._commits == token[0]:
            if self._changed is None:
                self._changed = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), WATCH_POLL_S)
            if self._commits == token[0] and not self._closed and await self._run(_data_version) != token[1]:
                return

    async def _close(self) -> None:
        if self._changed is not None:
            self._changed.set()
        if self._reader is not None:
            self._reader.close()
        await self._conn.close()


def _data_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


async def open_sqlite(rest: str) -> SqliteKv:
    return await SqliteKv.open(rest or ":memory:")


def engine_version() -> str:
    """The SQLite library's version (the one Python's sqlite3, and so aiosqlite, runs on)."""
    return f"SQLite {sqlite3.sqlite_version}"
