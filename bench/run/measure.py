"""Exact costs, measured once in-process: counts of one execution through CountingKv, N+1 findings on its trace.

Counts are deterministic (the queues run on a fake clock), so one execution is enough; its duration is the probe
from which the suite's loops and processes are planned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from queue_impls.kv import Kv
from queue_impls.meter import CountingKv, KvCounts, TraceEvent, detect_n_plus_one, predict

from ..errors import BenchmarkFailed
from ..scenarios import Case, Operation
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
        operation = make_operation(case, kv)
        await operation.setup()
        return await _traced_execution(case, kv, operation)
    finally:
        await kv.close()


def make_operation(case: Case, kv: Kv) -> Operation:
    """The case's timed operation on ``kv`` (a scenario that runs itself has none)."""
    factory = case.spec.operation
    if factory is None:
        raise BenchmarkFailed(f"{case.name}: scenario {case.scenario!r} has no Python operation to run")
    return factory(case, kv)


async def _traced_execution(case: Case, kv: CountingKv, operation: Operation) -> Measured:
    await operation.prepare()
    async with kv.measure(trace=True) as m:
        derived = await operation.traced()
    if case.spec.derived is not None:
        derived.update(case.spec.derived(case, m.counts))
    probe = m.elapsed_s
    model = None if case.spec.latency is None else case.spec.latency(case)
    if model is not None:
        derived["predicted_s"] = predict(m.counts, model) / 1000
        probe += derived["predicted_s"]
    return Measured(counts_json(m.counts, case.divisor), findings_json(m.trace), derived, probe)
