"""CPU instructions per operation, counted by callgrind: a cost figure that does not move with the machine's load.

``qbench run`` starts ``valgrind --tool=callgrind --instr-atstart=no`` processes over the run's plan, one per CPU
it may use, each counting its share of the benchmarks. Inside them (``python -m bench.run.instructions``) start-up,
imports, store opening and each benchmark's warm-up executions run uninstrumented; instrumentation is on for the
measured execution only, framed by two callgrind client requests (zero the counters, dump them under a label), sent
through a few bytes of machine code because Python cannot issue them itself. The figure is the measured span minus
the span of an empty coroutine framed the same way: only the operation's own instructions, on the event loop and the
store's database thread alike, the two in lockstep (lockstep.py: the thread's hand-off takes the same path every
run; what lockstep adds is measured and subtracted). A modelled network's waits (``rtt_sweep``) end at once here: the
figure is the round trips' work, the same at every RTT, not their waiting.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import mmap
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiosqlite

from queue_impls.kv.backends import get_backend

from .lockstep import HandOffs, LockstepQueue, install

#: Executions of each operation before measuring, with callgrind's instrumentation off (valgrind then runs the code
#: several times faster than instrumented): Python 3.11's adaptive interpreter quickens a function after 8 calls and
#: then specializes its instructions, caches fill, SQLite prepares its statements. The second execution of an
#: operation needed 1.5 to 2.8 times the instructions of later ones (docs/ci.md): a figure taken that early measured
#: the warm-up. A fixed number, so that the measured execution meets the same store every run (a write operation's
#: ninth commit and its fifth hit different WAL and B-tree states: a count of warm-ups set by the clock moved
#: write_path figures by up to 5%).
WARMUPS: Final = 10
#: Acknowledgements in the span that measures what one costs (the figure subtracts one per database request).
ACK_SAMPLES: Final = 32
#: The GIL's switch interval in the counting process: longer than any wait for the GIL there (lockstep hands it over).
SWITCH_INTERVAL_S: Final = 100.0
#: How the figures are taken, where a change moves them (recorded in the environment: figures are comparable only
#: when it matches): the warm-ups, the database thread in lockstep with acknowledgements subtracted (lockstep.py),
#: the switch interval.
METHOD: Final = f"warmups={WARMUPS},lockstep,ack-samples={ACK_SAMPLES},switchinterval={SWITCH_INTERVAL_S:g}"
#: Fixed, so that str hashes (dict and set layouts, hence instruction paths) are the same in every run.
HASH_SEED: Final = "0"
#: Callgrind's client requests (valgrind/callgrind.h: VG_USERREQ_TOOL_BASE('C','T') + n) and valgrind's own.
_CT: Final = (ord("C") << 24) | (ord("T") << 16)
ZERO_STATS: Final = _CT + 1
DUMP_STATS_AT: Final = _CT + 3
START_INSTRUMENTATION: Final = _CT + 4
STOP_INSTRUMENTATION: Final = _CT + 5
RUNNING_ON_VALGRIND: Final = 0x1001
#: uint64 request(uint64 *args, uint64 default): valgrind.h's amd64 client-request sequence (args in rax, result in
#: rdx; four rotations of rdi that sum to 128 bits and an xchg rbx,rbx: a no-op unless valgrind runs the code).
_AMD64_REQUEST: Final = bytes.fromhex(
    "4889f8"  # mov rax, rdi
    "4889f2"  # mov rdx, rsi
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3; 13; 61; 51
    "4887db"  # xchg rbx, rbx
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)  # fmt: skip
_LABEL: Final = re.compile(r"^desc: Trigger: Client Request: (\S+)$", re.M)
_SUMMARY: Final = re.compile(r"^summary: (\d+)$", re.M)
_ENTRY: Final = "--kvq-instructions-child"


class InstructionsUnavailable(Exception):
    """This machine cannot count instructions (no valgrind, another CPU architecture, another backend)."""


# -- inside valgrind -------------------------------------------------------------------------------------------


class ClientRequests:
    """Valgrind client requests from Python: the request sequence in an executable page, called through ctypes."""

    def __init__(self) -> None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise InstructionsUnavailable(f"instruction counts need an x86-64 CPU: this one is {platform.machine()}")
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_AMD64_REQUEST)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)(address)
        self._args = (ctypes.c_uint64 * 6)()

    def request(self, code: int, arg: int = 0) -> int:
        self._args[0], self._args[1] = code, arg
        return int(self._call(ctypes.addressof(self._args), 0))

    def running_on_valgrind(self) -> bool:
        return self.request(RUNNING_ON_VALGRIND) != 0


async def _span(
    requests: ClientRequests, label: ctypes.Array[ctypes.c_char], body: Callable[[], Awaitable[None]]
) -> None:
    # The cyclic collector is off inside a span (collected just before): its passes fall where the allocation count
    # crosses a threshold, and with the database thread allocating too, a small operation took one pass more or
    # less from run to run (2.7% of its figure). Reference counting still frees everything as it would.
    gc.collect()
    gc.disable()
    try:
        requests.request(ZERO_STATS)
        await body()
        requests.request(DUMP_STATS_AT, ctypes.addressof(label))
    finally:
        gc.enable()


async def _nothing() -> None:
    return None


def _acknowledgements(queue: LockstepQueue) -> Callable[[], Awaitable[None]]:
    """A body of ``ACK_SAMPLES`` bare acknowledgements of the database thread, to measure what one costs."""

    async def body() -> None:
        for _ in range(ACK_SAMPLES):
            queue.acknowledge()

    return body


def _count_cases(plan_path: str, names: Sequence[tuple[int, str]]) -> None:
    """Run each named case of the plan with its spans framed; callgrind writes one dump per span."""
    from queue_impls.meter import NoWaitTimer, use_timer

    from .worker import open_operation, plan_entry

    requests = ClientRequests()
    if not requests.running_on_valgrind():
        raise SystemExit("bench.run.instructions: the child runs under valgrind only (qbench run starts it)")
    # A thread waiting for the GIL asks its holder to drop it after the switch interval (5 ms): a time, so under load
    # the request fell at another instruction or not at all, and the database thread's last steps before it waits
    # again moved past the loop's next request. With lockstep no thread needs to be preempted: they never are.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    handoffs = HandOffs()
    install(handoffs)  # before any store is opened: its database thread then works in lockstep with the loop
    loop = asyncio.new_event_loop()
    use_timer(loop, NoWaitTimer())  # a modelled network's waits cost time, not work: count the work alone
    settle = ctypes.create_string_buffer(b"settle")
    for index, name in names:  # the case's index in the whole plan labels its spans
        entry = plan_entry(plan_path, name)
        private_dir = Path(tempfile.mkdtemp(prefix="instructions-", dir=entry["run_dir"]))
        operation, kv = loop.run_until_complete(open_operation(entry, private_dir))
        for _ in range(WARMUPS):
            loop.run_until_complete(operation.prepare())
            loop.run_until_complete(operation.execute())
        labels = {kind: ctypes.create_string_buffer(f"{kind}:{index}".encode()) for kind in ("op", "empty")}
        requests.request(START_INSTRUMENTATION)
        # The first span after instrumentation starts reads wrong (callgrind's counters restart mid-block): discarded.
        loop.run_until_complete(_span(requests, settle, _nothing))
        loop.run_until_complete(operation.prepare())
        before = handoffs.acknowledgements
        loop.run_until_complete(_span(requests, labels["op"], operation.execute))
        acks = handoffs.acknowledgements - before
        loop.run_until_complete(_span(requests, labels["empty"], _nothing))
        queue = handoffs.live()
        if acks and queue is not None:  # the label carries the operation's number of acknowledgements
            label = ctypes.create_string_buffer(f"ack:{index}:{acks}".encode())
            loop.run_until_complete(_span(requests, label, _acknowledgements(queue)))
        requests.request(STOP_INSTRUMENTATION)
        loop.run_until_complete(kv.close())
        shutil.rmtree(private_dir, ignore_errors=True)
    loop.close()


# -- the run's side --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counted:
    """Instructions of one execution of each benchmark (per job where the benchmark counts per job)."""

    per_op: dict[str, float]
    environment: dict[str, str]
    seconds: float


def environment() -> dict[str, str]:
    """What an instruction figure depends on besides the code: compare figures only when all of it matches."""
    build, built_on = platform.python_build()
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()} ({build}, {built_on}) "
        f"[{platform.python_compiler()}]",
        "valgrind": valgrind_version(),
        "machine": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        # The database thread's request loop is aiosqlite's code, counted with the operation.
        "aiosqlite": aiosqlite.__version__,
        "method": METHOD,
    }


def valgrind_version() -> str:
    path = shutil.which("valgrind")
    if path is None:
        raise InstructionsUnavailable("valgrind is not installed: instruction counts not recorded")
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "valgrind (version unknown)"


def check_available(backend: str) -> None:
    """Raise InstructionsUnavailable, with the one-line reason, when this run cannot count instructions."""
    if not get_backend(backend).in_process:
        raise InstructionsUnavailable(
            f"instruction counts are not recorded on {backend}: the store runs in another process"
        )
    if platform.machine() not in ("x86_64", "AMD64"):
        raise InstructionsUnavailable(f"instruction counts need an x86-64 CPU: this one is {platform.machine()}")
    valgrind_version()


def count_instructions(plan_path: Path, cases: Sequence[Any], work_dir: Path) -> Counted:
    """Count every case of the plan under callgrind; raises InstructionsUnavailable or RuntimeError.

    The cases are dealt round-robin to one callgrind process per CPU this process may run on: each process counts
    only its own instructions, so splitting changes no figure, and the pass takes about half as long on two CPUs.
    """
    env_info = environment()
    started = time.perf_counter()
    workers = max(1, min(len(os.sched_getaffinity(0)), len(cases)))
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED}
    outs, running = [], []
    try:
        for worker in range(workers):
            out = work_dir / f"callgrind-{worker}"
            out.mkdir(parents=True, exist_ok=True)
            share = [(index, case.name) for index, case in enumerate(cases) if index % workers == worker]
            names_file = work_dir / f"instruction-cases-{worker}.json"
            names_file.write_text(json.dumps(share))
            command = [
                "valgrind", "--tool=callgrind", "--instr-atstart=no", "--dump-line=no", "--dump-instr=no",
                f"--callgrind-out-file={out}/cg.out", sys.executable, "-m", "bench.run.instructions", _ENTRY,
                str(plan_path), str(names_file),
            ]  # fmt: skip
            stderr = (work_dir / f"callgrind-{worker}.stderr").open("w")
            running.append((subprocess.Popen([*_no_aslr(), *command], stdout=subprocess.DEVNULL, stderr=stderr,
                                             env=env), stderr))  # fmt: skip
            outs.append(out)
        for process, stderr in running:
            process.wait()
            stderr.close()
    finally:
        for process, stderr in running:
            if process.poll() is None:  # interrupted: no callgrind process outlives the run
                process.kill()
                process.wait()
            stderr.close()
    for worker, (process, _) in enumerate(running):
        if process.returncode != 0:
            lines = (work_dir / f"callgrind-{worker}.stderr").read_text(errors="replace").strip().splitlines()
            tail = "\n".join(lines[-12:])
            raise RuntimeError(f"the callgrind pass failed (exit status {process.returncode}):\n{tail}")
    spans = {label: total for out in outs for label, total in read_dumps(out).items()}
    per_op = {case.name: figure(spans, index, per_job=case.params["N"] if case.per == "job" else 1)
              for index, case in enumerate(cases)}  # fmt: skip
    return Counted(per_op, env_info, time.perf_counter() - started)


def _no_aslr() -> list[str]:
    """``setarch -R`` where it works: with the same addresses every run, sets and dicts keyed by object identity
    (asyncio's tasks, weak references) are laid out alike. The spread that remains is the threads' (docs/ci.md)."""
    setarch = shutil.which("setarch")
    if setarch is None:
        return []
    done = subprocess.run([setarch, "-R", "true"], capture_output=True, timeout=60)
    return [setarch, "-R"] if done.returncode == 0 else []


def read_dumps(directory: Path) -> dict[str, int]:
    """label -> instructions, from callgrind's dump files (one per client-request dump)."""
    spans: dict[str, int] = {}
    for path in directory.glob("cg.out.*"):
        text = path.read_text(encoding="utf-8", errors="replace")
        label, total = _LABEL.search(text), _SUMMARY.search(text)
        if label is not None and total is not None:
            spans[label.group(1)] = int(total.group(1))
    return spans


def figure(spans: dict[str, int], index: int, *, per_job: int = 1) -> float:
    """The measured span minus the empty span and the lockstep's acknowledgements (lockstep.py), per job when the
    benchmark counts per job."""
    try:
        measured = spans[f"op:{index}"] - spans[f"empty:{index}"]
    except KeyError as exc:
        raise RuntimeError(f"the callgrind pass wrote no dump {exc.args[0]}") from None
    value = measured - acknowledgements(spans, index)
    return round(value / per_job, 1) if per_job != 1 else round(value, 1)


def acknowledgements(spans: dict[str, int], index: int) -> float:
    """What the operation's acknowledgements cost: their number (the ack span's label) times the cost of one
    (that span, less the empty span, over ``ACK_SAMPLES``); 0 for an operation that made no database request."""
    prefix = f"ack:{index}:"
    found = [(label, total) for label, total in spans.items() if label.startswith(prefix)]
    if not found:
        return 0.0
    label, total = found[0]
    return int(label[len(prefix) :]) * (total - spans[f"empty:{index}"]) / ACK_SAMPLES


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == _ENTRY:
        _count_cases(sys.argv[2], [(index, name) for index, name in json.loads(Path(sys.argv[3]).read_text())])
    else:
        raise SystemExit("bench.run.instructions is started by `qbench run` under valgrind, not by hand")
