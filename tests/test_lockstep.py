"""The database thread in lockstep with the loop (bench/run/lockstep.py): a request returns only once its result has
been handed back to the loop, every request is acknowledged once, and closing a store does not wait for a thread
that has stopped."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiosqlite
import pytest

from bench.run.lockstep import HandOffs, LockstepQueue, install
from queue_impls.kv import open_kv
from queue_impls.kv.backends.sqlite import SqliteKv


@pytest.fixture
def handoffs(monkeypatch: pytest.MonkeyPatch) -> HandOffs:
    # install() patches aiosqlite's connection class for the whole process: undone after the test.
    monkeypatch.setattr(aiosqlite.Connection, "__init__", aiosqlite.Connection.__init__)
    counter = HandOffs()
    install(counter)
    return counter


def _slow_answer() -> int:
    time.sleep(0.05)  # longer than the loop's pass below: without lockstep the result is not back yet
    return 42


async def test_a_request_returns_after_its_result_is_handed_back(handoffs: HandOffs, tmp_path: Path) -> None:
    # on_loop=False: every call goes to aiosqlite's thread (a file store otherwise reads and commits on the loop)
    kv = await open_kv(f"sqlite:{tmp_path}/kv.db", on_loop=False)
    assert isinstance(kv, SqliteKv)
    queue = kv._conn._tx
    assert isinstance(queue, LockstepQueue) and handoffs.live() is queue
    before = handoffs.acknowledgements
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    queue.put_nowait((future, _slow_answer))
    await asyncio.sleep(0)  # one pass of the loop: the result's callback was queued before it
    assert future.done() and future.result() == 42
    assert handoffs.acknowledgements == before + 1
    await kv.set(["k"], 1)
    assert (await kv.get(["k"])).value == 1
    assert handoffs.acknowledgements == before + 3
    await asyncio.wait_for(kv.close(), 10)  # the stop request is not acknowledged: the thread ends after it
    assert handoffs.live() is None


async def test_without_lockstep_the_result_comes_later(tmp_path: Path) -> None:
    # The control for the test above: aiosqlite on its own hands the slow result back after the loop's pass.
    kv = await open_kv(f"sqlite:{tmp_path}/kv.db")
    assert isinstance(kv, SqliteKv)
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    kv._conn._tx.put_nowait((future, _slow_answer))
    await asyncio.sleep(0)
    assert not future.done()
    assert await future == 42
    await kv.close()


async def test_a_second_install_counts_in_its_own_counter(handoffs: HandOffs, tmp_path: Path) -> None:
    second = HandOffs()
    install(second)
    kv = await open_kv(f"sqlite:{tmp_path}/kv.db", on_loop=False)
    await kv.set(["k"], 1)
    assert handoffs.acknowledgements == 0 and second.acknowledgements == 3  # connect, setup, the write
    queue = second.live()
    assert queue is not None and not isinstance(queue._queue, LockstepQueue)  # wrapped once, not twice
    await kv.close()
