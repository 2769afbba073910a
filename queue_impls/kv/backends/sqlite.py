"""SQLite backend (the embedded default): encoded keys as BLOB primary keys, WAL, versionstamps reserved in blocks.

A database file is read and written on the caller's thread (the event loop's) through a connection that never waits
for a lock: when another connection holds one, that call goes to aiosqlite's database thread, which waits there.
An in-memory database (or ``on_loop=False``) runs every primitive on that thread: one hop per round trip.

Versionstamps rise strictly in commit order across every connection and process on a file, without a write per
commit: the file keeps a high-water mark (``kv_meta`` 'version': no versionstamp ever issued is above it), and a
connection moves it on by ``VERSION_BLOCK`` in a commit to reserve the versionstamps above the old mark. It issues
them in its later commits for as long as no other connection has committed (``PRAGMA data_version``, read inside the
write transaction, is unchanged); once one has, or the block is used up, its next commit reserves again above the
mark. A commit that rolls back drops the connection's reservation, so a versionstamp may be skipped, never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite

from ..atomic import apply_u64
from ..codec import ENC_U64, decode_value, decode_values
from ..contract import WATCH_POLL_S, Kv
from ..errors import BackendError, MutationTypeError
from ..types import Check, Consistency, Mutation, MutationKind, RawEntry, ReadRange, StoredValue, versionstamp_suffix

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
_SELECT_STAMP = f"SELECT vs FROM kv WHERE k = ? AND {_LIVE}"  # a check's: the value is not read
_UPSERT = (
    "INSERT INTO kv (k, v, enc, vs, exp) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, enc = excluded.enc, vs = excluded.vs, exp = excluded.exp"
)
#: A set without an expiry (the usual one): ``_UPSERT`` with its NULL written in, not bound. Python's sqlite3 binds
#: None only after an adapter look-up, which raises and clears an AttributeError (~2,000 instructions per set).
_UPSERT_LASTING = (
    "INSERT INTO kv (k, v, enc, vs, exp) VALUES (?, ?, ?, ?, NULL) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, enc = excluded.enc, vs = excluded.vs, exp = NULL"
)
# Moves only when another connection (this store's other one, another process) has committed, whatever it wrote;
# reading it writes nothing and reads no page.
_DATA_VERSION = "PRAGMA data_version"
# A reservation: two statements, not one UPDATE ... RETURNING, which cost 11 K instructions more per commit than both
# of these (callgrind, through Python's sqlite3; RETURNING collects its rows in a temporary table).
_RESERVE_VERSIONS = "UPDATE kv_meta SET value = value + ? WHERE name = 'version'"
_READ_VERSION = "SELECT value FROM kv_meta WHERE name = 'version'"
_PURGE = "DELETE FROM kv WHERE exp IS NOT NULL AND exp <= ?"
_DELETE = "DELETE FROM kv WHERE k = ?"
#: sum/min/max in one statement: (k, operand as 8 little-endian bytes, vs, kind, now). An expired entry counts as
#: missing (the operand is stored); kvq_u64 (see _u64_sql) combines a live one, refusing a non-U64 value.
_U64_UPSERT = (
    "INSERT INTO kv (k, v, enc, vs, exp) VALUES (?1, ?2, 3, ?3, NULL) ON CONFLICT (k) DO UPDATE SET "
    "v = CASE WHEN kv.exp IS NOT NULL AND kv.exp <= ?5 THEN excluded.v ELSE kvq_u64(?4, kv.v, kv.enc, excluded.v) END, "
    "enc = 3, vs = excluded.vs, exp = NULL"
)
_PRAGMAS = ("busy_timeout = 30000",)  # every connection
_FILE_PRAGMAS = ("journal_mode = WAL", "synchronous = NORMAL")  # a database file's (not ":memory:")
#: The loop's connection: never wait for a lock (busy_timeout 0: SQLITE_BUSY at once, and the call goes to the
#: thread), commit without an fsync (WAL + NORMAL: only checkpoints sync) and no automatic checkpoint (the thread
#: checkpoints; see SqliteKv._checkpoint for a caller that never lets the loop run).
_LOOP_PRAGMAS = ("busy_timeout = 0", "synchronous = NORMAL", "wal_autocheckpoint = 0")
#: Commits on the loop's connection between two passive checkpoints on the thread: SQLite's own default is one per
#: 1,000 WAL pages, and a commit of the queue writes 2 to 6 pages.
CHECKPOINT_EVERY: Final = 250
#: Versionstamps one reservation takes (see the module docstring): a commit that reserves writes one page more (the
#: ``kv_meta`` row), so one in this many commits of a connection does while it is the only one committing. Commits
#: of two connections that alternate reserve every time and move the versionstamp on by this much: 2**63 / 1024 is
#: still 9 * 10**15 commits.
VERSION_BLOCK: Final = 1024
#: Commits of one store between two purges of expired entries (each in a commit, the store's first commit one of
#: them): reads and checks never see an expired entry, so the purge only frees space, and a statement per commit
#: would cost more than the space is worth. Counted in commits, not seconds, so that the work a commit does never
#: depends on the clock or the machine's load (the gate counts a commit's CPU instructions).
PURGE_EVERY: Final = 64


#: Keys, values and versionstamps are bound as bytearray, not bytes: Python's sqlite3 binds str, int, float and
#: bytearray directly, but looks every other type up as an adapter first, and that look-up raises and clears an
#: AttributeError (~2,000 instructions per parameter, measured with callgrind). The column gets the same BLOB.
_blob = bytearray


@functools.cache
def _select_points(n: int) -> str:
    return f"SELECT k, v, enc, vs FROM kv WHERE k IN ({','.join('?' * n)}) AND {_LIVE}"


@dataclass(frozen=True)
class SqliteStatements:
    """The SQL this backend runs, by role, exactly as it runs it. Keys and values are the codec's bytes, bound as
    ``bytearray`` (see ``_blob``); ``now`` is unix milliseconds (an entry whose ``exp`` has passed is not live); a
    write runs in ``BEGIN IMMEDIATE`` ... ``COMMIT``: ``check`` per check, ``data_version`` (and, when another
    connection has committed since this one's reservation or that is used up, ``reserve_versions`` and
    ``read_version``), one ``upsert``/``delete``/``u64_upsert`` per mutation (a run of one of them sent as one
    ``executemany``), then ``purge`` (once every ``PURGE_EVERY`` commits of a store)."""

    pragmas: tuple[str, ...]  # run on every connection
    file_pragmas: tuple[str, ...]  # and on a database file's
    get: str  # (key, now) -> (v, enc, vs)
    check: str  # (key, now) -> (vs,)
    list_forward: str  # (start, end, now, limit) -> (k, v, enc, vs) in key order
    list_reverse: str  # the same in reverse key order
    data_version: str  # () -> (n,): n moves when another connection commits; a reservation holds while it does not
    reserve_versions: str  # (VERSION_BLOCK,): the high-water mark moved on by a block
    read_version: str  # () -> (mark,): a versionstamp is counter.to_bytes(8, "big") + b"\x00\x00", counter <= mark
    upsert: str  # (k, v, enc, vs, exp)
    upsert_lasting: str  # (k, v, enc, vs): upsert with exp NULL, for a set without an expiry
    u64_upsert: str  # (k, operand, vs, kind, now): a sum/min/max, through the SQL function kvq_u64 (_u64_sql)
    delete: str  # (k,)
    purge: str  # (now,): expired entries, in one commit of every PURGE_EVERY

    def get_many(self, n: int) -> str:
        """``n`` keys in one statement: (*keys, now) -> (k, v, enc, vs) of the live ones, in no order."""
        return _select_points(n)


#: Public so that a diagnostic can time these very statements on a bare connection (``tools/sqlite_floor.py``, the
#: single-hop floor) instead of a copy that could drift from them.
STATEMENTS: Final = SqliteStatements(
    _PRAGMAS,
    _FILE_PRAGMAS,
    _SELECT_ONE,
    _SELECT_STAMP,
    _SELECT_FWD,
    _SELECT_REV,
    _DATA_VERSION,
    _RESERVE_VERSIONS,
    _READ_VERSION,
    _UPSERT,
    _UPSERT_LASTING,
    _U64_UPSERT,
    _DELETE,
    _PURGE,
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


class _Reservation:
    """The versionstamps one connection has reserved and not yet issued, ``next`` to ``last``: good while that
    connection's ``PRAGMA data_version`` is still ``data_version`` (-1: none reserved). Used on one thread only."""

    __slots__ = ("data_version", "last", "next")

    def __init__(self) -> None:
        self.data_version = -1
        self.next = 1
        self.last = 0


