"""Jobs that cannot go on: put them in the dead-letter queue with the error, so one bad job never stops a worker.

Used when recording an attempt's outcome (complete, fail, the backoff) or reaping an expired lease raises: the
job is failed whatever its attempts, with that error in its history, so it can be inspected and retried.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from ..kv import AtomicOperation, KvEntry
from .keys import (
    MINUS_ONE,
    active_key,
    count_key,
    dead_key,
    delayed_key,
    expiry_key,
    lease_key,
    ms_ceil,
    ready_by_name_key,
    ready_key,
    record_key,
)
from .model import Job, JobEventType, JobStatus, cut_error, with_error

if TYPE_CHECKING:
    from .queue import Queue

log = logging.getLogger(__name__)

#: Compare-and-set rounds a dead letter is tried for before giving up (the next sweep or attempt tries again).
DEAD_LETTER_ATTEMPTS = 5


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` of an exception, even one whose __str__ raises or whose message is enormous."""
    try:
        text = str(exc)
    except Exception:  # a broken __str__ (or an int too long to print) must not become a second failure
        text = "<the exception's message could not be read>"
    return f"{type(exc).__name__}: {text[:2000]}" if text else type(exc).__name__


async def dead_letter(queue: Queue, job_id: str, error: str) -> bool:
    """Fail the job now and put it in the dead-letter queue with ``error``; False if it is gone or could not be
    written (logged). Works on any status, from the record alone: nothing is computed from the job's options."""
    kv = queue.kv
    for _ in range(DEAD_LETTER_ATTEMPTS):
        try:
            record, lease = await kv.get_many([record_key(job_id), lease_key(job_id)])
            job = Job.from_value(record.value)
            if job is None or job.status in (JobStatus.FAILED, JobStatus.COMPLETED):
                return False
            now = queue.clock.now()
            new = job.replace(
                status=JobStatus.FAILED, failed_at=now, error=cut_error(error), errors=with_error(job, error, now)
            )
            op = kv.atomic().check(record).check(lease)
            queue.layout.put(op, job, new)
            _leave(op, job, lease)
            op.set(dead_key(job_id), new.to_value())
            op.sum(count_key(job.status.value), MINUS_ONE).sum(count_key(new.status.value), 1)
            if (await op.commit()).ok:
                await queue._emit(JobEventType.FAILED, new, error)
                return True
        except Exception:
            log.exception("job %s could not be dead-lettered (error to record: %s)", job_id, error[:200])
            return False
    log.error("job %s could not be dead-lettered: lost %d races in a row", job_id, DEAD_LETTER_ATTEMPTS)
    return False


def _leave(op: AtomicOperation, job: Job, lease: KvEntry) -> None:
    """Delete the job's queue entries whatever they are, without trusting its times to be sane."""
    op.delete(ready_key(job.priority, job.id)).delete(ready_by_name_key(job.name, job.priority, job.id))
    if math.isfinite(job.run_at) and abs(job.run_at) < 1e13:  # else no delayed entry could have been written
        op.delete(delayed_key(ms_ceil(job.run_at), job.id))
    if lease.value is not None:
        op.delete(lease.key)
        until_ms = lease.value.get("until_ms") if isinstance(lease.value, dict) else None
        if isinstance(until_ms, int):
            op.delete(expiry_key(until_ms, job.id))
        if job.status == JobStatus.RUNNING:
            op.sum(active_key(job.name), MINUS_ONE)
