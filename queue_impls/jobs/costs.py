"""The measured KV cost of every queue operation in every layout: the table in docs/layouts.md.

Each scenario builds its state on a fresh in-memory store wrapped in CountingKv, then measures one operation.
Run ``python -m queue_impls.jobs.costs`` to print the table, ``--write docs/layouts.md`` to refresh the doc.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ..kv import open_kv
from ..meter import CountingKv
from .backoff import Backoff
from .clock import FakeClock
from .layouts import LAYOUTS
from .model import Job
from .queue import Queue
from .worker import Worker


@dataclass(frozen=True, slots=True)
class Cost:
    """What one operation cost: public KV calls (a list() counts once), round trips, entries read."""

    calls: int
    round_trips: int
    entries_read: int
    mutations: int
    bytes_written: int

    def __str__(self) -> str:
        return f"{self.calls:,} / {self.round_trips:,} / {self.entries_read:,}"

    def writes(self) -> str:
        return f"{self.mutations:,} / {self.bytes_written:,}"


Setup = Callable[[Queue], Awaitable[Any]]
Operation = Callable[[Queue, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    label: str
    setup: Setup
    operation: Operation
    #: The operation changes nothing, so scenarios with the same setup may share one store.
    read_only: bool = False


async def _add_many(q: Queue, n: int, name: str = "email") -> list[str]:
    return [await q.add(name, {"i": i}) for i in range(n)]


async def _one(q: Queue) -> str:
    return await q.add("email", {"to": "a@example.com"})


async def _claimed(q: Queue) -> Any:
    await _one(q)
    [lease] = await q.claim("w")
    return lease


async def _last_attempt(q: Queue) -> Any:
    await q.add("email", 1, max_attempts=1)
    [lease] = await q.claim("w")
    return lease


async def _failed(q: Queue) -> str:
    lease = await _last_attempt(q)
    await q.fail(lease, "boom")
    return str(lease.job.id)


async def _mixed(q: Queue) -> None:
    """1,000 jobs of 10 names, 100 each; the oldest 50 of "name3" completed, the rest pending."""
    for i in range(1000):
        await q.add(f"name{i % 10}", {"i": i})
    for _ in range(50):
        [lease] = await q.claim("w", ["name3"])
        await q.complete(lease)


async def _thousand(q: Queue) -> None:
    await _add_many(q, 1000)


async def _nothing(q: Queue) -> None:
    return None


async def _backlog(q: Queue) -> None:
    for i in range(1000):
        await q.add("email", i, delay=60.0, priority=9)
    await _one(q)


async def _due(q: Queue) -> None:
    for i in range(50):
        await q.add("email", i, delay=1.0)
    assert isinstance(q.clock, FakeClock)
    await q.clock.advance(1.0)


async def _expired(q: Queue) -> None:
    await _one(q)
    await q.claim("w", lease=5.0)
    assert isinstance(q.clock, FakeClock)
    await q.clock.advance(5.0)


async def _run_worker(q: Queue, _: Any) -> None:
    async def handler(job: Job) -> None:
        return None

    # A fixed worker id: the default (host:pid:...) is stored in leases and would change the bytes per machine.
    await Worker(q, {"email": handler}, worker_id="costs-worker").run_until_idle()


async def _rare_name(q: Queue) -> None:
    """10,000 ready jobs of other names, then the one job of "rare"."""
    for i in range(10_000):
        await q.add(f"name{i % 10}", i)
    await q.add("rare", 0)


async def _per_job(q: Queue, concurrency: int, batch: int) -> None:
    async def handler(job: Job) -> None:
        return None

    worker = Worker(q, {"email": handler}, concurrency=concurrency, batch_size=batch, worker_id="costs-worker")
    await worker.run_until_idle()


async def _idle_poll(q: Queue, _: Any) -> None:
    await q.promote_due()
    await q.reap_expired()
    await q.claim("w")


SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario("add", "add()", _nothing, lambda q, _: _one(q)),
    Scenario("get_job", "get_job()", _one, lambda q, job_id: q.get_job(job_id)),
    Scenario("claim", "claim one ready job", _one, lambda q, _: q.claim("w")),
    Scenario("claim_backlog", "claim one ready job behind 1,000 delayed ones", _backlog, lambda q, _: q.claim("w")),
    Scenario("renew", "renew() a lease", _claimed, lambda q, lease: q.renew(lease)),
    Scenario("complete", "complete()", _claimed, lambda q, lease: q.complete(lease)),
    Scenario("fail_retrying", "fail(), will retry", _claimed, lambda q, lease: q.fail(lease, "boom")),
    Scenario("fail_dead", "fail(), last attempt: dead letter", _last_attempt, lambda q, lease: q.fail(lease, "x")),
    Scenario("retry", "retry() a failed job", _failed, lambda q, job_id: q.retry(job_id)),
    Scenario("delete", "delete() a pending job", _one, lambda q, job_id: q.delete(job_id)),
    Scenario("stats", "stats()", _one, lambda q, _: q.stats()),
    Scenario("promote", "promote_due(), 50 delayed jobs due", _due, lambda q, _: q.promote_due()),
    Scenario("reap", "reap_expired(), 1 lease expired", _expired, lambda q, _: q.reap_expired()),
    Scenario("poll_idle", "promote_due() + reap_expired() + claim(), nothing to do", _nothing, _idle_poll),
    Scenario("worker_10", "Worker.run_until_idle(), 10 ready jobs", lambda q: _add_many(q, 10), _run_worker),
    Scenario(
        "worker_100_c1",
        "Worker(concurrency=1).run_until_idle(), 100 ready jobs",
        lambda q: _add_many(q, 100),
        lambda q, _: _per_job(q, 1, 1),
    ),
    Scenario(
        "worker_100_c8",
        "Worker(concurrency=8).run_until_idle(), 100 ready jobs",
        lambda q: _add_many(q, 100),
        lambda q, _: _per_job(q, 8, 1),
    ),
    Scenario(
        "worker_100_b8",
        "Worker(concurrency=8, batch_size=8).run_until_idle(), 100 ready jobs",
        lambda q: _add_many(q, 100),
        lambda q, _: _per_job(q, 8, 8),
    ),
    Scenario(
        "claim_rare",
        "claim([rare]): its 1 ready job among 10,000 of other names",
        _rare_name,
        lambda q, _: q.claim("w", ["rare"]),
    ),
    Scenario(
        "name_100",
        "list_jobs(name, limit=100), 100 jobs of that name",
        lambda q: _add_many(q, 100),
        lambda q, _: q.list_jobs(name="email", limit=100),
        read_only=True,
    ),
    Scenario(
        "name_1000_50",
        "list_jobs(name, limit=50), 1,000 jobs of that name",
        _thousand,
        lambda q, _: q.list_jobs(name="email", limit=50),
        read_only=True,
    ),
    Scenario(
        "name_1000_deep",
        "list_jobs(name, limit=50, offset=950), 1,000 jobs of that name",
        _thousand,
        lambda q, _: q.list_jobs(name="email", limit=50, offset=950),
        read_only=True,
    ),
    Scenario(
        "page_1000_deep",
        "list_jobs_page(name, limit=50) from the cursor at 950",
        _thousand,
        lambda q, cursor: q.list_jobs_page(name="email", limit=50, cursor=cursor),
        read_only=False,
    ),
    Scenario(
        "all_50",
        "list_jobs(limit=50), 1,000 jobs",
        _mixed,
        lambda q, _: q.list_jobs(limit=50),
        read_only=True,
    ),
    Scenario(
        "status_50",
        "list_jobs(status=pending, limit=50), 1,000 jobs",
        _mixed,
        lambda q, _: q.list_jobs(status="pending", limit=50),
        read_only=True,
    ),
    Scenario(
        "status_sparse_50",
        "list_jobs(status=completed, limit=50), 50 of 1,000 match",
        _mixed,
        lambda q, _: q.list_jobs(status="completed", limit=50),
        read_only=True,
    ),
    Scenario(
        "status_name_50",
        "list_jobs(status=pending, name, limit=50), 50 of the name's 100 match",
        _mixed,
        lambda q, _: q.list_jobs(status="pending", name="name3", limit=50),
        read_only=True,
    ),
)


async def _cursor_at_950(q: Queue) -> str | None:
    await _thousand(q)
    cursor = None
    for _ in range(19):
        cursor = (await q.list_jobs_page(name="email", limit=50, cursor=cursor)).cursor
    return cursor


class _Stores:
    """Fresh counted in-memory stores, one per scenario, shared by read-only scenarios with the same setup."""

    def __init__(self, layout: str) -> None:
        self.layout = layout
        self._shared: dict[Setup, tuple[CountingKv, Queue, Any]] = {}
        self._open: list[CountingKv] = []

    async def get(self, scenario: Scenario) -> tuple[CountingKv, Queue, Any]:
        if scenario.read_only and scenario.setup in self._shared:
            return self._shared[scenario.setup]
        kv = CountingKv(await open_kv("memory:"))
        self._open.append(kv)
        q = Queue(kv, self.layout, FakeClock(), rng=random.Random(0), backoff=Backoff(base=0.0))
        setup = _cursor_at_950 if scenario.key == "page_1000_deep" else scenario.setup
        made = (kv, q, await setup(q))
        if scenario.read_only:
            self._shared[scenario.setup] = made
        return made

    async def close(self) -> None:
        for kv in self._open:
            await kv.close()


async def measure(stores: _Stores, scenario: Scenario) -> Cost:
    """The cost of one scenario's operation (its setup not counted)."""
    kv, q, state = await stores.get(scenario)
    async with kv.measure() as m:
        await scenario.operation(q, state)
    counts = m.counts
    return Cost(counts.total_calls, counts.round_trips, counts.entries_read, counts.mutations, counts.bytes_written)