def _write(
    conn: sqlite3.Connection,
    checks: Sequence[Check],
    mutations: Sequence[Mutation],
    purge: bool = True,
    reserved: _Reservation | None = None,
) -> str | None:
    """The commit: its checks, a new versionstamp, its mutations in order and (with ``purge``) the expired entries'
    removal, in one transaction. Reads never return an expired entry (``_LIVE``), so the purge only frees space.
    ``reserved``: ``conn``'s versionstamps (None: reserve for this commit only)."""
    if reserved is None:
        reserved = _Reservation()
    now = int(time.time() * 1000)
    cur = conn.cursor()  # one cursor for the commit's statements: conn.execute makes one per call
    cur.execute("BEGIN IMMEDIATE")  # take the write lock first: checks and writes see one state
    try:
        if checks and not _checks_hold(cur, checks, now):
            cur.execute("ROLLBACK")
            return None
        stamp = _next_version(cur, reserved).to_bytes(8, "big") + b"\x00\x00"
        _apply_all(cur, mutations, _blob(stamp), now)
        if purge:
            cur.execute(_PURGE, (now,))
        cur.execute("COMMIT")
    except BaseException:
        reserved.data_version = -1  # a reservation made in this commit went with it: reserve again next time
        if conn.in_transaction:  # SQLite may have rolled it back itself (a full disk): a ROLLBACK would then raise
            conn.execute("ROLLBACK")  # "no transaction is active" in place of the error that ended it
        raise
    result: str = stamp.hex()
    return result


