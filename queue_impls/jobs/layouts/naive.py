"""The seed before its change: a name index of ids, and list_jobs(name=...) gets every job one by one (N+1).

Keys (jobs/keys.py): ("jobs", id) -> job; ("jobs_by_name", name, id) -> id."""

from __future__ import annotations

from typing import Any

from ...kv import Key, Kv
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
