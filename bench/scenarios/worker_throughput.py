"""worker_throughput: N jobs, added untimed, processed end to end by one Worker (per job: counts divided by N)."""

from __future__ import annotations

from typing import Any, Final

from queue_impls.jobs import Job, Worker

from .base import Case, Param, QueueOperation, Scenario
from .data import CHURN_NAME, WORKER_ID, payload

#: Jobs per execution, per suite.
JOBS: Final = {"smoke": 5, "quick": 50, "full": 1000}
CONCURRENCIES: Final = (1, 8)


def points(suite: str) -> list[dict[str, Any]]:
    return [{"N": JOBS[suite], "concurrency": c} for c in CONCURRENCIES]


async def handle(job: Job) -> None:
    """The handler of churned jobs: does nothing, so the KV work is all that is measured."""


class Churn(QueueOperation):
    """N jobs added untimed before each execution."""

    async def prepare(self) -> None:
        for i in range(self.params["N"]):
            await self.queue.add(CHURN_NAME, payload(i))

    async def run_worker(self, worker: Worker) -> None:
        done = await worker.run_until_idle()
        if done != self.params["N"]:
            raise RuntimeError(f"{self.case.name}: the worker processed {done} jobs, expected {self.params['N']}")


class WorkerThroughput(Churn):
    """N jobs, added untimed, then processed end to end by one Worker with the given concurrency."""

    async def execute(self) -> None:
        worker = Worker(self.queue, {CHURN_NAME: handle}, concurrency=self.params["concurrency"], worker_id=WORKER_ID)
        await self.run_worker(worker)


def jobs_per_second(case: Case, mean_s: float) -> dict[str, float]:
    return {"jobs_per_s": round(case.params["N"] / mean_s, 3)}


SCENARIO: Final = Scenario(
    name="worker_throughput",
    summary="N jobs processed end to end by one Worker (per job)",
    params=(Param("N"), Param("concurrency")),
    points=points,
    operation=WorkerThroughput,
    mutates=True,
    per="job",
    timed_derived=jobs_per_second,
    derived_units={"jobs_per_s": "jobs/s"},
)
