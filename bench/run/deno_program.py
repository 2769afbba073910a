"""Benchmarks of TypeScript programs run by the real Deno against a fresh KV Connect server each, counted there.

The seed's own queue (bench/run/deno_seed/queue.ts: listJobs before and after its change) is the first such program:
scenario ``deno_seed_case`` seeds a fresh server with the TypeScript ``add()``, counts one ``listJobs`` through the
server's CountingKv, and takes the time per call that Deno measures itself (performance.now around the calls, so a
value includes every request to the server and back). ``python -m bench.run.deno_program`` prints the TypeScript and the
Python ports side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyperf

from queue_impls.jobs import FakeClock, Queue
from queue_impls.kv import KvError, open_kv
from queue_impls.kv.backends.deno import find_deno
from queue_impls.kvconnect import KvConnectServer
from queue_impls.kvconnect.server import TOKEN_ENV
from queue_impls.meter import CountingKv, KvCounts

from ..errors import BenchmarkFailed
from ..scenarios import Case, Timing
from ..scenarios.data import job_name, payload
from ..scenarios.seed_case import SEED_POINT
from .measure import Measured, counts_json, findings_json

PROGRAM: Final = Path(__file__).resolve().parent / "deno_seed" / "list_jobs.ts"
#: The Python layouts the TypeScript transcribes: the seed before ("naive") and after ("optimized") its change.
VARIANTS: Final = {"naive": "before", "optimized": "after"}
#: Counters that must agree between the TypeScript and the Python port (bytes differ: V8 vs this project's codec).
SHARED_COUNTERS: Final = ("calls", "round_trips", "serial_round_trips", "entries_read", "mutations", "checks")
_TIMEOUT_S: Final = 600.0


@dataclass(slots=True)
class DenoListing:
    """One listing of the TypeScript queue through the server: its counts and N+1 findings, and Deno's timings."""

    counts: KvCounts
    nplus1: list[dict[str, Any]]
    listed: int
    values: list[float] = field(default_factory=list)
    warmups: list[float] = field(default_factory=list)
    loops: int = 1


