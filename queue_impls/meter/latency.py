"""Injected network latency: make a local store take as long as a remote one, and predict it from counts.

Presets come from Deno Deploy's published KV read latencies (see docs/counting.md).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

from ..kv.errors import InvalidArgumentError
from .counts import KvCounts

#: From this long before a deadline the timer checks the clock on every pass of the loop (a busy wait that lets the
#: loop's other work run). Before that it sleeps: an alarm thread wakes the loop (asyncio's own timers wait whole
#: milliseconds on Linux, epoll's timeout rounded up), with a loop timer at the deadline itself as a safety net.
SPIN_S: Final = 0.0003
#: An alarm thread with nothing to do for this long ends; the next wait starts a new one.
_ALARM_IDLE_S: Final = 1.0


class PreciseTimer:
    """Wakes waiters on one event loop at their deadlines (the loop's clock), to within one pass of the loop.

    ``asyncio.sleep`` of less than a millisecond waits a whole one on Linux (epoll's timeout is in milliseconds,
    rounded up). Here an alarm thread (a condition-variable wait, precise to tens of microseconds) wakes the loop
    ``SPIN_S`` before the earliest deadline; from there the timer checks the clock on every pass of the loop and wakes
    each waiter whose deadline has passed. One timer per loop serves every waiter, so concurrent round trips cost one
    clock check per pass, and the loop's other tasks, callbacks and I/O run between the checks. The process sleeps
    until ``SPIN_S`` before each deadline: a busy wait of a millisecond per round trip made a process that shares its
    CPU lose its time slices to the other processes there.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._heap: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._spinning: asyncio.Handle | None = None  # the next pass's check
        self._safety: asyncio.TimerHandle | None = None  # a loop timer at the earliest deadline
        self._alarm = _Alarm(loop, self._tick)

    def wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> asyncio.Future[None] | None:
        """A future that completes at ``deadline`` (``loop.time()`` clock), or None when it has passed already."""
        if deadline <= loop.time():
            return None
        future: asyncio.Future[None] = loop.create_future()
        future.add_done_callback(self._on_done)
        heapq.heappush(self._heap, (deadline, next(self._order), future))
        self._arm(loop)
        return future

    def _on_done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():  # re-arm for the waiters left, or drop the timers (they hold the loop) if none
            self._arm(future.get_loop())

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        heap = self._heap
        while heap and heap[0][2].done():  # cancelled waiters
            heapq.heappop(heap)
        if not heap:
            if self._safety is not None:
                self._safety.cancel()
                self._safety = None
            return
        deadline = heap[0][0]
        remaining = deadline - loop.time()
        if remaining <= SPIN_S:
            if self._spinning is None:
                self._spinning = loop.call_soon(self._tick, loop, "spin")
            return
        if self._safety is None or self._safety.when() > deadline:
            if self._safety is not None:
                self._safety.cancel()
            self._safety = loop.call_at(deadline, self._tick, loop, "safety")
        self._alarm.set(time.monotonic() + remaining - SPIN_S)

    def _tick(self, loop: asyncio.AbstractEventLoop, source: str = "alarm") -> None:
        if source == "spin":
            self._spinning = None
        elif source == "safety":
            self._safety = None
        heap, now = self._heap, loop.time()
        while heap and heap[0][0] <= now:
            future = heapq.heappop(heap)[2]
            if not future.done():
                future.set_result(None)
        self._arm(loop)


class _Alarm:
    """A thread that calls ``callback(loop)`` in the loop at a set time (``time.monotonic()``), ending when idle.

    It holds the loop weakly, so a loop that is dropped is not kept alive by its timer's thread.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[asyncio.AbstractEventLoop], None]) -> None:
        self._loop = weakref.ref(loop)
        self._callback = callback
        self._cond = threading.Condition()
        self._at: float | None = None
        self._running = False

    def set(self, at: float) -> None:
        """Ring at ``at``, or earlier if an earlier time is set already."""
        with self._cond:
            if self._at is not None and self._at <= at:
                return
            self._at = at
            if self._running:
                self._cond.notify()
            else:
                self._running = True
                threading.Thread(target=self._run, name="kvq-latency-alarm", daemon=True).start()

    def _run(self) -> None:
        with self._cond:
            while True:
                at = self._at
                if at is None:
                    if not self._cond.wait(_ALARM_IDLE_S) and self._at is None:
                        self._running = False
                        return
                    continue
                remaining = at - time.monotonic()
                if remaining > 0:
                    self._cond.wait(remaining)
                    continue
                self._at = None
                loop = self._loop()
                try:
                    if loop is None:
                        raise RuntimeError("the loop is gone")
                    loop.call_soon_threadsafe(self._callback, loop)
                except RuntimeError:  # closed or collected: nothing left to wake
                    self._running = False
                    return


class Timer(Protocol):
    """What the latency model waits with: a future done at a deadline, or None when there is nothing to wait for."""

    def wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> asyncio.Future[None] | None: ...


class NoWaitTimer:
    """A timer whose deadlines have all passed: every round trip's waits end at once, its work (deadlines computed,
    bytes counted, the store called) is unchanged. For counting the CPU work of an operation over a modelled network:
    a wait costs time, not instructions, and a real one makes the count depend on the clock (its busy-wait passes and
    the alarm thread run for as long as the wait lasts)."""

    def wait(self, loop: asyncio.AbstractEventLoop, deadline: float) -> asyncio.Future[None] | None:
        return None


_TIMERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Timer] = weakref.WeakKeyDictionary()


def timer_of(loop: asyncio.AbstractEventLoop) -> Timer:
    """The loop's timer: a ``PreciseTimer`` made on first use, unless ``use_timer`` set another."""
    timer = _TIMERS.get(loop)
    if timer is None:
        timer = _TIMERS[loop] = PreciseTimer(loop)
    return timer