def _next_version(cur: sqlite3.Cursor, reserved: _Reservation) -> int:
    """The commit's versionstamp counter, inside its write transaction. The next reserved one while no other
    connection has committed since the reservation (then every commit since it was this connection's, each with a
    reserved counter, and each before it has one at most the mark it moved on); else one above the file's mark,
    which moves on by ``VERSION_BLOCK``: the others up to the new mark are this connection's reservation."""
    (data_version,) = cur.execute(_DATA_VERSION).fetchone()
    counter = reserved.next
    if data_version == reserved.data_version and counter <= reserved.last:
        reserved.next = counter + 1
        return counter
    cur.execute(_RESERVE_VERSIONS, (VERSION_BLOCK,))
    (mark,) = cur.execute(_READ_VERSION).fetchone()
    counter = mark - VERSION_BLOCK + 1
    reserved.data_version, reserved.next, reserved.last = data_version, counter + 1, mark
    return int(counter)


def _checks_hold(conn: sqlite3.Cursor, checks: Sequence[Check], now: int) -> bool:
    """Every check's key at its versionstamp (None: not live). A point read each: one ``IN (...)`` statement for
    several keys cost more than their point reads (callgrind: 63 K instructions for two keys against 40 K)."""
    for check in checks:
        row = conn.execute(_SELECT_STAMP, (_blob(check.key), now)).fetchone()
        if (row[0].hex() if row else None) != check.versionstamp:
            return False
    return True


