"""Our queue against huey's SqliteHuey on SQLite: time per job to add and to run, alternated in one run, pinned.

    python -m tools.huey_vs [--jobs 2000] [--rounds 3] [--cpu N|none]      (needs the extra: pip install -e '.[huey]')

Each round times, in a rotating order, huey and every layout of ours on a fresh SQLite file: ``add`` (N jobs one at
a time: huey's task call, our ``Queue.add``) and ``run`` (huey: ``dequeue`` + ``execute`` until empty, as its
consumer does; ours: one Worker at concurrency 1 and at 8 until idle). Handlers do nothing, so the queue's own cost
is what is timed. The process (and with it the SQLite threads) is pinned to one CPU, and every round measures every
contender, so machine load falls on all of them alike (tools/harness.py); the ratios are ours / huey's within a
round, median over rounds with its 95% interval.

The measured lower bound beside each of ours, ``<layout>/c<N>/raw``: before the rounds, one ordinary pass of that
layout at that concurrency records every commit that reaches the store (``Capture``, through the store's
``on_commit`` hook: each commit's checks, mutations and versionstamp, split into the add phase and the run phase, in
versionstamp order; a commit whose checks failed writes nothing and is not handed over; nothing is timed in that
pass). ``to_rows`` turns them into the rows the store writes, pre-encoded: a set's key, payload, encoding and
expiry; a sum/min/max's resulting 8 bytes (computed from the rows written before it, as the store's upsert does); a
versionstamped key with its suffix; every row stamped with the versionstamp its commit got. ``replay`` then writes
exactly those rows with the standard library's ``sqlite3`` on a fresh file in the store's schema and pragmas
(``SCHEMA``, ``STATEMENTS``' pragmas, ``LOOP_PRAGMAS``): per commit ``BEGIN IMMEDIATE``, each check as the store
reads it (``STATEMENTS.check``, its versionstamp compared), one ``executemany`` per run of consecutive upserts or
deletes (``execute`` for a run of one; a set without an expiry by ``STATEMENTS.upsert_lasting``, as the store sends
it), ``COMMIT``. Nothing else: no version counter row, no expiry purge, no queue
or worker Python, no key or value encoding, no snapshot read outside a commit (the worker's lists and gets), and no
checkpoint (the store runs its checkpoints on its database thread, off the loop, where their wait for the disk costs
the loop nothing; the WAL grows through both phases). So it is the least any store can spend on SQLite to commit
what that layout commits per job, and a layout over 1.0x huey whose bound is over 1.0x too cannot meet the goal on
SQLite without writing less.

``minimal/raw`` is the same for the fewest rows a queue that loses nothing on a crash must write (``minimal_commits``):
add = one commit of a job's record and one ready entry (2 upserts, 2 key ranges); run = one commit per job, as our
worker's finish-and-claim: the outcome of a job (its record set to completed, its lease deleted, checked on the lease)
and the claim of the next (its ready entry deleted, a lease set, checked on the ready entry), the first claim and the
last outcome in commits of their own. Keys and values are our codec's, the record the one ``Queue.add`` writes.

``<layout>/c<N>/codec`` (and ``minimal/codec``) is the other part no implementation on this KV layer can skip: the
codec's work for the same commits (``codec_work``), timed by itself in the same round. Every distinct key of a
phase's checks and mutations encoded once (``encode_key``), every distinct value object its sets write serialised
once (``encode_value``), and in the run phase each job's record as added decoded once (``decode_value``: a worker
must read a job to run it). Keys and values are the ones the layout gave the store (decoded from the captured bytes
before the rounds). Counting each key and value once per phase errs low: our store encodes a key once per check
or mutation. The goals add it to the rows' time round by round: ``rows + codec`` is the least this KV layer (its
Python codec, which must write Deno KV's key encoding and a value encoding that reads back exactly) spends per job
on what a layout commits, with no queue or worker logic, no event loop and no handler call at all.

``<layout>/c<N>/kv`` (and ``minimal/kv``) is what this KV layer, as built, takes for what the layout asked of it: the
capture pass also records, in call order, every ``get``, ``get_many`` and ``list`` the queue made through the KV API
between its commits (``Capture.calls``), and ``replay_kv`` makes those calls again, one at a time, on a fresh SQLite
store: each read with its own arguments, each commit through the atomic builder (its checks, then its mutations, keys
decoded and values given before the rounds; a value object the commit sets under several keys serialised once, as the
queue serialises it). Its reads must find as many entries as the capture's did and its
commits' checks must hold (the store gives the same versionstamps to the same commits), so it leaves the same rows.
It is not a lower bound for any KV layer (a faster KV layer would take less); it splits what a layout costs into the
KV layer's part and the queue's: a layout whose ``kv`` is over 1.0x huey cannot meet the goal on this KV layer as
built, whatever its queue and worker logic, and ``<layout>/c<N>`` minus ``<layout>/c<N>/kv`` is that logic's cost.
The replay is serial where the worker at concurrency 8 has several calls in flight, and a watch's reads (an idle
worker's) are not replayed.

``minimal/worker`` asks the other question, what a queue could take on this KV layer if it wrote and did no more
than a crash needs (``time_minimal_worker``): the minimal queue's record, ready entry and lease, run by the leanest
worker we can write on the KV API, 8 jobs per list and per commit, each commit the outcomes of the last 8 and the
claims of the next 8, each handler a task. ``minimal/worker/inline`` is the same with its handlers awaited one after
the other, no task each: the difference is what a task per job costs, with the turns of the event loop it takes.
Neither keeps the layouts' other guarantees (per-name limits, priorities, delays, retries, fencing tokens, the
expiry index, counters, events, renewals), so every layout does more per job. They are references, not lower
bounds: a faster KV layer would take less. Both make the same reads and commits, captured as a layout's are, so
``minimal/worker/raw``, ``/codec`` and ``/kv`` are their bounds and KV replay. ``split`` prints each one's time per
job in three parts: its rows + codec bound, the KV layer's own cost above that bound, and the rest (the queue's and
worker's logic). A contender that never lets the event loop run (the KV replay, the inline worker, any add phase)
pays its checkpoints on its own time, the wait for the disk included; one that does (a worker) has them waited for
on the store's thread: at concurrency 1 (two checkpoints per 500 jobs) that can leave the rest below zero.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from queue_impls.jobs import LAYOUTS, Queue, Worker
from queue_impls.jobs.keys import JOBS
from queue_impls.jobs.model import Job, JobStatus, new_job_id
from queue_impls.kv import Key, Kv, KvEntry, KvListIterator, open_kv
from queue_impls.kv.atomic import AtomicOperation, apply_u64, set_each_encoded
from queue_impls.kv.backends.sqlite import LOOP_PRAGMAS, SCHEMA, STATEMENTS, SqliteKv
from queue_impls.kv.codec import ENC_U64, decode_key, decode_value, encode_key, encode_value
from queue_impls.kv.types import Check, Mutation, versionstamp_suffix
from tools.harness import (
    Interval,
    add_cpu_option,
    banner,
    format_ratio,
    grid,
    median_interval,
    pin,
    ratios,
    rotation,
)

#: (layout, concurrency) contenders of ours; huey runs with one consumer thread's loop (dequeue + execute).
CONCURRENCIES = (1, 8)


def time_huey(path: Path, jobs: int, *, synchronous_normal: bool = True) -> tuple[float, float]:
    """Seconds per job to add and to run with SqliteHuey. Ours runs WAL with synchronous=NORMAL (no fsync per
    commit); huey's default leaves SQLite's FULL (an fsync per commit), so by default huey gets NORMAL too."""
    try:
        from huey import SqliteHuey  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise SystemExit("huey is not installed: pip install -e '.[huey]' (a bench-only extra)") from None
    huey = SqliteHuey(filename=str(path))
    if synchronous_normal:
        huey.storage.conn.execute("pragma synchronous=1")  # the connection of this thread, the one we use

    @huey.task()  # type: ignore[untyped-decorator,misc,unused-ignore]
    def noop(i: int) -> None:
        return None

    try:
        start = time.perf_counter()
        for i in range(jobs):
            noop(i)
        added = time.perf_counter()
        ran = 0
        while (task := huey.dequeue()) is not None:
            huey.execute(task)
            ran += 1
        end = time.perf_counter()
    finally:
        # Closed here, untimed, as ours is: left to the collector, the connection's close (which checkpoints the
        # WAL) landed in whichever contender's run set off the collection, 20 us per job more in it.
        huey.storage.close()
    if ran != jobs:
        raise SystemExit(f"huey ran {ran} jobs, expected {jobs}")
    return (added - start) / jobs, (end - added) / jobs


#: One commit as it reached the store: its checks, its mutations and the versionstamp it got.
Commit = tuple[tuple[Check, ...], tuple[Mutation, ...], str]


@dataclass(frozen=True)
class KvRead:
    """One read a queue made through the KV API, as ``replay_kv`` makes it again: the method (``get``,
    ``get_many`` or ``list``, the last collected whole) and the arguments it was called with."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


