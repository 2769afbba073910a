"""check_integrity: read a whole store and report every way its jobs, indexes, queue entries and counters disagree.

A diagnostic for tests and operators; it reads everything, so it is not for hot paths.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from ..kv import Key, Kv, KvU64
from .keys import ACTIVE, COUNT, DEAD, DELAYED, EXPIRY, JOBS, LEASE, READY, READY_BY_NAME, ms_ceil, ms_floor
from .layouts import Layout, make_layout
from .model import Job, JobStatus


@dataclass(frozen=True, slots=True)
class Problem:
    """One disagreement. ``kind`` is one of: malformed_record, orphan_index, index_mismatch, missing_index,
    orphan_queue_entry, queue_mismatch, missing_queue_entry, expired_lease, count_mismatch."""

    kind: str
    key: Key
    detail: str


async def _read(kv: Kv, prefix: Key) -> dict[Key, Any]:
    return {entry.key: entry.value async for entry in kv.list(prefix=prefix, batch_size=1000)}


async def check_integrity(kv: Kv, layout: str | Layout, *, now: float | None = None) -> list[Problem]:
    """Every problem found in the store; [] when it is consistent. ``now`` decides which leases are expired."""
    layout = make_layout(layout) if isinstance(layout, str) else layout
    now = time.time() if now is None else now
    problems: list[Problem] = []
    jobs: dict[str, Job] = {}
    for key, value in (await _read(kv, JOBS)).items():
        job = Job.from_value(value)
        if job is None or job.id != key[-1]:
            problems.append(Problem("malformed_record", key, f"not a job record: {value!r:.80}"))
        else:
            jobs[job.id] = job
    problems += await _check_indexes(kv, layout, jobs)
    problems += await _check_queue(kv, jobs)
    problems += await _check_leases(kv, jobs, now)
    problems += await _check_counters(kv, jobs)
    return problems


async def _check_indexes(kv: Kv, layout: Layout, jobs: dict[str, Job]) -> list[Problem]:
    expected: dict[Key, Any] = {}
    for job in jobs.values():
        expected.update(layout.index_entries(job))
    actual: dict[Key, Any] = {}
    for prefix in layout.index_prefixes:
        actual.update(await _read(kv, prefix))
    problems = [Problem("orphan_index", k, "index entry with no matching job") for k in actual if k not in expected]
    for key, value in expected.items():
        if key not in actual:
            problems.append(Problem("missing_index", key, "the job has no entry here"))
        elif actual[key] != value:
            problems.append(Problem("index_mismatch", key, "the index copy differs from the job record"))
    return problems


def _expected_queue(jobs: dict[str, Job]) -> dict[str, list[Key]]:
    """For each pending job the queue entries it may have (ready in both indexes, or delayed until run_at)."""
    return {
        job.id: [
            (*READY, -job.priority, job.id),
            (*READY_BY_NAME, job.name, -job.priority, job.id),
            (*DELAYED, ms_ceil(job.run_at), job.id),
        ]
        for job in jobs.values()
        if job.status == JobStatus.PENDING
    }


async def _check_queue(kv: Kv, jobs: dict[str, Job]) -> list[Problem]:
    problems: list[Problem] = []
    allowed = _expected_queue(jobs)
    kinds: defaultdict[str, set[str]] = defaultdict(set)
    entries = {**await _read(kv, READY), **await _read(kv, READY_BY_NAME), **await _read(kv, DELAYED)}
    for key, value in entries.items():
        job_id = str(key[-1])
        if job_id not in jobs:
            problems.append(Problem("orphan_queue_entry", key, "queue entry for a missing job"))
        elif key not in allowed.get(job_id, []):
            problems.append(Problem("queue_mismatch", key, f"queue entry disagrees with the {jobs[job_id].status} job"))
        else:
            kinds[job_id].add(str(key[1]))
            if value != jobs[job_id].to_value():
                problems.append(Problem("queue_mismatch", key, "queue entry differs from the job record"))
    for job_id in allowed:
        if kinds[job_id] not in ({"delayed"}, {"ready", "ready_by_name"}):
            found = ", ".join(sorted(kinds[job_id])) or "none"
            problems.append(
                Problem("missing_queue_entry", (*JOBS, job_id), f"queue entries: {found} (not delayed, or both ready)")
            )
    for key, value in (await _read(kv, DEAD)).items():
        job = jobs.get(str(key[-1]))
        if job is None or job.status != JobStatus.FAILED or value != job.to_value():
            problems.append(Problem("orphan_queue_entry", key, "dead letter without a matching failed job"))
    dead = {str(key[-1]) for key in await _read(kv, DEAD)}
    problems += [
        Problem("missing_queue_entry", (*JOBS, j.id), "failed job not in the dead-letter queue")
        for j in jobs.values()
        if j.status == JobStatus.FAILED and j.id not in dead
    ]
    return problems


async def _check_leases(kv: Kv, jobs: dict[str, Job], now: float) -> list[Problem]:
    problems: list[Problem] = []
    leases = await _read(kv, LEASE)
    expiries = await _read(kv, EXPIRY)
    for key, value in leases.items():
        job = jobs.get(str(key[-1]))
        if job is None or job.status != JobStatus.RUNNING:
            problems.append(Problem("orphan_queue_entry", key, "lease on a job that is not running"))
        elif (*EXPIRY, value["until_ms"], job.id) not in expiries:
            problems.append(Problem("missing_queue_entry", key, "lease without its expiry entry"))
        elif value["until_ms"] <= ms_floor(now):
            problems.append(Problem("expired_lease", key, f"lease of {value['worker']} expired, not yet reaped"))
    for key in expiries:
        lease = leases.get((*LEASE, key[-1]))
        if lease is None or lease["until_ms"] != key[-2]:
            problems.append(Problem("orphan_queue_entry", key, "expiry entry without a matching lease"))
    problems += [
        Problem("missing_queue_entry", (*JOBS, j.id), "running job without a lease")
        for j in jobs.values()
        if j.status == JobStatus.RUNNING and (*LEASE, j.id) not in leases
    ]
    return problems


async def _check_counters(kv: Kv, jobs: dict[str, Job]) -> list[Problem]:
    by_status = Counter(job.status.value for job in jobs.values())
    running = Counter(job.name for job in jobs.values() if job.status == JobStatus.RUNNING)
    problems = []
    for prefix, expected in ((COUNT, by_status), (ACTIVE, running)):
        stored = {str(k[-1]): v.value for k, v in (await _read(kv, prefix)).items() if isinstance(v, KvU64)}
        for part in set(stored) | set(expected):
            if stored.get(part, 0) != expected.get(part, 0):
                problems.append(
                    Problem("count_mismatch", (*prefix, part), f"{stored.get(part, 0)} stored, {expected[part]} real")
                )
    return problems
