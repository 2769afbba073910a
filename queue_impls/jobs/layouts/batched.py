"""An id index read in batches: jobs fetched with get_many ten at a time, stopping when the page is full.

What Redis queues do with pipelines; it shows whether denormalising the index is needed at all.
"""

from __future__ import annotations

from typing import Final

from ...kv import Kv, KvEntry
from ...kv.limits import MAX_READ_RANGES
from ..keys import BY_NAME, JOBS, record_key
from ..model import Job, JobStatus
from .base import Page
from .naive import NaiveLayout

#: get_many reads at most 10 keys (Deno's limit), so jobs come in tens.
BATCH: Final = MAX_READ_RANGES


class BatchedLayout(NaiveLayout):
    """Naive's storage (("jobs", id) -> job; ("jobs_by_name", name, id) -> id), read with get_many in tens."""

    name = "batched"

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
