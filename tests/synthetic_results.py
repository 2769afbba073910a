"""Synthetic kvq results files that follow docs/results-format.md exactly, for testing reports, compare and gate.

The counts come from a small cost model of each layout (list batches, per-job gets, get_many chunks), so the files have
the shapes real runs have: constant costs, costs linear in N, a seed case of 101 calls for naive and 1 for optimized.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyperf

LAYOUTS = ("naive", "optimized", "batched", "indexed")
MATCH = {"none": 1.0, "rare": 0.01, "half": 0.5}
JOB_BYTES = 180
ID_BYTES = 40
SEED_PARAMS = {"N": 100, "K": 1, "limit": 100, "offset": 0, "status": "none"}
WRITE_BYTES = {"naive": 260, "optimized": 440, "batched": 260, "indexed": 620}
WRITE_MUTATIONS = {"naive": 3, "optimized": 3, "batched": 3, "indexed": 4}

Tweak = Callable[[str, dict[str, Any]], None]


@dataclass
class Spec:
    """What to put in a synthetic file."""

    suite: str = "quick"
    backend: str = "sqlite"
    layouts: tuple[str, ...] = LAYOUTS
    ns: tuple[int, ...] = (100, 1000, 10000)
    limits: tuple[int, ...] = (10, 50, 100)
    statuses: tuple[str, ...] = ("none", "rare")
    rtts: tuple[int, ...] = (0, 1, 5, 20)
    values: int = 6
    noise: float = 0.02
    seed: int = 1
    time_scale: dict[str, float] = field(default_factory=dict)
    time_factor: float = 1.0
    pattern: tuple[float, ...] = ()  # fixed multipliers of the time instead of random noise
    #: Record kvq_instructions (from the counts) taken in this environment; None: no instruction figures.
    instructions_env: dict[str, str] | None = None
    #: Multipliers of some benchmarks' instruction figures.
    instruction_scale: dict[str, float] = field(default_factory=dict)
    #: Benchmarks left out of the file.
    omit: tuple[str, ...] = ()
    #: Whether to add the worker_path benchmarks (per job: a worker's round trips split into finding and committing).
    worker_path: bool = False


#: The environment synthetic instruction figures claim (bench/instructions.py's keys).
INSTRUCTIONS_ENV = {"python": "CPython 3.11.9 (main) [GCC 12]", "valgrind": "valgrind-3.19.0", "machine": "x86_64",
                    "sqlite": "3.45.1"}  # fmt: skip


def list_counts(layout: str, params: dict[str, Any]) -> dict[str, Any]:
    """KV cost of one list_jobs call under a simple model of each layout."""
    per_name = params["N"] // params["K"]
    wanted = params["offset"] + params["limit"]
    if layout == "indexed":
        matching = math.floor(per_name * MATCH[params["status"]])
        scanned = min(matching, wanted)
    else:
        scanned = min(per_name, math.ceil(wanted / MATCH[params["status"]]))
    batch = min(params["limit"], 500)
    batches = scanned // batch + 1
    gets = {"naive": scanned, "batched": 0, "optimized": 0, "indexed": 0}[layout]
    get_many = math.ceil(scanned / 10) if layout == "batched" else 0
    value_bytes = JOB_BYTES if layout in ("optimized", "indexed") else ID_BYTES
    calls = {"list": 1, "get": gets, "get_many": get_many}
    return {
        "calls": {op: n for op, n in calls.items() if n},
        "total_calls": 1 + gets + get_many,
        "round_trips": batches + gets + get_many,
        "serial_round_trips": batches + gets + get_many,
        "entries_read": scanned * (1 if value_bytes == JOB_BYTES else 2),
        "bytes_read": scanned * value_bytes + (gets + 10 * get_many) * JOB_BYTES,
        "mutations": 0,
        "checks": 0,
        "bytes_written": 0,
    }


def write_counts(layout: str, op: str) -> dict[str, Any]:
    mutations = WRITE_MUTATIONS[layout] - (1 if op == "claim" else 0)
    return {
        "calls": {"get": 1, "atomic": 1},
        "total_calls": 2,
        "round_trips": 2,
        "serial_round_trips": 2,
        "entries_read": 1,
        "bytes_read": JOB_BYTES,
        "mutations": mutations,
        "checks": 1,
        "bytes_written": WRITE_BYTES[layout] + (60 if op == "fail_retry" else 0),
    }


class Builder:
    """Accumulates benchmarks for one suite."""

    def __init__(self, spec: Spec, tweak: Tweak | None) -> None:
        self.spec = spec
        self.tweak = tweak
        self.rng = random.Random(spec.seed)
        self.suite: pyperf.BenchmarkSuite | None = None

    def suite_metadata(self) -> dict[str, Any]:
        return {
            "kvq_suite": self.spec.suite,
            "kvq_backend": self.spec.backend,
            "kvq_backend_version": "3.45.1",
            "kvq_git_commit": "0123456789abcdef",
            "kvq_version": "0.1.0",
            "kvq_rtt_ms": ",".join(str(r) for r in self.spec.rtts) or "0",
            "python_version": "3.11.9 (64-bit)",
            "cpu_model_name": "Synthetic CPU @ 2.0GHz",
            "cpu_count": 2,
            "platform": "Linux-synthetic",
        }

    def add(
        self,
        scenario: str,
        layout: str,
        params: dict[str, Any],
        counts: dict[str, Any],
        seconds: float,
        derived: dict[str, Any] | None = None,
        nplus1: list[dict[str, Any]] | None = None,
        per: str = "call",
    ) -> None:
        name = f"{scenario}/{layout}/" + ",".join(f"{k}={v}" for k, v in params.items())
        if name in self.spec.omit:
            return
        meta: dict[str, Any] = {"name": name, "unit": "second", **self.suite_metadata()}
        meta.update(kvq_scenario=scenario, kvq_layout=layout, kvq_params=json.dumps(params), kvq_per=per)
        if self.tweak is not None:
            self.tweak(name, counts)
        meta["kvq_counts"] = json.dumps(counts, separators=(",", ":"))
        if derived is not None:
            meta["kvq_derived"] = json.dumps(derived)
        if nplus1 is not None:
            meta["kvq_nplus1"] = json.dumps(nplus1)
        if self.spec.instructions_env is not None:
            figure = (counts["round_trips"] * 200_000 + counts["entries_read"] * 5_000 + 50_000) * (
                self.spec.instruction_scale.get(name, 1.0)
            )
            meta["kvq_instructions"] = json.dumps(round(figure))
            meta["kvq_instructions_env"] = json.dumps(self.spec.instructions_env)
        seconds *= self.spec.time_scale.get(name, 1.0) * self.spec.time_factor
        noise = [math.exp(self.rng.gauss(0, self.spec.noise)) for _ in range(self.spec.values)]
        values = [seconds * m for m in (self.spec.pattern or noise)]
        run = pyperf.Run(values, warmups=[(1, seconds)], metadata=meta, collect_metadata=False)
        bench = pyperf.Benchmark([run])
        if self.suite is None:
            self.suite = pyperf.BenchmarkSuite([bench])
        else:
            self.suite.add_benchmark(bench)


def seconds_for(counts: dict[str, Any], rtt_ms: float = 0.0) -> float:
    return counts["round_trips"] * (25e-6 + rtt_ms / 1000) + counts["entries_read"] * 2e-6 + 1e-5


def nplus1_for(layout: str, counts: dict[str, Any]) -> list[dict[str, Any]]:
    if layout != "naive" or counts["calls"].get("get", 0) < 2:
        return []
    site = "queue_impls/jobs/naive.py:88"
    return [
        {
            "source": 'list ("jobs_by_name", ?)',
            "fingerprint": 'get ("jobs", ?)',
            "count": counts["calls"]["get"],
            "site": site,
        }
    ]


def list_params(spec: Spec) -> Iterable[dict[str, Any]]:
    for n in spec.ns:
        for limit in spec.limits:
            for status in spec.statuses:
                yield {"N": n, "K": 1, "limit": limit, "offset": 0, "status": status}


def add_lists(b: Builder, layout: str) -> None:
    for scenario, params in [("seed_case", SEED_PARAMS)] + [("list_by_name", p) for p in list_params(b.spec)]:
        counts = list_counts(layout, params)
        b.add(scenario, layout, dict(params), counts, seconds_for(counts), nplus1=nplus1_for(layout, counts))
    for rtt in b.spec.rtts:
        params = {**SEED_PARAMS, "rtt_ms": float(rtt)}
        counts = list_counts(layout, params)
        predicted = counts["serial_round_trips"] * rtt / 1000
        b.add("rtt_sweep", layout, params, counts, seconds_for(counts, rtt), derived={"predicted_s": predicted})


def add_writes(b: Builder, layout: str) -> None:
    for op in ("add", "claim", "complete", "fail_retry", "delete"):
        counts = write_counts(layout, op)
        b.add("write_path", layout, {"op": op}, counts, seconds_for(counts))
    for concurrency in (1, 8):
        counts = {k: (round(v * 2.5, 3) if isinstance(v, int) else v) for k, v in write_counts(layout, "add").items()}
        seconds = seconds_for(counts) / (3 if concurrency == 8 else 1)
        b.add(
            "worker_throughput",
            layout,
            {"N": 200, "concurrency": concurrency},
            counts,
            seconds,
            derived={"jobs_per_s": round(1 / seconds, 1)},
            per="job",
        )
    for concurrency, batch in ((1, 1), (8, 1), (8, 8)) if b.spec.worker_path else ():
        finding, commits = (0.4, 1.02) if concurrency == 1 else (0.24 if batch == 1 else 0.22, 0.16)
        round_trips = round(finding + commits, 3)
        counts = {
            "calls": {"list": finding, "commit": commits},
            "total_calls": round_trips,
            "round_trips": round_trips,
            "serial_round_trips": round_trips,
            "entries_read": 1.0 if concurrency == 1 else 1.12,
            "bytes_read": 420.0,
            "mutations": 10.08 if concurrency == 1 else 8.4,
            "checks": 4.0 if concurrency == 1 else 3.14,
            "bytes_written": float(WRITE_BYTES[layout]),
        }
        seconds = 50 * seconds_for(counts)  # the whole run of N jobs
        derived = {"claim_read_round_trips_per_job": finding, "commit_round_trips_per_job": commits}
        b.add(
            "worker_path",
            layout,
            {"N": 50, "concurrency": concurrency, "batch": batch, "rtt_ms": 0.0},
            counts,
            seconds,
            derived={**derived, "jobs_per_s": round(50 / seconds, 1)},
            per="job",
        )
    read = list_counts(layout, {**SEED_PARAMS, "limit": 20})
    write = write_counts(layout, "add")
    derived = {
        "read_round_trips_per_page": read["round_trips"],
        "write_round_trips_per_job": write["round_trips"] + 4,
        "read_bytes_per_page": read["bytes_read"],
        "write_bytes_per_job": write["bytes_written"] * 3,
    }
    b.add(
        "mixed",
        layout,
        {"N": 1000, "K": 1, "limit": 20, "jobs": 100, "every": 10},
        read,
        seconds_for(read),
        derived=derived,
    )


def write_results(path: Path, spec: Spec | None = None, tweak: Tweak | None = None) -> Path:
    """Write a synthetic results file to `path`; `tweak(name, counts)` may edit a benchmark's counts in place."""
    builder = Builder(spec or Spec(), tweak)
    for layout in builder.spec.layouts:
        add_lists(builder, layout)
        add_writes(builder, layout)
    assert builder.suite is not None
    path.parent.mkdir(parents=True, exist_ok=True)
    builder.suite.dump(str(path), replace=True)
    return path