async def cost_table(
    layouts: Sequence[str] = LAYOUTS, scenarios: Sequence[Scenario] = SCENARIOS
) -> dict[str, dict[str, Cost]]:
    """scenario key -> layout -> Cost."""
    table: dict[str, dict[str, Cost]] = {s.key: {} for s in scenarios}
    for layout in layouts:
        stores = _Stores(layout)
        try:
            for scenario in scenarios:
                table[scenario.key][layout] = await measure(stores, scenario)
        finally:
            await stores.close()
    return table


def render(table: dict[str, dict[str, Cost]], layouts: Sequence[str] = LAYOUTS) -> str:
    """Two Markdown tables: reads ("calls / round trips / entries read") and, for operations that write,
    writes ("mutations / bytes written")."""
    labels = {s.key: s.label for s in SCENARIOS}
    head = ["| operation | " + " | ".join(layouts) + " |", "|---|" + "---:|" * len(layouts)]
    reads = [
        f"| {labels.get(k, k)} | " + " | ".join(str(row[lay]) for lay in layouts) + " |" for k, row in table.items()
    ]
    writes = [
        f"| {labels.get(k, k)} | " + " | ".join(row[lay].writes() for lay in layouts) + " |"
        for k, row in table.items()
        if any(cost.mutations for cost in row.values())
    ]
    return "\n".join(
        [
            "KV calls / round trips / entries read:",
            "",
            *head,
            *reads,
            "",
            "Mutations / bytes written:",
            "",
            *head,
            *writes,
        ]
    )


BEGIN: Final = "<!-- costs:begin (generated by python -m queue_impls.jobs.costs --write docs/layouts.md) -->"
END: Final = "<!-- costs:end -->"


def write_into(path: Path, table_md: str) -> None:
    """Replace the text between the BEGIN and END markers of ``path`` with the table."""
    text = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"{path}: no {BEGIN!r} ... {END!r} markers to write the table between")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table_md}\n{END}", text))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the KV cost of every queue operation in every layout.")
    parser.add_argument("--write", type=Path, metavar="DOC", help="write the table between the markers of DOC")
    args = parser.parse_args(argv)
    table_md = render(asyncio.run(cost_table()))
    if args.write:
        write_into(args.write, table_md)
    sys.stdout.write(table_md + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
