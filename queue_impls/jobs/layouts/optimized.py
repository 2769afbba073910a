"""The seed after its change: the name index holds the whole job, and the listing loop stops when the page is full.

Keys (jobs/keys.py): ("jobs", id) -> job; ("jobs_by_name", name, id) -> job."""

from __future__ import annotations

from typing import Any

from ...kv import AtomicOperation, Key, Kv
from ..keys import BY_NAME, JOBS
from ..model import Job, JobStatus
from .base import Layout, Page, drop_malformed


class OptimizedLayout(Layout):
    """("jobs", id) -> job; ("jobs_by_name", name, id) -> job (a full copy, rewritten with every update)."""

    name = "optimized"
    index_prefixes = (BY_NAME,)

    def index_entries(self, job: Job) -> dict[Key, Any]:
        return {(*BY_NAME, job.name, job.id): job.to_value()}

    def shared_entries(self, job: Job, value: dict[str, Any]) -> dict[Key, Any]:
        return {(*JOBS, job.id): value, (*BY_NAME, job.name, job.id): value}

    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        page = Page(status, limit, offset)
        if name is not None:
            async for entry in kv.list(prefix=(*BY_NAME, name)):
                job = Job.from_value(entry.value)
                if job is None:  # malformed index entry: the seed deletes it and goes on
                    await drop_malformed(kv, entry)
                    continue
                if page.offer(job):
                    break
        else:
            async for entry in kv.list(prefix=JOBS):
                if page.offer(Job.from_value(entry.value)):
                    break
        return page.jobs

    def put(self, op: AtomicOperation, old: Job | None, new: Job | None) -> None:
        """A job that changes (same id and name) rewrites both its entries with one value (serialised once): what
        Layout.put's diff gives, without building and comparing the old entries (a job's run changes it twice)."""
        if old is None or new is None or not self._changes_in_place(OptimizedLayout, old, new):
            super().put(op, old, new)
        # The value is the job's fields, so it changed iff the job did (a claim or a finish: its status).
        elif old.status != new.status or old != new:
            op.set_each([(*JOBS, new.id), (*BY_NAME, new.name, new.id)], new.to_value())
