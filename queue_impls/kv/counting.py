"""``CountingKv``: a store that wraps any store, counts exactly what each access pattern costs, and can trace it.

It is a ``Kv`` itself, so validation and list batching run in the shared base exactly as on the inner store; its two
primitives hand each snapshot read and atomic write to the inner store's, counting (and, with a ``LatencyModel``,
sleeping) on the way. It never changes a result. See docs/counting.md.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from collections.abc import Awaitable, Coroutine, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from .atomic import AtomicOperation
from .base import Kv, KvListIterator
from .codec import Key
from .counts import OPS, KvCounts
from .latency import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    PRESETS,
    LatencyModel,
    predict,
)
from .nplusone import NPlusOneFinding, detect_n_plus_one
from .trace import Fingerprinter, TraceEvent, caller_site, key_fingerprint, keys_fingerprint
from .types import Check, CommitResult, Consistency, KvEntry, Mutation, RawEntry, ReadRange

__all__ = [
    "DENO_DEPLOY_CROSS_REGION_STRONG",
    "DENO_DEPLOY_SAME_REGION",
    "OPS",
    "PRESETS",
    "CountingKv",
    "KvBudget",
    "KvBudgetExceeded",
    "KvCounts",
    "LatencyModel",
    "Measurement",
    "NPlusOneFinding",
    "TraceEvent",
    "detect_n_plus_one",
    "key_fingerprint",
    "kv_budget",
    "predict",
]

T = TypeVar("T")

_current_task = asyncio.current_task
_get_ident = threading.get_ident
# The task each running event loop is stepping: what asyncio.current_task() looks up, after get_running_loop(),
# whose fork check is a getpid() system call (about 0.2 us here). {} where asyncio keeps no such dict: no fast path.
_CURRENT_TASKS: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = getattr(asyncio.tasks, "_current_tasks", {})
_FORKED = [False]  # in a forked child, get_running_loop() finds no loop: only the slow path behaves the same there


def _after_fork_in_child() -> None:
    _FORKED[0] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# The call a primitive is working for, so its round trips, entries and bytes land on that call's trace event.
# Holds (wrapper, event): a nested CountingKv sees its outer wrapper's event and does not take it.
_CURRENT: ContextVar[tuple[Kv, TraceEvent] | None] = ContextVar("kvq_counting_call", default=None)


class _Lane:
    """One asyncio task's chain of round trips; ``joined`` is the latest end of its descendants' round trips."""

    __slots__ = ("joined", "loop", "parent", "task")

    def __init__(self, task: object, parent: _Lane | None) -> None:
        self.task = task
        self.parent = parent
        self.joined = 0
        # The task's loop, kept only where _is_current can check it runs in this thread (asyncio's own loops).
        loop = task.get_loop() if isinstance(task, asyncio.Task) else None
        self.loop = loop if isinstance(loop, asyncio.BaseEventLoop) else None


def _is_current(lane: _Lane) -> bool:
    """``asyncio.current_task() is lane.task``, without get_running_loop()'s getpid(); False when unsure.

    True only if the lane's loop runs in this thread now (so it is the running loop get_running_loop() would
    return, a thread running one loop at a time) and is stepping the lane's task: exactly current_task()'s answer.
    """
    loop = lane.loop
    return (
        loop is not None
        and loop._thread_id == _get_ident()  # type: ignore[attr-defined]
        and _CURRENT_TASKS.get(loop) is lane.task
        and not _FORKED[0]
    )


class CountingKv(Kv):
    """Counts calls, round trips, entries and bytes of any store; optionally traces and adds network latency.

    ``close()`` closes the inner store too unless ``owns_inner=False``. A call counts in ``calls`` when it is made,
    even if it then fails validation; round trips, entries and bytes count only what reached the store.
    """

    name = "counting"

    def __init__(
        self,
        inner: Kv,
        latency: LatencyModel | None = None,
        trace: bool = False,
        *,
        owns_inner: bool = True,
        fingerprint: Fingerprinter = key_fingerprint,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.latency = latency
        self.tracing = trace
        self.owns_inner = owns_inner
        self.fingerprint = fingerprint
        self.counts = KvCounts()
        self.trace: list[TraceEvent] = []
        for flag, default in vars(Kv).items():  # capability flags (multi_process, persistent...) are the inner's
            if isinstance(default, bool):
                setattr(self, flag, getattr(inner, flag))
        self._rng = latency.rng() if latency is not None else random.Random(0)
        self._lane_var: ContextVar[tuple[_Lane, int] | None] = ContextVar(f"kvq_lane_{id(self)}", default=None)
        self._issued = 0  # latest end (on the serial clock) of any round trip issued
        self._completed = 0  # latest end of any round trip completed
        self._root_clock = 0
        self._root_loop: asyncio.AbstractEventLoop | None = None
        self._plain_atomic = False
        self._pulling: TraceEvent | None = None  # set by a traced list iterator around its next()

    def __repr__(self) -> str:
        return f"CountingKv({self.inner!r}, latency={self.latency!r}, trace={self.tracing})"

    # -- primitives ----------------------------------------------------------------------------------

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        # The hot path of every get, get_many and list batch: _begin_round_trip and _end_round_trip inlined, with
        # attributes bound to locals (measured in docs/counting.md, "Overhead"); the same steps in the same order.
        inner = self.inner
        if inner._closed:
            inner._check_open()  # what inner._read would do first: a closed inner store costs no round trip
        lane_var = self._lane_var
        state = lane_var.get()
        if state is not None and _is_current(state[0]):
            lane, clock = state
        else:
            lane, clock = self._lane(state)
        joined = lane.joined
        end = (clock if clock > joined else joined) + 1
        lane_var.set((lane, end))
        counts = self.counts
        counts.round_trips += 1
        if end > self._issued:
            counts.serial_round_trips += end - self._issued
            self._issued = end
        event = self._take_event() if self.tracing else None  # before the first await: see _TracedList
        try:
            latency = self.latency
            if latency is None:
                results = await inner._snapshot_read(ranges, consistency)
            else:
                rtt = latency.round_trip_ms(self._rng)
                await latency.sleep(rtt / 2)
                results = await inner._snapshot_read(ranges, consistency)
            if len(results) == 1 and len(results[0]) == 1:  # a get's hit: the commonest read, counted loop-free
                raw = results[0][0]
                entries, nbytes = 1, len(raw.key) + raw.size
            else:
                entries = nbytes = 0
                for rows in results:
                    entries += len(rows)
                    for raw in rows:
                        nbytes += len(raw.key) + raw.size
            counts.entries_read += entries
            counts.bytes_read += nbytes
            if event is not None:
                _attribute_read(event, results, entries, nbytes)
            if latency is not None:
                await latency.sleep(rtt / 2 + latency.transfer_ms(nbytes))
            return results
        finally:
            if end > self._completed:
                self._completed = end
            parent = lane.parent
            while parent is not None and parent.joined < end:
                parent.joined = end
                parent = parent.parent

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        inner = self.inner
        inner._check_open()
        lane, end = self._begin_round_trip()
        try:
            written = sum(len(m.key) + len(m.payload) for m in mutations)
            counts = self.counts
            counts.mutations += len(mutations)
            counts.checks += len(checks)
            counts.bytes_written += written
            event = self._take_event() if self.tracing else None
            if event is not None:
                event.round_trips += 1
                event.bytes_written += written
            if self.latency is not None:
                rtt = self.latency.round_trip_ms(self._rng)
                await self.latency.sleep(rtt / 2 + self.latency.transfer_ms(written))
            versionstamp = await inner._atomic_write(checks, mutations)
            if self.latency is not None:
                await self.latency.sleep(rtt / 2)
            return versionstamp
        finally:
            self._end_round_trip(lane, end)

    def _take_event(self) -> TraceEvent | None:
        """The trace event of the call this primitive works for: a list pull's, else the calling public call's."""
        event = self._pulling
        if event is not None:
            self._pulling = None
            return event
        current = _CURRENT.get()
        return current[1] if current is not None and current[0] is self else None

    async def _close(self) -> None:
        if self.owns_inner:
            await self.inner.close()

    # -- the serial-round-trip clock -------------------------------------------------------------------
    # Each task carries (lane, clock) in a context variable; a child task inherits its creator's pair, so the
    # round trips of tasks spawned together (gather, TaskGroup, create_task) start at the same clock, and a
    # task's next round trip starts after what its finished descendants did. Tasks with no lane that start in
    # the same event-loop pass are siblings too; later ones start after everything completed so far.

    def _new_lane(self, state: tuple[_Lane, int] | None, task: object) -> tuple[_Lane, int]:
        if state is None:
            return _Lane(task, None), self._root_start()
        return _Lane(task, state[0]), state[1]  # a child task: starts where its creator was

    def _root_start(self) -> int:
        loop = asyncio.get_running_loop()
        if self._root_loop is not loop:
            self._root_clock = self._completed
            self._root_loop = loop
            loop.call_soon(self._end_root_pass)
        return self._root_clock

    def _end_root_pass(self) -> None:
        self._root_loop = None

    def _lane(self, state: tuple[_Lane, int] | None) -> tuple[_Lane, int]:
        """The current task's (lane, clock): ``state`` if it is the task's own, else a new lane."""
        task = _current_task()
        if state is not None and state[0].task is task:
            return state
        return self._new_lane(state, task)

    def _begin_round_trip(self) -> tuple[_Lane, int]:
        state = self._lane_var.get()
        lane, clock = state if state is not None and _is_current(state[0]) else self._lane(state)
        end = max(clock, lane.joined) + 1
        self._lane_var.set((lane, end))
        counts = self.counts
        counts.round_trips += 1
        if end > self._issued:
            counts.serial_round_trips += end - self._issued
            self._issued = end
        return lane, end

    def _end_round_trip(self, lane: _Lane, end: int) -> None:
        if end > self._completed:
            self._completed = end
        parent = lane.parent
        while parent is not None and parent.joined < end:
            parent.joined = end
            parent = parent.parent

    def sync_point(self) -> None:
        """Treat every round trip completed so far as happened-before the current task's next one."""
        lane, clock = self._lane(self._lane_var.get())
        self._lane_var.set((lane, max(clock, self._completed)))

    # -- tracing ---------------------------------------------------------------------------------------

    def _event(self, op: str, keys: tuple[Key, ...], fingerprint: str) -> TraceEvent:
        state = self._lane_var.get()
        wave = state[1] if state is not None else self._completed
        event = TraceEvent(len(self.trace), op, keys, fingerprint, caller_site(2), wave)
        self.trace.append(event)
        return event

    def _key_event(self, op: str, keys: Sequence[Any]) -> TraceEvent:
        tuples = tuple(_trace_key(k) for k in keys)
        return self._event(op, tuples, keys_fingerprint(tuples, self.fingerprint))

    async def _traced(self, event: TraceEvent, call: Awaitable[T]) -> T:
        token = _CURRENT.set((self, event))
        started = time.perf_counter()
        try:
            return await call
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            event.error = type(exc).__name__
            raise
        finally:
            event.duration_s += time.perf_counter() - started
            _CURRENT.reset(token)

    # -- the public calls: count, trace, delegate -----------------------------------------------------

    # get and get_many are plain functions that count and hand back the base's coroutine: awaited exactly like an
    # async def, without a coroutine frame of their own to step through when the read suspends. (set and delete stay
    # async: their _plain_atomic flag must be read by atomic() in the same step as it is set.)

    def get(self, key: Key, *, consistency: Consistency = "strong") -> Coroutine[Any, Any, KvEntry]:
        self.counts.calls["get"] += 1
        if not self.tracing:
            return Kv.get(self, key, consistency=consistency)
        return self._traced(self._key_event("get", [key]), Kv.get(self, key, consistency=consistency))

    def get_many(
        self, keys: Sequence[Key], *, consistency: Consistency = "strong"
    ) -> Coroutine[Any, Any, list[KvEntry]]:
        self.counts.calls["get_many"] += 1
        if not self.tracing:
            return Kv.get_many(self, keys, consistency=consistency)
        event = self._key_event("get_many", list(keys))
        return self._traced(event, Kv.get_many(self, keys, consistency=consistency))

    def list(
        self,
        *,
        prefix: Key | None = None,
        start: Key | None = None,
        end: Key | None = None,
        limit: int | None = None,
        reverse: bool = False,
        cursor: str | None = None,
        batch_size: int | None = None,
        consistency: Consistency = "strong",
    ) -> KvListIterator:
        self.counts.calls["list"] += 1
        options: dict[str, Any] = dict(prefix=prefix, start=start, end=end, limit=limit, reverse=reverse)
        options.update(cursor=cursor, batch_size=batch_size, consistency=consistency)
        if not self.tracing:
            return super().list(**options)
        event = self._list_event(prefix, start, end)
        try:
            iterator = super().list(**options)
        except BaseException as exc:
            event.error = type(exc).__name__
            raise
        return _TracedList(self, iterator, event)

    def _list_event(self, prefix: Any, start: Any, end: Any) -> TraceEvent:
        given = [k for k in (prefix, start, end) if k is not None]
        tuples = tuple(_trace_key(k) for k in given)
        fps = {name: self.fingerprint(_trace_key(k)) for name, k in (("start", start), ("end", end)) if k is not None}
        if prefix is not None:
            fp = self.fingerprint(_trace_key(prefix))
            fp = fp[:-2] + ")" if fp.endswith(",)") else fp
            fp = fp[:-1] + (", *)" if fp != "()" else "*)")
        else:
            fp = ""
        fp = " ".join([fp] * bool(fp) + [f"{name} {v}" for name, v in fps.items()])
        return self._event("list", tuples, fp)

    def atomic(self) -> AtomicOperation:
        if self._plain_atomic:  # set()/delete() of the base: counted as themselves, not as a commit
            self._plain_atomic = False
            return AtomicOperation(self)
        return _CountingAtomic(self)

    async def set(self, key: Key, value: Any, *, expire_in: int | None = None) -> CommitResult:
        self.counts.calls["set"] += 1
        if not self.tracing:
            self._plain_atomic = True  # read back by atomic() before the base's set() first awaits
            return await Kv.set(self, key, value, expire_in=expire_in)
        event = self._key_event("set", [key])
        self._plain_atomic = True
        return await self._traced(event, Kv.set(self, key, value, expire_in=expire_in))

    async def delete(self, key: Key) -> None:
        self.counts.calls["delete"] += 1
        if not self.tracing:
            self._plain_atomic = True
            return await Kv.delete(self, key)
        event = self._key_event("delete", [key])
        self._plain_atomic = True
        return await self._traced(event, Kv.delete(self, key))

    # -- measuring ---------------------------------------------------------------------------------------

    def measure(self, *, trace: bool | None = None) -> Measurement:
        """``async with ckv.measure() as m: ...``: ``m.counts`` and ``m.trace`` hold only what happened inside."""
        return Measurement(self, trace)


