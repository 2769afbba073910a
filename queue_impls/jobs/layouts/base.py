"""What a layout is: where a job's record and index entries live, and how list_jobs reads them.

The engine (queue.py) decides every state change; a layout only turns "job went from old to new" into the
mutations of its keys (put) and answers listings. All of a job's keys change in the engine's one commit.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ...kv import AtomicOperation, Key, Kv, KvEntry
from ...kv.atomic import set_each_encoded
from ..errors import InvalidJobOptionError
from ..keys import record_key
from ..model import Job, JobStatus

_OFFSET_CURSOR = "offset:"


@dataclass(frozen=True, slots=True)
class JobPage:
    """One page of a listing; ``cursor`` resumes after it, None when there is nothing after it."""

    jobs: list[Job]
    cursor: str | None


class Page:
    """The seed's listJobs loop: count matches, keep those from ``offset`` until ``limit`` are kept."""

    def __init__(self, status: JobStatus | None, limit: int, offset: int) -> None:
        self.status, self.limit, self.offset = status, limit, offset
        self.jobs: list[Job] = []
        self.count = 0

    def offer(self, job: Job | None) -> bool:
        """Take a job if it matches and fits; True once the page is full (where the seed's early exit breaks)."""
        if job is not None and (self.status is None or job.status == self.status):
            if self.count >= self.offset and len(self.jobs) < self.limit:
                self.jobs.append(job)
            self.count += 1
        return len(self.jobs) >= self.limit


class Layout(abc.ABC):
    """The storage of jobs and their indexes."""

    name: ClassVar[str]
    #: Prefixes under which the layout keeps index entries (check_integrity scans them for orphans).
    index_prefixes: ClassVar[tuple[Key, ...]]
    #: list_jobs_page resumes from a KV cursor (True) or re-reads from the start with an offset (False).
    native_cursor: ClassVar[bool] = False

    @abc.abstractmethod
    def index_entries(self, job: Job) -> dict[Key, Any]:
        """The index entries the job has in this layout, key -> value."""

    @abc.abstractmethod
    async def list_jobs(self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, offset: int) -> list[Job]:
        """Jobs in id (= creation) order, filtered by status and name, the page [offset, offset + limit)."""

    def entries(self, job: Job) -> dict[Key, Any]:
        return self.shared_entries(job, job.to_value())

    def shared_entries(self, job: Job, value: dict[str, Any]) -> dict[Key, Any]:
        """``entries(job)`` with the record's value (``job.to_value()``) given: a layout whose indexes hold the
        full job returns that very object for them, so a commit serialises it once (see put)."""
        return {record_key(job.id): value, **self.index_entries(job)}

    def put(self, op: AtomicOperation, old: Job | None, new: Job | None) -> None:
        """Add to ``op`` the mutations taking the job's keys from ``old`` to ``new`` (None: absent). Keys whose value
        is one object are set together (set_each)."""
        before = self.entries(old) if old is not None else {}
        after = self.entries(new) if new is not None else {}
        for key in before.keys() - after.keys():
            op.delete(key)
        set_grouped(op, [(key, item) for key, item in after.items() if before.get(key) != item])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._keeps_entries_of = frozenset(
            base
            for base in cls.__mro__
            if isinstance(base, type)
            and issubclass(base, Layout)
            and getattr(base, "index_entries", None) is cls.index_entries
            and getattr(base, "shared_entries", None) is cls.shared_entries
        )

    #: The layout classes whose entries this one keeps exactly (same index_entries and shared_entries): a change in
    #: place (same id and name) is what their own put writes directly. A subclass that adds index entries is not in
    #: it and gets Layout.put's diff. Computed once per class, not on every put (a job's run makes two).
    _keeps_entries_of: ClassVar[frozenset[type]] = frozenset()

    def _changes_in_place(self, owner: type[Layout], old: Job, new: Job) -> bool:
        """Whether ``old`` -> ``new`` is one job changing (same id and name) in a layout that keeps ``owner``'s entries:
        the change ``owner.put`` writes directly."""
        return old.id == new.id and old.name == new.name and owner in self._keeps_entries_of

    async def get(self, kv: Kv, job_id: str) -> tuple[Job | None, KvEntry]:
        entry = await kv.get(record_key(job_id))
        return Job.from_value(entry.value), entry

    async def list_jobs_page(
        self, kv: Kv, status: JobStatus | None, name: str | None, limit: int, cursor: str | None
    ) -> JobPage:
        """Without a native cursor: the cursor is an offset and each page re-reads what precedes it."""
        offset = parse_offset_cursor(cursor)
        jobs = await self.list_jobs(kv, status, name, limit, offset)
        return JobPage(jobs, f"{_OFFSET_CURSOR}{offset + len(jobs)}" if len(jobs) == limit else None)


def set_grouped(
    op: AtomicOperation, items: Sequence[tuple[Key, Any]], known: tuple[Any, tuple[bytes, int]] | None = None
) -> None:
    """``op.set(key, value)`` for each item in order, each run of keys sharing one value object set together
    (serialised once); ``known`` is (value, its encode_value()) when the caller has serialised one already."""
    start = 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i][1] is not items[start][1]:
            value = items[start][1]
            keys = [items[start][0]] if i == start + 1 else [key for key, _ in items[start:i]]
            if known is not None and value is known[0]:
                set_each_encoded(op, keys, value, known[1])
            else:
                op.set_each(keys, value)
            start = i


def parse_offset_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    digits = cursor.removeprefix(_OFFSET_CURSOR)
    if not cursor.startswith(_OFFSET_CURSOR) or not (digits.isascii() and digits.isdigit() and len(digits) <= 16):
        raise InvalidJobOptionError(f"invalid cursor {cursor[:40]!r}: this layout's cursors look like 'offset:<n>'")
    return int(digits)


async def drop_malformed(kv: Kv, entry: KvEntry) -> None:
    """The seed's stale-entry clean-up, guarded so that it never deletes an entry rewritten since it was read."""
    await kv.atomic().check(entry).delete(entry.key).commit()
