"""The seed before its change: a name index of ids, and list_jobs(name=...) gets every job one by one (N+1).

Keys (jobs/keys.py): ("jobs", id) -> job; ("jobs_by_name", name, id) -> id."""

from __future__ import annotations

from typing import Any

from ...kv import AtomicOperation, Key, Kv
from ..keys import BY_NAME, JOBS, record_key
from ..model import Job, JobStatus
from .base import Layout, Page


class NaiveLayout(Layout):
    """("jobs", id) -> job; ("jobs_by_name", name, id) -> id. The seed's loop exactly: no early exit."""

    name = "naive"
    index_prefixes = (BY_NAME,)

    def index_entries(self, job: Job) -> dict[Key, Any]:
        return {(*BY_NAME, job.name, job.id): job.id}

    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        page = Page(status, limit, offset)
        if name is not None:
            async for entry in kv.list(prefix=(*BY_NAME, name)):
                job_entry = await kv.get(record_key(entry.value))  # one read per index entry: the N+1
                page.offer(Job.from_value(job_entry.value))
        else:
            async for entry in kv.list(prefix=JOBS):
                page.offer(Job.from_value(entry.value))
        return page.jobs

    def put(self, op: AtomicOperation, old: Job | None, new: Job | None) -> None:
        """A job that changes (same id and name) rewrites its record alone, its index entry (the id) as it was: what
        Layout.put's diff gives, without building and comparing the old entries (a job's run changes it twice)."""
        if old is None or new is None or not self._changes_in_place(NaiveLayout, old, new):
            super().put(op, old, new)
        # The value is the job's fields, so it changed iff the job did (a claim or a finish: its status).
        elif old.status != new.status or old != new:
            op.set(record_key(new.id), new.to_value())
