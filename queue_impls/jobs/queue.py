"""The queue engine, shared by every layout: each state change is one atomic commit guarded by versionstamp checks.

A job's record, its index entries (the layout's), its queue entry, lease, dead letter and counters all change in
the same commit, so they never disagree. Keys: see keys.py (engine) and layouts/ (indexes).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from ..kv import AtomicOperation, Key, Kv, KvEntry, KvU64
from ..kv.atomic import set_each_encoded
from ..kv.codec import encode_value
from ..kv.errors import BackendError, CommitLimitError, DenoBridgeError, short_repr
from ..kv.limits import MAX_CHECKS
from .backoff import Backoff
from .claims import CLAIM_SCAN_BATCH, Candidate, LimitCache, candidates_of, pick, read_candidates
from .clock import Clock, SystemClock
from .errors import ContentionError, InvalidJobOptionError, JobNotFoundError, JobStateError, LeaseLostError
from .keys import (
    DEAD,
    DELAYED,
    EXPIRY,
    MINUS_ONE,
    READY,
    VERSION,
    active_key,
    count_key,
    dead_key,
    delayed_key,
    expiry_key,
    lease_key,
    limit_key,
    ms_ceil,
    ms_floor,
    ready_by_name_key,
    ready_key,
    record_key,
)
from .layouts import JobPage, Layout, make_layout
from .layouts.base import set_grouped
from .model import Job, JobEvent, JobEventType, JobStatus, cut_error, new_job_id, with_error
from .poison import dead_letter, describe_error
from .validation import (
    MAX_CONCURRENCY,
    check_cursor,
    check_error,
    check_job_id,
    check_lease,
    check_max_attempts,
    check_name,
    check_names,
    check_page,
    check_priority,
    check_queue_parts,
    check_run_at,
    check_status,
    check_value,
    check_worker_id,
    is_int,
)

log = logging.getLogger(__name__)

EventHook = Callable[[JobEvent], Awaitable[None] | None]
#: How many times an operation re-reads and retries after losing a compare-and-set race.
MAX_CAS_ATTEMPTS: Final = 20
#: Pauses (seconds, real time) before add() commits again a job the store failed to write (a BackendError: on Deno,
#: "database is locked" when processes share a file); after the last, the store's error is raised. A store gone for
#: good (DenoBridgeError: the deno subprocess died) is not tried again.
ADD_RETRY_PAUSES: tuple[float, ...] = (0.01, 0.05, 0.25)
#: Due delayed jobs moved to the ready queue per commit (each needs a check and two mutations).
PROMOTE_BATCH: Final = 50
#: Expired leases handled per reap_expired() call.
REAP_BATCH: Final = 50
#: Outcomes (and as many claims) per finish_and_claim commit: their checks always fit Deno's 100, 2 per outcome,
#: 1 per claim and up to 2 per claimed name (its limit and active count). Mutations and sizes depend on the layout
#: and the jobs: a share over a limit is halved until it fits (indexed: 24 mutations per finish + claim).
FINISH_SHARE: Final = MAX_CHECKS // 5


@dataclass(frozen=True, slots=True)
class Lease:
    """A claimed job. The versionstamps are the fencing tokens: a commit checked against them fails once the
    lease was lost (expired and reaped, or the job deleted), so a stale worker can never overwrite the job."""

    job: Job
    worker: str
    until_ms: int
    job_versionstamp: str
    lease_versionstamp: str
    #: The job's name had a concurrency limit when it was claimed: its end frees a slot, so it wakes idle workers.
    limited: bool = False


#: A claim before its commit: the job running, its lease's end (unix ms), whether its name was limited.
_Draft = tuple[Job, int, bool]


@dataclass(frozen=True, slots=True)
class Finished:
    """What finish_and_claim did besides writing outcomes: the jobs it claimed, the leases it found lost (their
    outcome was not written) and the outcomes it could not write for an error, each with that error."""

    claimed: list[Lease]
    lost: list[Lease]
    failed: list[tuple[Lease, Job, Exception]]


class Queue:
    """A job queue on a KV store in one of the LAYOUTS. ``clock`` and ``rng`` are injectable for tests."""

    def __init__(
        self,
        kv: Kv,
        layout: str = "optimized",
        clock: Clock | None = None,
        *,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self.layout: Layout = make_layout(layout)
        check_queue_parts(kv, clock, rng, on_event)
        self.kv = kv
        self.clock: Clock = clock or SystemClock()
        self.backoff = Backoff.from_value(backoff)
        self.rng = rng or random.Random()
        self.on_event = on_event
        self._valid_names: set[str] = set()
        self._name_keys: dict[str, tuple[Key, Key, tuple[bytes, int]]] = {}  # see _name_keys_of
        self.limits = LimitCache()
        #: When the earliest delayed job is due, as promote_due last saw it (inf: none; None: not known).
        self.next_due: float | None = None

    # -- adding and reading ------------------------------------------------------------------------

    async def add(
        self,
        name: str,
        data: Any = None,
        *,
        priority: int = 0,
        delay: float = 0.0,
        run_at: float | None = None,
        max_attempts: int = 3,
        backoff: Backoff | dict[str, Any] | None = None,
    ) -> str:
        """Add a job; returns its id. Every check runs before the one commit that writes it."""
        now = self.clock.now()
        job = Job(
            id=new_job_id(),
            name=self._check_name(name),
            data=data,
            status=JobStatus.PENDING,
            priority=check_priority(priority),
            max_attempts=check_max_attempts(max_attempts),
            created_at=now,
            run_at=check_run_at(now, delay, run_at),
            backoff=None if backoff is None else Backoff.from_value(backoff).to_value(),
        )
        value = job.to_value()
        encoded = check_value(value)
        try:
            added = (await self._add_op(job, value, encoded, now).commit()).ok
        except DenoBridgeError:  # the store is gone for good: nothing to wait for
            raise
        except BackendError:  # the store failed (a file another process holds locked), not the job: again
            added = await self._add_again(job, value, encoded, now)
        if not added:
            raise ContentionError(f"add of job {job.id} failed its versionstamp check")
        if self.on_event is not None:
            await self._emit(JobEventType.ADDED, job)
        return job.id

    def _add_op(self, job: Job, value: dict[str, Any], encoded: tuple[bytes, int], now: float) -> AtomicOperation:
        """add()'s commit: the job's record (which must not exist yet), its copies and queue entries, the counters."""
        op = self.kv.atomic().check(record_key(job.id), None)
        # put() and _enqueue() inline, in their order: the job's copies are one object, serialised once (by
        # check_value) and set in one run (going through both costs add 1 to 2.5% more instructions).
        items = [*self.layout.shared_entries(job, value).items(), *self._queue_entries(job, now, value)]
        set_grouped(op, items, (value, encoded))
        return op.sum(VERSION, 1).sum(_COUNT_KEYS[JobStatus.PENDING], 1)  # Sums().add(VERSION, 1).count(None, PENDING)

    async def _add_again(self, job: Job, value: dict[str, Any], encoded: tuple[bytes, int], now: float) -> bool:
        """add()'s commit once more after each of ADD_RETRY_PAUSES while the store fails, then its error raised. An
        attempt whose check finds the job's record already there is done: an earlier attempt landed although the store
        reported a failure (its reply lost), and no other add can write this new id."""
        for attempt, pause in enumerate(ADD_RETRY_PAUSES, 1):
            await asyncio.sleep(pause)  # real time, not the queue's clock: another process's lock is held in it
            try:
                if (await self._add_op(job, value, encoded, now).commit()).ok:
                    return True
            except DenoBridgeError:
                raise
            except BackendError:
                if attempt == len(ADD_RETRY_PAUSES):
                    raise
                continue
            return (await self.kv.get(record_key(job.id))).versionstamp is not None
        raise AssertionError("ADD_RETRY_PAUSES is empty")  # pragma: no cover

    def _name_keys_of(self, name: str) -> tuple[Key, Key, tuple[bytes, int]]:
        """A job name's limit key, active counter key and serialised value (an expiry entry's), as every claim of the
        name uses them: built once per name (up to 10,000 names), not once per claim commit."""
        keys = (limit_key(name), active_key(name), encode_value(name))
        if len(self._name_keys) >= 10_000:
            self._name_keys.clear()
        self._name_keys[name] = keys
        return keys

    def _check_name(self, name: Any) -> str:
        # The check builds every key the name will be part of: remember the names that passed.
        if not isinstance(name, str) or name not in self._valid_names:
            check_name(name, self.layout)
            if len(self._valid_names) < 10_000:
                self._valid_names.add(name)
        return str(name)

    async def get_job(self, job_id: str) -> Job | None:
        job, _ = await self.layout.get(self.kv, check_job_id(job_id))
        return job

    async def list_jobs(
        self, status: JobStatus | str | None = None, name: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Jobs in creation order, filtered by status and/or name: the page [offset, offset + limit)."""
        limit, offset = check_page(limit, offset)
        return await self.layout.list_jobs(self.kv, check_status(status), _check_filter_name(name), limit, offset)

    async def list_jobs_page(
        self, status: JobStatus | str | None = None, name: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> JobPage:
        """Like list_jobs, by cursor: pass the returned ``cursor`` to get the next page (None: no more).
        The indexed layout resumes from a KV cursor; the others re-read everything before the page."""
        limit, _ = check_page(limit, 0)
        status_, name_ = check_status(status), _check_filter_name(name)
        return await self.layout.list_jobs_page(self.kv, status_, name_, limit, check_cursor(cursor))

    async def list_dead_letters(self, limit: int = 50) -> list[Job]:
        """Failed jobs in the dead-letter queue, oldest first, with their error history (one list call)."""
        limit, _ = check_page(limit, 0)
        entries = await self.kv.list(prefix=DEAD, limit=limit).collect()
        return [job for job in (Job.from_value(e.value) for e in entries) if job is not None]

    async def stats(self) -> dict[str, int]:
        """How many jobs have each status: one read of the counters every commit keeps."""
        entries = await self.kv.get_many([count_key(s.value) for s in JobStatus])
        return {s.value: _u64(e) for s, e in zip(JobStatus, entries, strict=True)}

    # -- retry, delete, concurrency -------------------------------------------------------------------

    async def retry(self, job_id: str) -> None:
        """Redrive a failed job from the dead-letter queue: pending now, attempts reset (as in the seed)."""
        check_job_id(job_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            job, entry = await self.layout.get(self.kv, job_id)
            if job is None:
                raise JobNotFoundError(f"No job {job_id!r}")
            if job.status != JobStatus.FAILED:
                raise JobStateError(f"Job {job_id} is {job.status.value}: only failed jobs can be retried")
            now = self.clock.now()
            new = job.replace(
                status=JobStatus.PENDING, attempts=0, error=None, run_at=now, worker=None,
                started_at=None, completed_at=None, failed_at=None,
            )  # fmt: skip
            op = self.kv.atomic().check(entry).delete(dead_key(job_id))
            self.layout.put(op, job, new)
            sums = Sums().count(job.status, new.status)
            self._enqueue(op, new, now, sums)
            sums.into(op)
            if (await op.commit()).ok:
                return
        raise ContentionError(f"retry of job {job_id} lost {MAX_CAS_ATTEMPTS} races in a row")

    async def delete(self, job_id: str) -> bool:
        """Delete a job in any status with all its keys; False if there was none. A running job's worker is fenced."""
        check_job_id(job_id)
        for _ in range(MAX_CAS_ATTEMPTS):
            entry, lease = await self.kv.get_many([record_key(job_id), lease_key(job_id)])
            job = Job.from_value(entry.value)
            if job is None:
                return False
            op = self.kv.atomic().check(entry).check(lease)
            self.layout.put(op, job, None)
            sums = Sums().count(job.status, None)
            self._leave_status(op, job, lease, sums)
            sums.into(op)
            if (await op.commit()).ok:
                return True
        raise ContentionError(f"delete of job {job_id} lost {MAX_CAS_ATTEMPTS} races in a row")

    async def set_concurrency(self, name: str, limit: int | None) -> None:
        """At most ``limit`` jobs of this name run at once across all workers and processes (None: no limit)."""
        self._check_name(name)
        if limit is not None and (not is_int(limit) or not 1 <= limit <= MAX_CONCURRENCY):
            raise InvalidJobOptionError(
                f"a concurrency limit must be an int in 1..{MAX_CONCURRENCY} (or None for no limit), "
                f"got {short_repr(limit)}"
            )
        op = self.kv.atomic().sum(VERSION, 1)  # a raised limit frees slots: wake the idle workers
        if limit is None:
            op.delete(limit_key(name))
        else:
            op.set(limit_key(name), int(limit))
        await op.commit()
        self.limits.forget([name])

    # -- the worker's side: claim, renew, complete, fail, promote, reap ----------------------------------

    async def claim(
        self, worker: str, names: Collection[str] | None = None, *, lease: float = 30.0, max_jobs: int = 1
    ) -> list[Lease]:
        """Claim up to ``max_jobs`` ready jobs (of ``names``), best priority first, in one checked commit."""
        worker, lease, names = check_worker_id(worker, "worker"), check_lease(lease), check_names(names)
        if not is_int(max_jobs) or not 1 <= max_jobs <= MAX_CONCURRENCY:
            raise InvalidJobOptionError(f"max_jobs must be an int in 1..{MAX_CONCURRENCY}, got {short_repr(max_jobs)}")
        candidates = await read_candidates(self.kv, names, max_jobs)
        leases = await self.claim_from(worker, candidates, names, lease=lease, max_jobs=max_jobs)
        if not leases and candidates:  # every candidate was taken by others or at its name's limit: read on
            return await self.claim_scan(worker, names, lease=lease, max_jobs=max_jobs)
        return leases

    async def claim_from(
        self,
        worker: str,
        candidates: Sequence[Candidate],
        names: Collection[str] | None = None,
        *,
        lease: float = 30.0,
        max_jobs: int = 1,
    ) -> list[Lease]:
        """Claim up to ``max_jobs`` of ``candidates`` (as read by claims.read_candidates) in one commit; if that
        commit fails (a candidate was taken, a limit changed), claim them one by one from fresh reads."""
        picked, full = pick(candidates, max_jobs, names, self.limits)
        if full and len(picked) < max_jobs:  # names at their limit as last known: slots may have been freed since
            await self.limits.refresh(self.kv, full)
            picked, _ = pick(candidates, max_jobs, names, self.limits)
        if not picked:
            return []
        leases = await self._claim_together(picked, worker, lease)
        if leases is not None:
            return leases
        unknown = {c.job.name for c in picked if self.limits.get(c.job.name) is None}
        if unknown:  # perhaps only our guess "no limit" was wrong: read the limits and try once more, together
            await self.limits.refresh(self.kv, unknown)
            picked, _ = pick(candidates, max_jobs, names, self.limits)
            leases = await self._claim_together(picked, worker, lease) if picked else []
            if leases is not None:
                return leases
        return await self._claim_each(picked, worker, lease, max_jobs)

    async def _claim_together(self, picked: Sequence[Candidate], worker: str, lease: float) -> list[Lease] | None:
        """All of ``picked`` in one commit; None if it failed (a candidate taken, a limit or count changed)."""
        op = self.kv.atomic()
        sums = Sums()
        drafts = self._claim_into(op, picked, worker, lease, sums)
        sums.into(op)
        versionstamp = await self._try_commit(op)
        if versionstamp is None:
            return None
        if self.on_event is None:
            return self._leases(drafts, worker, versionstamp)
        return await self._claimed(drafts, worker, versionstamp)

    async def finish_and_claim(
        self,
        finished: Sequence[tuple[Lease, Job]],
        worker: str,
        candidates: Sequence[Candidate] = (),
        names: Collection[str] | None = None,
        *,
        lease: float = 30.0,
        max_jobs: int = 1,
    ) -> Finished:
        """Write the outcomes (``new`` from outcome()) of held jobs and claim up to ``max_jobs`` of ``candidates``,
        in one commit when Deno's limits allow, else in shares of at most FINISH_SHARE outcomes and as many claims
        (halved again while a share is over a limit). A share whose commit fails (a lease lost, a candidate taken)
        claims nothing and writes its outcomes in one commit, then one by one if that fails too (fenced as ever:
        a lost lease's outcome is never written). An outcome that cannot be written for an error is returned with
        it, never raised: the other outcomes are written all the same."""
        picked = pick(candidates, max_jobs, names, self.limits)[0] if max_jobs > 0 else []
        done = Finished([], [], [])
        if not finished and not picked:  # nothing to write: no commit (an empty one is still a write to Deno)
            return done
        if len(finished) <= FINISH_SHARE and len(picked) <= FINISH_SHARE:
            await self._finish_share(finished, picked, worker, lease, done)
            return done
        for i in range(0, max(len(finished), len(picked)), FINISH_SHARE):
            share = slice(i, i + FINISH_SHARE)
            await self._finish_share(finished[share], picked[share], worker, lease, done)
        return done

    async def _finish_share(
        self, finished: Sequence[tuple[Lease, Job]], picked: Sequence[Candidate], worker: str, lease: float,
        done: Finished,
    ) -> None:  # fmt: skip
        op = self.kv.atomic()
        sums = Sums()  # a job that ends and its successor of the same name: the counters net to no change
        try:
            self._finish_into(op, finished, sums)
            drafts = self._claim_into(op, picked, worker, lease, sums)
            sums.into(op)
            result = await op.commit()
        except CommitLimitError:
            if len(finished) + len(picked) > 1:
                for part in _halves(finished, picked):
                    await self._finish_share(*part, worker, lease, done)
                return
            await self._finish_each(finished, done)  # one outcome over a limit alone: recorded as failed
            return
        except Exception:  # perhaps one outcome's fault (a value too large): each on its own finds which
            await self._finish_each(finished, done)
            return
        if not result.ok or result.versionstamp is None:
            await self._finish_unclaimed(finished, done)
            return
        if self.on_event is not None:
            for _, new in finished:
                await self._emit_outcome(new)
            done.claimed.extend(await self._claimed(drafts, worker, result.versionstamp))
        else:  # no coroutine of _claimed per commit
            done.claimed.extend(self._leases(drafts, worker, result.versionstamp))

    def outcome(self, held: Lease, error: str | None) -> Job:
        """The job after its attempt: completed, or (``error``) pending again after a backoff or failed."""
        if error is None:
            return held.job.completed(self.clock.now())
        return self._after_failure(held.job, error)

    async def claim_scan(
        self, worker: str, names: Collection[str] | None = None, *, lease: float = 30.0, max_jobs: int = 1
    ) -> list[Lease]:
        """Page through the shared ready index claiming one job at a time from fresh reads: the path after the
        head's candidates were all taken by other workers or all of names at their limit."""
        leases: list[Lease] = []
        saturated: set[str] = set()
        cursor, batch = None, CLAIM_SCAN_BATCH
        while True:
            page = self.kv.list(prefix=READY, limit=batch, cursor=cursor)
            entries = await page.collect()
            for candidate in candidates_of(entries):
                name = candidate.job.name
                if (names is None or name in names) and name not in saturated:
                    claimed = await self._claim_one(candidate, worker, lease, saturated)
                    if claimed is not None:
                        leases.append(claimed)
                        if len(leases) >= max_jobs:
                            return leases
            if len(entries) < batch:
                return leases
            cursor = page.cursor

    async def _claim_each(self, picked: Sequence[Candidate], worker: str, lease: float, max_jobs: int) -> list[Lease]:
        leases: list[Lease] = []
        saturated: set[str] = set()
        for candidate in picked:
            if candidate.job.name not in saturated:
                claimed = await self._claim_one(candidate, worker, lease, saturated)
                if claimed is not None:
                    leases.append(claimed)
                    if len(leases) >= max_jobs:
                        break
        return leases

    async def _claim_one(self, candidate: Candidate, worker: str, lease: float, saturated: set[str]) -> Lease | None:
        """The contended path: read the record, the limit and the active count afresh, then commit one claim."""
        job_id, name = candidate.job.id, candidate.job.name
        record, limit, active = await self.kv.get_many([record_key(job_id), limit_key(name), active_key(name)])
        self.limits.learn(name, limit, active)
        job = Job.from_value(record.value)
        if job is None or job.status != JobStatus.PENDING:
            return None  # a stale candidate: another worker claimed it after our list
        known = self.limits.get(name)
        if known is not None and known.free is not None and known.free <= 0:
            saturated.add(name)
            return None
        op = self.kv.atomic().check(record)
        sums = Sums()
        drafts = self._claim_into(op, [Candidate(candidate.entry, job)], worker, lease, sums)
        sums.into(op)
        versionstamp = await self._try_commit(op)
        if versionstamp is None:
            return None
        [claimed] = await self._claimed(drafts, worker, versionstamp)
        return claimed

    def _claim_into(
        self, op: AtomicOperation, picked: Sequence[Candidate], worker: str, lease: float, sums: Sums
    ) -> list[_Draft]:
        """Add the claims of ``picked`` to ``op``: each job running with a lease, its ready entries gone, the
        counters moved (in ``sums``, which the caller adds to ``op``); checked against each ready entry and each name's limit (and active count) as last known.
        Returns the leases' drafts, made leases with their versionstamp by _claimed."""
        now = self.clock.now()
        until_ms = ms_ceil(now + lease)
        drafts: list[_Draft] = []
        # The jobs of one name claimed together share their lease's value and their expiry entry's value (the name):
        # each serialised once per commit, with the name's active counter key and whether it has a limit.
        names: dict[str, tuple[dict[str, Any], tuple[bytes, int], tuple[bytes, int], Key, bool]] = {}
        for name in dict.fromkeys(c.job.name for c in picked):
            known = self.limits.get(name)
            keys = self._name_keys.get(name)
            if keys is None:
                keys = self._name_keys_of(name)
            if known is None:
                op.check(keys[0], None)  # assumed unlimited: the commit fails if a limit was set
            else:
                op.check(known.limit)
                if known.limit.value is not None:
                    op.check(known.active)  # the counter is the slot: two claims of the last slot cannot both commit
            held = {"worker": worker, "until_ms": until_ms, "name": name}
            limited = known is not None and known.limit.value is not None
            names[name] = (held, encode_value(held), keys[2], keys[1], limited)
        per_name = dict.fromkeys(names, 0)
        pending = 0
        put = self.layout.put
        for candidate in picked:
            job = candidate.job
            job_id, name = job.id, job.name
            new = job.running(worker, now)
            op.check(candidate.entry)
            op.delete(ready_key(job.priority, job_id)).delete(ready_by_name_key(name, job.priority, job_id))
            put(op, job, new)
            held, held_encoded, name_encoded, _, limited = names[name]
            set_each_encoded(op, (lease_key(job_id),), held, held_encoded)
            set_each_encoded(op, (expiry_key(until_ms, job_id),), name, name_encoded)
            per_name[name] += 1
            if job.status is JobStatus.PENDING:
                pending += 1
            else:
                sums.count(job.status, new.status)
            drafts.append((new, until_ms, limited))
        # The counters move once per commit, not once per job: the same netted sums.
        for name, count in per_name.items():
            sums.add(names[name][3], count)
        sums.count(JobStatus.PENDING, JobStatus.RUNNING, pending)
        return drafts

    async def _claimed(self, drafts: Sequence[_Draft], worker: str, versionstamp: str) -> list[Lease]:
        leases = self._leases(drafts, worker, versionstamp)
        if self.on_event is not None:  # else not even a coroutine per job
            for claimed in leases:
                await self._emit(JobEventType.STARTED, claimed.job)
        return leases

    def _leases(self, drafts: Sequence[_Draft], worker: str, versionstamp: str) -> list[Lease]:
        """The leases of the claims a commit made at ``versionstamp`` (_claimed without the events)."""
        # Only a limited name's cached active count moves (LimitCache.claimed ignores the others): counted only then.
        limited_counts: dict[str, int] = {}
        for job, _, limited in drafts:
            if limited:
                limited_counts[job.name] = limited_counts.get(job.name, 0) + 1
        for name, count in limited_counts.items():
            self.limits.claimed(name, count, versionstamp)
        return [Lease(job, worker, until_ms, versionstamp, versionstamp, limited) for job, until_ms, limited in drafts]

    async def _try_commit(self, op: AtomicOperation) -> str | None:
        """Commit; None if a check failed or the commit is over Deno's limits (nothing was written either way)."""
        try:
            result = await op.commit()
        except CommitLimitError:
            return None
        return result.versionstamp if result.ok else None

    async def renew(self, held: Lease, lease: float = 30.0) -> Lease:
        """Extend a lease; LeaseLostError if it was lost (reaped after expiry, or the job deleted)."""
        job_id = check_lease_arg(held).job.id
        until_ms = ms_ceil(self.clock.now() + check_lease(lease))
        op = self.kv.atomic().check(lease_key(job_id), held.lease_versionstamp)
        op.set(lease_key(job_id), {"worker": held.worker, "until_ms": until_ms, "name": held.job.name})
        op.delete(expiry_key(held.until_ms, job_id)).set(expiry_key(until_ms, job_id), held.job.name)
        result = await op.commit()
        if not result.ok or result.versionstamp is None:
            raise LeaseLostError(f"Worker {held.worker} lost its lease on job {job_id}")
        return replace(held, until_ms=until_ms, lease_versionstamp=result.versionstamp)

    async def complete(self, held: Lease) -> Job:
        """Mark a claimed job completed, fenced by the lease (LeaseLostError if it was lost)."""
        new = check_lease_arg(held).job.replace(status=JobStatus.COMPLETED, completed_at=self.clock.now())
        await self._finish(held, new)
        await self._emit(JobEventType.COMPLETED, new)
        return new

    async def fail(self, held: Lease, error: str) -> Job:
        """Record a failed attempt: pending again after a backoff, or failed and dead-lettered after the last one."""
        new = self._after_failure(check_lease_arg(held).job, check_error(error))
        await self._finish(held, new)
        await self._emit_failure(new, error)
        return new

    async def promote_due(self) -> int:
        """Move delayed jobs whose time has come to the ready queue; returns how many moved."""
        now_ms = ms_floor(self.clock.now())
        # One more than a batch, with no end: the first entry not due yet tells when the next promotion is due.
        read = await self.kv.list(prefix=DELAYED, limit=PROMOTE_BATCH + 1).collect()
        entries = [entry for entry in read[:PROMOTE_BATCH] if int(entry.key[-2]) <= now_ms]
        later = [int(entry.key[-2]) for entry in read if int(entry.key[-2]) > now_ms]
        self.next_due = later[0] / 1000 if later else (None if len(read) > PROMOTE_BATCH else math.inf)
        if not entries:
            return 0
        op = self.kv.atomic()
        for entry in entries:
            job = Job.from_value(entry.value)
            op.check(entry).delete(entry.key)
            if job is not None:  # anything else is left for check_integrity to report
                op.set(ready_key(job.priority, job.id), entry.value)
                op.set(ready_by_name_key(job.name, job.priority, job.id), entry.value)
        op.sum(VERSION, 1)
        if not (await op.commit()).ok:
            self.next_due = None
            return 0  # lost to another promoter: the next poll retries
        return len(entries)

    async def reap_expired(self) -> int:
        """Put running jobs whose lease expired back to pending (or failed); returns how many."""
        end = (*EXPIRY, ms_floor(self.clock.now()) + 1)
        reaped = 0
        for entry in await self.kv.list(prefix=EXPIRY, end=end, limit=REAP_BATCH).collect():
            try:
                reaped += await self._reap_one(entry)
            except BackendError:  # the store failed (a file locked by another process), not the job: sweep again
                raise
            except Exception as exc:  # one job that cannot be put back must not stop the reaping of the others
                reaped += await self._bury_expired(entry, exc)
        return reaped

    async def _bury_expired(self, expiry: KvEntry, exc: Exception) -> int:
        job_id = expiry.key[-1]
        reason = f"its lease expired and it could not be scheduled again: {describe_error(exc)}"
        log.error("job %s: %s", job_id, reason)
        # If not even the dead letter can be written, the next sweep tries again.
        return 1 if isinstance(job_id, str) and await dead_letter(self, job_id, reason) else 0

    async def _reap_one(self, expiry: KvEntry) -> int:
        job_id = expiry.key[-1]
        assert isinstance(job_id, str)
        record, lease = await self.kv.get_many([record_key(job_id), lease_key(job_id)])
        job = Job.from_value(record.value)
        if job is None or lease.value is None or lease.value["until_ms"] != expiry.key[-2]:
            return 0  # completed, deleted or renewed since the list
        error = f"lease of worker {lease.value['worker']} expired"
        new = self._after_failure(job, error)
        op = self.kv.atomic().check(record).check(lease).check(expiry)
        self.layout.put(op, job, new)
        sums = Sums().count(job.status, new.status)
        self._leave_status(op, job, lease, sums)
        self._enter_status(op, new, sums)
        sums.into(op)
        if not (await op.commit()).ok:
            return 0
        await self._emit_failure(new, error)
        return 1

    # -- helpers ----------------------------------------------------------------------------------------

    async def _finish(self, held: Lease, new: Job) -> None:
        op = self.kv.atomic()
        sums = Sums()
        self._finish_into(op, ((held, new),), sums)
        sums.into(op)
        if not (await op.commit()).ok:
            raise LeaseLostError(
                f"Worker {held.worker} lost its lease on job {held.job.id}: its result was not written"
            )

    def _finish_into(self, op: AtomicOperation, finished: Sequence[tuple[Lease, Job]], sums: Sums) -> None:
        """Each job leaves running for its new status, in order, fenced by the versionstamps of its claim/last renewal;
        the counter sums go to ``sums`` (once per name and status change), which the caller adds to ``op``."""
        ended: dict[str, int] = {}
        moves: dict[tuple[JobStatus, JobStatus], int] = {}
        wake = False
        put = self.layout.put
        for held, new in finished:
            job = held.job
            job_id = job.id
            op.check(record_key(job_id), held.job_versionstamp).check(lease_key(job_id), held.lease_versionstamp)
            put(op, job, new)
            op.delete(lease_key(job_id)).delete(expiry_key(held.until_ms, job_id))
            ended[new.name] = ended.get(new.name, 0) + 1
            move = (job.status, new.status)
            moves[move] = moves.get(move, 0) + 1
            self._enter_status(op, new, sums)
            if held.limited:
                wake = True  # a slot of a limited name is free: wake the workers waiting for one
        for name, count in ended.items():
            sums.add(active_key(name), -count & MINUS_ONE)
        for (old_status, new_status), count in moves.items():
            sums.count(old_status, new_status, count)
        if wake:
            sums.add(VERSION, 1)

    async def _finish_unclaimed(self, finished: Sequence[tuple[Lease, Job]], done: Finished) -> None:
        """The outcomes in one commit without claims; one commit each if that fails too (a lease was lost)."""
        if len(finished) > 1:
            op = self.kv.atomic()
            sums = Sums()
            try:
                self._finish_into(op, finished, sums)
                sums.into(op)
                ok = (await op.commit()).ok
            except Exception:  # each on its own finds the outcome at fault
                ok = False
            if ok:
                for _, new in finished:
                    await self._emit_outcome(new)
                return
        await self._finish_each(finished, done)

    async def _finish_each(self, finished: Sequence[tuple[Lease, Job]], done: Finished) -> None:
        """Write outcomes one commit each; the leases found lost (their outcome was not written) and the outcomes
        that could not be written for an error go to ``done``."""
        for held, new in finished:
            try:
                await self._finish(held, new)
            except LeaseLostError:
                done.lost.append(held)
            except Exception as exc:
                done.failed.append((held, new, exc))
            else:
                await self._emit_outcome(new)

    async def _emit_outcome(self, new: Job) -> None:
        if new.status == JobStatus.COMPLETED:
            await self._emit(JobEventType.COMPLETED, new)
        else:
            await self._emit_failure(new, new.error or "")

    def _after_failure(self, job: Job, error: str) -> Job:
        now = self.clock.now()
        common = {"error": cut_error(error), "errors": with_error(job, error, now)}
        if job.attempts >= job.max_attempts:
            return job.replace(status=JobStatus.FAILED, failed_at=now, **common)
        backoff = self.backoff if job.backoff is None else Backoff.from_value(job.backoff)
        return job.replace(status=JobStatus.PENDING, run_at=now + backoff.delay(job.attempts, self.rng), **common)

    def _enqueue(self, op: AtomicOperation, job: Job, now: float, sums: Sums) -> None:
        # Compare in seconds: a job due now is ready now, whatever the sub-millisecond part of the clock.
        # Only a job due later is keyed by its time, rounded up so promotion can never start it early.
        # The queue entries hold the job itself, so a claim commits without reading the record.
        set_grouped(op, self._queue_entries(job, now, job.to_value()))
        sums.add(VERSION, 1)  # wake the idle workers: a job to claim, or an earlier due time to wait for

    @staticmethod
    def _queue_entries(job: Job, now: float, value: dict[str, Any]) -> list[tuple[Key, Any]]:
        """A pending job's queue entries: both ready entries, or its delayed entry."""
        if job.run_at <= now:
            return [
                (ready_key(job.priority, job.id), value),
                (ready_by_name_key(job.name, job.priority, job.id), value),
            ]
        return [(delayed_key(ms_ceil(job.run_at), job.id), value)]

    def _enter_status(self, op: AtomicOperation, job: Job, sums: Sums) -> None:
        """The queue entry of a job leaving the running state: a ready/delayed entry or a dead letter."""
        if job.status == JobStatus.PENDING:
            self._enqueue(op, job, self.clock.now(), sums)
        elif job.status == JobStatus.FAILED:
            op.set(dead_key(job.id), job.to_value())

    def _leave_status(self, op: AtomicOperation, job: Job, lease: KvEntry, sums: Sums) -> None:
        """Delete the queue entries of the job's current status (used by delete and the reaper)."""
        if job.status == JobStatus.PENDING:
            op.delete(ready_key(job.priority, job.id)).delete(ready_by_name_key(job.name, job.priority, job.id))
            op.delete(delayed_key(ms_ceil(job.run_at), job.id))
        elif job.status == JobStatus.FAILED:
            op.delete(dead_key(job.id))
        elif job.status == JobStatus.RUNNING and lease.value is not None:
            op.delete(lease.key).delete(expiry_key(int(lease.value["until_ms"]), job.id))
            sums.add(active_key(job.name), MINUS_ONE)

    async def _emit_failure(self, job: Job, error: str) -> None:
        kind = JobEventType.FAILED if job.status == JobStatus.FAILED else JobEventType.RETRYING
        await self._emit(kind, job, error)

    async def _emit(self, kind: JobEventType, job: Job, error: str | None = None) -> None:
        if self.on_event is None:
            return
        try:
            result = self.on_event(JobEvent(kind, job, error))
            if inspect.isawaitable(result):
                await result
        except Exception:  # the state change is committed; a broken listener must not undo the caller's work
            log.exception("event hook failed on %s of job %s", kind.value, job.id)


def _halves(
    finished: Sequence[tuple[Lease, Job]], picked: Sequence[Candidate]
) -> tuple[tuple[Sequence[tuple[Lease, Job]], Sequence[Candidate]], ...]:
    """A finish-and-claim share in two smaller ones (of at least two items): outcomes and claims halved alike."""
    if len(finished) == 1 and len(picked) == 1:
        return (finished, ()), ((), picked)
    h, g = (len(finished) + 1) // 2, (len(picked) + 1) // 2
    return (finished[:h], picked[:g]), (finished[h:], picked[g:])


#: Each status's counter key, built once (Sums.count moves two of them for every state change).
_COUNT_KEYS: Final = {status: count_key(status.value) for status in JobStatus}


class Sums:
    """The counter sums of one commit (status counts, active counts, the version key), netted per key: sums that
    cancel out (a job that ends and its successor of the same name claimed in the same commit: running -1 +1,
    active -1 +1) are left out of the commit, and several on one key are one sum. A counter whose value does not
    change needs no write: a claim that checked it decided on that same value. Sums are modulo 2**64 as KvU64's."""

    __slots__ = ("_by_key",)

    def __init__(self) -> None:
        self._by_key: dict[Key, int] = {}

    def add(self, key: Key, amount: int) -> Sums:
        self._by_key[key] = (self._by_key.get(key, 0) + amount) & MINUS_ONE
        return self

    def count(self, old: JobStatus | None, new: JobStatus | None, jobs: int = 1) -> Sums:
        """``jobs`` jobs move from status ``old`` to ``new`` (None: they are added, or deleted)."""
        if old != new and jobs:
            by_key = self._by_key
            if old is not None:
                key = _COUNT_KEYS[old]
                by_key[key] = (by_key.get(key, 0) - jobs) & MINUS_ONE
            if new is not None:
                key = _COUNT_KEYS[new]
                by_key[key] = (by_key.get(key, 0) + jobs) & MINUS_ONE
        return self

    def into(self, op: AtomicOperation) -> None:
        for key, amount in self._by_key.items():
            if amount:
                op.sum(key, amount)


def _u64(entry: KvEntry) -> int:
    return entry.value.value if isinstance(entry.value, KvU64) else 0


def check_lease_arg(held: Any) -> Lease:
    """A Lease as claim() returned it: renew, complete and fail take nothing else."""
    if not isinstance(held, Lease):
        raise InvalidJobOptionError(f"expected a Lease returned by claim(), got {short_repr(held)}")
    return held


def _check_filter_name(name: Any) -> str | None:
    if name is not None and not isinstance(name, str):
        raise InvalidJobOptionError(f"name must be a str or None, got {short_repr(name)}")
    return name
