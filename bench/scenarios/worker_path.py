"""worker_path: the worker's KV path per job with a concurrency and a batch size (batch b: the outcomes of b jobs
claimed together are written in one commit, which claims the next b), split into finding and committing jobs, at a
simulated round-trip time (rtt_ms: 0, the store as it is, unless --rtt gives others)."""

from __future__ import annotations

from typing import Any, Final

from queue_impls.jobs import Worker
from queue_impls.meter import KvCounts, LatencyModel

from .base import Case, Param, Scenario
from .data import CHURN_NAME, WORKER_ID
from .worker_throughput import JOBS, Churn, handle, jobs_per_second

#: (concurrency, batch) points: one job at a time, eight at a time, eight per commit.
WORKER_PATH_POINTS: Final = ((1, 1), (8, 1), (8, 8))


def points(suite: str) -> list[dict[str, Any]]:
    return [{"N": JOBS[suite], "concurrency": c, "batch": b, "rtt_ms": 0.0} for c, b in WORKER_PATH_POINTS]


def latency(case: Case) -> LatencyModel | None:
    """The simulated network under a case with an RTT (its store wrapped as rtt_sweep's is); none at RTT 0."""
    rtt_ms = case.params["rtt_ms"]
    return LatencyModel(rtt_ms=rtt_ms) if rtt_ms > 0 else None


class WorkerPath(Churn):
    """N jobs, added untimed, processed by one Worker with a concurrency and a batch size."""

    async def execute(self) -> None:
        concurrency, batch = self.params["concurrency"], self.params["batch"]
        worker = Worker(
            self.queue, {CHURN_NAME: handle}, concurrency=concurrency, batch_size=batch, worker_id=WORKER_ID
        )
        await self.run_worker(worker)


def worker_path_split(counts: KvCounts, jobs: int) -> dict[str, float]:
    """Round trips per job spent finding jobs (reads: ready-queue lists, limit reads, promote/reap sweeps) and
    committing them (each commit writes outcomes and claims the next jobs; the first claims only)."""
    commits = counts.calls.get("commit", 0)
    return {
        "claim_read_round_trips_per_job": round((counts.round_trips - commits) / jobs, 3),
        "commit_round_trips_per_job": round(commits / jobs, 3),
    }


def derived(case: Case, counts: KvCounts) -> dict[str, float]:
    return worker_path_split(counts, case.params["N"])


SCENARIO: Final = Scenario(
    name="worker_path",
    summary="the worker's round trips per job, by concurrency and batch size (per job)",
    params=(Param("N"), Param("concurrency"), Param("batch", column=False), Param("rtt_ms")),
    points=points,
    operation=WorkerPath,
    mutates=True,
    per="job",
    derived=derived,
    timed_derived=jobs_per_second,
    derived_units={"jobs_per_s": "jobs/s", "predicted_s": "second"},
    latency=latency,
    overridable=("rtt_ms",),
)
