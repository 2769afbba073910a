"""write_path: one state change at a time (add, claim, complete, fail and retry, delete): what an index costs on
every write."""

from __future__ import annotations

from typing import Any, Final

from queue_impls.jobs import Lease
from queue_impls.kv import Kv

from .base import Case, Param, QueueOperation, Scenario
from .data import CHURN_NAME, WORKER_ID, payload

WRITE_OPS: Final = ("add", "claim", "complete", "fail_retry", "delete")


def points(suite: str) -> list[dict[str, Any]]:
    return [{"op": op} for op in WRITE_OPS]


class WritePath(QueueOperation):
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
        leases = await self.queue.claim(WORKER_ID, [CHURN_NAME], max_jobs=1)
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


SCENARIO: Final = Scenario(
    name="write_path",
    summary="one state change of one job: add, claim, complete, fail_retry or delete",
    params=(Param("op", text=True),),
    points=points,
    operation=WritePath,
    mutates=True,
)
