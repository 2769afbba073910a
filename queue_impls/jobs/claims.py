"""What a claim reads and what its commit checks: candidates from the ready indexes, limits from a cache.

A ready entry holds the job itself, so a claim is one list and one commit: the commit checks the ready entry (every
commit that changes a pending job's record rewrites or deletes its ready entries too) and the name's limit and active
count as last known, and fails, writing nothing, when any of them changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from ..kv import Kv, KvEntry, KvU64
from .keys import READY, READY_BY_NAME, active_key, limit_key
from .model import Job, JobStatus

#: A claim of n jobs first reads the 2n + 2 ready entries at the head of the queue: room for a few lost races,
#: and the jobs left over are the worker's candidates for its next claims (see Worker).
CLAIM_HEAD_EXTRA: Final = 2
#: ... then pages of this many, when the head held only jobs of other names, of names at their limit, or lost races.
CLAIM_SCAN_BATCH: Final = 100
#: A worker with at most this many names lists each name's ready index when the head holds other names' jobs
#: (one list per name, issued together) instead of scanning past them.
MAX_NAMED_LISTS: Final = 10


@dataclass(frozen=True, slots=True)
class Candidate:
    """A ready job as read: ``entry`` is its ready entry (either index), whose versionstamp the claim checks."""

    entry: KvEntry
    job: Job

    @property
    def order(self) -> tuple[int, str]:
        return (-self.job.priority, self.job.id)


@dataclass(frozen=True, slots=True)
class NameLimit:
    """A name's limit entry and active counter as this process last knew them (checked by every claim commit)."""

    limit: KvEntry
    active: KvEntry

    @property
    def free(self) -> int | None:
        """Free slots, None when the name has no limit."""
        if self.limit.value is None:
            return None
        active = self.active.value.value if isinstance(self.active.value, KvU64) else 0
        return int(self.limit.value) - active


class LimitCache:
    """Names' limits as last read or last written by this process. A name never read is assumed unlimited: the
    claim commit checks that its limit key does not exist, so a wrong guess fails the commit and is read then."""

    def __init__(self) -> None:
        self._known: dict[str, NameLimit] = {}

    def get(self, name: str) -> NameLimit | None:
        return self._known.get(name)

    def learn(self, name: str, limit: KvEntry, active: KvEntry) -> None:
        if len(self._known) >= 10_000:
            self._known.clear()
        self._known[name] = NameLimit(limit, active)

    def claimed(self, name: str, count: int, versionstamp: str) -> None:
        """Our commit added ``count`` to the name's active counter at ``versionstamp``."""
        known = self._known.get(name)
        if known is None or known.limit.value is None:
            return
        active = known.active.value.value if isinstance(known.active.value, KvU64) else 0
        self._known[name] = NameLimit(known.limit, KvEntry(known.active.key, KvU64(active + count), versionstamp))

    def forget(self, names: Collection[str]) -> None:
        for name in names:
            self._known.pop(name, None)

    async def refresh(self, kv: Kv, names: Collection[str]) -> None:
        """Read the limit and active count of up to five names in one get_many."""
        names = list(names)[:5]
        if not names:
            return
        entries = await kv.get_many([key for name in names for key in (limit_key(name), active_key(name))])
        for i, name in enumerate(names):
            self.learn(name, entries[2 * i], entries[2 * i + 1])


def candidates_of(entries: Sequence[KvEntry]) -> list[Candidate]:
    """The ready entries that hold a pending job (anything else is left for check_integrity to report)."""
    out = []
    for entry in entries:
        job = Job.from_value(entry.value)
        if job is not None and job.status == JobStatus.PENDING:
            out.append(Candidate(entry, job))
    return out


async def read_candidates(kv: Kv, names: Collection[str] | None, want: int) -> list[Candidate]:
    """The best ``2 * want + 2`` ready jobs of ``names`` (None: any name), without scanning other names' jobs when
    the worker has at most MAX_NAMED_LISTS names: a single name reads its own index, several read the shared head
    first and their own indexes only when the head held others' jobs."""
    batch = min(2 * want + CLAIM_HEAD_EXTRA, CLAIM_SCAN_BATCH)
    if names is not None and len(names) == 1:
        [name] = names
        return candidates_of(await kv.list(prefix=(*READY_BY_NAME, name), limit=batch).collect())
    entries = await kv.list(prefix=READY, limit=batch).collect()
    found = candidates_of(entries)
    if names is None:
        return found
    mine = [c for c in found if c.job.name in names]
    if len(mine) >= want or len(entries) < batch or len(names) > MAX_NAMED_LISTS:
        return mine
    lists = [kv.list(prefix=(*READY_BY_NAME, name), limit=batch).collect() for name in names]
    merged = {c.job.id: c for part in await asyncio.gather(*lists) for c in candidates_of(part)}
    return sorted(merged.values(), key=lambda c: c.order)[:batch]


def pick(
    candidates: Sequence[Candidate], want: int, names: Collection[str] | None, limits: LimitCache
) -> tuple[list[Candidate], set[str]]:
    """Up to ``want`` candidates in order, leaving out other names and names with no free slot as last known.
    Also returns the names left out for want of a slot: the counts may be stale (slots freed since), worth a read."""
    picked: list[Candidate] = []
    taken: dict[str, int] = {}  # claims per limited name (a plain dict: a Counter costs a Python-level __init__)
    full: set[str] = set()
    for candidate in candidates:
        name = candidate.job.name
        if names is not None and name not in names:
            continue
        known = limits.get(name)
        free = None if known is None else known.free
        if free is not None:
            if taken.get(name, 0) >= free:
                full.add(name)
                continue
            taken[name] = taken.get(name, 0) + 1
        picked.append(candidate)
        if len(picked) >= want:
            break
    return picked, full
