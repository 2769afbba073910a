"""Equivalence: the same random operations applied to every layout give the same listings, page for page."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_impls.jobs import LAYOUTS, Backoff, FakeClock, Job, JobQueueError, JobStatus, Queue, check_integrity
from queue_impls.kv import open_kv

NAMES = ("a", "b", "c")
STATUSES: tuple[JobStatus | None, ...] = (None, *JobStatus)
PAGES = ((1, 0), (2, 1), (3, 4), (50, 0))

_add = st.tuples(
    st.just("add"), st.sampled_from(NAMES), st.integers(0, 2), st.sampled_from([0.0, 0.0, 1.5]), st.integers(1, 2)
)
operations = st.lists(
    st.one_of(  # adds and failures weighted up, so that every status shows up in most examples
        _add,
        _add,
        st.tuples(st.just("claim_complete")),
        st.tuples(st.just("claim_fail")),
        st.tuples(st.just("claim_fail")),
        st.tuples(st.just("retry"), st.integers(0, 30)),
        st.tuples(st.just("delete"), st.integers(0, 30)),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 3.0])),
    ),
    min_size=4,
    max_size=30,
)


async def apply(q: Queue, clock: FakeClock, ops: list[tuple[Any, ...]]) -> tuple[list[str], list[str]]:
    """Run the operations; returns the ids in creation order and what each operation did."""
    ids: list[str] = []
    outcomes: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "add":
            ids.append(await q.add(op[1], {"n": len(ids)}, priority=op[2], delay=op[3], max_attempts=op[4]))
            outcomes.append("added")
        elif kind in ("claim_complete", "claim_fail"):
            await q.promote_due()
            leases = await q.claim("w")
            for lease in leases:
                await (q.complete(lease) if kind == "claim_complete" else q.fail(lease, "boom"))
            outcomes.append(f"{kind} {[ids.index(lease.job.id) for lease in leases]}")
        elif kind == "advance":
            await clock.advance(op[1])
            outcomes.append("advanced")
        elif ids:
            outcomes.append(await _retry_or_delete(q, kind, ids[op[1] % len(ids)]))
    return ids, outcomes


async def _retry_or_delete(q: Queue, kind: str, job_id: str) -> str:
    try:
        return f"{kind} {await (q.retry(job_id) if kind == 'retry' else q.delete(job_id))}"
    except JobQueueError as exc:
        return f"{kind} {type(exc).__name__}"


def normalise(jobs: list[Job], ids: list[str]) -> list[dict[str, Any]]:
    """Jobs as comparable dicts: the id replaced by the job's position in creation order."""
    return [{**job.to_value(), "id": ids.index(job.id)} for job in jobs]


async def listings(q: Queue, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status in STATUSES:
        for name in (None, *NAMES):
            for limit, offset in PAGES:
                jobs = await q.list_jobs(status=status, name=name, limit=limit, offset=offset)
                out[f"{status}/{name}/{limit}/{offset}"] = normalise(jobs, ids)
            out[f"{status}/{name}/pages"] = await _walk_pages(q, status, name, ids)
    out["dead"] = normalise(await q.list_dead_letters(), ids)
    out["stats"] = await q.stats()
    return out


async def _walk_pages(q: Queue, status: JobStatus | None, name: str | None, ids: list[str]) -> list[Any]:
    pages, cursor = [], None
    while True:
        page = await q.list_jobs_page(status=status, name=name, limit=2, cursor=cursor)
        pages.append(normalise(page.jobs, ids))
        if page.cursor is None:
            return pages
        cursor = page.cursor


async def run_layout(layout: str, ops: list[tuple[Any, ...]]) -> tuple[list[str], dict[str, Any]]:
    async with await open_kv("memory:") as kv:
        clock = FakeClock()
        q = Queue(kv, layout, clock, rng=random.Random(5), backoff=Backoff(base=1.0))
        ids, outcomes = await apply(q, clock, ops)
        assert await check_integrity(kv, layout, now=clock.now()) == []
        return outcomes, await listings(q, ids)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_every_layout_lists_the_same_jobs(ops: list[tuple[Any, ...]]) -> None:
    results = {layout: asyncio.run(run_layout(layout, ops)) for layout in LAYOUTS}
    reference = results["naive"]
    for layout in LAYOUTS[1:]:
        outcomes, lists = results[layout]
        assert outcomes == reference[0], layout
        for query, jobs in reference[1].items():
            assert lists[query] == jobs, (layout, query)
