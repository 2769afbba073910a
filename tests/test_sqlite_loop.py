"""The SQLite store on the event loop's thread: a locked file never blocks the loop, and the hand-off keeps order."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from queue_impls.kv import BackendError, KvU64, MutationTypeError, open_kv
from queue_impls.kv.backends import sqlite as sqlite_backend
from queue_impls.kv.backends.sqlite import PURGE_EVERY, SqliteKv
from queue_impls.kv.codec import encode_key
from queue_impls.meter import CountingKv
from tests.backends import sqlite_store as store


@contextlib.contextmanager
def write_lock(path: Path) -> Iterator[sqlite3.Connection]:
    """Another connection (as another process would) holding the file's write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        other.execute("COMMIT")
        other.close()


async def ticks_while(awaitable: asyncio.Future[object], seconds: float) -> int:
    """How many 10 ms sleeps the loop completes in ``seconds`` while ``awaitable`` is pending (it must stay so)."""
    ticks, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        await asyncio.sleep(0.01)
        ticks += 1
    assert not awaitable.done(), "the commit went through while another connection held the write lock"
    return ticks


@contextlib.contextmanager
def loop_writes(kv: SqliteKv, *, busy: bool = False, error: str | None = None) -> Iterator[list[bool]]:
    """Record, per commit, whether it ran on the loop's connection; with ``busy``, the loop's connection finds the file
    locked every time (SQLITE_BUSY, as when another process writes), with ``error`` it fails with that message."""
    calls: list[bool] = []
    real = sqlite_backend._write

    def spy(conn: sqlite3.Connection, *args: object) -> object:
        on_loop = conn is kv._loop_conn
        calls.append(on_loop)
        if on_loop and (busy or error):
            exc = sqlite3.OperationalError(error or "database is locked")
            exc.sqlite_errorcode = sqlite3.SQLITE_BUSY if busy else sqlite3.SQLITE_IOERR  # type: ignore[attr-defined]
            raise exc
        return real(conn, *args)  # type: ignore[arg-type]

    sqlite_backend._write = spy  # type: ignore[assignment]
    try:
        yield calls
    finally:
        sqlite_backend._write = real


async def test_a_database_file_commits_on_the_loop_and_the_capability_says_so(tmp_path: Path) -> None:
    async with store(tmp_path / "kv.db") as kv:
        assert kv.commits_on_loop() and kv.read_on_loop()
        assert CountingKv(kv, owns_inner=False).commits_on_loop()
        with loop_writes(kv) as calls:
            await kv.set(("a",), 1)
        assert calls == [True]
    async with store(tmp_path / "thread.db", on_loop=False) as kv:
        assert not kv.commits_on_loop()
        with loop_writes(kv) as calls:
            await kv.set(("a",), 1)
        assert calls == [False]
    memory = await open_kv("sqlite::memory:")
    try:
        assert not memory.commits_on_loop()  # another connection would be another database
    finally:
        await memory.close()


async def test_an_error_other_than_busy_on_the_loop_is_raised_not_retried(tmp_path: Path) -> None:
    from queue_impls.kv import BackendError

    async with store(tmp_path / "kv.db") as kv:
        with loop_writes(kv, error="disk I/O error") as calls, pytest.raises(BackendError, match="disk I/O error"):
            await kv.set(("a",), 1)
        assert calls == [True]
        assert (await kv.get(("a",))).value is None


async def test_a_locked_file_does_not_block_the_loop_and_later_commits_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    async with store(path) as kv:
        first = await kv.set(("n",), 0)
        with write_lock(path):
            one = asyncio.ensure_future(kv.set(("n",), 1))
            await asyncio.sleep(0)  # its loop attempt found the file busy: it now waits on the thread
            two = asyncio.ensure_future(kv.atomic().check(("n",), None).set(("m",), 2).commit())
            three = asyncio.ensure_future(kv.set(("n",), 3))
            await asyncio.sleep(0)
            assert kv._handed_off == 3  # the two after it did not try the loop: they queue behind it
            assert await ticks_while(one, 0.3) >= 10  # the loop ran on
            # reads are not blocked by a writer in WAL, and see only what is committed
            assert (await kv.get(("n",))).versionstamp == first.versionstamp
        results = [await one, await two, await three]
        assert results[0].ok and not results[1].ok and results[2].ok  # the check ran after the first commit
        assert results[0].versionstamp < results[2].versionstamp
        assert kv._handed_off == 0
        entry = await kv.get(("n",))
        assert (entry.value, entry.versionstamp) == (3, results[2].versionstamp)
        # with nothing handed off, the next commit is the loop's again
        fourth = await kv.set(("n",), 4)
        assert fourth.versionstamp > results[2].versionstamp


