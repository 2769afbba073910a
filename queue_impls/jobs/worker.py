"""Workers: claim jobs from a Queue, run their handlers with a renewed lease, record the outcome.

A worker claims only jobs it has a handler for; several workers (tasks or processes) may share one store.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..kv.errors import BackendError, DenoBridgeError, short_repr
from .claims import Candidate, read_candidates
from .clock import Timer, call_later
from .errors import InvalidJobOptionError, LeaseLostError, UnknownHandlerError
from .model import Job, JobStatus
from .outcomes import Batch, Group, Held
from .poison import dead_letter, describe_error
from .queue import Finished, Lease, Queue
from .validation import MAX_CONCURRENCY, MAX_WORKER_ID_CHARS, check_lease, check_worker_id, is_int
from .waiting import VersionWatch

log = logging.getLogger(__name__)

#: Pauses (seconds) before writing again the outcomes the store failed to write (a BackendError: a file locked by
#: another process, a dead bridge). Once they are used up the job is left to its lease: it runs again when that
#: expires. It is never dead-lettered for the store's failure: its handler did nothing wrong. A lease renewal the
#: store failed is tried again after the same pauses (then at its next due time, a third of the lease later).
OUTCOME_RETRY_PAUSES: tuple[float, ...] = (0.01, 0.05, 0.25)
#: Pauses (seconds, real time) before run_until_idle tries again a poll the store failed (a BackendError). Once they
#: are used up, or at once for a store gone for good (DenoBridgeError: the deno subprocess died), it raises the error
#: after its running jobs have ended (their outcomes written, or left to their leases). A started worker tries again
#: every poll_interval for as long as it runs, and stops polling only for a store gone for good.
POLL_RETRY_PAUSES: tuple[float, ...] = (0.01, 0.05, 0.25, 1.0)

Handler = Callable[[Job], Awaitable[Any] | Any]


class Worker:
    """Runs up to ``concurrency`` jobs at once. ``lease`` seconds per claim, renewed every lease/3 while running.

    The commit that writes a job's outcome also claims the next job, from the candidates the last read of the ready
    queue left over (or from a fresh read): one list and one commit per job at most. Outcomes ready in the same
    event-loop turn share that commit (a group commit: the first waits one loop pass for the others, unless no
    other job of this worker is running), which claims as many next jobs. With ``batch_size`` b the outcomes of
    b jobs claimed together are written together (in one group), which claims the next b."""

    def __init__(
        self,
        queue: Queue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 1,
        poll_interval: float = 1.0,
        lease: float = 30.0,
        worker_id: str | None = None,
        batch_size: int = 1,
        idle_check: float = 60.0,
    ) -> None:
        self.queue = queue
        self.handlers = _check_handlers(handlers)
        if not is_int(concurrency) or not 1 <= concurrency <= MAX_CONCURRENCY:
            raise InvalidJobOptionError(
                f"concurrency must be an int in 1..{MAX_CONCURRENCY}, got {short_repr(concurrency)}"
            )
        self.concurrency = int(concurrency)
        self.poll_interval = check_lease(poll_interval, "poll_interval")
        self.lease = check_lease(lease)
        default_id = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"[-MAX_WORKER_ID_CHARS:]
        self.worker_id = check_worker_id(default_id if worker_id is None else worker_id)
        if not is_int(batch_size) or not 1 <= batch_size <= self.concurrency:
            raise InvalidJobOptionError(
                f"batch_size must be an int in 1..concurrency ({self.concurrency}), got {short_repr(batch_size)}"
            )
        self.batch_size = int(batch_size)
        self.idle_check = check_lease(idle_check, "idle_check")
        self._watching = False  # start(): idle waits follow the queue-version key instead of a poll timer
        self._promote_stale = True  # the queue changed since the last promote_due (a delayed job may be new)
        self._candidates: list[Candidate] = []  # ready jobs the last read left over, best first
        self._reading: asyncio.Future[None] | None = None  # the read of the ready queue in flight, if any
        self._claiming: set[str] = set()  # ids in a claim commit of ours in flight: our other tasks leave them alone
        self.processed = 0  # attempts whose outcome this worker committed
        self.lost = 0  # attempts whose outcome was not written: the lease was lost, or the store kept failing
        self.dead_lettered = 0  # jobs this worker dead-lettered because their outcome could not be recorded
        self._tasks: set[asyncio.Task[None]] = set()
        self._running = 0  # jobs of ours whose outcome is not known yet: a group commit waits for them one loop pass
        self._group: Group | None = None  # the group commit open to outcomes that become ready, if any
        # Set when a job task ends leaving a slot free (or crashed): a job that ends after its own outcome commit
        # claimed its successor leaves none, so the wait for a free slot sleeps through it. A job whose outcome
        # waits in a batch or a group ends only after that outcome's commit, for the same reason.
        self._slot_freed = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._next_sweep = float("-inf")  # when poll() next promotes due jobs and reaps expired leases
        self._crash: BaseException | None = None  # an unexpected error of a job task, re-raised by the run methods
        # Running jobs waiting for their next lease renewal (a dict as an ordered set), and one timer for all of them,
        # due at the earliest of their due times (inf: none armed): a timer per job cost a timer handle, a heap push
        # and a cancellation per job, most of them ending long before their first renewal.
        self._renewing: dict[Held, None] = {}
        self._renewal_timer: Timer | None = None
        self._renewal_at = math.inf

    # -- running -------------------------------------------------------------------------------------

    async def run_until_idle(self) -> int:
        """Run jobs until none is ready and none of ours is running; returns how many attempts were processed."""
        before = self.processed
        while True:
            claimed, swept = await self._poll_patiently(sweep=False)
            if not self._tasks and claimed == 0 and not swept:
                claimed, _ = await self._poll_patiently(sweep=True)  # idle only after a poll that promoted due jobs
            if not self._tasks:
                if claimed == 0:
                    return self.processed - before
                continue
            if self._forget_unstarted():
                continue
            self._slot_freed.clear()
            await self._slot_freed.wait()
            self._raise_crash()

    async def _poll_patiently(self, *, sweep: bool) -> tuple[int, bool]:
        """_poll, tried again after each of POLL_RETRY_PAUSES while the store fails it; then its error, raised once
        the running jobs have ended (abandoned, the jobs whose handlers had returned would run again)."""
        for pause in POLL_RETRY_PAUSES:
            try:
                return await self._poll(sweep=sweep)
            except DenoBridgeError:
                break
            except BackendError as exc:
                log.warning("Worker %s: poll failed, trying again in %g s: %s", self.worker_id, pause, exc)
                await asyncio.sleep(pause)
        try:
            return await self._poll(sweep=sweep)
        except BackendError:
            if self._tasks:
                await asyncio.wait(self._tasks)
            raise

    async def start(self) -> None:
        """Poll in the background every ``poll_interval`` until stop()."""
        if self._runner is None:
            self._stopping.clear()
            self._runner = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Stop polling and wait for the running jobs to finish."""
        self._stopping.set()
        if self._runner is not None:
            await self._runner
            self._runner = None
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._raise_crash()

    async def poll(self) -> int:
        """One poll: promote due jobs and reap expired leases (at most once per poll_interval), then claim into
        the free slots. Returns how many jobs were claimed."""
        claimed, _ = await self._poll(sweep=False)
        return claimed

    async def _poll(self, *, sweep: bool) -> tuple[int, bool]:
        free = self.concurrency - len(self._tasks)
        if free <= 0:
            return 0, False
        now = self.queue.clock.now()
        swept = sweep or now >= self._next_sweep  # not on every poll: a busy worker would pay two reads per job
        if self._must_promote(now, swept):
            self._promote_stale = False
            await self.queue.promote_due()
        if swept:
            await self.queue.reap_expired()
            self._next_sweep = now + self.poll_interval
        leases = await self._claim(free)
        return len(leases), swept

    def _must_promote(self, now: float, swept: bool) -> bool:
        """A polling worker promotes on each sweep. A watching one knows when the next delayed job is due, and a
        new delayed job moves the version key: it promotes then (and at once), else never."""
        if not self._watching:
            return swept
        due = self.queue.next_due
        return self._promote_stale or due is None or now >= due

    async def _claim(self, free: int) -> list[Lease]:
        mine = await self._reserve(free)
        try:
            leases = await self.queue.claim_from(self.worker_id, mine, self.handlers, lease=self.lease, max_jobs=free)
            if not leases and mine:  # all taken by other workers (or of names at their limit): read on
                leases = await self.queue.claim_scan(self.worker_id, self.handlers, lease=self.lease, max_jobs=free)
        finally:
            self._claiming.difference_update(c.job.id for c in mine)
        self._start(leases)
        return leases

    async def _reserve(self, want: int) -> list[Candidate]:
        """Up to ``want`` candidates for one claim commit: left over from the last read, else from a fresh read
        (whose surplus becomes the new leftovers); never one that another task of ours is claiming."""
        if want <= 0:
            return []
        if len(self._free_candidates()) < want:
            await self._read_candidates()
        return self._take(want)

    def _take(self, want: int) -> list[Candidate]:
        """_reserve's end: up to ``want`` free candidates, now ours to claim (their ids in _claiming)."""
        free = self._free_candidates()
        mine = free[:want]
        self._claiming.update(c.job.id for c in mine)
        # What is left over: the free ones after ours (a job is a candidate once; those another claim of ours holds
        # are dropped with it, as that claim takes them or leaves them to the next read)
        self._candidates = free[want:]
        return mine

    async def _read_candidates(self) -> None:
        """One read of the ready queue for all our slots; tasks that need it meanwhile wait for that read."""
        if self._reading is not None:
            await asyncio.shield(self._reading)
            return
        self._reading = asyncio.get_running_loop().create_future()
        try:
            fresh = await read_candidates(self.queue.kv, self.handlers, self.concurrency)
            self._candidates = [c for c in fresh if c.job.id not in self._claiming]
        finally:
            self._reading.set_result(None)
            self._reading = None

    def _free_candidates(self) -> list[Candidate]:
        if not self._claiming:
            return self._candidates
        return [c for c in self._candidates if c.job.id not in self._claiming]

    def _start(self, leases: list[Lease]) -> None:
        if not leases:
            return
        create_task = asyncio.get_running_loop().create_task  # asyncio.create_task's wrapper adds only a call
        if self.batch_size == 1:  # each outcome written on its own (in a group commit): no batch to wait for
            self._running += len(leases)
            for lease in leases:
                held = Held(lease)
                held.task = task = create_task(self._run(held, None))
                self._tasks.add(task)
            return
        for i in range(0, len(leases), self.batch_size):
            group = leases[i : i + self.batch_size]
            batch = Batch(len(group))
            self._running += len(group)
            for lease in group:
                held = Held(lease)
                held.task = task = create_task(self._run(held, batch))
                self._tasks.add(task)

    def _job_ended(self, held: Held) -> None:
        """A job task's last step: its slot is free (unless its outcome commit claimed a successor, a task of its own
        already counted)."""
        tasks = self._tasks
        if held.task is not None:
            tasks.discard(held.task)
            held.task = None  # no task -> coroutine -> held -> task cycle left for the collector
        # No job of ours running: no renewal timer left behind. Checked here, after the job's outcome commit, not when
        # its handler returns: the successor that commit claimed keeps the timer armed (at concurrency 1, a timer
        # cancelled and another armed for every job otherwise).
        if not self._running and not self._renewing:
            self._disarm_renewals()
        if len(tasks) < self.concurrency or self._crash is not None:
            self._slot_freed.set()

    def _forget_unstarted(self) -> bool:
        """Drop the job tasks cancelled before their first step (their _run never ran to free the slot); True if
        there were any."""
        ended = {task for task in self._tasks if task.done()}
        self._tasks -= ended
        return bool(ended)

    def _raise_crash(self) -> None:
        if self._crash is not None:
            crash, self._crash = self._crash, None
            raise crash

    async def _loop(self) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        watch = VersionWatch(self.queue.kv)
        await asyncio.wait({stop, asyncio.create_task(watch.started.wait())}, return_when=asyncio.FIRST_COMPLETED)
        try:
            while not self._stopping.is_set():
                self._watching = watch.alive
                if watch.changed.is_set():
                    watch.changed.clear()  # changes from here on wake the wait below; this poll sees the earlier ones
                    self._promote_stale = True
                try:
                    claimed = await self.poll()
                except DenoBridgeError:
                    log.exception("Worker %s stops polling: its store is gone", self.worker_id)
                    raise
                except BackendError as exc:  # a file locked by another process: the worker goes on after a pause
                    log.warning("Worker %s: poll failed, again in %g s: %s", self.worker_id, self.poll_interval, exc)
                    await self._pause(stop)
                    continue
                if claimed and len(self._tasks) < self.concurrency:
                    continue  # there may be more ready jobs
                await self._wait(stop, watch, claimed)
        finally:
            stop.cancel()
            await watch.close()
            self._watching = False

    async def _pause(self, stop: asyncio.Task[Any]) -> None:
        """poll_interval on the queue's clock, or until stop()."""
        pause = asyncio.create_task(self.queue.clock.sleep(self.poll_interval))
        await asyncio.wait({stop, pause}, return_when=asyncio.FIRST_COMPLETED)
        pause.cancel()

    async def _wait(self, stop: asyncio.Task[Any], watch: VersionWatch, claimed: int) -> None:
        """Until a slot of ours is free, the version key moves, the next delayed job is due or the re-check is due."""
        waits: set[asyncio.Task[Any]] = {stop}
        extra: list[asyncio.Task[Any]] = []
        if self._tasks:
            self._slot_freed.clear()
            extra.append(asyncio.create_task(self._slot_freed.wait()))
        if not claimed:
            if watch.alive:
                extra.append(asyncio.create_task(watch.changed.wait()))
            extra.append(asyncio.create_task(self.queue.clock.sleep(self._idle_timeout(watch.alive))))
        await asyncio.wait(waits | set(extra), return_when=asyncio.FIRST_COMPLETED)
        for task in extra:
            task.cancel()

    def _idle_timeout(self, watching: bool) -> float:
        """Watching: until the next delayed job is due, at most idle_check (the safety re-check, which also reaps
        leases of workers that died). Not watching: poll_interval, as a polling worker does."""
        if not watching:
            return self.poll_interval
        due = self.queue.next_due
        until_due = self.poll_interval if due is None else due - self.queue.clock.now()
        return max(0.0, min(self.idle_check, until_due))

    # -- one job ---------------------------------------------------------------------------------------

    async def _run(self, held: Held, batch: Batch | None) -> None:
        """One job's attempt, its outcome written; ends by freeing its slot itself (_job_ended), not by a done
        callback (a loop pass, a handle and a call per job). An unexpected error is kept for the run methods."""
        lease = held.lease
        try:
            outcome: Job | None = None
            crashed = True
            try:
                self._renew_later(held)
                error: str | None = None
                try:
                    result = self.handlers[lease.job.name](lease.job)
                    if inspect.isawaitable(result):
                        await result
                except Exception as exc:
                    error = describe_error(exc)
                finally:
                    if batch is None:  # a batch's jobs keep their leases renewed until the batch's outcomes are written
                        renewal = self._end_renewals(held)  # _stop_renewing, without its coroutine
                        if renewal is not None:
                            await self._let_renewal_finish(held, renewal)
                try:
                    outcome = self.queue.outcome(held.lease, error)
                except Exception as exc:  # the outcome cannot be computed (a backoff past every limit): this job alone
                    await self._stop_renewing(held)
                    await self._bury(held.lease, error, exc)
                crashed = False
            finally:
                self._running -= 1
                if crashed:
                    self._end_renewals(held)
                if batch is not None:
                    batch.waiting -= 1
                    if outcome is not None:
                        batch.outcomes.append((held, outcome))
                    if batch.waiting == 0 and (crashed or not batch.outcomes):
                        batch.release()  # nothing to write, or this task crashed: the batch's other jobs end now
            if batch is None:  # a batch of one: nobody waits for this job's outcome but itself
                if outcome is not None:  # _write and _join_group's joining inline (no coroutine of theirs per job)
                    group = self._group
                    if group is not None:
                        group.outcomes.append((held.lease, outcome))
                        await group.written.wait()
                    elif not self._running:
                        await self._record([(held.lease, outcome)])  # no other job of ours can join: at once
                    else:
                        await self._join_group([(held.lease, outcome)])
                return
            if batch.waiting:
                await batch.wait()  # its last job writes this one's outcome too
                self._end_renewals(held)  # ended by that write, or now if a crash released the batch unwritten
                return
            try:
                if batch.outcomes:
                    await self._write(await self._final_leases(batch.outcomes))
            finally:
                batch.release()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # not raised: run_until_idle and stop re-raise it (_raise_crash)
            if self._crash is None:
                self._crash = exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: the event loop raises them too
            if self._crash is None:
                self._crash = exc
            raise
        finally:
            self._job_ended(held)

    async def _write(self, outcomes: list[tuple[Lease, Job]]) -> None:
        if self._group is None and not self._running:
            await self._record(outcomes)  # no other job of ours can join: at once, no loop pass
        else:
            await self._join_group(outcomes)

    async def _final_leases(self, outcomes: list[tuple[Held, Job]]) -> list[tuple[Lease, Job]]:
        """A batch's outcomes with each job's last lease: its renewals ended (one in flight let finish first), so the
        lease its outcome commit checks is the one in the store. Renewed until then, a job that ended long before the
        batch's last keeps its lease: no other worker reaps it and runs it again."""
        for held, _ in outcomes:
            await self._stop_renewing(held)
        if not self._running and not self._renewing:
            self._disarm_renewals()
        return [(held.lease, new) for held, new in outcomes]

    async def _stop_renewing(self, held: Held) -> None:
        renewal = self._end_renewals(held)
        if renewal is not None:
            await self._let_renewal_finish(held, renewal)

    async def _join_group(self, outcomes: list[tuple[Lease, Job]]) -> None:
        """Have ``outcomes`` written by the open group commit, or open one that waits one loop pass for the outcomes
        that become ready meanwhile (other jobs of ours are running), then writes them all."""
        group = self._group
        if group is not None:
            group.outcomes += outcomes
            await group.written.wait()
            return
        group = self._group = Group(list(outcomes))
        try:
            await asyncio.sleep(0)
        finally:
            self._group = None
        try:
            await self._record(group.outcomes)
        finally:
            group.written.set()

    async def _record(self, outcomes: list[tuple[Lease, Job]]) -> None:
        """Write the outcomes and claim as many next jobs in the same commit (none once stopping). Outcomes the store
        failed to write are tried again after each of OUTCOME_RETRY_PAUSES, then left to their leases."""
        want = 0 if self._stopping.is_set() else len(outcomes)
        try:
            mine = await self._reserve(want)  # the commit that writes the outcomes claims the next jobs
        except BackendError:  # the read failed: the outcomes are written all the same, claiming nothing
            mine, want = [], 0
        try:
            done = await self.queue.finish_and_claim(
                outcomes, self.worker_id, mine, self.handlers, lease=self.lease, max_jobs=want
            )
        finally:
            self._claiming.difference_update(c.job.id for c in mine)
        self._start(done.claimed)
        if done.lost or done.failed:
            unwritten = await self._settle(done, len(outcomes))
        else:  # every outcome written (the usual case): _settle would only count them
            self.processed += len(outcomes)
            return
        for pause in OUTCOME_RETRY_PAUSES:
            if not unwritten:
                return
            await asyncio.sleep(pause)  # real time, not the queue's clock: another process's lock is held in it
            done = await self.queue.finish_and_claim(unwritten, self.worker_id, max_jobs=0)
            unwritten = await self._settle(done, len(unwritten))
        self.lost += len(unwritten)
        for held, _ in unwritten:
            log.warning(
                "job %s: the store failed to write its outcome; it runs again when its lease expires", held.job.id
            )

    async def _settle(self, done: Finished, tried: int) -> list[tuple[Lease, Job]]:
        """Count what finish_and_claim did with ``tried`` outcomes; bury those that can never be written (a value
        past a limit). Returns those the store failed to write (a BackendError), to be tried again."""
        unwritten = [(held, new) for held, new, exc in done.failed if isinstance(exc, BackendError)]
        self.processed += tried - len(done.lost) - len(done.failed)
        self.lost += len(done.lost)
        for held in done.lost:
            log.warning("Worker %s lost its lease on job %s: its result was not written", held.worker, held.job.id)
        for held, new, exc in done.failed:
            if not isinstance(exc, BackendError):
                await self._bury(held, new.error if new.status is not JobStatus.COMPLETED else None, exc)
        return unwritten

    async def _bury(self, lease: Lease, error: str | None, exc: Exception) -> None:
        """Dead-letter a job whose outcome could not be recorded, with both errors; the worker goes on."""
        outcome = "completed" if error is None else f"failed ({error})"
        reason = f"the attempt {outcome} but could not be recorded: {describe_error(exc)}"
        log.error("job %s: %s", lease.job.id, reason)
        if await dead_letter(self.queue, lease.job.id, reason):
            self.processed += 1
            self.dead_lettered += 1

    def _renew_later(self, held: Held) -> None:
        """The job's next renewal is due lease/3 from now."""
        delay = self.lease / 3
        held.due = due = self.queue.clock.now() + delay
        self._renewing[held] = None
        if due < self._renewal_at:  # the first waiting, or the clock went back
            self._arm_renewals(due, delay)

    def _arm_renewals(self, due: float, delay: float) -> None:
        if self._renewal_timer is not None:
            self._renewal_timer.cancel()
        self._renewal_at = due
        self._renewal_timer = call_later(self.queue.clock, delay, self._renewals_due)

    def _disarm_renewals(self) -> None:
        """No job of ours is running: no renewal timer left behind. (While some run, the timer stays armed for a due
        time that may have left with its job: it then finds nothing due and re-arms, once per lease/3 at most,
        instead of a cancellation and a new timer for every job that ends before its first renewal.)"""
        if self._renewal_timer is not None:
            self._renewal_timer.cancel()
            self._renewal_timer, self._renewal_at = None, math.inf

    def _renewals_due(self) -> None:
        """The renewal timer: start the renewals due by the time it was armed for, arm it for the next one."""
        at, self._renewal_at, self._renewal_timer = self._renewal_at, math.inf, None
        for held in [held for held in self._renewing if held.due <= at]:
            del self._renewing[held]
            self._start_renewal(held)
        if self._renewing:
            due = min(held.due for held in self._renewing)
            self._arm_renewals(due, max(0.0, due - self.queue.clock.now()))

    def _start_renewal(self, held: Held) -> None:
        if not held.ended:
            held.renewal = asyncio.create_task(self._renew(held))

    async def _renew(self, held: Held) -> None:
        async with held.lock:
            for pause in (*OUTCOME_RETRY_PAUSES, None):
                try:
                    held.lease = await self.queue.renew(held.lease, self.lease)
                except LeaseLostError as exc:
                    log.warning("%s", exc)
                    return
                except BackendError:  # another process's lock: again at once, not a third of the lease later
                    if pause is not None:
                        await asyncio.sleep(pause)
                        continue
                    log.exception("renewing the lease on job %s failed", held.lease.job.id)
                except Exception:  # the lease still has two thirds to run: try again next time
                    log.exception("renewing the lease on job %s failed", held.lease.job.id)
                break
        if not held.ended:
            self._renew_later(held)

    def _end_renewals(self, held: Held) -> asyncio.Task[None] | None:
        """No renewal after this. Returns the renewal in flight, if any: it must finish first (_let_renewal_finish)."""
        held.ended = True
        self._renewing.pop(held, None)
        renewal = held.renewal
        return renewal if renewal is not None and not renewal.done() else None

    async def _let_renewal_finish(self, held: Held, renewal: asyncio.Task[None]) -> None:
        """Cancelling a renewal mid-commit would lose its new versionstamp, and with it the fencing token the outcome
        commit checks: cancel it only while it waits for the lock, else let it finish."""
        async with held.lock:
            renewal.cancel()
        await asyncio.wait([renewal])


def _check_handlers(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    if not isinstance(handlers, Mapping) or not handlers:
        raise UnknownHandlerError("handlers must be a non-empty mapping of job name -> callable")
    for name, handler in handlers.items():
        if not isinstance(name, str) or not name:
            raise UnknownHandlerError(f"handler names must be non-empty str, got {short_repr(name)}")
        if not callable(handler):
            raise UnknownHandlerError(f"handler for job {name!r} is not callable: {short_repr(handler)}")
    return dict(handlers)
