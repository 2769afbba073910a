"""The single-hop SQL floor: the SQLite backend's own statements on a bare connection, one hop per call.

An independent minimal SQLite program, the least the backend's design (one hop to a database thread per round trip)
can cost: the standard library's ``sqlite3`` on one thread of its own, fed through a ``SimpleQueue``, each result
handed back with ``call_soon_threadsafe`` (the hop aiosqlite makes, written out so that nothing reaches into
aiosqlite's or the backend's internals). It runs the statements the backend publishes (``STATEMENTS``), with no
key/value encoding, validation or entry objects. A read is one statement; get_many is one ``IN (...)`` statement,
as the backend's; a write is ``BEGIN IMMEDIATE``, the versionstamp bump, the upserts and ``COMMIT`` in one hop,
without the backend's expiry purge.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from queue_impls.kv.backends.sqlite import STATEMENTS

Row = tuple[Any, ...]
#: (encoded key, encoded value, value encoding) of one upsert.
WriteRow = tuple[bytes, bytes, int]
_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]] | None


def now_ms() -> int:
    return int(time.time() * 1000)


def _get(conn: sqlite3.Connection, key: bytes) -> list[Row]:
    return conn.execute(STATEMENTS.get, (key, now_ms())).fetchall()


def _get_many(conn: sqlite3.Connection, sql: str, keys: Sequence[bytes]) -> list[Row]:
    return conn.execute(sql, (*keys, now_ms())).fetchall()


def _list(conn: sqlite3.Connection, start: bytes, end: bytes, limit: int) -> list[Row]:
    return conn.execute(STATEMENTS.list_forward, (start, end, now_ms(), limit)).fetchall()


def _write(conn: sqlite3.Connection, rows: Sequence[WriteRow]) -> bytes:
    conn.execute("BEGIN IMMEDIATE")
    try:
        (counter,) = conn.execute(STATEMENTS.bump_version).fetchone()
        stamp: bytes = counter.to_bytes(8, "big") + b"\x00\x00"
        for key, payload, encoding in rows:
            conn.execute(STATEMENTS.upsert, (key, payload, encoding, stamp, None))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stamp


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


def _serve(path: Path, calls: SimpleQueue[_Call], ready: threading.Event) -> None:
    try:
        conn = sqlite3.connect(path, isolation_level=None)
        for pragma in (*STATEMENTS.pragmas, *STATEMENTS.file_pragmas):
            conn.execute(f"PRAGMA {pragma}")
    finally:
        ready.set()  # the opener sees a thread that died here as not alive
    try:
        while (call := calls.get()) is not None:
            fn, args, future = call
            try:
                result, error = fn(conn, *args), None
            except BaseException as exc:  # handed to the caller, as aiosqlite does
                result, error = None, exc
            future.get_loop().call_soon_threadsafe(_settle, future, result, error)
    finally:
        conn.close()


class SqliteFloor:
    """A database file the SQLite backend created, on its own thread: each method is one hop and one future."""

    def __init__(self, path: Path) -> None:
        self._calls: SimpleQueue[_Call] = SimpleQueue()
        ready = threading.Event()
        self._thread = threading.Thread(target=_serve, args=(path, self._calls, ready), daemon=True)
        self._thread.start()
        ready.wait(30)
        if not self._thread.is_alive():
            raise RuntimeError(f"the floor's SQLite thread could not open {path}")

    def _hop(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._calls.put((fn, args, future))
        return future

    def get(self, key: bytes) -> asyncio.Future[list[Row]]:
        """(v, enc, vs) of ``key`` if it is live."""
        return self._hop(_get, key)

    def get_many(self, keys: Sequence[bytes]) -> asyncio.Future[list[Row]]:
        """(k, v, enc, vs) of the live ones of ``keys``."""
        return self._hop(_get_many, STATEMENTS.get_many(len(keys)), keys)

    def list(self, start: bytes, end: bytes, limit: int) -> asyncio.Future[list[Row]]:
        """(k, v, enc, vs) of the first ``limit`` live keys in [start, end)."""
        return self._hop(_list, start, end, limit)

    def write(self, rows: Sequence[WriteRow]) -> asyncio.Future[bytes]:
        """Upsert ``rows`` in one commit under a new versionstamp (returned)."""
        return self._hop(_write, rows)

    async def close(self) -> None:
        self._calls.put(None)
        await asyncio.to_thread(self._thread.join, 30)


@contextlib.asynccontextmanager
async def open_floor(path: Path) -> AsyncIterator[SqliteFloor]:
    """The floor on ``path`` (a file the SQLite backend created and seeded), closed on exit."""
    floor = SqliteFloor(path)
    try:
        yield floor
    finally:
        await floor.close()