def _trace_key(key: Any) -> Key:
    return tuple(key) if isinstance(key, tuple | list) else (key,)


def _attribute_read(event: TraceEvent, results: list[list[RawEntry]], entries: int, nbytes: int) -> None:
    event.round_trips += 1
    event.entries += entries
    event.bytes_read += nbytes
    event.raw_results.extend(raw for rows in results for raw in rows)  # keys decoded only if someone looks


class _CountingAtomic(AtomicOperation):
    """The builder of ``CountingKv.atomic()``: its commit counts as one "commit" call."""

    _kv: CountingKv

    async def commit(self) -> CommitResult:
        kv = self._kv
        kv.counts.calls["commit"] += 1
        if not kv.tracing:
            return await super().commit()
        keys = [k for k, _ in self._checks] + [m[1] for m in self._mutations]
        tuples = tuple(_trace_key(k) for k in keys)
        kinds = ["check"] * len(self._checks) + [m[0] for m in self._mutations]
        fp = ", ".join(f"{kind} {kv.fingerprint(k)}" for kind, k in zip(kinds, tuples, strict=True))
        return await kv._traced(kv._event("commit", tuples, fp), super().commit())


class _TracedList(KvListIterator):
    """A list iterator that attributes its batch reads to its trace event (wraps the base's iterator)."""

    def __init__(self, kv: CountingKv, iterator: KvListIterator, event: TraceEvent) -> None:  # no super(): a proxy
        self._owner = kv
        self._iterator = iterator
        self._event = event

    @property
    def cursor(self) -> str:
        return self._iterator.cursor

    def __aiter__(self) -> _TracedList:
        return self

    async def __anext__(self) -> KvEntry:
        # Hand the event to a pull through the wrapper, not a context variable (cheaper per entry). A pull takes it
        # before its first await, and a next() without a pull never suspends, so it is never pending while this
        # task sleeps and another task's pull cannot take it.
        owner, event = self._owner, self._event
        owner._pulling = event
        started = time.perf_counter()
        try:
            return await self._iterator.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            event.error = type(exc).__name__
            raise
        finally:
            owner._pulling = None
            event.duration_s += time.perf_counter() - started

    async def collect(self) -> list[KvEntry]:
        return [entry async for entry in self]