def use_timer(loop: asyncio.AbstractEventLoop, timer: Timer) -> None:
    """Make ``timer`` the one every latency wait on ``loop`` uses (``NoWaitTimer()``: waits end at once)."""
    _TIMERS[loop] = timer


async def sleep_until(deadline: float) -> None:
    """Sleep until ``deadline`` on the running loop's clock (``loop.time()``), to within one pass of the loop."""
    loop = asyncio.get_running_loop()
    future = timer_of(loop).wait(loop, deadline)
    if future is not None:
        await future


@dataclass(frozen=True)
class LatencyModel:
    """Per round trip: one RTT (times 1 + uniform(0, jitter)) plus ``per_kib_ms`` per KiB sent or received.

    A round trip is scheduled from the moment it is issued (``RoundTrip``): the request half (RTT/2 plus the
    request's transfer time) ends at a deadline, where the store does its work, and the round trip ends at issue time
    + RTT + both transfer times, on a precise clock (``PreciseTimer``). The store's own time is inside the round trip,
    as a remote server's is inside the RTTs it publishes; a store slower than the response half adds the difference.
    Concurrent round trips overlap as they would on a network. Jitter only adds (a network has a floor, not a mean).
    """

    rtt_ms: float = 5.0
    per_kib_ms: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rtt_ms", "per_kib_ms", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidArgumentError(f"LatencyModel.{name} must be a non-negative number, got {value!r}")

    def rng(self) -> random.Random:
        """A fresh random source for the jitter: each wrapper owns one, so runs repeat exactly."""
        return random.Random(self.seed)

    def round_trip_ms(self, rng: random.Random) -> float:
        """One RTT with jitter drawn from ``rng``."""
        if self.jitter:
            return self.rtt_ms * (1.0 + rng.uniform(0.0, self.jitter))
        return self.rtt_ms

    def transfer_ms(self, nbytes: int) -> float:
        return nbytes / 1024 * self.per_kib_ms

    def start(self, rng: random.Random, sent_bytes: int = 0) -> RoundTrip:
        """Schedule a round trip issued now, in the running loop, sending ``sent_bytes``."""
        return RoundTrip(self, asyncio.get_running_loop(), self.round_trip_ms(rng), sent_bytes)

    async def sleep(self, ms: float) -> None:
        """Sleep ``ms`` milliseconds on the precise clock."""
        await sleep_until(asyncio.get_running_loop().time() + ms / 1000)


class RoundTrip:
    """The deadlines of one round trip, on the loop's clock: both fixed from its issue time.

    ``request_end`` = issue time + RTT/2 + request transfer; the store's work starts there (or when the request half's
    wait ends, if later). ``response_end(received)`` = ``request_end`` + RTT/2 + response transfer. A late wake-up at
    the middle and the store's own time are absorbed by the end deadline, which does not move with them.
    """

    __slots__ = ("_model", "half_s", "issued", "request_end")

    def __init__(self, model: LatencyModel, loop: asyncio.AbstractEventLoop, rtt_ms: float, sent_bytes: int) -> None:
        self._model = model
        self.issued = loop.time()
        self.half_s = rtt_ms / 2000
        self.request_end = self.issued + self.half_s + model.transfer_ms(sent_bytes) / 1000

    def response_end(self, received_bytes: int = 0) -> float:
        return self.request_end + self.half_s + self._model.transfer_ms(received_bytes) / 1000

    async def send(self) -> None:
        """Wait out the request half."""
        await sleep_until(self.request_end)

    async def receive(self, received_bytes: int = 0) -> None:
        """Wait out the rest of the round trip, whose response carries ``received_bytes``."""
        await sleep_until(self.response_end(received_bytes))


def predict(counts: KvCounts, model: LatencyModel) -> float:
    """Analytic network time in milliseconds: serial round trips x RTT + bytes read and written x per-KiB time.

    What the model adds to the local work it does not model (the caller's code between round trips): for serial code
    without jitter, measured = local work + predict, within the injector's error, while the store answers within half
    an RTT. With concurrency it
    charges every byte serially, as if transfers shared one link, while the sleeping model lets them overlap.
    """
    return counts.serial_round_trips * model.rtt_ms + model.transfer_ms(counts.total_bytes)


#: A read served by a KV replica in the caller's region (Deno Deploy's published best case).
DENO_DEPLOY_SAME_REGION = LatencyModel(rtt_ms=7.0)
#: A strongly consistent read from a region far from the primary (Deno Deploy's published figure).
DENO_DEPLOY_CROSS_REGION_STRONG = LatencyModel(rtt_ms=94.0)

PRESETS: dict[str, LatencyModel] = {
    "same-region": DENO_DEPLOY_SAME_REGION,
    "cross-region-strong": DENO_DEPLOY_CROSS_REGION_STRONG,
}
