"""Opening the SQLite store: an open that is cancelled part-way leaves no worker thread to keep the process alive."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from queue_impls.kv.backends import sqlite as sqlite_backend
from queue_impls.kv.backends.sqlite import SqliteKv


async def test_an_open_cancelled_during_setup_stops_its_connection_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started, release = threading.Event(), threading.Event()
    real_setup = sqlite_backend._setup

    def slow_setup(conn: sqlite3.Connection, in_memory: bool) -> None:
        started.set()
        release.wait(5)
        real_setup(conn, in_memory)

    monkeypatch.setattr(sqlite_backend, "_setup", slow_setup)
    before = set(threading.enumerate())
    opening = asyncio.create_task(SqliteKv.open(str(tmp_path / "kv.db")))
    while not started.is_set():  # the connection is made and its setup is running in the worker thread
        await asyncio.sleep(0.001)
    opening.cancel()  # as Ctrl-C does to qbench's main task
    with pytest.raises(asyncio.CancelledError):
        await opening
    release.set()
    workers = [t for t in threading.enumerate() if t not in before]
    assert workers, "the open should have started aiosqlite's worker thread"
    for worker in workers:
        worker.join(timeout=5)
    assert not [t for t in workers if t.is_alive()], "a non-daemon worker thread left running keeps the process alive"