def _apply_all(conn: sqlite3.Cursor, mutations: Sequence[Mutation], stamp: bytearray, now: int) -> None:
    """The mutations in order. A run of sets (or of deletes) is one ``executemany``, each row still one step of the
    statement but no Python call per row; a run of sum/min/max is one ``executemany`` too."""
    i, n = 0, len(mutations)
    while i < n:
        kind = _RUN_OF[mutations[i].kind]
        j = i + 1
        while j < n and _RUN_OF[mutations[j].kind] == kind:
            j += 1
        if j - i == 1:
            _apply(conn, mutations[i], stamp, now)
        elif kind == "set":
            run = mutations[i:j]
            if all(m.expire_at_ms is None for m in run):
                conn.executemany(_UPSERT_LASTING, [(_blob(m.key), _blob(m.payload), m.encoding, stamp) for m in run])
            else:
                rows = [(_blob(m.key), _blob(m.payload), m.encoding, stamp, m.expire_at_ms) for m in run]
                conn.executemany(_UPSERT, rows)
        elif kind == "delete":
            conn.executemany(_DELETE, [(_blob(m.key),) for m in mutations[i:j]])
        elif kind == "u64":
            _apply_u64_run(conn, mutations[i:j], stamp, now)
        else:
            for m in mutations[i:j]:
                _apply(conn, m, stamp, now)
        i = j


#: Which mutations make a run that _apply_all sends together.
_RUN_OF: Final = {
    "set": "set",
    "delete": "delete",
    "sum": "u64",
    "min": "u64",
    "max": "u64",
    "set_suffix_versionstamp": "suffix",
}


def _apply_u64_run(conn: sqlite3.Cursor, run: Sequence[Mutation], stamp: bytearray, now: int) -> None:
    """sum/min/max in order in one ``executemany`` of ``u64_upsert``: each step sees the ones before it."""
    rows = [(_blob(m.key), _blob(m.value.to_bytes(8, "little")), stamp, m.kind, now) for m in run]
    _U64_REFUSED.kind = None
    try:
        conn.executemany(_U64_UPSERT, rows)
    except sqlite3.OperationalError:
        kind = _U64_REFUSED.kind
        if kind is None:
            raise
        raise MutationTypeError(f"Failed to perform '{kind}' mutation on a non-U64 value in the database") from None


def _u64_sql(kind: MutationKind, payload: bytes, encoding: int, operand: bytes) -> bytes:
    """SQL function kvq_u64: the new payload of a sum/min/max over a live entry. A non-U64 value: the statement fails
    (SQLite reports a failed function without its exception, so the kind is noted for _apply_u64_run)."""
    if encoding != ENC_U64:
        _U64_REFUSED.kind = kind
        raise ValueError(kind)
    return apply_u64(kind, (payload, encoding), int.from_bytes(operand, "little"))


def _functions(conn: sqlite3.Connection) -> None:
    conn.create_function("kvq_u64", 4, _u64_sql, deterministic=True)


class _Refused(threading.local):
    kind: str | None = None


_U64_REFUSED: Final = _Refused()


def _apply(conn: sqlite3.Cursor, m: Mutation, stamp: bytearray, now: int) -> None:
    if m.kind == "set":
        if m.expire_at_ms is None:
            conn.execute(_UPSERT_LASTING, (_blob(m.key), _blob(m.payload), m.encoding, stamp))
        else:
            conn.execute(_UPSERT, (_blob(m.key), _blob(m.payload), m.encoding, stamp, m.expire_at_ms))
    elif m.kind == "set_suffix_versionstamp":
        key = _blob(m.key + versionstamp_suffix(stamp.hex()))
        conn.execute(_UPSERT, (key, _blob(m.payload), m.encoding, stamp, m.expire_at_ms))
    elif m.kind == "delete":
        conn.execute(_DELETE, (_blob(m.key),))
    else:
        _apply_u64_run(conn, (m,), stamp, now)


def _setup(conn: sqlite3.Connection, in_memory: bool) -> None:
    for pragma in _PRAGMAS if in_memory else _PRAGMAS + _FILE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.executescript(_SCHEMA)
    _functions(conn)