async def run_program(
    server: KvConnectServer, *args: Any, program: Path = PROGRAM, allow: Sequence[str] = ()
) -> dict[str, Any]:
    """Run ``program URL ARGS...`` with the narrowest permissions (plus ``allow``); its last line of JSON, parsed."""
    argv = [find_deno(), "run", "--unstable-kv", "--no-prompt", "--no-config", "--no-lock", "--quiet", *allow]
    argv += [f"--allow-net={server.host}:{server.port}", f"--allow-env={TOKEN_ENV}", str(program), server.url]
    env = {**os.environ, TOKEN_ENV: server.token, "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(*argv, *map(str, args), env=env, stdout=-1, stderr=-1)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _TIMEOUT_S)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip()[-2000:]
        raise BenchmarkFailed(f"{program.name} {' '.join(map(str, args))}: deno exited {proc.returncode}: {tail}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def measure_deno_listing(
    layout: str,
    *,
    N: int,
    K: int,
    limit: int,
    offset: int = 0,
    store_url: str = "memory:",
    warmups: int = 0,
    values: int = 0,
    loops: int = 1,
) -> DenoListing:
    """Seed N jobs over K names with the TypeScript queue on a fresh server, count one listJobs, then time it."""
    variant = VARIANTS[layout]
    async with KvConnectServer.running(store_url, trace=True) as server:
        await run_program(server, variant, "seed", N, K)
        list_args = (job_name(0), limit, offset, "-")
        async with server.kv.measure(trace=True) as m:
            listed = await run_program(server, variant, "list", *list_args)
        result = DenoListing(m.counts, findings_json(m.trace), int(listed["listed"]))
        if values:
            timed = await run_program(server, variant, "time", *list_args, warmups, values, loops)
            result.values, result.warmups, result.loops = timed["values"], timed["warmups"], timed["loops"]
    return result


async def measure_python_listing(layout: str, *, N: int, K: int, limit: int, offset: int = 0) -> KvCounts:
    """The same listing by the Python port (queue_impls.jobs, the same layout), on a fresh counted memory store."""
    kv = CountingKv(await open_kv("memory:"))
    try:
        queue = Queue(kv, layout, clock=FakeClock(), rng=random.Random(0))
        for i in range(N):
            await queue.add(job_name(i % K), payload(i))
        async with kv.measure() as m:
            await queue.list_jobs(name=job_name(0), limit=limit, offset=offset)
        return m.counts
    finally:
        await kv.close()


def shared_counts(counts: KvCounts) -> dict[str, Any]:
    """The counters both ports must agree on."""
    flat = counts.as_dict()
    out: dict[str, Any] = {"calls": {op: n for op, n in counts.calls.items() if n}}
    out.update({name: flat[name] for name in SHARED_COUNTERS if name != "calls"})
    return out


# -- the qbench scenario -----------------------------------------------------------------------------------------


def run_deno_case(case: Case, timing: Timing, metadata: dict[str, str]) -> pyperf.Benchmark:
    """``deno_seed_case``: one benchmark of the TypeScript queue (its own fresh server), like any other benchmark."""
    from .runner import benchmark_metadata

    p = case.params
    if p["status"] != "none":
        raise BenchmarkFailed(f"{case.name}: the TypeScript seed queue lists without a status filter only")
    point = {"N": p["N"], "K": p["K"], "limit": p["limit"], "offset": p["offset"]}
    try:
        probe = asyncio.run(measure_deno_listing(case.layout, **point))
        values = max(timing.values, 3)
        listing = asyncio.run(measure_deno_listing(case.layout, **point, warmups=timing.warmups, values=values))
    except KvError as exc:  # no deno, or the store failed
        raise BenchmarkFailed(f"{case.name}: {type(exc).__name__}: {exc}") from exc
    if listing.counts.snapshot() != probe.counts.snapshot():
        raise BenchmarkFailed(f"{case.name}: two listings of fresh stores counted differently")
    run = pyperf.Run(
        listing.values,
        warmups=[(listing.loops, w * listing.loops) for w in listing.warmups],
        metadata={"name": case.name, "loops": listing.loops, "unit": "second"},
        collect_metadata=False,
    )
    bench = pyperf.Benchmark([run])
    measured = Measured(counts_json(listing.counts), listing.nplus1)
    bench.update_metadata(
        {
            **metadata,
            **benchmark_metadata(case, measured),
            "kvq_program": PROGRAM.relative_to(PROGRAM.parents[3]).as_posix(),
        }
    )
    return bench


# -- side by side ----------------------------------------------------------------------------------------------


async def side_by_side(points: Sequence[dict[str, Any]], *, values: int) -> list[dict[str, Any]]:
    rows = []
    for point in points:
        for layout in VARIANTS:
            params = {k: point[k] for k in ("N", "K", "limit", "offset")}
            started = time.perf_counter()
            ts = await measure_deno_listing(layout, **params, values=values, warmups=1)
            py = await measure_python_listing(layout, **params)
            rows.append(
                {
                    "point": params,
                    "layout": layout,
                    "typescript": shared_counts(ts.counts),
                    "python": shared_counts(py),
                    "ts_bytes_read": ts.counts.bytes_read,
                    "py_bytes_read": py.bytes_read,
                    "ts_median_s": sorted(ts.values)[len(ts.values) // 2] if ts.values else None,
                    "nplus1": ts.nplus1,
                    "seconds": time.perf_counter() - started,
                }
            )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| point | layout | port | calls | round trips | entries read | bytes read | N+1 | TS time per listJobs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        point = ",".join(f"{k}={v}" for k, v in row["point"].items())
        nplus1 = "; ".join(f"{f['count']} x {f['fingerprint']}" for f in row["nplus1"]) or "none"
        for port, key, nbytes in (
            ("TypeScript (Deno)", "typescript", "ts_bytes_read"),
            ("Python", "python", "py_bytes_read"),
        ):
            c = row[key]
            calls = ", ".join(f"{op} {n}" for op, n in c["calls"].items())
            ts = row["ts_median_s"]
            when = f"{ts * 1e3:.2f} ms" if key == "typescript" and ts is not None else ""
            lines.append(
                f"| {point} | {row['layout']} | {port} | {sum(c['calls'].values())} ({calls}) | {c['round_trips']} "
                f"| {c['entries_read']} | {row[nbytes]} | {nplus1 if key == 'typescript' else ''} | {when} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The seed's TypeScript queue and its Python port, side by side.")
    parser.add_argument("--values", type=int, default=5, help="timed values per TypeScript listing (default 5)")
    args = parser.parse_args(argv)
    points = [dict(SEED_POINT), {**SEED_POINT, "N": 250, "limit": 50, "offset": 10}]
    rows = asyncio.run(side_by_side(points, values=args.values))
    print(render(rows))
    equal = all(row["typescript"] == row["python"] for row in rows)
    print(f"\ncounts equal (calls, round trips, entries, mutations, checks): {'yes' if equal else 'NO'}")
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
