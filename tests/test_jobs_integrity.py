# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""check_integrity finds deliberately corrupted state, in every layout, and nothing in a healthy queue."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from queue_impls.jobs import FakeClock, Queue, check_integrity
from queue_impls.jobs.keys import count_key, dead_key, lease_key, ready_key, record_key
from queue_impls.kv import KvU64

from .backends import KvFactory, backend_params
from .jobs_support import clock, layout, queue  # noqa: F401


@pytest.fixture(params=[p for p in backend_params() if p.id in ("memory", "sqlite")])
def kv_factory(request: pytest.FixtureRequest) -> KvFactory:
    """check_integrity reads through the public KV API only: two stores are enough here."""
    factory: KvFactory = request.param
    return factory


async def populated(q: Queue) -> dict[str, str]:
    """One job in each status, plus a delayed one."""
    ids = {
        "completed": await q.add("a", 1),
        "failed": await q.add("a", 2, max_attempts=1),
        "running": await q.add("b", 3),
        "pending": await q.add("b", 4),
        "delayed": await q.add("a", 5, delay=60),
    }
    for outcome in ("completed", "failed"):
        [lease] = await q.claim("w", ["a"])
        await (q.complete(lease) if outcome == "completed" else q.fail(lease, "x"))
    await q.claim("w", ["b"])
    return ids


async def kinds(q: Queue, clock: FakeClock) -> list[str]:
    return sorted(p.kind for p in await check_integrity(q.kv, q.layout.name, now=clock.now()))


async def test_a_healthy_queue_has_no_problems(queue: Queue, clock: FakeClock) -> None:
    await populated(queue)
    assert await kinds(queue, clock) == []


Corruption = Callable[[Queue, dict[str, str]], Awaitable[None]]


async def _drop_record(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.delete(record_key(ids["pending"]))


async def _orphan_index(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.set(("jobs_by_name", "ghost", "0000"), "0000")


async def _stale_copy(q: Queue, ids: dict[str, str]) -> None:
    job = await q.get_job(ids["pending"])
    assert job is not None
    key = next(iter(q.layout.index_entries(job)))
    stale = job.replace(data="changed").to_value() if not isinstance(q.layout.index_entries(job)[key], str) else "x"
    await q.kv.set(key, stale)


async def _ghost_queue_entry(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.set(ready_key(0, "ghost"), "a")


async def _lost_dead_letter(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.delete(dead_key(ids["failed"]))


async def _lost_lease(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.delete(lease_key(ids["running"]))


async def _bad_counter(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.atomic().sum(count_key("pending"), KvU64(1)).commit()


async def _malformed_record(q: Queue, ids: dict[str, str]) -> None:
    await q.kv.set(record_key("junk"), {"not": "a job"})


CORRUPTIONS: list[tuple[Corruption, list[str]]] = [
    # (what is broken, the problems it must cause); a missing record also leaves its index and queue entries behind
    (_orphan_index, ["orphan_index"]),
    (_stale_copy, ["index_mismatch"]),
    (_ghost_queue_entry, ["orphan_queue_entry"]),
    (_lost_dead_letter, ["missing_queue_entry"]),
    (_bad_counter, ["count_mismatch"]),
    (_malformed_record, ["malformed_record"]),
]


@pytest.mark.parametrize(("corrupt", "expected"), CORRUPTIONS, ids=[c.__name__.strip("_") for c, _ in CORRUPTIONS])
async def test_each_corruption_is_found(
    queue: Queue, clock: FakeClock, corrupt: Corruption, expected: list[str]
) -> None:
    ids = await populated(queue)
    await corrupt(queue, ids)
    assert await kinds(queue, clock) == expected


async def test_a_missing_record_leaves_orphans_behind(queue: Queue, clock: FakeClock) -> None:
    ids = await populated(queue)
    await _drop_record(queue, ids)
    found = await kinds(queue, clock)
    assert "orphan_queue_entry" in found and "count_mismatch" in found
    assert "orphan_index" in found


async def test_a_running_job_without_its_lease_is_found(queue: Queue, clock: FakeClock) -> None:
    ids = await populated(queue)
    await _lost_lease(queue, ids)
    assert await kinds(queue, clock) == ["missing_queue_entry", "orphan_queue_entry"]  # and its expiry entry


async def test_expired_leases_are_reported_until_reaped(queue: Queue, clock: FakeClock) -> None:
    await populated(queue)
    await clock.advance(31.0)
    assert await kinds(queue, clock) == ["expired_lease"]
    assert await queue.reap_expired() == 1
    assert await kinds(queue, clock) == []
