"""Workers: claim jobs from a Queue, run their handlers with a renewed lease, record the outcome.

A worker claims only jobs it has a handler for; several workers (tasks or processes) may share one store.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..kv.errors import short_repr
from .errors import InvalidJobOptionError, LeaseLostError, UnknownHandlerError
from .model import Job
from .poison import dead_letter, describe_error
from .queue import Lease, Queue
from .validation import MAX_CONCURRENCY, MAX_WORKER_ID_CHARS, check_lease, check_worker_id, is_int

log = logging.getLogger(__name__)

Handler = Callable[[Job], Awaitable[Any] | Any]


class _Held:
    """The lease of one running job; the renewer replaces it, under a lock the finisher takes too."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.lock = asyncio.Lock()


class Worker:
    """Runs up to ``concurrency`` jobs at once. ``lease`` seconds per claim, renewed every lease/3 while running."""

    def __init__(
        self,
        queue: Queue,
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 1,
        poll_interval: float = 1.0,
        lease: float = 30.0,
        worker_id: str | None = None,
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
        self.processed = 0  # attempts whose outcome this worker committed
        self.lost = 0  # attempts whose lease was lost before the outcome could be written
        self.dead_lettered = 0  # jobs this worker dead-lettered because their outcome could not be recorded
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._next_sweep = float("-inf")  # when poll() next promotes due jobs and reaps expired leases
        self._crash: BaseException | None = None  # an unexpected error of a job task, re-raised by the run methods

    # -- running -------------------------------------------------------------------------------------

    async def run_until_idle(self) -> int:
        """Run jobs until none is ready and none of ours is running; returns how many attempts were processed."""
        before = self.processed
        while True:
            claimed, swept = await self._poll(sweep=False)
            if not self._tasks and claimed == 0 and not swept:
                claimed, _ = await self._poll(sweep=True)  # idle only after a poll that promoted due jobs
            if not self._tasks:
                if claimed == 0:
                    return self.processed - before
                continue
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            self._raise_crash()

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
        swept = sweep or now >= self._next_sweep
        if swept:  # not on every poll: a busy worker would pay two extra reads per job
            await self.queue.promote_due()
            await self.queue.reap_expired()
            self._next_sweep = now + self.poll_interval
        leases = await self.queue.claim(self.worker_id, self.handlers, lease=self.lease, max_jobs=free)
        for lease in leases:
            task = asyncio.create_task(self._run(lease))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(leases), swept

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None and self._crash is None:
            self._crash = task.exception()

    def _raise_crash(self) -> None:
        if self._crash is not None:
            crash, self._crash = self._crash, None
            raise crash

    async def _loop(self) -> None:
        stop = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                claimed = await self.poll()
                if claimed and len(self._tasks) < self.concurrency:
                    continue  # there may be more ready jobs
                waits: set[asyncio.Task[Any]] = {stop, *self._tasks}
                sleep = asyncio.create_task(self.queue.clock.sleep(self.poll_interval)) if not claimed else None
                if sleep is not None:
                    waits.add(sleep)
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if sleep is not None and not sleep.done():
                    sleep.cancel()
        finally:
            stop.cancel()

    # -- one job ---------------------------------------------------------------------------------------

    async def _run(self, lease: Lease) -> None:
        held = _Held(lease)
        renewer = asyncio.create_task(self._keep_renewed(held))
        error: str | None = None
        try:
            result = self.handlers[lease.job.name](lease.job)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            error = describe_error(exc)
        finally:
            async with held.lock:  # never cancel a renewal mid-commit: its new versionstamp would be lost
                renewer.cancel()
            await asyncio.wait([renewer])
        await self._record(held.lease, error)

    async def _record(self, lease: Lease, error: str | None) -> None:
        try:
            if error is None:
                await self.queue.complete(lease)
            else:
                await self.queue.fail(lease, error)
            self.processed += 1
        except LeaseLostError as exc:
            self.lost += 1
            log.warning("%s", exc)
        except Exception as exc:  # the outcome could not be written (a backoff past every limit, a store error)
            await self._bury(lease, error, exc)

    async def _bury(self, lease: Lease, error: str | None, exc: Exception) -> None:
        """Dead-letter a job whose outcome could not be recorded, with both errors; the worker goes on."""
        outcome = "completed" if error is None else f"failed ({error})"
        reason = f"the attempt {outcome} but could not be recorded: {describe_error(exc)}"
        log.error("job %s: %s", lease.job.id, reason)
        if await dead_letter(self.queue, lease.job.id, reason):
            self.processed += 1
            self.dead_lettered += 1

    async def _keep_renewed(self, held: _Held) -> None:
        while True:
            await self.queue.clock.sleep(self.lease / 3)
            async with held.lock:
                try:
                    held.lease = await self.queue.renew(held.lease, self.lease)
                except LeaseLostError as exc:
                    log.warning("%s", exc)
                    return
                except Exception:  # a store hiccup: the lease still has two thirds to run, try again next time
                    log.exception("renewing the lease on job %s failed", held.lease.job.id)


def _check_handlers(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    if not isinstance(handlers, Mapping) or not handlers:
        raise UnknownHandlerError("handlers must be a non-empty mapping of job name -> callable")
    for name, handler in handlers.items():
        if not isinstance(name, str) or not name:
            raise UnknownHandlerError(f"handler names must be non-empty str, got {short_repr(name)}")
        if not callable(handler):
            raise UnknownHandlerError(f"handler for job {name!r} is not callable: {short_repr(handler)}")
    return dict(handlers)
