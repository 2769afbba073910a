"""Our best layout: full-job indexes for every filter, so a listing reads only the entries it returns.

Any combination of status and name is one prefix; a page of up to 500 is one round trip (Deno's batch rule),
and list_jobs_page resumes from a KV cursor, so deep pages do not cost O(offset).
"""

from __future__ import annotations

from typing import Any

from ...kv import AtomicOperation, Key, Kv, KvValidationError
from ..errors import InvalidJobOptionError
from ..keys import BY_NAME, BY_STATUS, BY_STATUS_NAME, JOBS
from ..model import Job, JobStatus
from .base import JobPage, Layout


class IndexedLayout(Layout):
    """("jobs", id), ("jobs_by_status", status, id), ("jobs_by_name", name, id) and
    ("jobs_by_status_name", status, name, id), every one -> the full job; a status change moves two entries."""

    name = "indexed"
    index_prefixes = (BY_NAME, BY_STATUS, BY_STATUS_NAME)
    native_cursor = True

    def index_entries(self, job: Job) -> dict[Key, Any]:
        value = job.to_value()
        return {
            (*BY_NAME, job.name, job.id): value,
            (*BY_STATUS, job.status.value, job.id): value,
            (*BY_STATUS_NAME, job.status.value, job.name, job.id): value,
        }

    def shared_entries(self, job: Job, value: dict[str, Any]) -> dict[Key, Any]:
        return {
            (*JOBS, job.id): value,
            (*BY_NAME, job.name, job.id): value,
            (*BY_STATUS, job.status.value, job.id): value,
            (*BY_STATUS_NAME, job.status.value, job.name, job.id): value,
        }

    def put(self, op: AtomicOperation, old: Job | None, new: Job | None) -> None:
        """A job that changes (same id and name) rewrites its four entries with one value (serialised once), and a
        change of status deletes the two entries under the old status first: what Layout.put's diff gives, without
        building and comparing the old entries (a job's run changes it twice)."""
        if old is None or new is None or not self._changes_in_place(IndexedLayout, old, new):
            super().put(op, old, new)
            return
        moved = old.status != new.status
        if moved:
            op.delete((*BY_STATUS, old.status.value, old.id)).delete(
                (*BY_STATUS_NAME, old.status.value, old.name, old.id)
            )
        if moved or old != new:  # the four values are the job's fields, so they changed iff the job did
            status = new.status.value
            keys = [(*JOBS, new.id), (*BY_NAME, new.name, new.id), (*BY_STATUS, status, new.id),
                    (*BY_STATUS_NAME, status, new.name, new.id)]  # fmt: skip
            op.set_each(keys, new.to_value())

    @staticmethod
    def prefix(status: JobStatus | None, name: str | None) -> Key:
        if status is not None and name is not None:
            return (*BY_STATUS_NAME, status.value, name)
        if status is not None:
            return (*BY_STATUS, status.value)
        if name is not None:
            return (*BY_NAME, name)
        return JOBS

    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        entries = await kv.list(prefix=self.prefix(status, name), limit=offset + limit).collect()
        jobs = [Job.from_value(entry.value) for entry in entries[offset:]]
        return [job for job in jobs if job is not None]

    async def list_jobs_page(
        self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, cursor: str | None
    ) -> JobPage:
        it = kv.list(prefix=self.prefix(status, name), limit=limit, cursor=cursor or None)
        try:
            entries = await it.collect()
        except KvValidationError as exc:
            raise InvalidJobOptionError(f"invalid cursor {(cursor or '')[:40]!r}: {exc}") from exc
        jobs = [job for job in (Job.from_value(entry.value) for entry in entries) if job is not None]
        return JobPage(jobs, it.cursor if len(entries) == limit else None)
