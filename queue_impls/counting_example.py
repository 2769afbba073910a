"""The worked example of docs/counting.md: list 1,000 index entries, then one get per entry, counted exactly.

Run ``python -m queue_impls.counting_example``; the docs paste its output.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from .kv.backends.memory import MemoryKv
from .kv.contract import Kv
from .meter import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    CountingKv,
    Measurement,
    detect_n_plus_one,
    predict,
)

NAME = "email"


def job(i: int) -> dict[str, Any]:
    return {"id": str(uuid.UUID(int=i + 1)), "name": NAME, "status": "pending", "attempts": 0}


async def seed(kv: Kv, n: int, *, denormalised: bool = False) -> None:
    """``n`` jobs under ("jobs", id), indexed under ("jobs_by_name", name, id) by id (or by the whole job)."""
    for i in range(n):
        j = job(i)
        index_value = j if denormalised else j["id"]
        await kv.atomic().set(("jobs", j["id"]), j).set(("jobs_by_name", NAME, j["id"]), index_value).commit()


async def naive(kv: Kv) -> list[Any]:
    """listJobs as the seed wrote it first: the index gives ids, then one get per id."""
    jobs = []
    async for entry in kv.list(prefix=("jobs_by_name", NAME)):
        jobs.append((await kv.get(("jobs", entry.value))).value)
    return jobs


async def batched(kv: Kv) -> list[Any]:
    """The same index, read with one get_many per 10 ids."""
    ids = [entry.value for entry in await kv.list(prefix=("jobs_by_name", NAME)).collect()]
    jobs: list[Any] = []
    for start in range(0, len(ids), 10):
        jobs += [e.value for e in await kv.get_many([("jobs", i) for i in ids[start : start + 10]])]
    return jobs


async def denormalised(kv: Kv) -> list[Any]:
    """The index entries hold the whole job: the list alone answers."""
    return [entry.value for entry in await kv.list(prefix=("jobs_by_name", NAME)).collect()]


PATTERNS: dict[str, tuple[Callable[[Kv], Awaitable[list[Any]]], bool]] = {
    "naive (list + get per entry)": (naive, False),
    "batched (list + get_many per 10)": (batched, False),
    "denormalised (list only)": (denormalised, True),
}


async def measure(pattern: str, n: int = 1000) -> Measurement:
    """Seed a fresh store, then count one run of ``pattern`` through a traced CountingKv."""
    read, denorm = PATTERNS[pattern]
    ckv = CountingKv(MemoryKv(), trace=True)
    await seed(ckv.inner, n, denormalised=denorm)
    async with ckv.measure() as m:
        jobs = await read(ckv)
    assert len(jobs) == n
    await ckv.close()
    return m


def report(pattern: str, m: Measurement) -> str:
    c = m.counts
    calls = ", ".join(f"{op} {count:,}" for op, count in c.calls.items() if count)
    lines = [f"{pattern}:", f"  calls               {c.total_calls:>9,}  ({calls})"]
    for name in ("round_trips", "serial_round_trips", "entries_read", "bytes_read", "mutations", "bytes_written"):
        lines.append(f"  {name:<19} {getattr(c, name):>9,}")
    for label, model in (
        ("same region, 7 ms", DENO_DEPLOY_SAME_REGION),
        ("cross region, 94 ms", DENO_DEPLOY_CROSS_REGION_STRONG),
    ):
        lines.append(f"  predicted on Deno Deploy ({label}): {predict(c, model) / 1000:,.2f} s")
    findings = detect_n_plus_one(m.trace)
    lines += [f"  {finding}" for finding in findings] or ["  N+1: none found"]
    return "\n".join(lines)


async def main(n: int = 1000) -> str:
    return "\n\n".join([report(pattern, await measure(pattern, n)) for pattern in PATTERNS])


if __name__ == "__main__":
    print(asyncio.run(main()))
