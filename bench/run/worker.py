"""The pyperf worker entry point: ``python -m bench.run.worker --kvq-plan PLAN --kvq-case NAME <pyperf worker options>``.

``qbench run`` is pyperf's manager: for each benchmark it spawns worker processes running this module, which
open the case's store, build the operation on one long-lived event loop and let pyperf time it.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # Ctrl-C reaches the whole process group. The manager handles it (it keeps the results of what finished and
    # kills its worker); a worker that took it too would only print a KeyboardInterrupt traceback mid-import.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import asyncio
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyperf

from queue_impls.kv import Kv
from queue_impls.meter import CountingKv

from ..scenarios import Case, Operation, get_scenario, timed
from .affinity import pin
from .measure import make_operation
from .plugins import import_plugins
from .stores import StoreSource, open_store

PLAN_OPTION = "--kvq-plan"
CASE_OPTION = "--kvq-case"


def add_options(runner: pyperf.Runner) -> None:
    """The options pyperf's argument parser must accept, in the manager and in the workers."""
    runner.argparser.add_argument(PLAN_OPTION, help="the run's plan file (written by qbench run)")
    runner.argparser.add_argument(CASE_OPTION, help="the benchmark to run, by name")


def worker_argv(argv: Sequence[str]) -> list[str]:
    """pyperf numbers benchmarks with --worker-task; a worker of this module registers only the one it runs."""
    return [arg for arg in argv if not arg.startswith("--worker-task")]


def plan_entry(plan_path: str, name: str) -> dict[str, Any]:
    """The plan's entry for one case, after importing the run's plug-ins (so their scenarios and layouts exist)."""
    plan = json.loads(Path(plan_path).read_text())
    import_plugins(plan.get("plugins", ()), search=plan.get("plugin_path", ()))
    for entry in plan["cases"]:
        if entry["name"] == name:
            return dict(entry)
    raise SystemExit(f"bench.run.worker: no case {name!r} in {plan_path}")


def case_of(entry: dict[str, Any]) -> Case:
    return Case.make(get_scenario(entry["scenario"]), entry["layout"], entry["params"])


async def open_operation(entry: dict[str, Any], private_dir: Path) -> tuple[Operation, Kv]:
    """The case's operation on its store, set up; a scenario with a simulated network (rtt_sweep) gets its store
    wrapped in CountingKv with the injected round-trip time."""
    case = case_of(entry)
    kv = await open_store(StoreSource.from_json(entry["source"]), private_dir=private_dir, private=case.mutates)
    model = None if case.spec.latency is None else case.spec.latency(case)
    if model is not None:
        kv = CountingKv(kv, latency=model)
    operation = make_operation(case, kv)
    await operation.setup()
    return operation, kv


def main(argv: Sequence[str] | None = None) -> None:
    runner = pyperf.Runner()
    add_options(runner)
    args = runner.parse_args(worker_argv(sys.argv[1:] if argv is None else argv))
    if not args.worker:
        raise SystemExit("bench.run.worker is started by `qbench run`, not by hand")
    pin(args.affinity)  # before the store's threads start (pyperf pins only when timing begins)
    entry = plan_entry(args.kvq_plan, args.kvq_case)
    private_dir = Path(tempfile.mkdtemp(prefix="worker-", dir=entry["run_dir"]))
    loop = asyncio.new_event_loop()
    try:
        operation, kv = loop.run_until_complete(open_operation(entry, private_dir))
        runner.bench_time_func(entry["name"], lambda loops: loop.run_until_complete(timed(operation, loops)))
        loop.run_until_complete(kv.close())
    finally:
        loop.close()
        shutil.rmtree(private_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
