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


CRASHING_PROGRAM = """
import asyncio, sys
from queue_impls.kv import open_kv

async def main():
    kv = await open_kv(sys.argv[1])
    await kv.set(("k",), 1)
    if sys.argv[2] == "crash":
        raise RuntimeError("boom")

asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["crash", "no-close"])
@pytest.mark.parametrize("where", ["memory", "file", pytest.param("deno", marks=pytest.mark.deno)])
def test_a_program_that_crashes_with_a_store_open_exits(tmp_path: Path, where: str, how: str) -> None:
    """Neither an exception nor a forgotten close() may leave a store's thread (aiosqlite's) or subprocess (deno)
    keeping the process alive."""
    import subprocess
    import sys

    url = {"memory": "sqlite::memory:", "file": f"sqlite:{tmp_path / 'kv.db'}", "deno": "deno::memory:"}[where]
    try:
        done = subprocess.run(
            [sys.executable, "-c", CRASHING_PROGRAM, url, how], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the program never exited ({url}, {how}): a non-daemon thread kept it alive")
    if how == "crash":
        assert done.returncode == 1 and "RuntimeError: boom" in done.stderr, done.stderr
    else:
        assert done.returncode == 0, done.stderr
    if where == "file":  # what was committed before the exit is there
        check = sqlite3.connect(tmp_path / "kv.db")
        assert check.execute("SELECT count(*) FROM kv").fetchone() == (1,)
        check.close()


async def test_an_open_that_fails_leaves_no_connection_thread(tmp_path: Path) -> None:
    """The worker thread is stopped before open() raises, while the event loop it answers on still runs."""
    from queue_impls.kv import BackendError, open_kv

    before = set(threading.enumerate())
    with pytest.raises(BackendError, match="Cannot open SQLite database"):
        await open_kv(f"sqlite:{tmp_path / 'missing-dir' / 'kv.db'}")
    assert [t for t in threading.enumerate() if t not in before and t.is_alive()] == []


async def test_reads_on_the_loop_see_every_commit_and_keep_snapshots(tmp_path: Path) -> None:
    """``read_on_loop`` (what the KV Connect server turns on): a second connection, on the calling thread, that reads
    what the writer thread committed, and several ranges in one snapshot."""
    from queue_impls.kv import open_kv

    memory = await open_kv("sqlite::memory:")
    try:
        assert isinstance(memory, SqliteKv) and memory.read_on_loop() is False  # another connection: another database
    finally:
        await memory.close()
    kv = await open_kv(f"sqlite:{tmp_path / 'kv.db'}", on_loop=False)  # commits on the thread: a reader of its own
    try:
        assert isinstance(kv, SqliteKv) and not kv.commits_on_loop()
        await kv.set(("a",), 1)
        assert kv.read_on_loop() is True and kv.read_on_loop() is True
        assert (await kv.get(("a",))).value == 1
        written = await kv.set(("a",), 2)
        entry = await kv.get(("a",))
        assert (entry.value, entry.versionstamp) == (2, written.versionstamp)
        await kv.atomic().set(("b", 1), "x").set(("b", 2), "y").commit()
        many = await kv.get_many([("a",), ("b", 2)])
        assert [e.value for e in many] == [2, "y"]
        assert [e.value async for e in kv.list(prefix=("b",))] == ["x", "y"]
    finally:
        await kv.close()
    assert kv._reader is not None
    with pytest.raises(sqlite3.ProgrammingError):  # closed with the store
        kv._reader.execute("SELECT 1")
