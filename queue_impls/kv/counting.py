"""``CountingKv``: a store that wraps any store, counts exactly what each access pattern costs, and can trace it.

It is a ``Kv`` itself, so validation and list batching run in the shared base exactly as on the inner store; its two
primitives hand each snapshot read and atomic write to the inner store's, counting (and, with a ``LatencyModel``,
sleeping) on the way. It never changes a result. See docs/counting.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from .atomic import AtomicOperation
from .contract import Kv, KvListIterator, WatchEntries, _many_keys, _point_entry, _point_read
from .codec import Key, encode_key, encode_value
from .counts import OPS, KvCounts, LiveCounts
from .latency import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    PRESETS,
    LatencyModel,
    predict,
)
from .nplusone import NPlusOneFinding, detect_n_plus_one
from .trace import SPAWN_SITE, Fingerprinter, TraceEvent, caller_site, key_fingerprint, keys_fingerprint, spawn_site
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


# The call a primitive is working for, so its round trips, entries and bytes land on that call's trace event.
# Holds (wrapper, event): a nested CountingKv sees its outer wrapper's event and does not take it.
_CURRENT: ContextVar[tuple[Kv, TraceEvent] | None] = ContextVar("kvq_counting_call", default=None)


class _Lane:
    """One asyncio task's chain of round trips on one wrapper (see "the serial-round-trip clock" below).

    ``clock`` is where the task's next round trip starts: the end of its own latest round trip (or where the task
    started) or of any finished round trip of its descendants, whichever is later.
    """

    __slots__ = ("clock", "parent")

    def __init__(self, clock: int, parent: _Lane | None) -> None:
        self.clock = clock
        self.parent = parent


class _Fork:
    """What a task created by a lane's owner starts from: the creator's lane and where the creator's next round trip
    would start at that moment (after its own latest one and after everything its finished descendants did)."""

    __slots__ = ("clock", "lane")

    def __init__(self, lane: _Lane) -> None:
        self.lane = lane
        self.clock = lane.clock


_LaneState = _Lane | _Fork | None

# Every open wrapper that has given a task a lane, by id: the task factory forks their lanes into each new task. A plain
# dict of weak references (each removes itself when its wrapper is collected): iterating a WeakSet on every task
# creation cost about twice as much.
_WRAPPERS: dict[int, weakref.ref[CountingKv]] = {}


def _register(wrapper: CountingKv) -> None:
    key = id(wrapper)
    if key not in _WRAPPERS:
        _WRAPPERS[key] = weakref.ref(wrapper, lambda ref: _WRAPPERS.pop(key, None))


def _unregister(wrapper: CountingKv) -> None:
    _WRAPPERS.pop(id(wrapper), None)


class _ForkingTaskFactory:
    """The task factory a wrapper installs on each event loop it counts in, around whatever factory was there.

    A new task copies its creator's context; before the copy, each wrapper's lane variable is set to a ``_Fork`` of the
    creator's lane (its clock at this moment), and set back after. So a child starts from where its creator was when it
    was created, and the creator's own lane needs no update of its context variable on every round trip.
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        context = kwargs.get("context")
        spawned = spawn_site(coro)  # a task running KV layer code itself: its trace site is where it was made
        if context is not None:  # the task runs in this very context, not in a copy: fork there, for good
            # (a context already entered somewhere cannot be run in: left as it is, the task will fail on it itself)
            with contextlib.suppress(RuntimeError):
                context.run(_fork_lanes, loop, False)
                if spawned is not None:
                    context.run(SPAWN_SITE.set, spawned)
            return self._create(loop, coro, kwargs)
        forked = _fork_lanes(loop, True)
        site_token = SPAWN_SITE.set(spawned) if spawned is not None else None
        try:
            return self._create(loop, coro, kwargs)
        finally:
            if site_token is not None:
                SPAWN_SITE.reset(site_token)
            for var, token in reversed(forked):
                var.reset(token)

    def _create(self, loop: asyncio.AbstractEventLoop, coro: Any, kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        if self.previous is None:
            return asyncio.Task(coro, loop=loop, **kwargs)
        task: asyncio.Future[Any] = self.previous(loop, coro, **kwargs)
        return task


def _fork_lanes(loop: asyncio.AbstractEventLoop, undo: bool) -> list[tuple[ContextVar[_LaneState], Token[_LaneState]]]:
    """Set every wrapper's lane variable in the current context to a fork of the current task's lane.

    A task that inherited a fork and has made no round trip yet gets its own lane first, so that what its children do
    is joined into it. Returns the tokens to undo the forks with (none when ``undo`` is false).
    """
    tokens: list[tuple[ContextVar[_LaneState], Token[_LaneState]]] = []
    for ref in list(_WRAPPERS.values()):
        wrapper = ref()
        if wrapper is None:
            continue
        var = wrapper._lane_var
        state = var.get()
        if state is None:
            continue  # lane-less creator: its children are lane-less too (the root rule applies to them)
        lane = state if isinstance(state, _Lane) else wrapper._own_lane(state, loop)
        token = var.set(_Fork(lane))
        if undo:
            tokens.append((var, token))
    return tokens


def _install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    factory = loop.get_task_factory()
    if not isinstance(factory, _ForkingTaskFactory):
        loop.set_task_factory(_ForkingTaskFactory(factory))


def _install_on_running_loop() -> None:
    with contextlib.suppress(RuntimeError):
        _install_task_factory(asyncio.get_running_loop())


class CountingKv(Kv):
    """Counts calls, round trips, entries and bytes of any store; optionally traces and adds network latency.

    ``close()`` closes the inner store too unless ``owns_inner=False``. A call counts in ``calls`` when it runs (when
    it is made for get_many and list), even if it then fails validation; round trips, entries and bytes count only
    what reached the store. Counting installs a task factory on each event loop it counts in (docs/counting.md,
    "serial_round_trips: the critical path").
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
        # What the hot paths count, added to self.counts whenever it is read (see _fold and counts.LiveCounts).
        self._gets = 0  # untraced gets that reached the store: one call and one round trip each
        self._round_trips = 0  # other round trips
        self._entries = 0
        self._bytes_read = 0
        self._mutations = 0
        self._checks = 0
        self._bytes_written = 0
        self._issued = 0  # latest end (on the serial clock) of any round trip issued
        self._issued_counted = 0  # ... when serial_round_trips was last brought up to date
        self.counts: KvCounts = LiveCounts(self._fold)
        self._calls = LiveCounts.own_calls(self.counts)  # the record's own dict (reading .calls gives a copy)
        self.trace: list[TraceEvent] = []
        for flag, default in vars(Kv).items():  # capability flags (multi_process, persistent...) are the inner's
            if isinstance(default, bool):
                setattr(self, flag, getattr(inner, flag))
        self._rng = latency.rng() if latency is not None else random.Random(0)
        self._lane_var: ContextVar[_LaneState] = ContextVar(f"kvq_lane_{id(self)}", default=None)
        self._completed = 0  # latest end of any round trip completed
        self._root_clock = 0
        self._root_loop: asyncio.AbstractEventLoop | None = None
        self._plain_atomic = False
        self._pulling: TraceEvent | None = None  # set by a traced list iterator around its next()
        if trace:
            _install_on_running_loop()  # so tasks made before the first call already carry their creation site

    def __repr__(self) -> str:
        return f"CountingKv({self.inner!r}, latency={self.latency!r}, trace={self.tracing})"

    # -- primitives ----------------------------------------------------------------------------------

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        inner = self.inner
        if inner._closed:
            inner._check_open()  # what inner._read would do first: a closed inner store costs no round trip
        lane, end = self._begin_round_trip()
        event = self._take_event() if self.tracing else None  # before the first await: see _TracedList
        try:
            latency = self.latency
            if latency is None:
                results = await inner._snapshot_read(ranges, consistency)
            else:
                trip = latency.start(self._rng)
                await trip.send()
                results = await inner._snapshot_read(ranges, consistency)
            entries = nbytes = 0
            for rows in results:
                entries += len(rows)
                for raw in rows:
                    nbytes += len(raw.key) + raw.size
            self._entries += entries
            self._bytes_read += nbytes
            if event is not None:
                _attribute_read(event, results, entries, nbytes)
            if latency is not None:
                await trip.receive(nbytes)
            return results
        finally:
            self._end_round_trip(lane, end)

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        inner = self.inner
        inner._check_open()
        lane, end = self._begin_round_trip()
        try:
            written = sum(len(m.key) + len(m.payload) for m in mutations)
            self._mutations += len(mutations)
            self._checks += len(checks)
            self._bytes_written += written
            event = self._take_event() if self.tracing else None
            if event is not None:
                event.round_trips += 1
                event.bytes_written += written
            if self.latency is None:
                return await inner._atomic_write(checks, mutations)
            trip = self.latency.start(self._rng, written)
            await trip.send()
            versionstamp = await inner._atomic_write(checks, mutations)
            await trip.receive()
            return versionstamp
        finally:
            self._end_round_trip(lane, end)

    async def _watch(self, keys: Sequence[Key]) -> AsyncIterator[WatchEntries]:
        """The inner store's watch; each yield counts as one read of its keys (one round trip, its entries and
        bytes), as Deno Deploy bills a watch: the re-reads between yields are the store's own work."""
        async for entries in self.inner._watch(keys):
            present = [e for e in entries if e.versionstamp is not None]
            self._round_trips += 1
            self._entries += len(present)
            self._bytes_read += sum(len(encode_key(e.key)) + len(encode_value(e.value)[0]) for e in present)
            yield entries

    def _take_event(self) -> TraceEvent | None:
        """The trace event of the call this primitive works for: a list pull's, else the calling public call's."""
        event = self._pulling
        if event is not None:
            self._pulling = None
            return event
        current = _CURRENT.get()
        return current[1] if current is not None and current[0] is self else None

    def _fold(self) -> None:
        """Add what the hot paths counted since the last call to ``self.counts`` (called on every read of it)."""
        gets, round_trips, entries, bytes_read = self._gets, self._round_trips, self._entries, self._bytes_read
        mutations, checks, written, issued = self._mutations, self._checks, self._bytes_written, self._issued
        if not (gets or round_trips or entries or bytes_read or mutations or checks or written) and (
            issued == self._issued_counted
        ):
            return
        # Zeroed first: the record's updates below read it, which calls back here, now with nothing to add.
        self._gets = self._round_trips = self._entries = self._bytes_read = 0
        self._mutations = self._checks = self._bytes_written = 0
        serial, self._issued_counted = issued - self._issued_counted, issued
        record = self.counts
        self._calls["get"] += gets
        record.round_trips += gets + round_trips
        record.serial_round_trips += serial
        record.entries_read += entries
        record.bytes_read += bytes_read
        record.mutations += mutations
        record.checks += checks
        record.bytes_written += written

    async def _close(self) -> None:
        _unregister(self)  # no more forks of its lanes in new tasks
        if self.owns_inner:
            await self.inner.close()

    # -- the serial-round-trip clock -------------------------------------------------------------------
    # Each task that made a round trip owns a lane, held in this wrapper's context variable; its clock is mutated in
    # place, so a round trip costs no ContextVar.set. A task created by a lane's owner inherits, through the task
    # factory above, a fork: the creator's lane and its clock at the moment of creation. So the round trips of tasks
    # spawned together (gather, TaskGroup, create_task) start at the same clock, and a task's next round trip starts
    # after what its finished descendants did. Tasks with no lane or fork that start in the same event-loop pass are
    # siblings too; later ones start after everything completed so far.

    def _own_lane(self, fork: _Fork | None, loop: asyncio.AbstractEventLoop | None = None) -> _Lane:
        """Give the current task its own lane, starting where its creator's ``fork`` says (no fork: a root lane)."""
        loop = loop or asyncio.get_running_loop()
        lane = _Lane(self._root_start(loop), None) if fork is None else _Lane(fork.clock, fork.lane)
        self._lane_var.set(lane)
        _register(self)
        _install_task_factory(loop)
        return lane

    def _root_start(self, loop: asyncio.AbstractEventLoop) -> int:
        if self._root_loop is not loop:
            self._root_clock = self._completed
            self._root_loop = loop
            loop.call_soon(self._end_root_pass)
        return self._root_clock

    def _end_root_pass(self) -> None:
        self._root_loop = None

    def _current_lane(self) -> _Lane:
        lane = self._lane_var.get()
        return lane if isinstance(lane, _Lane) else self._own_lane(lane)

    def _begin_round_trip(self) -> tuple[_Lane, int]:
        lane = self._current_lane()
        end = lane.clock = lane.clock + 1
        self._round_trips += 1
        if end > self._issued:
            self._issued = end
        return lane, end

    def _end_round_trip(self, lane: _Lane, end: int) -> None:
        if end > self._completed:
            self._completed = end
        parent = lane.parent
        while parent is not None:  # every ancestor: one whose own round trip is in flight may be ahead of this end
            if parent.clock < end:
                parent.clock = end
            parent = parent.parent

    def sync_point(self) -> None:
        """Treat every round trip completed so far as happened-before the current task's next one."""
        lane = self._current_lane()
        lane.clock = max(lane.clock, self._completed)

    # -- tracing ---------------------------------------------------------------------------------------

    def _event(self, op: str, keys: tuple[Key, ...], fingerprint: str) -> TraceEvent:
        _install_on_running_loop()
        state = self._lane_var.get()
        wave = state.clock if state is not None else self._completed
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
    # (set and delete stay coroutines: their _plain_atomic flag must be read by atomic() in the same step as it is set.)

    async def get(self, key: Key, *, consistency: Consistency = "strong") -> KvEntry:
        if self.tracing:
            self._calls["get"] += 1
            return await self._traced(self._key_event("get", [key]), Kv.get(self, key, consistency=consistency))
        if self.latency is not None:
            self._calls["get"] += 1
            return await Kv.get(self, key, consistency=consistency)
        # The commonest call, counted in one coroutine frame instead of three (this one, Kv.get's, the read
        # primitive's): Kv.get with _snapshot_read's round trip inlined. The same steps in the same order as there,
        # with _begin_round_trip/_end_round_trip written out, and the call and its round trip counted as one
        # (measured in docs/counting.md, "Overhead").
        try:
            key, point = _point_read(key, consistency)
            ranges = [point]
            inner = self.inner
            if inner._closed:
                inner._check_open()
        except BaseException:
            self._calls["get"] += 1  # a call made, no round trip
            raise
        lane = self._lane_var.get()
        if not isinstance(lane, _Lane):
            lane = self._own_lane(lane)
        end = lane.clock = lane.clock + 1
        self._gets += 1
        if end > self._issued:
            self._issued = end
        try:
            [rows] = await inner._snapshot_read(ranges, consistency)
        finally:
            if end > self._completed:
                self._completed = end
            parent = lane.parent
            while parent is not None:
                if parent.clock < end:
                    parent.clock = end
                parent = parent.parent
        if rows:
            raw = rows[0]
            self._entries += 1
            self._bytes_read += len(raw.key) + raw.size
        return _point_entry(key, rows)

    def get_many(
        self, keys: Sequence[Key], *, consistency: Consistency = "strong"
    ) -> Coroutine[Any, Any, list[KvEntry]]:
        # A plain function handing back the base's coroutine: no coroutine frame of its own to step through.
        self._calls["get_many"] += 1
        if not self.tracing:
            return Kv.get_many(self, keys, consistency=consistency)
        event = self._key_event("get_many", list(_many_keys(keys)))
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
        self._calls["list"] += 1
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
        self._calls["set"] += 1
        if not self.tracing:
            self._plain_atomic = True  # read back by atomic() before the base's set() first awaits
            return await Kv.set(self, key, value, expire_in=expire_in)
        event = self._key_event("set", [key])
        self._plain_atomic = True
        return await self._traced(event, Kv.set(self, key, value, expire_in=expire_in))

    async def delete(self, key: Key) -> None:
        self._calls["delete"] += 1
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
        kv._calls["commit"] += 1
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
        if kv.tracing:
            _install_on_running_loop()
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
