"""mixed: a dashboard lists a page after every ``every`` churned jobs while a worker runs them; what it reads per page
and writes per job, apart, give the break-even between a layout's cheaper reads and its dearer writes."""

from __future__ import annotations

from typing import Any, Final

from queue_impls.jobs import Worker
from queue_impls.kv import Kv
from queue_impls.meter import CountingKv, KvCounts

from .base import Case, Param, QueueOperation, Scenario
from .data import CHURN_NAME, WORKER_ID, payload
from .list_by_name import list_page
from .worker_throughput import handle

POINTS: Final[dict[str, dict[str, Any]]] = {
    "smoke": {"N": 20, "K": 1, "limit": 5, "jobs": 4, "every": 2},
    "quick": {"N": 1000, "K": 10, "limit": 50, "jobs": 40, "every": 10},
    "full": {"N": 1000, "K": 1, "limit": 50, "jobs": 100, "every": 10},
}


def points(suite: str) -> list[dict[str, Any]]:
    return [dict(POINTS[suite])]


class Mixed(QueueOperation):
    """A dashboard lists a page of job_name(0) after every ``every`` churned jobs, while a worker runs them."""

    def __init__(self, case: Case, kv: Kv) -> None:
        super().__init__(case, kv)
        self.worker = Worker(self.queue, {CHURN_NAME: handle}, concurrency=1, worker_id=WORKER_ID)

    async def execute(self) -> None:
        for _ in range(self.params["jobs"] // self.params["every"]):
            await self.churn()
            await self.page()

    async def churn(self) -> None:
        for i in range(self.params["every"]):
            await self.queue.add(CHURN_NAME, payload(i))
        await self.worker.run_until_idle()

    async def page(self) -> None:
        await list_page(self.queue, limit=self.params["limit"])

    async def traced(self) -> dict[str, float]:
        """Run the workload step by step, summing what the dashboard reads and what the churn costs."""
        kv = self.kv
        if not isinstance(kv, CountingKv):
            await self.execute()
            return {}
        reads, writes = KvCounts(), KvCounts()
        pages = self.params["jobs"] // self.params["every"]
        for _ in range(pages):
            async with kv.measure() as churn:
                await self.churn()
            async with kv.measure() as page:
                await self.page()
            _accumulate(writes, churn.counts)
            _accumulate(reads, page.counts)
        jobs = pages * self.params["every"]
        return {
            "read_round_trips_per_page": round(reads.round_trips / pages, 3),
            "write_round_trips_per_job": round(writes.round_trips / jobs, 3),
            "read_bytes_per_page": round(reads.total_bytes / pages, 3),
            "write_bytes_per_job": round(writes.total_bytes / jobs, 3),
        }


def _accumulate(total: KvCounts, part: KvCounts) -> None:
    for op, n in part.calls.items():
        total.calls[op] = total.calls.get(op, 0) + n
    for name, value in part.as_dict().items():
        if not name.startswith("calls.") and name != "total_calls":
            setattr(total, name, getattr(total, name) + value)


SCENARIO: Final = Scenario(
    name="mixed",
    summary="a dashboard page after every `every` jobs a worker churns through, on a seeded store",
    params=(Param("N"), Param("K"), Param("limit"), Param("jobs", column=False), Param("every", column=False)),
    points=points,
    operation=Mixed,
    seeded=True,
    mutates=True,
    derived_units={
        "read_round_trips_per_page": "round_trips",
        "write_round_trips_per_job": "round_trips",
        "read_bytes_per_page": "bytes",
        "write_bytes_per_job": "bytes",
    },
)