#: The schema a database file gets, and the pragmas of the loop's connection to it: public so that a diagnostic can
#: write rows as this store would on a bare connection (``tools/huey_vs.py``'s lower bound) without a copy of them.
SCHEMA: Final = _SCHEMA
LOOP_PRAGMAS: Final = _LOOP_PRAGMAS


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
    #: Called with (checks, mutations, versionstamp) after each commit through this store whose checks held; None
    #: calls nothing. For a diagnostic that records what reaches the store (``tools/huey_vs.py``'s capture).
    on_commit: Callable[[Sequence[Check], Sequence[Mutation], str], None] | None = None

    def __init__(self, conn: aiosqlite.Connection, path: str, loop_conn: sqlite3.Connection | None = None) -> None:
        super().__init__()
        self._conn = conn
        self.path = path
        self._commits = 0  # commits through this store object
        self._changed: asyncio.Event | None = None  # set by our commits while a watch waits
        self._reader: sqlite3.Connection | None = None  # see read_on_loop
        self._loop_conn = loop_conn  # reads and commits on the caller's thread (see commits_on_loop)
        self._handed_off = 0  # commits waiting on the thread: later ones queue behind them, in order
        self._loop_commits = 0  # since the last checkpoint was asked for
        self._checkpointing: asyncio.Future[Any] | None = None  # the thread's checkpoint, asked for and not done
        self._checkpoint_began = False  # ... and the loop has run it far enough to hand it to the thread
        self._until_purge = 0  # commits before the one that purges expired entries (see PURGE_EVERY)
        self._loop_reserved = _Reservation()  # versionstamps reserved by the loop's connection (see _next_version)
        self._thread_reserved = _Reservation()  # and by the thread's: each sees the other's commits as another's

    @classmethod
    async def open(cls, path: str, *, on_loop: bool = True) -> SqliteKv:
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
        return cls(conn, path, _loop_connection(path) if on_loop and path != ":memory:" else None)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await self._conn._execute(fn, self._conn._conn, *args)  # type: ignore[no-untyped-call]
        except MutationTypeError:
            raise
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc

    def commits_on_loop(self) -> bool:
        """True for a database file (unless opened with ``on_loop=False``): reads and commits run on the caller's
        thread through a connection that never waits for a lock; a call that finds the file locked by another
        connection (another process) goes to aiosqlite's thread and waits there, and commits after it follow it
        there until it is done, so this process's commits keep their order. Checkpoints run on that thread too."""
        return self._loop_conn is not None

    def read_on_loop(self) -> bool:
        """Reads go through a second connection to the file, on the calling thread; writes keep aiosqlite's thread,
        and WAL lets the reader see every committed write without waiting on one. False for an in-memory database
        (a second connection would be another database). A store that commits on the loop already reads there."""
        if self._loop_conn is not None:
            return True
        if self.path == ":memory:" or self._reader is not None:
            return self._reader is not None
        reader = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            reader.execute(f"PRAGMA {pragma}")
        self._reader = reader
        return True

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        result = self._read_here(ranges, False)
        return await self._read_on_thread(ranges, False) if result is _HAND_OFF else result  # type: ignore[return-value]

    async def _snapshot_read_stored(
        self, ranges: Sequence[ReadRange], consistency: Consistency
    ) -> list[list[RawEntry]]:
        result = self._read_here(ranges, True)
        return await self._read_on_thread(ranges, True) if result is _HAND_OFF else result  # type: ignore[return-value]

    def _read_here(self, ranges: Sequence[ReadRange], stored: bool) -> object:
        """The read on the caller's thread, or _HAND_OFF when it must go to the database thread (no connection
        here, or the loop's connection found the file busy)."""
        reader = self._loop_conn or self._reader
        if reader is None:
            return _HAND_OFF
        try:
            return _read_ranges(reader, ranges, stored)
        except sqlite3.Error as exc:
            if reader is self._reader or not _busy(exc):
                raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        return _HAND_OFF

    async def _read_on_thread(self, ranges: Sequence[ReadRange], stored: bool) -> list[list[RawEntry]]:
        conn = self._conn
        try:
            result: list[list[RawEntry]] = await conn._execute(_read_ranges, conn._conn, ranges, stored)  # type: ignore[no-untyped-call]
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        return result

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        purge = self._until_purge == 0
        self._until_purge = PURGE_EVERY - 1 if purge else self._until_purge - 1
        result = self._write_on_loop(checks, mutations, purge) if self._loop_conn is not None else _HAND_OFF
        if result is _HAND_OFF:
            self._handed_off += 1
            try:
                result = await self._run(_write, checks, mutations, purge, self._thread_reserved)
            finally:
                self._handed_off -= 1
        if result is not None:
            self._commits += 1
            if self.on_commit is not None:
                self.on_commit(checks, mutations, result)  # type: ignore[arg-type]
            if self._changed is not None:
                self._changed.set()
                self._changed = None
        return result  # type: ignore[return-value]

    def _write_on_loop(self, checks: Sequence[Check], mutations: Sequence[Mutation], purge: bool) -> object:
        """The commit on the loop's connection, or _HAND_OFF: the file is locked, or an earlier commit waits on the
        thread (this one must not overtake it)."""
        assert self._loop_conn is not None
        if self._handed_off:
            return _HAND_OFF
        try:
            result = _write(self._loop_conn, checks, mutations, purge, self._loop_reserved)
        except MutationTypeError:
            raise
        except sqlite3.Error as exc:
            if _busy(exc):
                return _HAND_OFF
            raise BackendError(f"SQLite error on {self.path!r}: {exc}") from exc
        if result is not None:
            self._loop_commits += 1
            if self._loop_commits >= CHECKPOINT_EVERY:
                self._loop_commits = 0
                self._checkpoint()
        return result

    def _checkpoint(self) -> None:
        """Ask the thread for a passive checkpoint, unless one is under way. One asked for CHECKPOINT_EVERY commits
        ago and not yet begun means the caller has not let the loop run since (a loop of commits that never waits,
        such as adding jobs one after the other): the thread would never get it and the WAL would grow without
        bound, so the loop's connection checkpoints now, on the caller's time."""
        if self._checkpointing is None:
            self._checkpointing = asyncio.ensure_future(self._checkpoint_on_thread())
            self._checkpointing.add_done_callback(self._checkpointed)
        elif not self._checkpoint_began:
            assert self._loop_conn is not None
            with contextlib.suppress(sqlite3.Error):  # busy with another connection's checkpoint: the next one
                _checkpoint(self._loop_conn)

    async def _checkpoint_on_thread(self) -> None:
        self._checkpoint_began = True
        await self._run(_checkpoint)

    def _checkpointed(self, done: asyncio.Future[Any]) -> None:
        self._checkpointing = None
        self._checkpoint_began = False
        if not done.cancelled():
            done.exception()  # a checkpoint that failed (the file busy with another's) is retried with the next one

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
        if self._loop_conn is not None:
            self._loop_conn.close()  # first: the thread's connection, closed last, checkpoints the WAL there
        if self._checkpointing is not None:
            with contextlib.suppress(Exception):
                await self._checkpointing
        await self._conn.close()


#: What _write_on_loop returns for a commit that must run on the thread instead.
_HAND_OFF: Final = object()


def _checkpoint(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


def _busy(exc: sqlite3.Error) -> bool:
    """SQLITE_BUSY and its extended codes (another connection holds the lock, or is recovering the WAL)."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


def _loop_connection(path: str) -> sqlite3.Connection | None:
    """The connection for the caller's thread, or None when the file is not in WAL mode (a commit would then sync,
    and readers would wait on writers)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
    try:
        for pragma in _LOOP_PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
        _functions(conn)
    except sqlite3.Error:
        conn.close()
        return None
    if str(mode).lower() != "wal":
        conn.close()
        return None
    return conn


def _data_version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return int(version)


async def open_sqlite(rest: str, *, on_loop: bool = True) -> SqliteKv:
    return await SqliteKv.open(rest or ":memory:", on_loop=on_loop)


def engine_version() -> str:
    """The SQLite library's version (the one Python's sqlite3, and so aiosqlite, runs on)."""
    return f"SQLite {sqlite3.sqlite_version}"
