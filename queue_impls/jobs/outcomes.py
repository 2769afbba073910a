"""What a worker holds while its jobs run and their outcomes wait to be written: each job's lease (renewed until
then), the batches whose outcomes are written together and the group commit open to the outcomes of one loop turn."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from .model import Job
from .queue import Lease


class Held:
    """The lease of one running job; a renewal replaces it, under a lock the finisher takes too. Renewals are due
    every lease/3, on the worker's one renewal timer: a job that ends before its first costs no task, no timer and no
    wake-up for them."""

    __slots__ = ("_lock", "due", "ended", "lease", "renewal", "task")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self._lock: asyncio.Lock | None = None  # made by the first renewal: most jobs end before theirs
        self.due = 0.0  # when (the queue clock's now()) its next renewal is due, while it waits for it
        self.renewal: asyncio.Task[None] | None = None  # the renewal started by the last timer, if any
        self.ended = False  # no renewal starts from now on (its handler returned; in a batch, the batch's did)
        self.task: asyncio.Task[None] | None = None  # the task running the job (the worker's slot it takes)

    @property
    def lock(self) -> asyncio.Lock:
        """Taken by a renewal while it replaces the lease, and by the finisher that lets a renewal in flight finish."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock


class Written:
    """Set once, when some outcomes are written; the jobs whose outcomes they are wait for it. Each waiter awaits a
    future of its own, so one that is cancelled cancels nothing the others wait for (as ``asyncio.shield`` of one
    shared future would guard it, at a future and a callback more per waiter)."""

    __slots__ = ("_waiters", "done")

    def __init__(self) -> None:
        self._waiters: list[asyncio.Future[None]] = []
        self.done = False

    def wait(self) -> Awaitable[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.done:
            future.set_result(None)
        else:
            self._waiters.append(future)
        return future

    def set(self) -> None:
        self.done = True
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():  # not cancelled
                future.set_result(None)


class Batch:
    """Jobs claimed together whose outcomes are written together: the last one to finish writes them all. The
    others wait for that write, so their slots stay taken until the commit that claims their successors, and their
    leases are renewed until it."""

    def __init__(self, size: int) -> None:
        self.waiting = size
        self.outcomes: list[tuple[Held, Job]] = []  # each job's lease as its last renewal left it
        self._written = Written()

    def wait(self) -> Awaitable[None]:
        return self._written.wait()

    def release(self) -> None:
        if not self._written.done:
            self._written.set()


class Group:
    """Outcomes ready in one event-loop turn, written in one commit (a group commit) by the first to arrive."""

    def __init__(self, outcomes: list[tuple[Lease, Job]]) -> None:
        self.outcomes = outcomes
        self.written = Written()
