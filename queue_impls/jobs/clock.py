"""Time for the queue, injectable: the system clock in production, a fake one that tests move by hand."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""

    async def sleep(self, seconds: float) -> None:
        """Wait until now() has moved on by ``seconds``."""


class Timer(Protocol):
    def cancel(self) -> Any:
        """Stop the timer: its callback will not run (a no-op once it has run)."""


def call_later(clock: Clock, seconds: float, callback: Callable[[], object]) -> Timer:
    """Run ``callback`` once ``clock`` has moved on by ``seconds``: by the clock's own ``call_later`` when it has one
    (a timer, no task), else by a task that sleeps on the clock (any Clock)."""
    own = getattr(clock, "call_later", None)
    if own is not None:
        timer: Timer = own(seconds, callback)
        return timer
    return asyncio.get_running_loop().create_task(_after(clock, seconds, callback))


async def _after(clock: Clock, seconds: float, callback: Callable[[], object]) -> None:
    await clock.sleep(seconds)
    callback()


class SystemClock:
    def now(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(seconds, callback)


class FakeClock:
    """A clock that moves only when told to: ``advance()`` wakes every sleeper whose time has come."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        await future

    def call_later(self, seconds: float, callback: Callable[[], object]) -> Timer:
        """A timer on this clock: a sleeper (counted by ``sleepers``) until ``advance()`` reaches it."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.add_done_callback(lambda f: None if f.cancelled() else callback())
        if seconds <= 0:
            future.set_result(None)
        else:
            heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), future))
        return future

    async def advance(self, seconds: float) -> None:
        """Move time on and let the woken sleepers run until they block again."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        for _ in range(20):  # a few loop turns: woken tasks run their next step
            await asyncio.sleep(0)

    async def wait_for_sleepers(self, count: int = 1, timeout: float = 5.0) -> None:
        """Wait (in real time, at most ``timeout`` s) until ``count`` tasks sleep on this clock: a background
        loop that does real I/O (a SQLite thread) has then finished its step and the test may move time on."""
        deadline = time.monotonic() + timeout
        while self.sleepers < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.sleepers} tasks sleeping on the fake clock after {timeout} s, not {count}")
            await asyncio.sleep(0.001)

    @property
    def sleepers(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())
