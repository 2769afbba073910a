"""KV micro-benchmark: each basic operation on each store, timed by pyperf, beside its single-hop SQL floor.

``python -m bench.kv_micro [--fast] [-o results.json] [any pyperf option]`` prints op x store in microseconds and the
comparison columns, all measured in one run. Stores, comparisons and targets are registries: one line adds a column.
``python -m bench.kv_micro --interleaved [--blocks 30] [--block-calls N] [--stores ...] [--ops ...]`` measures every
comparison instead as alternating blocks of calls on its two stores in one process (bench/kv_interleaved.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiosqlite
import pyperf

from bench.deno_inprocess import deno_inprocess, deno_unavailable
from queue_impls.kv import CommitResult, Kv, KvEntry, encode_key, encode_value, open_kv
from queue_impls.meter import CountingKv

# -------------------------------------------------------------------------------------------------- workload

#: The operations, in table order. Every store implements a subset (usually all) under these names.
GET, GET_MANY, LIST_PAGE, SET, COMMIT = "get", "get_many(10)", "list page(50)", "set", "commit(2 sets)"
OPS: tuple[str, ...] = (GET, GET_MANY, LIST_PAGE, SET, COMMIT)


@dataclass(frozen=True)
class Workload:
    """The data every store is seeded with and the keys each op touches; identical in every worker process."""

    entries: int
    prefix: tuple[str] = ("jobs",)
    page: int = 50
    many: int = 10

    def key(self, i: int) -> tuple[str, str]:
        return (self.prefix[0], f"{i:08d}")

    def value(self, i: int) -> dict[str, Any]:
        """A small job record (about 100 bytes encoded)."""
        return {"id": i, "queue": "default", "state": "queued", "attempts": 0, "payload": {"to": f"u{i}@example.com"}}

    @property
    def hot_key(self) -> tuple[str, str]:
        return self.key(self.entries // 2)

    @property
    def many_keys(self) -> list[tuple[str, str]]:
        step = max(self.entries // self.many, 1)
        return [self.key(i * step) for i in range(self.many)]

    #: Writes go outside the listed prefix so that a set never changes what the list page reads.
    write_keys: tuple[tuple[str, str], tuple[str, str]] = (("bench-writes", "a"), ("bench-writes", "b"))

    def expected_rows(self, op: str) -> int:
        """How many live entries (or ok commits) one call of ``op`` must return: checked before timing."""
        return {GET_MANY: self.many, LIST_PAGE: self.page}.get(op, 1)


async def seed(kv: Kv, workload: Workload, chunk: int = 500) -> None:
    for first in range(0, workload.entries, chunk):
        atomic = kv.atomic()
        for i in range(first, min(first + chunk, workload.entries)):
            atomic.set(workload.key(i), workload.value(i))
        result = await atomic.commit()
        assert result.ok, "seeding commit failed"


# ---------------------------------------------------------------------------------------------------- stores

#: One timed call: pyperf awaits it ``loops`` times and divides.
Op = Callable[[], Awaitable[object]]


@dataclass(frozen=True)
class SelfTimed:
    """An op that times itself (e.g. inside another runtime): ``run(loops)`` returns the seconds the loops took."""

    run: Callable[[int], Awaitable[float]]


OpSet = Mapping[str, Op | SelfTimed]
#: Opens a seeded store in a temporary directory and yields its ops; seeding happens here, never in timed code.
StoreFactory = Callable[[Path, Workload], contextlib.AbstractAsyncContextManager[OpSet]]


@dataclass(frozen=True)
class Store:
    """One column of the table."""

    name: str
    open: StoreFactory
    ops: tuple[str, ...] = OPS
    #: Returns why the store cannot run on this machine (then it is skipped with that reason), or None.
    unavailable: Callable[[], str | None] = lambda: None


def kv_ops(kv: Kv, workload: Workload) -> dict[str, Op]:
    """The five ops on any ``Kv``: the public API exactly as a caller uses it."""
    value = workload.value(0)
    first, second = workload.write_keys

    async def list_page() -> list[KvEntry]:
        return [entry async for entry in kv.list(prefix=workload.prefix, limit=workload.page)]

    async def commit() -> CommitResult:
        return await kv.atomic().set(first, value).set(second, value).commit()

    return {
        GET: functools.partial(kv.get, workload.hot_key),
        GET_MANY: functools.partial(kv.get_many, workload.many_keys),
        LIST_PAGE: list_page,
        SET: functools.partial(kv.set, first, value),
        COMMIT: commit,
    }


def kv_store(name: str, url: Callable[[Path], str], wrap: Callable[[Kv], Kv] | None = None) -> Store:
    """A store opened with ``open_kv(url(tmpdir))``, seeded, then (optionally) wrapped, e.g. by a counting layer."""

    @contextlib.asynccontextmanager
    async def factory(tmp: Path, workload: Workload) -> AsyncIterator[OpSet]:
        async with await open_kv(url(tmp)) as kv:
            await seed(kv, workload)
            if wrap is None:
                yield kv_ops(kv, workload)
                return
            async with wrap(kv) as wrapped:
                yield kv_ops(wrapped, workload)

    return Store(name, factory)


# ------------------------------------------------------------------------------------ the single-hop SQL floor
#
# The same SQL statements the SQLite backend runs, issued through a bare aiosqlite connection in one hop to its
# database thread, with no key/value encoding, validation or entry objects: the least this design can cost.
# Reads are one ``execute_fetchall``. get_many is one ``IN (...)`` statement (the backend runs ten point reads in
# one transaction, so its ratio includes that choice). Writes need several statements (BEGIN IMMEDIATE, the
# versionstamp bump, the upserts, COMMIT), which no single execute can carry: the floor runs them as one function
# on aiosqlite's thread, the hook the backend itself uses. It leaves out the backend's lazy expiry purge.

_LIVE = "(exp IS NULL OR exp > ?)"
FLOOR_GET = f"SELECT v, enc, vs FROM kv WHERE k = ? AND {_LIVE}"
FLOOR_PAGE = f"SELECT k, v, enc, vs FROM kv WHERE k >= ? AND k < ? AND {_LIVE} ORDER BY k LIMIT ?"
FLOOR_BUMP = "UPDATE kv_meta SET value = value + 1 WHERE name = 'version' RETURNING value"
FLOOR_UPSERT = (
    "INSERT INTO kv (k, v, enc, vs, exp) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (k) DO UPDATE SET v = excluded.v, enc = excluded.enc, vs = excluded.vs, exp = excluded.exp"
)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _floor_write(conn: sqlite3.Connection, rows: Sequence[tuple[bytes, bytes, int]]) -> bytes:
    conn.execute("BEGIN IMMEDIATE")
    try:
        (counter,) = conn.execute(FLOOR_BUMP).fetchone()
        stamp: bytes = counter.to_bytes(8, "big") + b"\x00\x00"
        for key, payload, encoding in rows:
            conn.execute(FLOOR_UPSERT, (key, payload, encoding, stamp, None))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return stamp


def floor_ops(conn: aiosqlite.Connection, workload: Workload) -> dict[str, Op]:
    hot = encode_key(workload.hot_key)
    many = [encode_key(k) for k in workload.many_keys]
    many_sql = f"SELECT k, v, enc, vs FROM kv WHERE k IN ({','.join('?' * len(many))}) AND {_LIVE}"
    prefix = encode_key(workload.prefix)
    payload, encoding = encode_value(workload.value(0))
    one = [(encode_key(workload.write_keys[0]), payload, encoding)]
    two = [*one, (encode_key(workload.write_keys[1]), payload, encoding)]

    async def get() -> object:
        return await conn.execute_fetchall(FLOOR_GET, (hot, _now_ms()))

    async def get_many() -> object:
        return await conn.execute_fetchall(many_sql, (*many, _now_ms()))

    async def list_page() -> object:
        return await conn.execute_fetchall(FLOOR_PAGE, (prefix + b"\x00", prefix + b"\xff", _now_ms(), workload.page))

    def write(rows: list[tuple[bytes, bytes, int]]) -> Op:
        return functools.partial(conn._execute, _floor_write, conn._conn, rows)

    return {GET: get, GET_MANY: get_many, LIST_PAGE: list_page, SET: write(one), COMMIT: write(two)}


@contextlib.asynccontextmanager
async def floor_factory(tmp: Path, workload: Workload) -> AsyncIterator[OpSet]:
    path = tmp / "floor.db"
    async with await open_kv(f"sqlite:{path}") as kv:  # the backend's own schema and data
        await seed(kv, workload)
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        for pragma in ("busy_timeout = 30000", "synchronous = NORMAL"):  # as the backend's connection (WAL persists)
            await conn.execute(f"PRAGMA {pragma}")
        yield floor_ops(conn, workload)


FLOOR = "aiosqlite floor"
DENO_IN = "deno in-process"


@contextlib.asynccontextmanager
async def deno_inprocess_factory(tmp: Path, workload: Workload) -> AsyncIterator[OpSet]:
    """The same ops timed inside one Deno process (bench/deno_inprocess.ts): "deno" minus this is the bridge."""
    async with deno_inprocess(tmp / "deno-in.sqlite", workload.entries) as run:
        yield {op: SelfTimed(functools.partial(run, op)) for op in OPS}


#: Every column of the table, in order. Add a store here (one line) and it is run, printed and compared.
STORES: dict[str, Store] = {
    store.name: store
    for store in (
        kv_store("memory", lambda _: "memory:"),
        kv_store("sqlite", lambda tmp: f"sqlite:{tmp / 'kv.db'}"),
        # The same store opened a second time: the A/A control, whose ratio to "sqlite" is the harness's own noise.
        kv_store("sqlite again", lambda tmp: f"sqlite:{tmp / 'kv.db'}"),
        # The real Deno KV: through the deno: backend's bridge, and inside Deno itself.
        Store("deno", kv_store("deno", lambda tmp: f"deno:{tmp / 'kv.sqlite'}").open, unavailable=deno_unavailable),
        Store(DENO_IN, deno_inprocess_factory, unavailable=deno_unavailable),
        Store(FLOOR, floor_factory),
        # The counting wrapper over each store, without and with its trace.
        kv_store("counting(memory)", lambda _: "memory:", lambda kv: CountingKv(kv, owns_inner=False)),
        kv_store("traced(memory)", lambda _: "memory:", lambda kv: CountingKv(kv, trace=True, owns_inner=False)),
        kv_store(
            "counting(sqlite)", lambda tmp: f"sqlite:{tmp / 'kv.db'}", lambda kv: CountingKv(kv, owns_inner=False)
        ),
        kv_store(
            "traced(sqlite)",
            lambda tmp: f"sqlite:{tmp / 'kv.db'}",
            lambda kv: CountingKv(kv, trace=True, owns_inner=False),
        ),
    )
}

# ------------------------------------------------------------------------------------- comparisons and targets


@dataclass(frozen=True)
class Comparison:
    """A derived column: store ``a`` against store ``b`` on each op, as a ratio (a/b) or a difference (a-b, in us)."""

    label: str
    a: str
    b: str
    kind: Literal["ratio", "delta"] = "ratio"

    def of(self, a: float, b: float) -> float:
        return a / b if self.kind == "ratio" else (a - b) * 1e6

    def format(self, value: float) -> str:
        return f"{value:.2f}x" if self.kind == "ratio" else f"{value:+.1f} us"


@dataclass(frozen=True)
class Target:
    """A performance goal: ``column`` (a store, in us, or a comparison) on ``op`` must be at most ``limit``."""

    op: str
    column: str
    limit: float
    why: str


COMPARISONS: list[Comparison] = [
    Comparison("A/A control", "sqlite again", "sqlite"),
    Comparison("sqlite/floor", "sqlite", FLOOR),
    Comparison("counting-memory", "counting(memory)", "memory", "delta"),
    Comparison("traced-memory", "traced(memory)", "memory", "delta"),
    Comparison("counting/sqlite", "counting(sqlite)", "sqlite"),
    Comparison("traced/sqlite", "traced(sqlite)", "sqlite"),
    Comparison("bridge overhead", "deno", DENO_IN, "delta"),
    Comparison("sqlite/deno-in-process", "sqlite", DENO_IN),
]

TARGETS: list[Target] = [
    Target(GET, "sqlite/floor", 1.3, "SQLite get within 1.3x of the single-hop floor"),
    Target(LIST_PAGE, "sqlite/floor", 1.3, "SQLite 50-entry list page within 1.3x of the floor"),
    Target(GET, "memory", 10.0, "memory get under 10 us"),
    Target(GET, "counting/sqlite", 1.05, "counting adds under 5% to a SQLite get"),
    Target(GET, "counting-memory", 2.0, "counting adds under 2 us per call on memory"),
    *(Target(op, "bridge overhead", 100.0, "deno bridge overhead under 100 us per round trip") for op in OPS),
    *(
        Target(op, "sqlite/deno-in-process", 1.0, "SQLite backend no slower than Deno's own in-process KV")
        for op in (GET, SET, LIST_PAGE)
    ),
]

# ------------------------------------------------------------------------------------------------------ table

Results = Mapping[tuple[str, str], float]  # (store, op) -> seconds per call (one statistic of the values)

#: How a benchmark's values become one figure. The median is the default; on a loaded machine ``min`` shows the
#: uncontended cost (every value is already a mean over many loops), and its ratios stay comparable.
STATS: dict[str, Callable[[Any], float]] = {
    "median": lambda bench: float(bench.median()),
    "mean": lambda bench: float(bench.mean()),
    "min": lambda bench: float(min(bench.get_values())),
}


def bench_name(store: str, op: str) -> str:
    return f"{store} :: {op}"


def results_from(benchmarks: Iterable[Any], stat: str = "median") -> dict[tuple[str, str], float]:
    """pyperf Benchmark objects (from a run or a suite JSON) -> (store, op) -> seconds (``stat`` of the values)."""
    out: dict[tuple[str, str], float] = {}
    for bench in benchmarks:
        store, _, op = bench.get_name().partition(" :: ")
        out[store, op] = STATS[stat](bench)
    return out


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))])

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _cell(results: Results, store: str, op: str) -> str:
    value = results.get((store, op))
    return "-" if value is None else f"{value * 1e6:.1f}"


def comparison_value(results: Results, comparison: Comparison, op: str) -> float | None:
    a, b = results.get((comparison.a, op)), results.get((comparison.b, op))
    return None if a is None or b is None else comparison.of(a, b)


def column_value(results: Results, column: str, op: str) -> float | None:
    """A store's time in us, or a comparison's value, for ``op``; None when not measured."""
    for comparison in COMPARISONS:
        if comparison.label == column:
            return comparison_value(results, comparison, op)
    value = results.get((column, op))
    return None if value is None else value * 1e6


def format_table(results: Results, stat: str = "median") -> str:
    stores = [s for s in STORES if any(key[0] == s for key in results)]
    stores += sorted({s for s, _ in results} - set(stores))
    ops = [op for op in OPS if any(key[1] == op for key in results)]
    lines = [f"Time per call, microseconds, {stat} of the values (lower is better):", ""]
    lines += _grid(["op", *stores], [[op, *(_cell(results, s, op) for s in stores)] for op in ops])
    comparisons = [c for c in COMPARISONS if c.a in stores and c.b in stores]
    if comparisons:
        rows = []
        for op in ops:
            values = [comparison_value(results, c, op) for c in comparisons]
            rows.append([op, *("-" if v is None else c.format(v) for c, v in zip(comparisons, values, strict=True))])
        lines += ["", "Side by side, same run:", "", *_grid(["op", *(c.label for c in comparisons)], rows)]
    return "\n".join(lines + target_lines(functools.partial(column_value, results)))


def target_lines(value_of: Callable[[str, str], float | None]) -> list[str]:
    """One met/MISSED line per target whose column ``value_of(column, op)`` measured."""
    lines = []
    for target in TARGETS:
        value = value_of(target.column, target.op)
        if value is not None:
            verdict = "met" if value <= target.limit else "MISSED"
            lines.append(
                f"  [{verdict:>6}] {target.why}: {target.column} {target.op} = {value:.2f} (<= {target.limit})"
            )
    return ["", "Targets:", *lines] if lines else []


# ------------------------------------------------------------------------------------------------------ runner


class _KeptLoop(asyncio.SelectorEventLoop):
    """An event loop that survives pyperf's per-value ``loop.close()``.

    bench_async_func makes a new loop for every value and closes it; a store is opened once per worker (aiosqlite's
    thread, a deno subprocess bound to its loop), so every value must run on the loop that opened it.
    """

    def close(self) -> None:
        pass

    def shutdown(self) -> None:
        super().close()


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def make_runner(argv: Sequence[str]) -> Any:
    fast = "--fast" in argv  # pyperf's flag: with these defaults it means 3 processes x 2 values
    runner = pyperf.Runner(
        processes=6 if fast else 12,
        values=3,
        min_time=0.05 if fast else 0.1,
        program_args=("-m", "bench.kv_micro"),
        add_cmdline_args=_forward_args,
    )
    parser = runner.argparser
    parser.add_argument(
        "--entries", type=int, default=None, help="entries seeded per store (default 10000, 1000 --fast)"
    )
    parser.add_argument("--stores", type=_csv, default=None, help=f"comma-separated subset of: {', '.join(STORES)}")
    parser.add_argument("--ops", type=_csv, default=None, help=f"comma-separated subset of: {', '.join(OPS)}")
    parser.add_argument("--table", metavar="JSON", help="print the table of a saved pyperf JSON file and exit")
    parser.add_argument(
        "--stat", choices=list(STATS), default="median", help="statistic the table shows (default median)"
    )
    parser.add_argument("--plan-digest", default=None, help="(set by the manager for its workers)")
    return runner


def _forward_args(cmd: list[str], args: Any) -> None:
    """Workers re-run this module: give them the same workload and plan (benchmarks are matched by index)."""
    cmd += ["--entries", str(args.entries)]
    if args.stores:
        cmd += ["--stores", ",".join(args.stores)]
    if args.ops:
        cmd += ["--ops", ",".join(args.ops)]
    cmd += ["--plan-digest", args.plan_digest]


def plan(args: Any) -> list[tuple[Store, list[str]]]:
    """The stores to run and their ops, in table order; the same in the manager and every worker."""
    chosen = []
    for name in args.stores or STORES:
        if name not in STORES:
            sys.exit(f"unknown store {name!r}: choose from {', '.join(STORES)}")
        store = STORES[name]
        reason = store.unavailable()
        if reason:
            if not args.worker:
                print(f"skipping {name}: {reason}")
            continue
        chosen.append((store, [op for op in OPS if op in store.ops and (not args.ops or op in args.ops)]))
    return chosen


def checked_plan(args: Any) -> list[tuple[Store, list[str]]]:
    """The plan, refused if it is not the one the manager started with (the script was edited during the run)."""
    chosen = plan(args)
    names = "\n".join(bench_name(store.name, op) for store, ops in chosen for op in ops)
    digest = hashlib.sha256(names.encode()).hexdigest()[:16]
    if args.plan_digest not in (None, digest):
        sys.exit("bench/kv_micro.py's plan changed since this run started: refusing to time the wrong benchmark")
    args.plan_digest = digest
    return chosen


def _check(store: str, op: str, result: object, expected: int) -> None:
    """Refuse to time an op that does not do its work (a missing key, a short page, a failed commit)."""
    if isinstance(result, CommitResult):
        rows = int(result.ok)
    elif isinstance(result, KvEntry):
        rows = int(result.value is not None)
    elif isinstance(result, list):
        rows = sum(1 for item in result if not (isinstance(item, KvEntry) and item.value is None))
    else:
        rows = 1 if isinstance(result, bytes | str) else 0
    if rows != expected:
        raise SystemExit(f"{store} {op}: expected {expected} rows, got {rows} ({result!r:.200})")


def _bench_one(runner: Any, loop: _KeptLoop, name: str, op: Op | SelfTimed | None) -> Any:
    if isinstance(op, SelfTimed):
        run = op.run
        return runner.bench_time_func(name, lambda loops: loop.run_until_complete(run(loops)))
    return runner.bench_async_func(name, op or _not_here, loop_factory=lambda: loop)


async def _not_here() -> None:
    raise AssertionError("a benchmark ran in a process that did not open its store")


def run_store(
    runner: Any, loop: _KeptLoop, store: Store, ops: list[str], first_task: int, workload: Workload
) -> list[Any]:
    """Benchmark ``ops`` of one store; open (and seed) it only if one of them runs in this process."""
    args = runner.args
    here = (args.worker or args.in_process) and (
        args.worker_task is None or first_task <= args.worker_task < first_task + len(ops)
    )
    if not here:
        return [_bench_one(runner, loop, bench_name(store.name, op), None) for op in ops]
    with tempfile.TemporaryDirectory(prefix="kv_micro-") as tmp, contextlib.ExitStack() as closing:
        stack = contextlib.AsyncExitStack()
        closing.callback(lambda: loop.run_until_complete(stack.aclose()))
        opset = loop.run_until_complete(stack.enter_async_context(store.open(Path(tmp), workload)))
        benches = []
        for op in ops:
            fn = opset[op]
            if not isinstance(fn, SelfTimed):
                _check(store.name, op, loop.run_until_complete(fn()), workload.expected_rows(op))
            benches.append(_bench_one(runner, loop, bench_name(store.name, op), fn))
        return benches


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--interleaved" in argv:  # no pyperf: every comparison timed A,B,A,B in this process (bench/kv_interleaved.py)
        from bench import kv_interleaved

        kv_interleaved.main(argv)
        return
    runner = make_runner(argv)
    args = runner.parse_args(list(argv))
    if args.table:
        suite = pyperf.BenchmarkSuite.load(args.table)
        print(format_table(results_from(suite.get_benchmarks(), args.stat), args.stat))
        return
    if args.entries is None:
        args.entries = 1000 if args.fast else 10_000
    workload = Workload(entries=args.entries)
    loop = _KeptLoop()
    benches: list[Any] = []
    try:
        for store, ops in checked_plan(args):
            benches += run_store(runner, loop, store, ops, len(benches), workload)
    finally:
        loop.shutdown()
    if not args.worker:
        print()
        print(format_table(results_from((b for b in benches if b is not None), args.stat), args.stat))


if __name__ == "__main__":
    main()