class Measurement:
    """What happened between entering and leaving a ``with``/``async with`` block on one ``CountingKv``.

    Entering is a sync point (``CountingKv.sync_point``), so the block's serial round trips start after
    everything that completed before it.
    """

    def __init__(self, kv: CountingKv, trace: bool | None = None) -> None:
        self.kv = kv
        self._trace_option = trace
        self._start = kv.counts.snapshot()
        self._final: KvCounts | None = None
        self._first_event = len(kv.trace)
        self._saved_tracing = kv.tracing
        self._started = time.perf_counter()
        self.elapsed_s = 0.0
        self.trace: list[TraceEvent] = []

    def __enter__(self) -> Measurement:
        kv = self.kv
        if _loop_running():
            kv.sync_point()
        self._saved_tracing = kv.tracing
        if self._trace_option is not None:
            kv.tracing = self._trace_option
        self._start = kv.counts.snapshot()
        self._first_event = len(kv.trace)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        kv = self.kv
        self.elapsed_s = time.perf_counter() - self._started
        self._final = kv.counts.since(self._start)
        self.trace = kv.trace[self._first_event :]
        kv.tracing = self._saved_tracing

    async def __aenter__(self) -> Measurement:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    @property
    def counts(self) -> KvCounts:
        """The block's counts: frozen after the block, live (so far) inside it."""
        return self._final if self._final is not None else self.kv.counts.since(self._start)

    @property
    def elapsed_ms(self) -> float:
        return self.elapsed_s * 1000


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# Imported last: budget.py builds on CountingKv and Measurement.
from .budget import KvBudget, KvBudgetExceeded, kv_budget  # noqa: E402
