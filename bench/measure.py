"""Exact costs, measured once in-process: counts of one execution through CountingKv, N+1 findings on its trace.

Counts are deterministic (the queues run on a fake clock), so one execution is enough; its duration is the probe
from which the suite's loops and processes are planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queue_impls.meter import CountingKv, KvCounts, LatencyModel, TraceEvent, detect_n_plus_one, predict

from .operations import Mixed, Operation, make_operation
from .scenarios import Case
from .stores import StoreSource, open_store


@dataclass(slots=True)
class Measured:
    """What the in-process pass found for one case, in the results file's terms."""

    counts: dict[str, Any]
    nplus1: list[dict[str, Any]]
    derived: dict[str, float] = field(default_factory=dict)
    #: Seconds of the traced execution (plus the predicted network time under rtt_sweep's RTT): a planning estimate.
    probe_s: float = 0.0


def counts_json(counts: KvCounts, divide_by: int = 1) -> dict[str, Any]:
    """kvq_counts: ``calls`` per op, total_calls and every scalar counter (divided and rounded for per-job)."""

    def per(n: int) -> int | float:
        return n if divide_by == 1 else round(n / divide_by, 3)

    flat = counts.as_dict()
    out: dict[str, Any] = {"calls": {op: per(n) for op, n in counts.calls.items()}}
    out.update({key: per(value) for key, value in flat.items() if not key.startswith("calls.")})
    return out


def findings_json(trace: list[TraceEvent]) -> list[dict[str, Any]]:
    return [
        {"source": f.source.label, "fingerprint": f.fingerprint, "count": f.count, "site": f.site}
        for f in detect_n_plus_one(trace)
    ]


async def measure_case(case: Case, source: StoreSource, *, private_dir: Path) -> Measured:
    """Run the case once, traced (counts, N+1, probe), on a store of its own if it writes."""
    kv = CountingKv(await open_store(source, private_dir=private_dir, private=case.mutates))
    try:
        return await _traced_execution(case, kv, make_operation(case, kv))
    finally:
        await kv.close()


async def _traced_execution(case: Case, kv: CountingKv, operation: Operation) -> Measured:
    await operation.prepare()
    if isinstance(operation, Mixed):
        async with kv.measure(trace=True) as m:
            derived = await _mixed_split(kv, operation)
    else:
        async with kv.measure(trace=True) as m:
            await operation.execute()
        derived = {}
    if case.scenario == "worker_path":
        derived.update(worker_path_split(m.counts, case.params["N"]))
    divide = case.params["N"] if case.per == "job" else 1
    probe = m.elapsed_s
    if case.scenario == "rtt_sweep":
        derived["predicted_s"] = predict(m.counts, LatencyModel(rtt_ms=case.params["rtt_ms"])) / 1000
        probe += derived["predicted_s"]
    return Measured(counts_json(m.counts, divide), findings_json(m.trace), derived, probe)


def worker_path_split(counts: KvCounts, jobs: int) -> dict[str, float]:
    """Round trips per job spent finding jobs (reads: ready-queue lists, limit reads, promote/reap sweeps) and
    committing them (each commit writes outcomes and claims the next jobs; the first claims only)."""
    commits = counts.calls.get("commit", 0)
    return {
        "claim_read_round_trips_per_job": round((counts.round_trips - commits) / jobs, 3),
        "commit_round_trips_per_job": round(commits / jobs, 3),
    }


async def _mixed_split(kv: CountingKv, operation: Mixed) -> dict[str, float]:
    """Run the mixed workload step by step, summing what the dashboard reads and what the churn costs."""
    reads, writes = KvCounts(), KvCounts()
    pages = operation.params["jobs"] // operation.params["every"]
    for _ in range(pages):
        async with kv.measure() as churn:
            await operation.churn()
        async with kv.measure() as page:
            await operation.page()
        _accumulate(writes, churn.counts)
        _accumulate(reads, page.counts)
    jobs = pages * operation.params["every"]
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
