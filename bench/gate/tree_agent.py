"""One source tree's benchmarks, served over a pipe: ``qbench gate --against REF`` starts one agent per tree and run.

``python -m bench.gate.tree_agent --suite S --backend B --cache-dir DIR --run-dir DIR [--affinity CPUS]``, started with
the tree as working directory and first on PYTHONPATH, so every import below is that tree's code. It seeds (or
finds cached) the suite's stores with its own code, then answers one JSON request per line on standard input with
one JSON line on standard output: ``measure`` (exact counts and N+1 findings of one case), ``instructions`` (the
callgrind pass over every case), ``open`` / ``time`` / ``close`` (one case's timed executions, for interleaving).
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # Ctrl-C reaches the whole process group: the gate handles it and ends its agents (closing their pipes).
    signal.signal(signal.SIGINT, signal.SIG_IGN)

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from ..run.affinity import pin
from ..run.instructions import InstructionsUnavailable, check_available, count_instructions
from ..run.measure import measure_case
from ..run.runner import RunOptions, _prepare_stores, _write_plan
from ..run.seeding import default_cache_dir
from ..run.worker import open_operation, plan_entry
from ..scenarios import LAYOUTS, Operation, build_cases, parse_rtt

#: The protocol's version: the gate refuses an agent that speaks another one.
PROTOCOL = 1


def source_tree() -> Path:
    """The checkout this code was imported from: the directory holding the ``bench`` package."""
    return Path(__file__).resolve().parents[2]


class Agent:
    """The cases of one suite in one tree, on one event loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.run_dir = Path(args.run_dir)
        self.cases = {c.name: c for c in build_cases(suite=args.suite, layouts=LAYOUTS)}
        options = RunOptions(
            suite=args.suite, backend=args.backend, layouts=LAYOUTS, rtt_ms=parse_rtt(None, suite=args.suite),
            scenarios=(), output=self.run_dir / "unused.json", cache_dir=Path(args.cache_dir or default_cache_dir()),
            progress=False,
        )  # fmt: skip
        self.backend = args.backend
        self.sources = _prepare_stores(options, list(self.cases.values()), self.run_dir, lambda line: None)
        self.plan = _write_plan(list(self.cases.values()), self.sources, self.run_dir)
        self.loop = asyncio.new_event_loop()
        self.open_case: tuple[Operation, Any] | None = None

    def hello(self) -> dict[str, Any]:
        return {"protocol": PROTOCOL, "tree": str(source_tree()), "cases": list(self.cases)}

    def measure(self, name: str) -> dict[str, Any]:
        case = self.cases[name]
        private = Path(tempfile.mkdtemp(prefix="measure-", dir=self.run_dir))
        measured = asyncio.run(measure_case(case, self.sources[name], private_dir=private))
        return {
            "counts": measured.counts,
            "nplus1": measured.nplus1,
            "derived": measured.derived,
            "probe_s": measured.probe_s,
            "per": case.per,
            "params": case.params,
            "scenario": case.scenario,
            "layout": case.layout,
        }

    def instructions(self) -> dict[str, Any]:
        try:
            check_available(self.backend)
            counted = count_instructions(self.plan, list(self.cases.values()), self.run_dir)
        except (InstructionsUnavailable, RuntimeError) as exc:
            return {"unavailable": str(exc)}
        return {"per_op": counted.per_op, "environment": counted.environment, "seconds": counted.seconds}

    def open(self, name: str) -> dict[str, Any]:
        self.close()
        entry = plan_entry(str(self.plan), name)
        private = Path(tempfile.mkdtemp(prefix="timing-", dir=self.run_dir))
        operation, kv = self.loop.run_until_complete(open_operation(entry, private))
        self.open_case = (operation, kv)
        self.time(1)  # warm-up: the first execution prepares statements and specializes the interpreter
        return {"ok": True}

    def time(self, loops: int) -> dict[str, Any]:
        assert self.open_case is not None, "time before open"
        operation = self.open_case[0]
        wall = cpu = 0.0
        for _ in range(loops):
            self.loop.run_until_complete(operation.prepare())
            start, start_cpu = time.perf_counter(), time.process_time()
            self.loop.run_until_complete(operation.execute())
            wall += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
        # CPU time of every thread of this process (the event loop and the store's database thread): unlike wall
        # time, it does not count the moments other processes hold the CPU, so it stays readable on a loaded machine.
        return {"seconds": wall, "cpu_seconds": cpu}

    def close(self) -> dict[str, Any]:
        if self.open_case is not None:
            self.loop.run_until_complete(self.open_case[1].close())
            self.open_case = None
        return {"ok": True}


def serve(agent: Agent, requests: IO[str], replies: IO[str]) -> None:
    for line in requests:
        request = json.loads(line)
        command = request.get("cmd")
        if command == "quit":
            break
        try:
            if command == "measure":
                reply = agent.measure(request["name"])
            elif command == "instructions":
                reply = agent.instructions()
            elif command == "open":
                reply = agent.open(request["name"])
            elif command == "time":
                reply = agent.time(int(request["loops"]))
            elif command == "close":
                reply = agent.close()
            else:
                reply = {"error": f"unknown request {command!r}"}
        except Exception as exc:  # one bad case is reported to the gate, which names it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    agent.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gate.tree_agent")
    parser.add_argument("--suite", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--cache-dir", default=None, help="seeded stores' cache (default: qbench run's)")
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--affinity")
    args = parser.parse_args(argv)
    pin(args.affinity)  # before any store thread starts
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints must not corrupt the protocol
    try:
        agent = Agent(args)
    except Exception as exc:  # seeding failed (disk full, a bad cache dir): one line for the gate, not a traceback
        replies.write(json.dumps({"protocol": PROTOCOL, "error": f"{type(exc).__name__}: {exc}"}) + "\n")
        replies.flush()
        raise SystemExit(1) from None
    replies.write(json.dumps(agent.hello()) + "\n")
    replies.flush()
    serve(agent, sys.stdin, replies)


if __name__ == "__main__":
    main()
