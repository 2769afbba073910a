"""The single-hop SQL floor: the SQLite backend's own statements on bare connections, one hop per call.

The least the backend's design (one hop to a database thread per round trip) can cost, with none of the backend's
code: no key/value encoding, validation or entry objects. It runs the statements the backend publishes
(``STATEMENTS``). A read is one statement through a bare aiosqlite connection's public ``execute_fetchall`` (one hop
to its thread, as the backend's reads take); get_many is one ``IN (...)`` statement, as the backend's. A write is
``BEGIN IMMEDIATE``, ``PRAGMA data_version`` (and a versionstamp reservation when the backend's scheme takes one), the
upserts and ``COMMIT``, which aiosqlite's public API cannot send in one hop: writes run on an independent minimal
program instead, the standard library's ``sqlite3`` on a thread of its own, fed through a ``SimpleQueue``, each
result handed back with ``call_soon_threadsafe`` (aiosqlite's hop written out, without its coroutine layers: a little
cheaper, so the write floor errs low). Neither reaches into aiosqlite's or the backend's internals. Writes leave out
the backend's expiry purge.
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
from typing import Any, cast

import aiosqlite

from queue_impls.kv.backends.sqlite import STATEMENTS, VERSION_BLOCK

Row = tuple[Any, ...]
#: (encoded key, encoded value, value encoding) of one upsert.
WriteRow = tuple[bytes, bytes, int]
_Call = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any]] | None


def now_ms() -> int:
    return int(time.time() * 1000)


def _write(conn: sqlite3.Connection, rows: Sequence[WriteRow], reserved: list[int]) -> bytes:
    """``reserved``: [data_version, next counter, last counter] of the versionstamps this connection reserved (the
    backend's scheme, ``VERSION_BLOCK`` at a time; data_version -1: none)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        (data_version,) = conn.execute(STATEMENTS.data_version).fetchone()
        counter = reserved[1]
        if data_version != reserved[0] or counter > reserved[2]:
            conn.execute(STATEMENTS.reserve_versions, (VERSION_BLOCK,))
            (mark,) = conn.execute(STATEMENTS.read_version).fetchone()
            counter = mark - VERSION_BLOCK + 1
            reserved[:] = [data_version, counter, mark]
        reserved[1] = counter + 1
        stamp: bytes = counter.to_bytes(8, "big") + b"\x00\x00"
        blob = bytearray(stamp)  # blobs bound as bytearray, as the backend binds them (STATEMENTS)
        for key, payload, encoding in rows:
            conn.execute(STATEMENTS.upsert_lasting, (bytearray(key), bytearray(payload), encoding, blob))
        conn.execute("COMMIT")
    except BaseException:
        reserved[0] = -1
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


class _Writer:
    """One sqlite3 connection on a thread of its own: each call is one hop there and one future back."""

    def __init__(self, path: Path) -> None:
        self._calls: SimpleQueue[_Call] = SimpleQueue()
        ready = threading.Event()
        self._thread = threading.Thread(target=_serve, args=(path, self._calls, ready), daemon=True)
        self._thread.start()
        ready.wait(30)
        if not self._thread.is_alive():
            raise RuntimeError(f"the floor's SQLite thread could not open {path}")

    def hop(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._calls.put((fn, args, future))
        return future

    async def close(self) -> None:
        self._calls.put(None)
        await asyncio.to_thread(self._thread.join, 30)


class SqliteFloor:
    """A database file the SQLite backend created: reads through a bare aiosqlite connection, writes on the writer."""

    def __init__(self, reads: aiosqlite.Connection, writer: _Writer) -> None:
        self._reads = reads
        self._writer = writer
        self._many: dict[int, str] = {}  # get_many's statement per key count, built once
        self._reserved = [-1, 1, 0]  # the writer connection's versionstamps (see _write), used on its thread only

    # execute_fetchall returns fetchall's list: cast, not copied, so a call costs what the bare connection's does
    async def get(self, key: bytes) -> list[Row]:
        """(v, enc, vs) of ``key`` if it is live."""
        return cast(list[Row], await self._reads.execute_fetchall(STATEMENTS.get, (bytearray(key), now_ms())))

    async def get_many(self, keys: Sequence[bytes]) -> list[Row]:
        """(k, v, enc, vs) of the live ones of ``keys``."""
        sql = self._many.get(len(keys)) or self._many.setdefault(len(keys), STATEMENTS.get_many(len(keys)))
        return cast(list[Row], await self._reads.execute_fetchall(sql, (*map(bytearray, keys), now_ms())))

    async def list(self, start: bytes, end: bytes, limit: int) -> list[Row]:
        """(k, v, enc, vs) of the first ``limit`` live keys in [start, end)."""
        params = (bytearray(start), bytearray(end), now_ms(), limit)
        return cast(list[Row], await self._reads.execute_fetchall(STATEMENTS.list_forward, params))

    def write(self, rows: Sequence[WriteRow]) -> asyncio.Future[bytes]:
        """Upsert ``rows`` in one commit under a new versionstamp (returned)."""
        return self._writer.hop(_write, rows, self._reserved)


@contextlib.asynccontextmanager
async def open_floor(path: Path) -> AsyncIterator[SqliteFloor]:
    """The floor on ``path`` (a file the SQLite backend created and seeded), closed on exit."""
    async with aiosqlite.connect(path, isolation_level=None) as reads:
        for pragma in (*STATEMENTS.pragmas, *STATEMENTS.file_pragmas):
            await reads.execute(f"PRAGMA {pragma}")
        writer = _Writer(path)
        try:
            yield SqliteFloor(reads, writer)
        finally:
            await writer.close()
