"""How one execution of each scenario runs: untimed preparation, then the timed call.

The same classes serve the worker processes (timed by pyperf) and the in-process measurement of exact counts.
Every queue runs on the queue's FakeClock, so a job added with no delay is ready at once and the counts repeat
exactly (see docs/bench.md).
"""

from __future__ import annotations

import abc
import random
import time

from queue_impls.jobs import FakeClock, Job, Lease, Queue, Worker
from queue_impls.kv import Kv

from .scenarios import Case
from .seeding import STATUS_FILTERS, job_name, payload

#: Name of the jobs that write_path, worker_throughput and mixed add (the listed jobs are job_name(0)).
CHURN_NAME = "report"
#: A fixed worker id: the default (host:pid:object id) is stored in every lease, so its length - a pid of 4 or 5
#: digits, another host name - would move the exact bytes-written counts between runs and machines.
WORKER_ID = "bench-worker"


class Operation(abc.ABC):
    """One scenario at one point, on one store."""

    def __init__(self, case: Case, kv: Kv) -> None:
        self.case = case
        self.params = case.params
        self.kv = kv
        # A fake clock and a seeded rng: the retry delay's jitter lands in the stored job (its run_at), so an
        # unseeded rng made fail_retry's bytes written differ from run to run and the exact-count gate flaky.
        self.queue = Queue(kv, case.layout, clock=FakeClock(), rng=random.Random(0))

    async def prepare(self) -> None:
        """Untimed work before each execution (add the job the next claim takes, ...); none by default."""
        return None

    @abc.abstractmethod
    async def execute(self) -> None:
        """One timed execution."""


async def list_page(queue: Queue, *, limit: int, offset: int = 0, status: str = "none") -> None:
    """The dashboard's call: one page of the first name's jobs (status: a key of STATUS_FILTERS)."""
    await queue.list_jobs(status=STATUS_FILTERS[status], name=job_name(0), limit=limit, offset=offset)


class ListByName(Operation):
    """list_jobs by name (and status filter): the seed's listJobs, and rtt_sweep's listing."""

    async def execute(self) -> None:
        p = self.params
        await list_page(self.queue, limit=p["limit"], offset=p["offset"], status=p["status"])


class WritePath(Operation):
    """One state change: add, claim, complete, fail (and go back to pending for a retry), delete."""

    def __init__(self, case: Case, kv: Kv) -> None:
        super().__init__(case, kv)
        self.op = self.params["op"]
        self.job_id = ""
        self.lease: Lease | None = None

    async def prepare(self) -> None:
        if self.op == "add":
            return
        self.job_id = await self.queue.add(CHURN_NAME, payload(0), max_attempts=3)
        if self.op in ("complete", "fail_retry"):
            self.lease = await self._claim()

    async def _claim(self) -> Lease:
        leases = await self.queue.claim("bench-worker", [CHURN_NAME], max_jobs=1)
        if not leases:
            raise RuntimeError(f"{self.case.name}: the job just added could not be claimed")
        return leases[0]

    async def execute(self) -> None:
        if self.op == "add":
            await self.queue.add(CHURN_NAME, payload(0), max_attempts=3)
        elif self.op == "claim":
            self.lease = await self._claim()
        elif self.op == "complete":
            assert self.lease is not None
            await self.queue.complete(self.lease)
        elif self.op == "fail_retry":
            assert self.lease is not None
            await self.queue.fail(self.lease, "benchmark failure")
        else:
            await self.queue.delete(self.job_id)


async def _handle(job: Job) -> None:
    """The handler of churned jobs: does nothing, so the KV work is all that is measured."""


class WorkerThroughput(Operation):
    """N jobs, added untimed, then processed end to end by one Worker with the given concurrency."""

    async def prepare(self) -> None:
        for i in range(self.params["N"]):
            await self.queue.add(CHURN_NAME, payload(i))

    async def execute(self) -> None:
        worker = Worker(self.queue, {CHURN_NAME: _handle}, concurrency=self.params["concurrency"], worker_id=WORKER_ID)
        done = await worker.run_until_idle()
        if done != self.params["N"]:
            raise RuntimeError(f"{self.case.name}: the worker processed {done} jobs, expected {self.params['N']}")


class WorkerPath(Operation):
    """The worker path per job: N jobs, added untimed, processed by one Worker with a concurrency and a batch size
    (batch b: the outcomes of b jobs claimed together are written in one commit, which claims the next b)."""

    async def prepare(self) -> None:
        for i in range(self.params["N"]):
            await self.queue.add(CHURN_NAME, payload(i))

    async def execute(self) -> None:
        concurrency, batch = self.params["concurrency"], self.params["batch"]
        worker = Worker(
            self.queue, {CHURN_NAME: _handle}, concurrency=concurrency, batch_size=batch, worker_id=WORKER_ID
        )
        done = await worker.run_until_idle()
        if done != self.params["N"]:
            raise RuntimeError(f"{self.case.name}: the worker processed {done} jobs, expected {self.params['N']}")


class Mixed(Operation):
    """A dashboard lists a page of job_name(0) after every ``every`` churned jobs, while a worker runs them."""

    def __init__(self, case: Case, kv: Kv) -> None:
        super().__init__(case, kv)
        self.worker = Worker(self.queue, {CHURN_NAME: _handle}, concurrency=1, worker_id=WORKER_ID)

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


_OPERATIONS: dict[str, type[Operation]] = {
    "list_by_name": ListByName,
    "seed_case": ListByName,
    "rtt_sweep": ListByName,
    "write_path": WritePath,
    "worker_throughput": WorkerThroughput,
    "worker_path": WorkerPath,
    "mixed": Mixed,
}


def make_operation(case: Case, kv: Kv) -> Operation:
    return _OPERATIONS[case.scenario](case, kv)


async def timed(operation: Operation, loops: int) -> float:
    """Seconds spent in ``loops`` executions, each after its untimed preparation (pyperf's time_func contract)."""
    total = 0.0
    for _ in range(loops):
        await operation.prepare()
        start = time.perf_counter()
        await operation.execute()
        total += time.perf_counter() - start
    return total
