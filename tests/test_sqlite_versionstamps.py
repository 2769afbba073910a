"""SQLite versionstamps reserved in blocks: strictly rising in commit order across connections, processes, failed
commits, kills and an old file, with no page written for them in the commits between two reservations."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_impls.kv import KvU64, MutationTypeError
from queue_impls.kv.backends import sqlite as sqlite_backend
from tests.backends import sqlite_store as store


@contextlib.contextmanager
def block_of(size: int) -> Iterator[None]:
    """Reservations of ``size`` versionstamps, so that a test sees several of them."""
    real = sqlite_backend.VERSION_BLOCK
    sqlite_backend.VERSION_BLOCK = size  # type: ignore[misc]
    try:
        yield
    finally:
        sqlite_backend.VERSION_BLOCK = real  # type: ignore[misc]


def mark(path: Path) -> int:
    """The file's high-water mark: no versionstamp issued is above it."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (value,) = conn.execute("SELECT value FROM kv_meta WHERE name = 'version'").fetchone()
    return int(value)


def counter(versionstamp: str | None) -> int:
    assert versionstamp is not None
    return int(versionstamp, 16) >> 16


def wal_frames(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    return (os.path.getsize(f"{path}-wal") - 32) // (page_size + 24)


async def test_a_commit_writes_its_rows_pages_and_one_more_only_when_it_reserves(tmp_path: Path) -> None:
    """A one-key set into a one-page table is one WAL frame; with blocks of 4, one commit in 4 writes the mark too."""
    path = tmp_path / "kv.db"
    with block_of(4):
        async with store(path) as kv:
            await kv.set(("warm",), 0)  # reserves 1..4
            before = wal_frames(path)
            stamps = [(await kv.set(("k", i % 3), i)).versionstamp for i in range(12)]
            assert wal_frames(path) - before == 12 + 3  # 5..8, 9..12 and 13..16 reserved on the way
            assert [counter(s) for s in stamps] == list(range(2, 14))  # one connection alone: no gap
            assert mark(path) == 16


async def test_a_commit_after_another_connections_is_above_everything_it_reserved(tmp_path: Path) -> None:
    """Two stores (each with its loop's connection) and one on its thread take turns: each sees the others' commits
    (PRAGMA data_version) and reserves above the mark instead of going on with its own block."""
    path = tmp_path / "kv.db"
    async with store(path) as a, store(path) as b, store(path, on_loop=False) as c:
        order = (a, a, b, a, c, c, b, b, a, c, a, a, a)
        stamps = [(await kv.set(("k",), i)).versionstamp for i, kv in enumerate(order)]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert counter(stamps[1]) == counter(stamps[0]) + 1  # a went on with its block
        assert counter(stamps[-1]) <= mark(path)


async def test_a_rolled_back_commit_drops_the_reservation_it_made(tmp_path: Path) -> None:
    """The first commit reserves and fails: its reservation was rolled back with it, so the store's next commit must
    reserve again, or another connection (reading the old mark) would issue a lower versionstamp after it."""
    path = tmp_path / "kv.db"
    async with store(path) as a, store(path) as b:
        await a.set(("s",), "text")
        await b.set(("t",), "text")  # a's next commit reserves: the one that fails
        with pytest.raises(MutationTypeError):
            await a.atomic().set(("x",), 1).sum(("s",), KvU64(1)).commit()
        stamps = [(await a.set(("y",), 1)).versionstamp, (await b.set(("z",), 1)).versionstamp]
        failed = a.atomic().check(("y",), None).set(("w",), 1)  # a check that fails takes no versionstamp
        assert not (await failed.commit()).ok
        stamps.append((await a.set(("y",), 2)).versionstamp)
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert counter(stamps[-1]) <= mark(path)


async def test_a_file_from_the_one_counter_per_commit_scheme_goes_on_above_its_counter(tmp_path: Path) -> None:
    """A file whose counter is the last versionstamp issued (as the store wrote it before reservations) is a valid
    mark: the next commit is above it."""
    path = tmp_path / "old.db"
    async with store(path) as kv:
        await kv.set(("old",), "x")
    last = (41).to_bytes(8, "big") + b"\x00\x00"
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute("UPDATE kv_meta SET value = 41 WHERE name = 'version'")
        conn.execute("UPDATE kv SET vs = ?", (last,))
    async with store(path) as kv:
        assert (await kv.get(("old",))).versionstamp == last.hex()
        assert counter((await kv.set(("new",), 1)).versionstamp) == 42
        assert mark(path) == 41 + sqlite_backend.VERSION_BLOCK


async def test_an_in_memory_store_reserves_too() -> None:
    with block_of(2):
        async with store(":memory:") as kv:
            stamps = [(await kv.set(("k",), i)).versionstamp for i in range(5)]
            assert [counter(s) for s in stamps] == [1, 2, 3, 4, 5]
            (value,) = await kv._run(lambda conn: conn.execute("SELECT value FROM kv_meta").fetchone())
            assert value == 6


def _append_forever(path: str) -> None:
    """Commit ("log", n) at n = the next free place, one place per commit (checked), until killed."""

    async def run() -> None:
        async with store(path) as kv:
            while True:
                head = await kv.get(("head",))
                n = 0 if head.value is None else head.value + 1
                await (
                    kv.atomic()
                    .check(("head",), head.versionstamp)
                    .set(("head",), n)
                    .set(("log", n), os.getpid())
                    .commit()
                )

    asyncio.run(run())


@pytest.mark.slow
def test_processes_killed_mid_run_leave_versionstamps_rising_in_commit_order(tmp_path: Path) -> None:
    """Two processes append to one log, each place taken by one commit in the order of the places; both are killed
    with SIGKILL while committing, and this process goes on after them: the versionstamps rise along the log."""
    path = tmp_path / "kv.db"
    asyncio.run(_append(path, 0))  # the file exists before they open it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_forever, args=(str(path),)) for _ in range(2)]
    for proc in procs:
        proc.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and asyncio.run(_pids(path)) < 2:
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        for proc in procs:
            proc.kill()
            proc.join()
    assert asyncio.run(_pids(path)) == 2, "both processes committed"
    asyncio.run(_append(path, 20))
    log = asyncio.run(_log(path))
    assert [n for n, _ in log] == list(range(len(log))) and len(log) > 40
    stamps = [stamp for _, stamp in log]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert counter(stamps[-1]) <= mark(path)


async def _append(path: Path, commits: int) -> None:
    async with store(path) as kv:
        for _ in range(commits + 1):
            head = await kv.get(("head",))
            n = 0 if head.value is None else head.value + 1
            op = kv.atomic().check(("head",), head.versionstamp).set(("head",), n).set(("log", n), os.getpid())
            assert (await op.commit()).ok


async def _pids(path: Path) -> int:
    async with store(path) as kv:
        return len({e.value async for e in kv.list(prefix=("log",))} - {os.getpid()})


async def _log(path: Path) -> list[tuple[int, str]]:
    async with store(path) as kv:
        return [(e.key[1], e.versionstamp) async for e in kv.list(prefix=("log",))]  # type: ignore[misc]
