"""An id index read in batches: jobs fetched with get_many ten at a time, stopping when the page is full.

What Redis queues do with pipelines; it shows whether denormalising the index is needed at all.
"""

from __future__ import annotations

from typing import Any, Final

from ...kv import Key, Kv, KvEntry
from ...kv.limits import MAX_READ_RANGES
from ..keys import JOBS, record_key
from ..model import Job, JobStatus
from .base import Layout, Page

BY_NAME: Key = ("jobs_by_name",)
#: get_many reads at most 10 keys (Deno's limit), so jobs come in tens.
BATCH: Final = MAX_READ_RANGES


class BatchedLayout(Layout):
    """("jobs", id) -> job; ("jobs_by_name", name, id) -> id, resolved with get_many in tens."""

    name = "batched"
    index_prefixes = (BY_NAME,)

    def index_entries(self, job: Job) -> dict[Key, Any]:
        return {(*BY_NAME, job.name, job.id): job.id}

    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        page = Page(status, limit, offset)
        if name is None:
            async for entry in kv.list(prefix=JOBS):
                if page.offer(Job.from_value(entry.value)):
                    break
            return page.jobs
        ids: list[str] = []
        async for entry in kv.list(prefix=(*BY_NAME, name)):
            ids.append(entry.value)
            if len(ids) == BATCH:
                if _offer_all(page, await kv.get_many([record_key(i) for i in ids])):
                    return page.jobs
                ids = []
        if ids:
            _offer_all(page, await kv.get_many([record_key(i) for i in ids]))
        return page.jobs


def _offer_all(page: Page, entries: list[KvEntry]) -> bool:
    return any(page.offer(Job.from_value(entry.value)) for entry in entries)