@dataclass
class Capture:
    """What a queue did through one SQLite store, by phase (``add``, then ``run``): ``calls``, every commit whose
    checks held (one whose checks failed writes nothing), as the store's ``on_commit`` hook hands them over, with the
    reads made through the KV API between them (``KvRead``), in the order they were made; ``entries_read``, the
    entries those reads returned."""

    phase: str = "add"
    calls: dict[str, list[KvRead | Commit]] = field(default_factory=lambda: {"add": [], "run": []})
    entries_read: dict[str, int] = field(default_factory=lambda: {"add": 0, "run": 0})

    @property
    def commits(self) -> dict[str, list[Commit]]:
        """Each phase's commits in versionstamp order: the order they were committed in."""
        return {
            phase: sorted((c for c in calls if not isinstance(c, KvRead)), key=lambda commit: commit[2])
            for phase, calls in self.calls.items()
        }  # fixed-width hex: string order is numeric order

    def note(self, checks: Sequence[Check], mutations: Sequence[Mutation], versionstamp: str) -> None:
        """The store's ``on_commit``: called after each commit through it whose checks held."""
        self.calls[self.phase].append((tuple(checks), tuple(mutations), versionstamp))

    def watch_reads(self, kv: Kv) -> None:
        """Record every ``get``, ``get_many`` and ``list`` call made on ``kv`` from now on, and count the entries
        they return (a list's as the caller takes them)."""
        for method in ("get", "get_many", "list"):
            setattr(kv, method, self._recording(method, getattr(kv, method)))

    def _recording(self, method: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.calls[self.phase].append(KvRead(method, args, kwargs))
            if method == "list":
                return _CountedList(call(*args, **kwargs), self)
            return self._counted(call(*args, **kwargs))

        return recorded

    async def _counted(self, read: Awaitable[KvEntry | list[KvEntry]]) -> KvEntry | list[KvEntry]:
        result = await read
        self.entries_read[self.phase] += _found(result)
        return result


class _CountedList:
    """A ``list()`` iterator that adds the entries its caller takes to the capture's ``entries_read``."""

    def __init__(self, entries: KvListIterator, capture: Capture) -> None:
        self._entries = entries
        self._capture = capture

    @property
    def cursor(self) -> str:
        return self._entries.cursor

    def __aiter__(self) -> _CountedList:
        return self

    async def __anext__(self) -> KvEntry:
        entry = await self._entries.__anext__()
        self._capture.entries_read[self._capture.phase] += 1
        return entry

    async def collect(self) -> list[KvEntry]:
        entries = await self._entries.collect()
        self._capture.entries_read[self._capture.phase] += len(entries)
        return entries


async def time_ours(
    path: Path, layout: str, concurrency: int, jobs: int, capture: Capture | None = None
) -> tuple[float, float]:
    """Seconds per job to add and to run with our queue on SQLite; ``capture``: record its reads and commits
    (``Capture``)."""

    async def noop(job: Job) -> None:
        return None

    async with await open_kv(f"sqlite:{path}") as kv:
        queue = Queue(kv, layout)
        if capture is not None:
            _capture_into(kv, capture)
        start = time.perf_counter()
        for i in range(jobs):
            await queue.add("noop", i)
        added = time.perf_counter()
        if capture is not None:
            capture.phase = "run"
        done = await Worker(queue, {"noop": noop}, concurrency=concurrency).run_until_idle()
        end = time.perf_counter()
    if done != jobs:
        raise SystemExit(f"{layout} ran {done} jobs, expected {jobs}")
    return (added - start) / jobs, (end - added) / jobs


def _capture_into(kv: Kv, capture: Capture) -> None:
    """Have ``capture`` record what is read and committed through ``kv`` from now on."""
    if not isinstance(kv, SqliteKv):
        raise TypeError(f"capture records an SQLite store's commits, and this store is {kv.name}")
    kv.on_commit = capture.note
    capture.watch_reads(kv)


async def time_floor(path: Path, jobs: int) -> tuple[float, float]:
    """The floor under any queue on this store: add = one set() per job of the record ``Queue.add`` would write
    (one one-mutation commit through the SQLite backend: a job must be written at least once); run = one set()
    per job of its completed record (its outcome must be written at least once; finding and claiming it, which
    every queue must also do, are left out, so the floor errs low)."""
    record = _record(0)
    done = {**record, "status": "completed", "attempts": 1, "completed_at": record["created_at"]}
    async with await open_kv(f"sqlite:{path}") as kv:
        start = time.perf_counter()
        for i in range(jobs):
            await kv.set(("floor", i), {**record, "data": i})
        added = time.perf_counter()
        for i in range(jobs):
            await kv.set(("floor", i), {**done, "data": i})
        end = time.perf_counter()
    return (added - start) / jobs, (end - added) / jobs


def _record(data: int) -> dict[str, Any]:
    """The record our add() writes for a job of this benchmark (name "noop", ``data`` its number)."""
    now = time.time()
    return Job(new_job_id(), "noop", data, JobStatus.PENDING, 0, 3, now, now).to_value()


#: One row of an upsert: (key, payload, encoding, versionstamp[, expiry ms]: none for a lasting entry, as the store
#: binds it), or of a delete: (key,).
Row = tuple[Any, ...]


@dataclass(frozen=True)
class RawCommit:
    """A commit as rows, pre-encoded: each check's (key, now) parameters with the versionstamp it must find (None:
    no live entry), then the writes in order, one (statement, rows) per run of consecutive upserts or deletes."""

    checks: tuple[tuple[tuple[bytearray, int], bytes | None], ...]
    writes: tuple[tuple[str, tuple[Row, ...]], ...]


def to_rows(phases: Sequence[Sequence[Commit]], now_ms: int) -> list[list[RawCommit]]:
    """The rows the store writes for the commits of ``phases`` (one after the other, on a fresh file), pre-encoded
    as the store binds them.

    A sum/min/max becomes the upsert of its result, computed from the rows written before it (an entry with an
    expiry counts as live: the queue writes none). ``now_ms`` is the checks' "now"."""
    state: dict[bytes, tuple[bytes, int]] = {}
    return [[_commit_rows(commit, state, now_ms) for commit in phase] for phase in phases]


def _commit_rows(commit: Commit, state: dict[bytes, tuple[bytes, int]], now_ms: int) -> RawCommit:
    """One commit's rows; ``state``: every live key's (payload, encoding), brought up to date."""
    checks, mutations, stamp_hex = commit
    stamp = bytearray.fromhex(stamp_hex)
    writes: list[tuple[str, list[Row]]] = []
    for m in mutations:
        row: Row
        if m.kind == "delete":
            state.pop(m.key, None)
            sql, row = STATEMENTS.delete, (bytearray(m.key),)
        else:
            key, payload, encoding, expiry = m.key, m.payload, m.encoding, m.expire_at_ms
            if m.kind in ("sum", "min", "max"):
                payload, encoding, expiry = apply_u64(m.kind, state.get(key), m.value), ENC_U64, None
            elif m.kind == "set_suffix_versionstamp":
                key = key + versionstamp_suffix(stamp_hex)
            state[key] = (payload, encoding)
            if expiry is None:  # as the store writes a set without an expiry: its NULL in the statement, not bound
                sql, row = STATEMENTS.upsert_lasting, (bytearray(key), bytearray(payload), encoding, stamp)
            else:
                sql, row = STATEMENTS.upsert, (bytearray(key), bytearray(payload), encoding, stamp, expiry)
        if writes and writes[-1][0] == sql:
            writes[-1][1].append(row)
        else:
            writes.append((sql, [row]))
    return RawCommit(
        tuple(
            ((bytearray(c.key), now_ms), None if c.versionstamp is None else bytes.fromhex(c.versionstamp))
            for c in checks
        ),
        tuple((sql, tuple(rows)) for sql, rows in writes),
    )


class ReplayError(RuntimeError):
    """A replayed check did not find the versionstamp the captured commit checked: the rows are not the store's."""


def replay(path: Path, phases: Sequence[Sequence[RawCommit]], jobs: int) -> tuple[float, ...]:
    """Seconds per job to write each phase's rows with raw ``sqlite3`` on a fresh file in the store's schema and
    pragmas: per commit ``BEGIN IMMEDIATE``, the checks, one ``executemany`` per run of rows (``execute`` for one),
    ``COMMIT``, and nothing else (no checkpoint: see the module's docstring). Raises ReplayError when a check does
    not hold, FileExistsError when ``path`` is not a fresh file."""
    if path.exists():
        raise FileExistsError(f"replay writes the captured rows on a fresh file, and {path} exists")
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (*STATEMENTS.pragmas, *STATEMENTS.file_pragmas):  # as the store sets up a file
            conn.execute(f"PRAGMA {pragma}")
        conn.executescript(SCHEMA)
        for pragma in LOOP_PRAGMAS:  # and its loop's connection
            conn.execute(f"PRAGMA {pragma}")
        cur, check, out = conn.cursor(), STATEMENTS.check, []
        for phase in phases:
            start = time.perf_counter()
            for commit in phase:
                cur.execute("BEGIN IMMEDIATE")
                for params, expected in commit.checks:
                    found = cur.execute(check, params).fetchone()
                    if (found and found[0]) != expected:  # a missing entry's None against an expected None
                        cur.execute("ROLLBACK")
                        raise ReplayError(f"check on {bytes(params[0])!r}: found {found}, captured {expected!r}")
                for sql, rows in commit.writes:
                    if len(rows) == 1:
                        cur.execute(sql, rows[0])
                    else:
                        cur.executemany(sql, rows)
                cur.execute("COMMIT")
            out.append((time.perf_counter() - start) / jobs)
    finally:
        conn.close()
    return tuple(out)


@dataclass(frozen=True)
class CodecWork:
    """The codec's work for one phase of captured commits, at the least (see the module's docstring)."""

    keys: tuple[Key, ...]  # every distinct key of the phase's checks and mutations, as the layout gave it
    values: tuple[Any, ...]  # every distinct value object of the phase's sets
    reads: tuple[tuple[bytes, int], ...]  # (payload, encoding) to decode: each job's record as added, to run it


def codec_work(phases: Sequence[Sequence[Commit]], record_prefix: bytes) -> list[CodecWork]:
    """The codec's work for each phase of ``phases`` (add, then run). ``record_prefix``: the encoded key prefix of
    the job records (``encode_key(JOBS)``); the records the first phase writes under it are the ones a later phase
    decodes, each once."""
    added: dict[bytes, tuple[bytes, int]] = {}
    out = []
    for number, phase in enumerate(phases):
        keys: dict[bytes, Key] = {}
        values: dict[int, Any] = {}
        for checks, mutations, _ in phase:
            for encoded in (*(c.key for c in checks), *(m.key for m in mutations)):
                if encoded not in keys:
                    keys[encoded] = decode_key(encoded)
            for m in mutations:
                if m.kind == "set":
                    values.setdefault(id(m.value), m.value)  # captured commits hold each value: ids stay unique
                    if number == 0 and m.key.startswith(record_prefix):
                        added[m.key] = (m.payload, m.encoding)
        reads = () if number == 0 else tuple(added.values())
        out.append(CodecWork(tuple(keys.values()), tuple(values.values()), reads))
    return out


def time_codec(phases: Sequence[CodecWork], jobs: int) -> tuple[float, ...]:
    """Seconds per job of each phase's codec work: its keys encoded, its values serialised, its records decoded."""
    out = []
    for work in phases:
        start = time.perf_counter()
        for key in work.keys:
            encode_key(key)
        for value in work.values:
            encode_value(value)
        for payload, encoding in work.reads:
            decode_value(payload, encoding)
        out.append((time.perf_counter() - start) / jobs)
    return tuple(out)


@dataclass(frozen=True)
class KvCommit:
    """A captured commit as ``replay_kv`` makes it through the KV API: each check's key (decoded) and versionstamp,
    each mutation's kind, key (decoded), value (the object the queue gave: a set's value, a sum's operand) and, for a
    set whose value object an earlier set of the commit wrote, that value's place among the commit's distinct values
    (None otherwise): the queue serialises a value once per commit however many keys it writes it under."""

    checks: tuple[tuple[Key, str | None], ...]
    mutations: tuple[tuple[str, Key, Any, int | None], ...]


#: What each mutation kind but a set is through the KV API's atomic builder (``AtomicOperation``).
_BUILDERS: Final = {
    "delete": lambda op, key, value: op.delete(key),
    "sum": AtomicOperation.sum,
    "min": AtomicOperation.min,
    "max": AtomicOperation.max,
}


def kv_calls(calls: Sequence[KvRead | Commit]) -> list[KvRead | KvCommit]:
    """``calls`` ready to be made again through the KV API (``replay_kv``): each commit's keys decoded. Raises
    ValueError for a mutation the replay cannot make as the queue made it (an expiring set, a versionstamped key)."""
    out: list[KvRead | KvCommit] = []
    for call in calls:
        if isinstance(call, KvRead):
            out.append(call)
            continue
        checks, mutations, _ = call
        for m in mutations:
            if (m.kind != "set" and m.kind not in _BUILDERS) or m.expire_at_ms is not None:
                raise ValueError(f"replay_kv makes sets, deletes, sums, mins and maxes without expiry, got {m}")
        values: dict[int, int] = {}  # id of a value object set -> its place among the commit's distinct values
        ops: list[tuple[str, Key, Any, int | None]] = []
        for m in mutations:
            again = values.get(id(m.value)) if m.kind == "set" else None
            if m.kind == "set" and again is None:
                values[id(m.value)] = len(values)
            ops.append((m.kind, decode_key(m.key), m.value, again))
        out.append(KvCommit(tuple((decode_key(c.key), c.versionstamp) for c in checks), tuple(ops)))
    return out


async def replay_kv(
    path: Path, phases: Sequence[Sequence[KvRead | KvCommit]], jobs: int, entries: Sequence[int] | None = None
) -> tuple[float, ...]:
    """Seconds per job to make each phase's calls again through our KV API, on a fresh SQLite store, one at a time in
    the order they were made: each read with its own arguments (a list collected whole), each commit built with the
    atomic builder (``check``, then ``set``/``delete``/``sum``/...; a value the commit sets under several keys
    serialised once, as the queue does) and committed. No queue or worker logic at all.

    Raises ReplayError when a commit's checks do not hold, or when ``entries`` (the entries each phase's reads
    returned in the capture) is given and a phase's reads return another number; FileExistsError when ``path`` is
    not a fresh file."""
    if path.exists():
        raise FileExistsError(f"replay_kv makes the captured calls on a fresh file, and {path} exists")
    builders = _BUILDERS
    out = []
    async with await open_kv(f"sqlite:{path}") as kv:
        for number, phase in enumerate(phases):
            results: list[Any] = []
            start = time.perf_counter()
            for call in phase:
                if isinstance(call, KvCommit):
                    op = kv.atomic()
                    for key, versionstamp in call.checks:
                        op.check(key, versionstamp)
                    serialised: list[tuple[bytes, int]] = []
                    for kind, key, value, again in call.mutations:
                        if kind != "set":
                            builders[kind](op, key, value)
                        elif again is None:  # the value's first set in this commit: serialised here
                            serialised.append(encoded := encode_value(value))
                            set_each_encoded(op, (key,), value, encoded)
                        else:  # written again under another key: serialised once, as the queue does
                            set_each_encoded(op, (key,), value, serialised[again])
                    if not (await op.commit()).ok:
                        raise ReplayError(f"a replayed commit's checks did not hold: {call.checks}")
                elif call.method == "list":
                    results.append(await kv.list(*call.args, **call.kwargs).collect())
                else:
                    results.append(await getattr(kv, call.method)(*call.args, **call.kwargs))
            out.append((time.perf_counter() - start) / jobs)
            if entries is not None:
                found = sum(_found(result) for result in results)
                if found != entries[number]:
                    raise ReplayError(
                        f"phase {number}: the replayed reads found {found} entries, the capture's {entries[number]}"
                    )
    return tuple(out)


def _found(result: KvEntry | list[KvEntry]) -> int:
    """Entries a read returned (a missing key's entry, with no versionstamp, is none)."""
    if isinstance(result, KvEntry):
        return result.versionstamp is not None
    return sum(entry.versionstamp is not None for entry in result)


#: The encoded key prefix of the minimal queue's job records (``minimal_commits``).
MINIMAL_RECORDS: Final = encode_key(("minimal", "job"))


def minimal_commits(jobs: int) -> dict[str, list[Commit]]:
    """The fewest rows a queue that loses nothing on a crash must write, as commits (see the module's docstring):
    add = a job's record and its ready entry; run = per job one commit of its outcome (record set, lease deleted,
    checked on the lease) with the next job's claim (ready entry deleted, lease set, checked on the ready entry)."""
    records = [_record(i) for i in range(jobs)]
    ids = [r["id"] for r in records]
    job, ready, lease = ({i: encode_key(("minimal", part, i)) for i in ids} for part in ("job", "ready", "lease"))
    stamps = (f"{n:016x}0000" for n in range(1, 2 * jobs + 2))

    def put(key: bytes, value: Any) -> Mutation:
        payload, encoding = encode_value(value)
        return Mutation("set", key, value, payload, encoding)

    add: list[Commit] = []
    ready_stamp: dict[str, str] = {}
    for record in records:
        ready_stamp[record["id"]] = stamp = next(stamps)
        add.append(((), (put(job[record["id"]], record), put(ready[record["id"]], record["name"])), stamp))
    run: list[Commit] = []
    lease_stamp = ""
    for i in range(jobs + 1):
        checks: list[Check] = []
        deletes: list[Mutation] = []
        sets: list[Mutation] = []
        if i > 0:  # the outcome of job i - 1
            done = records[i - 1]
            checks.append(Check(lease[done["id"]], lease_stamp))
            deletes.append(Mutation("delete", lease[done["id"]]))
            sets.append(put(job[done["id"]], {**done, "status": "completed", "attempts": 1}))
        if i < jobs:  # the claim of job i
            claimed = records[i]
            checks.append(Check(ready[claimed["id"]], ready_stamp[claimed["id"]]))
            deletes.append(Mutation("delete", ready[claimed["id"]]))
            sets.append(
                put(lease[claimed["id"]], {"worker": "w", "until_ms": int(claimed["created_at"] * 1000) + 30_000})
            )
        lease_stamp = next(stamps)
        run.append((tuple(checks), (*deletes, *sets), lease_stamp))
    return {"add": add, "run": run}


#: The minimal worker's keys: its jobs' records, their ready entries (each carrying its job's record) and leases.
MINIMAL_JOB: Final = ("minimal", "job")
MINIMAL_READY: Final = ("minimal", "ready")
MINIMAL_LEASE: Final = ("minimal", "lease")
#: The minimal worker's two contenders: handlers as tasks, and awaited one by one; their bounds are ``minimal/worker``'s.
MINIMAL_WORKERS: Final = ("minimal/worker", "minimal/worker/inline")


async def time_minimal_worker(
    path: Path, jobs: int, concurrency: int = 8, *, inline: bool = False, capture: Capture | None = None
) -> tuple[float, float]:
    """Seconds per job to add and to run with the leanest queue we can write on our KV API that still loses nothing
    on a crash (``minimal/worker``; a reference, not a lower bound). Add: one commit per job of its record and a
    ready entry carrying that record (serialised once), as the minimal queue's rows. Run, up to ``concurrency`` jobs
    at a time: list the ready entries (the job is in them: no get), then one commit of the previous batch's outcomes
    (each checked on its lease's versionstamp, the lease deleted, the record set to completed) and the next batch's
    claims (each checked on its ready entry's versionstamp, the entry deleted, a lease set: one lease value for the
    batch, serialised once), then the batch's handlers: each a task, so that they run at once as a worker at that
    concurrency runs them, or with ``inline`` (``minimal/worker/inline``) awaited one after the other in the loop's
    own coroutine, what starting a task eagerly gives a handler that never suspends (both make the same reads and
    commits; ``capture`` records them, as for a layout). None of the layouts' other guarantees: no per-name limit,
    priority, delay, retry, fencing token, expiry index, counter, event or renewal; its crash recovery (a scan of the
    leases past their time) would run at start-up only, so it is left out. Raises RuntimeError when a commit's checks
    fail (one worker alone on the store: they cannot) or when it ran another number of jobs than it added."""

    async def noop(record: dict[str, Any]) -> None:
        return None

    records = [_record(i) for i in range(jobs)]
    async with await open_kv(f"sqlite:{path}") as kv:
        if capture is not None:
            _capture_into(kv, capture)
        start = time.perf_counter()
        for record in records:
            keys = ((*MINIMAL_JOB, record["id"]), (*MINIMAL_READY, record["id"]))
            await set_each_encoded(kv.atomic(), keys, record, encode_value(record)).commit()
        added = time.perf_counter()
        if capture is not None:
            capture.phase = "run"
        ran = 0
        running: list[tuple[str, str, dict[str, Any]]] = []  # (id, its lease's versionstamp, record) per job
        while True:
            entries = await kv.list(prefix=MINIMAL_READY, limit=concurrency).collect()
            if not entries and not running:
                break
            op = kv.atomic()
            for job_id, lease_stamp, record in running:
                lease = (*MINIMAL_LEASE, job_id)
                op.check(lease, lease_stamp).delete(lease)
                op.set((*MINIMAL_JOB, job_id), {**record, "status": "completed", "attempts": 1})
            if entries:
                for entry in entries:
                    op.check(entry.key, entry.versionstamp).delete(entry.key)
                held = {"worker": "w", "until_ms": int(time.time() * 1000) + 30_000}
                set_each_encoded(op, [(*MINIMAL_LEASE, e.key[-1]) for e in entries], held, encode_value(held))
            stamp = (await op.commit()).versionstamp
            if stamp is None:
                raise RuntimeError("a minimal worker's commit failed its checks, alone on its store")
            running = [(str(e.key[-1]), stamp, e.value) for e in entries]
            if inline:
                for entry in entries:
                    await noop(entry.value)
            else:
                await asyncio.gather(*[noop(e.value) for e in entries])
            ran += len(entries)
        end = time.perf_counter()
    if ran != jobs:
        raise RuntimeError(f"the minimal worker ran {ran} jobs, expected {jobs}")
    return (added - start) / jobs, (end - added) / jobs


async def capture_layout(path: Path, layout: str, concurrency: int, jobs: int) -> Capture:
    """The reads and commits of one ordinary pass of ``layout`` at ``concurrency`` (its timing discarded)."""
    capture = Capture()
    await time_ours(path, layout, concurrency, jobs, capture)
    return capture


async def capture_minimal_worker(path: Path, jobs: int) -> Capture:
    """The reads and commits of one pass of the minimal worker (its timing discarded): the same with a task per
    handler and inline."""
    capture = Capture()
    await time_minimal_worker(path, jobs, capture=capture)
    return capture


def run(jobs: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    contenders = [
        "huey",
        "huey-default-fsync",
        "floor",
        *(f"{layout}/c{c}" for layout in LAYOUTS for c in CONCURRENCIES),
        *(f"{layout}/c{c}/{bound}" for bound in ("raw", "codec", "kv") for layout in LAYOUTS for c in CONCURRENCIES),
        *(f"minimal/{bound}" for bound in ("raw", "codec", "kv")),
        *MINIMAL_WORKERS,
        *(f"minimal/worker/{bound}" for bound in ("raw", "codec", "kv")),
    ]
    times: dict[str, list[tuple[float, float]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        now_ms = int(time.time() * 1000)
        minimal = minimal_commits(jobs)
        raw = {"minimal": minimal}
        calls: dict[str, list[list[KvRead | KvCommit]]] = {
            "minimal": [kv_calls(minimal["add"]), kv_calls(minimal["run"])]
        }
        entries: dict[str, list[int]] = {"minimal": [0, 0]}
        # the capture passes: untimed, before the rounds
        captures: dict[str, Callable[..., Coroutine[Any, Any, Capture]]] = {
            f"{layout}/c{concurrency}": functools.partial(capture_layout, layout=layout, concurrency=concurrency)
            for layout in LAYOUTS
            for concurrency in CONCURRENCIES
        }
        captures["minimal/worker"] = capture_minimal_worker
        for name, capture_pass in captures.items():
            capture = asyncio.run(capture_pass(Path(tmp) / f"capture-{name.replace('/', '-')}.db", jobs=jobs))
            raw[name] = capture.commits
            calls[name] = [kv_calls(capture.calls["add"]), kv_calls(capture.calls["run"])]
            entries[name] = [capture.entries_read["add"], capture.entries_read["run"]]
        rows = {name: to_rows([commits["add"], commits["run"]], now_ms) for name, commits in raw.items()}
        records = {name: MINIMAL_RECORDS if name.startswith("minimal") else encode_key(JOBS) for name in raw}
        codec = {name: codec_work([c["add"], c["run"]], records[name]) for name, c in raw.items()}
        # The captures and their rows stay alive through the rounds: out of the collector's sight, so that the
        # contender whose allocations set off a full collection does not pay for walking them.
        gc.collect()
        gc.freeze()
        for r in range(rounds):
            for name in rotation(contenders, r):
                gc.collect()  # the last contender's garbage collected here, not in this one's timing
                path = Path(tmp) / f"{name.replace('/', '-')}-{r}.db"
                base, _, bound = name.rpartition("/")
                if name.startswith("huey"):
                    times[name].append(time_huey(path, jobs, synchronous_normal=name == "huey"))
                elif name == "floor":
                    times[name].append(asyncio.run(time_floor(path, jobs)))
                elif name in MINIMAL_WORKERS:
                    times[name].append(asyncio.run(time_minimal_worker(path, jobs, inline=name.endswith("/inline"))))
                elif bound == "raw":
                    add, run_ = replay(path, rows[base], jobs)
                    times[name].append((add, run_))
                elif bound == "codec":
                    add, run_ = time_codec(codec[base], jobs)
                    times[name].append((add, run_))
                elif bound == "kv":
                    add, run_ = asyncio.run(replay_kv(path, calls[base], jobs, entries[base]))
                    times[name].append((add, run_))
                else:
                    layout, c = name.split("/c")
                    times[name].append(asyncio.run(time_ours(path, layout, int(c), jobs)))
    return times


def report(times: dict[str, list[tuple[float, float]]], jobs: int, rounds: int) -> str:
    huey = times["huey"]
    lines = [
        f"{jobs} jobs, {rounds} rounds; per job (median over rounds); ratio = ours / huey per round, median [95% interval]",
        "huey: SqliteHuey with synchronous=NORMAL as ours; huey-default-fsync: its default (SQLite's FULL);",
        "floor: our store alone, add = one set() of the job's record, run = one set() of its outcome (see time_floor)",
        "<layout>/c<N>/raw: the rows those commits write, alone on raw sqlite3: their lower bound (see the docstring);",
        "minimal/raw: the same for a job's record + ready entry, then claim + outcome (see the module's docstring)",
        "<name>/codec: our codec's least work for those commits: distinct keys and values encoded, jobs decoded once",
        "<name>/kv: its reads and commits made again through our KV API, one at a time, no queue logic (replay_kv)",
        "minimal/worker: the leanest crash-safe worker on our KV API, 8 jobs at a time (time_minimal_worker), its",
        "bounds and KV replay captured as a layout's;",
        "minimal/worker/inline: the same with its handlers awaited one by one, no task each (what an eager start gives)",
        "",
    ]
    rows = []
    for name, values in times.items():
        add = statistics.median(v[0] for v in values)
        run_ = statistics.median(v[1] for v in values)
        add_ratio = median_interval(ratios([v[0] for v in values], [h[0] for h in huey]))
        run_ratio = median_interval(ratios([v[1] for v in values], [h[1] for h in huey]))
        rows.append(
            [name, f"{add * 1e6:.0f} us", f"{run_ * 1e6:.0f} us", format_ratio(add_ratio), format_ratio(run_ratio)]
        )
    lines += grid(["contender", "add", "run", "add / huey", "run / huey"], rows)
    return "\n".join([*lines, "", *split(times), "", *goals(times)]) + "\n"


def split(times: dict[str, list[tuple[float, float]]]) -> list[str]:
    """Each layout's (and each minimal worker's) time per job in three parts, each the median of its round-by-round
    values: its rows + codec bound (``<name>/raw`` + ``<name>/codec``); the KV layer's own cost above that bound
    (``<name>/kv`` minus it: the API, statement building, reads); and the rest, the queue's and the worker's own logic
    (``<name>`` minus ``<name>/kv``). The minimal workers share ``minimal/worker``'s bounds (the same calls)."""
    rows = []
    for name, values in times.items():
        base = "minimal/worker" if name in MINIMAL_WORKERS else name
        raw, codec, kv = (times.get(f"{base}/{bound}") for bound in ("raw", "codec", "kv"))
        if raw is None or codec is None or kv is None:
            continue
        cells = [name]
        for i in (0, 1):
            floor = [r[i] + c[i] for r, c in zip(raw, codec, strict=True)]
            above = [k[i] - f for k, f in zip(kv, floor, strict=True)]
            rest = [ours[i] - alone[i] for ours, alone in zip(values, kv, strict=True)]
            cells += [f"{statistics.median(part) * 1e6:.0f} us" for part in (floor, above, rest)]
        rows.append(cells)
    if not rows:
        return []
    header = [
        "per job",
        *(f"{phase}: {part}" for phase in ("add", "run") for part in ("rows+codec", "KV above", "rest")),
    ]
    return [
        "each one's time in three parts: its rows + codec bound; the KV layer's own cost above it (<name>/kv minus the"
        " bound); the rest, the queue's and worker's own logic (<name> minus <name>/kv):",
        *grid(header, rows),
    ]


def goals(times: dict[str, list[tuple[float, float]]]) -> list[str]:
    """The worker path's two goals, judged on the medians: every layout at most 1.0x huey to add and to run, and a
    job's run at concurrency 8 never slower than at 1 (c8 / c1 within each round, median [95% interval]). A missed
    goal names its measured lower bounds: its rows alone (``<name>/raw``), then with the codec's work for them
    (``<name>/raw`` + ``<name>/codec``, summed round by round). It calls the goal impossible on SQLite for those rows
    only when the rows' bound is over 1.0x with its whole 95% interval, else impossible on this KV layer when the
    rows + codec bound is. Then what this KV layer, as built, takes for the same reads and commits with no queue
    logic (``<name>/kv``), over 1.0x when its whole interval is; the minimal queue's bounds follow, and the
    minimal workers' ratios (``minimal/worker``, ``minimal/worker/inline``)."""
    huey = times["huey"]
    lines = []

    def to_huey(names: Sequence[str], i: int) -> Interval:
        summed = [sum(values) for values in zip(*([v[i] for v in times[n]] for n in names), strict=True)]
        return median_interval(ratios(summed, [h[i] for h in huey]))

    def over(bound: Interval) -> bool:
        return bound.median > 1.0 and bound.low > 1.0

    ours = [name for name in times if "/c" in name and not name.endswith(("/raw", "/codec", "/kv"))]
    for name in ours:
        raw, codec, kv = f"{name}/raw", f"{name}/codec", f"{name}/kv"
        for phase, i in (("add", 0), ("run", 1)):
            ratio = to_huey([name], i)
            met = ratio.median <= 1.0
            line = f"[{'   met' if met else 'MISSED'}] {name} {phase} at most 1.0x huey: {format_ratio(ratio)}"
            if not met and raw in times:
                bound = to_huey([raw], i)
                line += f"; its rows alone on raw SQLite: {format_ratio(bound)} (lower bound"
                line += "; impossible on SQLite for what this layout writes)" if over(bound) else ")"
                if codec in times:
                    with_codec = to_huey([raw, codec], i)
                    line += f"; with our codec's work for them: {format_ratio(with_codec)} (lower bound"
                    impossible = over(with_codec) and not over(bound)
                    line += "; impossible on this KV layer for what this layout writes)" if impossible else ")"
            if not met and kv in times:
                through = to_huey([kv], i)
                line += f"; its reads and commits through our KV API alone: {format_ratio(through)}"
                line += " (over 1.0x before any queue logic)" if over(through) else ""
            lines.append(line)
    for layout in dict.fromkeys(name.split("/c")[0] for name in ours):
        c1, c8 = times.get(f"{layout}/c1"), times.get(f"{layout}/c8")
        if c1 and c8:
            ratio = median_interval(ratios([v[1] for v in c8], [v[1] for v in c1]))
            verdict = "   met" if ratio.median <= 1.0 else "MISSED"
            lines.append(
                f"[{verdict}] {layout} run at concurrency 8 not slower than at 1: c8 / c1 {format_ratio(ratio)}"
            )
    minimal = (
        (["minimal/raw"], "rows alone on raw SQLite", "any queue writing these rows"),
        (
            ["minimal/raw", "minimal/codec"],
            "rows + our codec's work for them",
            "any queue on this KV layer writing these rows",
        ),
        (["minimal/kv"], "commits through our KV API alone", "this KV layer as built, before any queue logic"),
    )
    for parts, what, whom in minimal:
        if all(part in times for part in parts):
            add, run_ = to_huey(parts, 0), to_huey(parts, 1)
            beyond = [phase for phase, b in (("add", add), ("run", run_)) if over(b)]
            lines.append(
                f"[ bound] a minimal queue's {what}: add {format_ratio(add)}, run {format_ratio(run_)}"
                + (f" (over 1.0x huey to {' and '.join(beyond)} for {whom})" if beyond else "")
            )
    references = (
        ("minimal/worker", "concurrency 8, a task per handler"),
        ("minimal/worker/inline", "its handlers awaited one by one"),
    )
    for name, how in references:
        if name in times:
            add, run_ = to_huey([name], 0), to_huey([name], 1)
            lines.append(
                f"[   ref] the leanest crash-safe worker on our KV API, {how} (a reference, not a bound): "
                f"add {format_ratio(add)}, run {format_ratio(run_)}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time add and run per job: our layouts vs huey's SqliteHuey.")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per contender and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each times every contender")
    add_cpu_option(parser)
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.rounds < 1:
        parser.error(f"--jobs and --rounds must be at least 1 (got {args.jobs} and {args.rounds})")
    where = pin(args.cpu)  # before any store opens: its database thread inherits it
    sys.stdout.write(banner("every contender once per round, the order rotated", where) + "\n")
    times = run(args.jobs, args.rounds)
    sys.stdout.write(report(times, args.jobs, args.rounds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