async def test_a_commit_the_loop_cannot_make_is_made_on_the_thread_with_the_same_results(tmp_path: Path) -> None:
    """The same commits on a file the loop always finds locked (every one handed to the thread) and on one it never
    does give the same check outcomes and the same entries."""
    outcomes = []
    for busy in (False, True):
        async with store(tmp_path / f"busy-{busy}.db") as kv:
            with loop_writes(kv, busy=busy) as calls:
                a = await kv.set(("a",), 1)
                b = await kv.atomic().check(("a",), a.versionstamp).set(("b",), "x").sum(("c",), KvU64(5)).commit()
                c = await kv.atomic().check(("a",), None).set(("b",), "y").commit()
                d = await kv.atomic().delete(("a",)).max(("c",), KvU64(9)).commit()
                with pytest.raises(MutationTypeError):
                    await kv.atomic().sum(("b",), KvU64(1)).commit()
            # a busy commit is tried on the loop, then made on the thread
            assert calls == ([True, False] * 5 if busy else [True] * 5)
            entries = [(e.key, e.value) async for e in kv.list(prefix=())]
            outcomes.append(([r.ok for r in (a, b, c, d)], entries))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0] == ([True, True, False, True], [(("b",), "x"), (("c",), KvU64(9))])


@pytest.mark.parametrize("on_loop", [True, False])
async def test_on_commit_is_handed_each_commit_that_wrote_and_only_those(tmp_path: Path, on_loop: bool) -> None:
    seen: list[tuple[list[bytes | None], list[tuple[str, bytes]], str]] = []
    async with store(tmp_path / "kv.db", on_loop=on_loop) as kv:
        await kv.set(("before",), 0)  # no hook yet
        kv.on_commit = lambda checks, mutations, stamp: seen.append(
            (
                [c.versionstamp and bytes.fromhex(c.versionstamp) for c in checks],
                [(m.kind, m.key) for m in mutations],
                stamp,
            )
        )
        a = await kv.set(("a",), 1)
        failed = await kv.atomic().check(("a",), None).set(("b",), 2).commit()
        b = await kv.atomic().check(("a",), a.versionstamp).delete(("a",)).sum(("c",), KvU64(1)).commit()
        with pytest.raises(MutationTypeError):
            await kv.atomic().sum(("before",), KvU64(1)).commit()
    assert not failed.ok and a.versionstamp and b.versionstamp
    key_a, key_c = encode_key(("a",)), encode_key(("c",))
    assert seen == [
        ([], [("set", key_a)], a.versionstamp),
        ([bytes.fromhex(a.versionstamp)], [("delete", key_a), ("sum", key_c)], b.versionstamp),
    ]


async def test_the_thread_checkpoints_the_wal_the_loop_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's connection leaves checkpoints (a checkpoint syncs) to the thread: every CHECKPOINT_EVERY commits
    it asks for one, so the WAL's pages reach the database file."""
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "kv.db"
    async with store(path) as kv:
        before = path.stat().st_size
        for i in range(45):
            await kv.set(("k", i), "v" * 2000)
        while kv._checkpointing is not None:
            await asyncio.sleep(0.01)
        assert path.stat().st_size >= before + 20 * 2000  # the first 20 entries at least are in the file itself


async def test_commits_that_never_let_the_loop_run_still_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Commits on the loop's connection complete without letting the event loop run, so a caller committing in a
    loop that never waits (adding jobs one after the other) never lets the thread's checkpoint begin: once the
    next one is due, the loop's connection checkpoints itself, and the WAL stays about two intervals long."""
    monkeypatch.setattr(sqlite_backend, "CHECKPOINT_EVERY", 20)
    path = tmp_path / "kv.db"
    async with store(path) as kv:
        for i in range(200):
            await kv.set(("k", i), "v" * 2000)
        frames = (Path(f"{path}-wal").stat().st_size - 32) // (4096 + 24)
        assert frames < 300  # 162 here: 40 commits' pages at most (854 when only the thread checkpointed)
        assert path.stat().st_size >= 150 * 2000  # the entries reached the database file as they went
        assert kv._checkpointing is not None and not kv._checkpoint_began  # the loop never ran the thread's


async def test_several_checks_read_in_one_statement_hold_only_if_each_holds(tmp_path: Path) -> None:
    async with store(tmp_path / "kv.db") as kv:
        a = await kv.set(("a",), 1)
        b = await kv.set(("b",), 2)
        ok = await kv.atomic().check(("a",), a.versionstamp).check(("b",), b.versionstamp).check(("c",), None).commit()
        assert ok.ok
        same_twice = kv.atomic().check(("a",), a.versionstamp).check(("a",), a.versionstamp).set(("d",), 0)
        assert (await same_twice.commit()).ok
        stale = await kv.atomic().check(("a",), a.versionstamp).check(("a",), None).set(("e",), 0).commit()
        assert not stale.ok  # one key asked twice, once wrongly
        gone = await kv.atomic().check(("b",), b.versionstamp).check(("d",), None).set(("e",), 0).commit()
        assert not gone.ok and (await kv.get(("e",))).value is None


