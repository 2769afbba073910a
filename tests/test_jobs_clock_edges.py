"""A clock that is not on a whole millisecond: jobs due now must be claimable now, never early later."""

from __future__ import annotations

import random

import pytest

from queue_impls.jobs import LAYOUTS, FakeClock, JobStatus, Queue
from queue_impls.kv import Kv

from .jobs_support import kv_factory  # noqa: F401  (fixture: one store of each kind)

every_layout = pytest.mark.parametrize("layout", LAYOUTS)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0004)  # 0.4 ms past a millisecond boundary


@every_layout
async def test_a_job_without_delay_is_claimable_at_once(kv: Kv, layout: str, clock: FakeClock) -> None:
    queue = Queue(kv, layout, clock, rng=random.Random(1))
    job_id = await queue.add("email", {"to": "a"})
    leases = await queue.claim("w1")
    assert [lease.job.id for lease in leases] == [job_id]
    job = await queue.get_job(job_id)
    assert job is not None and job.status == JobStatus.RUNNING


@every_layout
async def test_a_delayed_job_is_never_claimed_early(kv: Kv, layout: str, clock: FakeClock) -> None:
    queue = Queue(kv, layout, clock, rng=random.Random(1))
    job_id = await queue.add("email", {"to": "a"}, delay=0.0105)
    await clock.advance(0.0100)  # 0.5 ms before it is due
    assert await queue.promote_due() == 0
    assert await queue.claim("w1") == []
    await clock.advance(0.0010)
    assert await queue.promote_due() == 1
    assert [lease.job.id for lease in await queue.claim("w1")] == [job_id]
