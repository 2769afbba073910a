"""The KV micro-benchmark's workload and registries: the ops, the stores (columns), the comparisons and the targets.

kv_micro (pyperf, one store after another) and kv_interleaved (every comparison side by side) print from these;
kv_bounds, counting_variants and get_instructions time the same workload. One line adds a store, a comparison or a
target, and every report shows it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from queue_impls.kv import CommitResult, Kv, KvEntry, encode_key, encode_value, open_kv
from queue_impls.meter import CountingKv
from tools.deno_inprocess import deno_inprocess, deno_unavailable
from tools.harness import Interval, Op, SelfTimed, differences, format_ratio, format_us, median_interval, ratios
from tools.sqlite_floor import open_floor

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


def check(store: str, op: str, result: object, expected: int) -> None:
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


# ---------------------------------------------------------------------------------------------------- stores

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


@contextlib.asynccontextmanager
async def floor_factory(tmp: Path, workload: Workload) -> AsyncIterator[OpSet]:
    """The single-hop SQL floor (tools/sqlite_floor.py) on a file the SQLite backend created and seeded."""
    path = tmp / "floor.db"
    async with await open_kv(f"sqlite:{path}") as kv:  # the backend's own schema and data
        await seed(kv, workload)
    hot = encode_key(workload.hot_key)
    many = [encode_key(k) for k in workload.many_keys]
    prefix = encode_key(workload.prefix)
    payload, encoding = encode_value(workload.value(0))
    one = [(encode_key(workload.write_keys[0]), payload, encoding)]
    two = [*one, (encode_key(workload.write_keys[1]), payload, encoding)]
    async with open_floor(path) as floor:
        yield {
            GET: lambda: floor.get(hot),
            GET_MANY: lambda: floor.get_many(many),
            LIST_PAGE: lambda: floor.list(prefix + b"\x00", prefix + b"\xff", workload.page),
            SET: lambda: floor.write(one),
            COMMIT: lambda: floor.write(two),
        }


FLOOR = "sqlite floor"
DENO_IN = "deno in-process"


@contextlib.asynccontextmanager
async def deno_inprocess_factory(tmp: Path, workload: Workload) -> AsyncIterator[OpSet]:
    """The same ops timed inside one Deno process (tools/deno_inprocess.ts): "deno" minus this is the bridge."""
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
        """The figure of one pair of seconds: a/b, or a-b in microseconds."""
        return a / b if self.kind == "ratio" else (a - b) * 1e6

    def format(self, value: float) -> str:
        return f"{value:.2f}x" if self.kind == "ratio" else f"{value:+.1f} us"

    def per_round(self, a: list[float], b: list[float]) -> Interval:
        """The median of the per-round values (seconds per call of each side, in round order), with its interval."""
        return median_interval(ratios(a, b) if self.kind == "ratio" else [d * 1e6 for d in differences(a, b)])

    def format_interval(self, interval: Interval) -> str:
        return format_ratio(interval) if self.kind == "ratio" else format_us(interval, scale=1)


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