async def test_runs_of_sets_and_deletes_apply_in_the_order_written(tmp_path: Path) -> None:
    async with store(tmp_path / "kv.db") as kv:
        op = kv.atomic().set(("k", 1), "a").set(("k", 2), "b").set(("k", 1), "c").delete(("k", 2)).delete(("k", 3))
        op = op.set(("k", 3), "d").sum(("n",), KvU64(2)).set(("k", 4), "e").set(("k", 4), "f").delete(("k", 4))
        done = await op.commit()
        entries = [(e.key, e.value, e.versionstamp) async for e in kv.list(prefix=())]
        assert entries == [
            (("k", 1), "c", done.versionstamp),
            (("k", 3), "d", done.versionstamp),
            (("n",), KvU64(2), done.versionstamp),
        ]


async def test_expired_entries_are_purged_once_every_purge_every_commits_and_never_read(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"

    def rows() -> int:
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return int(conn.execute("SELECT count(*) FROM kv").fetchone()[0])

    async with store(path) as kv:
        await kv.set(("first",), 0)  # commit 0 purges (nothing yet)
        await kv.set(("short",), 1, expire_in=1)  # commit 1
        await asyncio.sleep(0.01)
        for i in range(PURGE_EVERY - 3):  # commits 2 .. PURGE_EVERY - 2: none purges
            await kv.set(("later",), i)
        assert rows() == 3
        assert (await kv.get(("short",))).value is None
        assert [e.key async for e in kv.list(prefix=())] == [("first",), ("later",)]
        assert (await kv.atomic().check(("short",), None).commit()).ok  # commit PURGE_EVERY - 1: no purge
        assert rows() == 3
        await kv.set(("last",), 3)  # commit PURGE_EVERY purges
        assert rows() == 3  # "short" went, "last" came


async def test_a_run_of_sum_min_max_reads_once_and_applies_in_order(tmp_path: Path) -> None:
    async with store(tmp_path / "kv.db") as kv:
        await kv.atomic().set(("n", 1), KvU64(10)).set(("s",), "text").set(("gone",), KvU64(7), expire_in=1).commit()
        await asyncio.sleep(0.01)
        op = kv.atomic().sum(("n", 1), KvU64(5)).max(("n", 2), KvU64(3)).min(("n", 1), KvU64(12)).sum(("n", 2), 1)
        await op.sum(("gone",), KvU64(1)).sum(("n", 1), KvU64(2**64 - 1)).commit()
        values = {e.key: e.value async for e in kv.list(prefix=())}
        assert values == {("n", 1): KvU64(11), ("n", 2): KvU64(4), ("s",): "text", ("gone",): KvU64(1)}
        with pytest.raises(MutationTypeError):  # a non-U64 value in the run: nothing of the commit is written
            await kv.atomic().sum(("n", 1), KvU64(1)).sum(("s",), KvU64(1)).set(("new",), 0).commit()
        assert (await kv.get(("n", 1))).value == KvU64(11) and (await kv.get(("new",))).value is None


async def test_the_loop_and_the_thread_of_one_store_each_see_the_others_commits(tmp_path: Path) -> None:
    """A commit handed to the thread (the loop found the file busy) and the loop's next one: each connection's
    reservation ends with the other's commit."""
    async with store(tmp_path / "kv.db") as kv:
        stamps, where = [], []
        for busy in (False, True, False, True, True, False, False):
            with loop_writes(kv, busy=busy) as calls:
                stamps.append((await kv.set(("k",), len(stamps))).versionstamp)
            where.append(calls[-1])
        assert where == [True, False, True, False, False, True, True]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


@pytest.mark.parametrize("on_loop", [True, False], ids=["loop", "thread"])
async def test_a_full_database_says_so_and_keeps_what_was_committed(tmp_path: Path, on_loop: bool) -> None:
    """SQLite rolls a transaction back itself when the file is full: the error is the full file, not a failed
    ROLLBACK, and what was committed before is still read."""
    async with store(tmp_path / "small.db", on_loop=on_loop) as kv:
        await kv.set(("kept",), "x")
        for conn in (kv._loop_conn, kv._conn._conn):
            if conn is not None:
                (pages,) = conn.execute("PRAGMA page_count").fetchone()
                conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(BackendError, match="database or disk is full"):
            for i in range(100):
                await kv.set(("big", i), "y" * 3000)
        assert (await kv.get(("kept",))).value == "x"
