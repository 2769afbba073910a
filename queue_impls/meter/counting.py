"""``CountingKv``: a store that wraps any store, counts exactly what each access pattern costs, and can trace it.

It is a ``Kv`` itself, so validation and list batching run in the shared base exactly as on the inner store; its two
primitives hand each snapshot read and atomic write to the inner store's, counting (and, with a ``LatencyModel``,
sleeping) on the way. It never changes a result. See docs/counting.md.

Its mechanisms, each in one place: the serial-round-trip clock and the task factory it installs (serial_clock.py);
the live counters the hot paths fold into (counts.LiveCounts, ``_fold`` here); how a primitive finds the trace event
it works for (``_traced`` for public calls, ``_for_event`` for list pulls and KV Connect requests); and the untraced
get in one coroutine frame (``CountingKv.get``).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Sequence
from contextvars import ContextVar
from typing import Any, TypeVar

from ..kv.atomic import AtomicOperation
from ..kv.codec import Key, encode_key, encode_value
from ..kv.contract import Kv, KvListIterator, WatchEntries, _many_keys, _point_entry, _point_read
from ..kv.types import Check, CommitResult, Consistency, KvEntry, Mutation, RawEntry, ReadRange
from .counts import KvCounts, LiveCounts
from .latency import LatencyModel
from .measurement import Measurement
from .serial_clock import SerialClock, install_on_running_loop
from .trace import Fingerprinter, TraceEvent, caller_site, key_fingerprint, keys_fingerprint

T = TypeVar("T")


# The call a primitive is working for, so its round trips, entries and bytes land on that call's trace event.
# Holds (wrapper, event): a nested CountingKv sees its outer wrapper's event and does not take it.
_CURRENT: ContextVar[tuple[Kv, TraceEvent] | None] = ContextVar("kvq_counting_call", default=None)


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
        self._clock = SerialClock()
        self._issued_counted = 0  # the clock's issued when serial_round_trips was last brought up to date
        self.counts: KvCounts = LiveCounts(self._fold)
        self._calls = LiveCounts.own_calls(self.counts)  # the record's own dict (reading .calls gives a copy)
        self.trace: list[TraceEvent] = []
        for flag, default in vars(Kv).items():  # capability flags (multi_process, persistent...) are the inner's
            if isinstance(default, bool):
                setattr(self, flag, getattr(inner, flag))
        self._rng = latency.rng() if latency is not None else random.Random(0)
        self._next_event: TraceEvent | None = None  # see _for_event
        if trace:
            install_on_running_loop()  # so tasks made before the first call already carry their creation site

    def __repr__(self) -> str:
        return f"CountingKv({self.inner!r}, latency={self.latency!r}, trace={self.tracing})"

    def commits_on_loop(self) -> bool:
        return self.inner.commits_on_loop()  # a capability of the store, as the class flags are

    # -- primitives ----------------------------------------------------------------------------------

    async def _snapshot_read(
        self, ranges: Sequence[ReadRange], consistency: Consistency, stored: bool = False
    ) -> list[list[RawEntry]]:
        """The inner store's read, counted; ``stored``: its ``_snapshot_read_stored`` (values left as stored)."""
        inner = self.inner
        if inner._closed:
            inner._check_open()  # what inner._read would do first: a closed inner store costs no round trip
        clock = self._clock
        lane = clock.begin()
        end = lane.clock
        self._round_trips += 1
        event = self._take_event() if self.tracing else None  # before the first await: see _for_event
        try:
            latency = self.latency
            read = inner._snapshot_read_stored if stored else inner._snapshot_read
            if latency is None:
                results = await read(ranges, consistency)
            else:
                trip = latency.start(self._rng)
                await trip.send()
                results = await read(ranges, consistency)
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
            clock.end(lane, end)

    def _snapshot_read_stored(
        self, ranges: Sequence[ReadRange], consistency: Consistency
    ) -> Coroutine[Any, Any, list[list[RawEntry]]]:
        return self._snapshot_read(ranges, consistency, True)  # a plain function: no coroutine frame of its own

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        inner = self.inner
        inner._check_open()
        clock = self._clock
        lane = clock.begin()
        end = lane.clock
        self._round_trips += 1
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
            clock.end(lane, end)

    async def _watch(self, keys: Sequence[Key]) -> AsyncIterator[WatchEntries]:
        """The inner store's watch; each yield counts as one read of its keys (one round trip, its entries and
        bytes), as Deno Deploy bills a watch: the re-reads between yields are the store's own work. Closing this
        watch closes the inner one at once (an ``async for`` would leave it to the garbage collector, watching)."""
        stream = self.inner._watch(keys)
        try:
            async for entries in stream:
                present = [e for e in entries if e.versionstamp is not None]
                self._round_trips += 1
                self._entries += len(present)
                self._bytes_read += sum(len(encode_key(e.key)) + len(encode_value(e.value)[0]) for e in present)
                yield entries
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def _take_event(self) -> TraceEvent | None:
        """The trace event of the call this primitive works for: one handed to it (``_for_event``), else the calling
        public call's."""
        event = self._next_event
        if event is not None:
            self._next_event = None
            return event
        current = _CURRENT.get()
        return current[1] if current is not None and current[0] is self else None

    def _fold(self) -> None:
        """Add what the hot paths counted since the last call to ``self.counts`` (called on every read of it)."""
        gets, round_trips, entries, bytes_read = self._gets, self._round_trips, self._entries, self._bytes_read
        mutations, checks, written, issued = self._mutations, self._checks, self._bytes_written, self._clock.issued
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
        self._clock.close()  # no more forks of its lanes in new tasks
        if self.owns_inner:
            await self.inner.close()

    def sync_point(self) -> None:
        """Treat every round trip completed so far as happened-before the current task's next one."""
        self._clock.sync_point()

    # -- tracing ---------------------------------------------------------------------------------------

    def _event(self, op: str, keys: tuple[Key, ...], fingerprint: str, site: str | None = None) -> TraceEvent:
        """A new trace event; ``site``: where the call came from, when the caller knows (a KV Connect request's
        client), else the caller's code site (a walk up the stack)."""
        if site is None:
            install_on_running_loop()
            site = caller_site(2)
        event = TraceEvent(len(self.trace), op, keys, fingerprint, site, self._clock.wave())
        self.trace.append(event)
        return event

    def _key_event(self, op: str, keys: Sequence[Any]) -> TraceEvent:
        tuples = tuple(_trace_key(k) for k in keys)
        return self._event(op, tuples, keys_fingerprint(tuples, self.fingerprint))

    async def _traced(self, event: TraceEvent, call: Awaitable[T]) -> T:
        """Await a public call with ``event`` as the call its primitives work for (through ``_CURRENT``, which the
        call's tasks and nested awaits see); its duration and any error go on the event."""
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

    async def _for_event(self, event: TraceEvent | None, call: Awaitable[T]) -> T:
        """Await ``call``, which makes at most one primitive call, with ``event`` handed to that primitive; its
        duration and any error go on the event. Used where the work is not a public call of this wrapper: a traced
        list's next() (which pulls a batch or takes one from its buffer) and a KV Connect request.

        The hand-off is a plain attribute, cheaper per list entry than setting ``_CURRENT``: a primitive takes it
        (``_take_event``) before its first await, and a next() that does not pull never suspends, so the event is
        never pending while this task sleeps and another task's primitive cannot take it.
        """
        self._next_event = event
        started = time.perf_counter()
        try:
            return await call
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            if event is not None:
                event.error = type(exc).__name__
            raise
        finally:
            self._next_event = None
            if event is not None:
                event.duration_s += time.perf_counter() - started

    # -- the public calls: count, trace, delegate -----------------------------------------------------

    async def get(self, key: Key, *, consistency: Consistency | None = "strong") -> KvEntry:
        consistency = "strong" if consistency is None else consistency
        if self.tracing:
            self._calls["get"] += 1
            return await self._traced(self._key_event("get", [key]), Kv.get(self, key, consistency=consistency))
        if self.latency is not None:
            self._calls["get"] += 1
            return await Kv.get(self, key, consistency=consistency)
        # The commonest call, untraced, in one coroutine frame instead of three (this one, Kv.get's and
        # _snapshot_read's): Kv.get's steps (_point_read, the read, _point_entry) around the clock's begin and end,
        # the call and its round trip counted as one. The suites run on both paths (tests/backends.py: counting and
        # traced) and test_counting_serial_model checks the clock on both.
        try:
            key, point = _point_read(key, consistency)
            inner = self.inner
            if inner._closed:
                inner._check_open()
        except BaseException:
            self._calls["get"] += 1  # a call made, no round trip
            raise
        clock = self._clock
        lane = clock.begin()
        end = lane.clock
        self._gets += 1
        try:
            [rows] = await inner._snapshot_read([point], consistency)
        finally:
            clock.end(lane, end)
        if rows:
            raw = rows[0]
            self._entries += 1
            self._bytes_read += len(raw.key) + raw.size
        return _point_entry(key, rows)

    def get_many(
        self, keys: Sequence[Key], *, consistency: Consistency | None = "strong"
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
        consistency: Consistency | None = "strong",
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
        return _CountingAtomic(self)

    async def set(self, key: Key, value: Any, *, expire_in: int | None = None) -> CommitResult:
        self._calls["set"] += 1  # the base's set() commits without atomic(): counted as a set, not a commit
        if not self.tracing:
            return await Kv.set(self, key, value, expire_in=expire_in)
        return await self._traced(self._key_event("set", [key]), Kv.set(self, key, value, expire_in=expire_in))

    async def delete(self, key: Key) -> None:
        self._calls["delete"] += 1
        if not self.tracing:
            return await Kv.delete(self, key)
        return await self._traced(self._key_event("delete", [key]), Kv.delete(self, key))

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

    def __anext__(self) -> Coroutine[Any, Any, KvEntry]:
        # A plain function handing back _for_event's coroutine: one coroutine frame per entry, not two.
        return self._owner._for_event(self._event, self._iterator.__anext__())

    async def collect(self) -> list[KvEntry]:
        return [entry async for entry in self]
