"""``qbench run``: seed (cached), measure exact counts in-process, time with pyperf worker processes, write results.

This process is pyperf's manager: one ``pyperf.Runner`` whose worker command is ``python -m bench.run.worker`` with
the run's plan file and the benchmark's name (see worker.py). Results are written after every benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import fnmatch
import io
import json
import math
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import pyperf
from tqdm import tqdm

from queue_impls.jobs import JobQueueError
from queue_impls.kv import KvError

from ..errors import BenchmarkFailed, UsageError
from ..files import check_file_target
from ..results import ResultsWriter, compact_json, suite_metadata
from ..scenarios import SUITE_SPECS, Case, SeedSpec, Timing, build_cases, parse_rtt
from .instructions import Counted, InstructionsUnavailable, check_available, count_instructions
from .measure import Measured, measure_case
from .plugins import import_plugins, plugin_search_path
from .seeding import ensure_seeds, missing_seeds
from .stores import StoreSource, backend_version, prepare_source
from .worker import CASE_OPTION, PLAN_OPTION, add_options

#: Environment variables worker processes keep (pyperf passes only a minimal environment by default).
_INHERITED_ENV: Final = ("TMPDIR", "XDG_CACHE_HOME", "DENO", "DENO_DIR", "NO_COLOR")
#: A worker process costs about this much besides its measured executions (start-up, imports, opening the store).
_PROCESS_OVERHEAD_S: Final = 0.25


@dataclass(frozen=True, slots=True)
class RunOptions:
    suite: str
    backend: str
    layouts: tuple[str, ...]
    #: --rtt: the RTTs (ms) of every scenario that takes them; None: each scenario's own (rtt_sweep's suite default).
    rtt_ms: tuple[float, ...] | None
    scenarios: tuple[str, ...]
    output: Path
    cache_dir: Path
    #: Show a progress bar: None = only on a terminal.
    progress: bool | None = None
    #: CPUs the timing workers (their store threads and subprocesses too) are pinned to, pyperf's --affinity syntax.
    affinity: str | None = None
    #: Count each operation's CPU instructions under callgrind (instructions.py) when valgrind is installed.
    instructions: bool = True
    #: -k: run only the benchmarks whose name matches one of these (a substring, or a shell-style pattern).
    patterns: tuple[str, ...] = ()
    #: --plugin: modules imported before cases are built, and by every worker process and the callgrind pass.
    plugins: tuple[str, ...] = ()
    #: pyperf's --fast / --rigorous / -p / --values, applied to the suite's timing (timing_for).
    timing: TimingFlags | None = None


@dataclass(frozen=True, slots=True)
class TimingFlags:
    """pyperf's timing options, passed through: ``--fast`` and ``--rigorous`` scale the suite's plan as pyperf scales
    its defaults; ``-p``/``--values`` fix the processes and values per process (never cut by the time budget)."""

    fast: bool = False
    rigorous: bool = False
    processes: int | None = None
    values: int | None = None

    def __post_init__(self) -> None:
        if self.fast and self.rigorous:
            raise UsageError("--fast and --rigorous contradict each other: give one")
        for flag, value in (("--processes", self.processes), ("--values", self.values)):
            if value is not None and not 1 <= value <= 1000:
                raise UsageError(f"{flag} must be 1..1000, got {value}")

    def given(self) -> list[str]:
        """The flags as they were given (for the results metadata)."""
        flags = ["--fast"] if self.fast else (["--rigorous"] if self.rigorous else [])
        flags += [] if self.processes is None else [f"--processes={self.processes}"]
        return flags + ([] if self.values is None else [f"--values={self.values}"])


def timing_for(timing: Timing, flags: TimingFlags | None) -> Timing:
    """The suite's timing with pyperf's flags applied.

    --rigorous: twice the processes (pyperf: 20 -> 40), and twice the time budget so they are not cut again.
    --fast: half the processes (at least 1) and two thirds of the values (at least 2, unless the suite asks fewer),
    half the time budget (pyperf: 20 x 3 -> 10 x 2). -p N / --values N: exactly N, whatever the budget.
    """
    if flags is None:
        return timing
    if flags.rigorous:
        timing = replace(timing, processes=timing.processes * 2, budget_s=timing.budget_s * 2,
                         max_seconds=timing.max_seconds * 2)  # fmt: skip
    elif flags.fast:
        values = max(timing.values * 2 // 3, min(timing.values, 2))
        timing = replace(timing, processes=max(timing.processes // 2, 1), values=values,
                         min_values=min(timing.min_values, values), budget_s=timing.budget_s / 2,
                         max_seconds=timing.max_seconds / 2)  # fmt: skip
    if flags.processes is not None:
        timing = replace(timing, processes=flags.processes, min_processes=flags.processes)
    if flags.values is not None:
        timing = replace(timing, values=flags.values, min_values=flags.values)
    return timing


def timing_metadata(timing: Timing, flags: TimingFlags | None) -> dict[str, str]:
    """kvq_timing: the pyperf flags given and the plan they made (only when flags were given)."""
    if flags is None or not flags.given():
        return {}
    plan = {"flags": flags.given(), "processes": timing.processes, "values": timing.values,
            "warmups": timing.warmups, "min_time": timing.min_time}  # fmt: skip
    return {"kvq_timing": compact_json(plan)}


def select_cases(cases: list[Case], patterns: Sequence[str]) -> list[Case]:
    """-k: the cases whose name holds one of ``patterns`` (a shell-style pattern when it has * ? or [); none matched
    is a UsageError naming the closest benchmark names."""
    if not patterns:
        return cases
    chosen = [case for case in cases if any(_matches(case.name, pattern) for pattern in patterns)]
    if not chosen:
        # Names, and their scenario and scenario/layout parts, so that a short pattern finds its near miss.
        known = list(dict.fromkeys(x for c in cases for x in (c.scenario, f"{c.scenario}/{c.layout}", c.name)))
        close = [n for p in patterns for n in difflib.get_close_matches(p, known, n=3, cutoff=0.5)]
        hint = f"; closest: {', '.join(dict.fromkeys(close))}" if close else ""
        raise UsageError(f"-k {' -k '.join(patterns)}: no benchmark of the {len(cases)} planned matches{hint}")
    return chosen


def _matches(name: str, pattern: str) -> bool:
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(name, pattern if pattern.startswith("*") else f"*{pattern}*")
    return pattern in name


@dataclass(slots=True)
class RunSummary:
    output: Path
    planned: int
    written: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    lines: list[str] = field(default_factory=list)
    #: Seconds the callgrind pass took (0 when instructions were not counted).
    instruction_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class PyperfSettings:
    processes: int
    values: int
    warmups: int
    #: 0: pyperf calibrates the loops in a worker process.
    loops: int
    min_time: float


def plan_timing(timing: Timing, probe_s: float, allowance_s: float) -> PyperfSettings:
    """pyperf settings for a benchmark whose one execution took ``probe_s`` in-process.

    Loops: pyperf calibrates them (``timing.calibrate``, unless one execution already exceeds min_time, where
    calibration would pick 1) or they are min_time / probe. The benchmark's processes then values are cut so that
    it fits ``allowance_s`` (its share of the suite's budget), never below the suite's minimums.
    """
    probe = max(probe_s, 1e-7)
    if timing.calibrate and probe < timing.min_time:
        loops, value_s = 0, timing.min_time
    else:
        loops = max(1, math.ceil(timing.min_time / probe))
        value_s = loops * probe
    allowance = min(allowance_s, timing.max_seconds)
    per_process = (timing.warmups + timing.values) * value_s + _PROCESS_OVERHEAD_S
    if loops == 0:
        allowance -= per_process  # the calibration worker
    processes = max(timing.min_processes, min(timing.processes, math.floor(allowance / per_process)))
    values = timing.values
    if processes * per_process > allowance:
        fit = math.floor((allowance / processes - _PROCESS_OVERHEAD_S) / value_s) - timing.warmups
        values = max(timing.min_values, min(values, fit))
    return PyperfSettings(processes, values, timing.warmups, loops, timing.min_time)


# -- the run ---------------------------------------------------------------------------------------------------


def check_output(path: Path) -> None:
    """Fail before the first benchmark, not after it, when the results file cannot be written."""
    check_file_target(path)


def check_backend(backend: str) -> None:
    """Fail early, as bad input, when the chosen backend cannot be loaded here."""
    from queue_impls.kv.backends import get_backend
    from queue_impls.kv.errors import KvError

    try:
        get_backend(backend).check_available()
    except KvError as exc:
        raise UsageError(f"--backend {backend}: {exc}") from None


def run_suite(options: RunOptions, *, echo: Callable[[str], None] = print) -> RunSummary:
    """Run a suite and write its results file; returns what was written (also after Ctrl-C)."""
    check_output(options.output)
    check_backend(options.backend)
    import_plugins(options.plugins, search=plugin_search_path())
    every = build_cases(
        suite=options.suite, layouts=options.layouts, rtt_ms=options.rtt_ms, scenarios=options.scenarios
    )
    cases = select_cases(every, options.patterns)
    summary = RunSummary(options.output, planned=len(cases))
    layouts = ",".join(options.layouts)
    matched = f" (-k matched {len(cases)} of {len(every)})" if options.patterns else ""
    echo(
        f"qbench run: suite {options.suite}, backend {options.backend}, layouts {layouts}: {_count(len(cases), 'benchmark')}{matched}"
    )
    started = time.perf_counter()
    run_dir = Path(tempfile.mkdtemp(prefix="kvq-run-"))
    writer = ResultsWriter(options.output)
    try:
        with _interruptible() as interrupted:
            _run(options, cases, run_dir, writer, summary, echo, interrupted)
    except KeyboardInterrupt:  # anywhere: seeding, measuring, between benchmarks; the file holds what finished
        summary.interrupted = True
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        summary.seconds = time.perf_counter() - started
        summary.written = writer.written
    return summary


def _run(
    options: RunOptions,
    cases: list[Case],
    run_dir: Path,
    writer: ResultsWriter,
    summary: RunSummary,
    echo: Callable[[str], None],
    interrupted: list[bool],
) -> None:
    timing = timing_for(SUITE_SPECS[options.suite].timing, options.timing)
    deadline = time.monotonic() + timing.budget_s  # seeding counts against it
    sources = _prepare_stores(options, cases, run_dir, echo)
    plan = _write_plan(cases, sources, run_dir, options.plugins)
    runner = _make_runner(plan, options.affinity)
    metadata = suite_metadata(
        suite=options.suite,
        backend=options.backend,
        backend_version=backend_version(options.backend),
        rtt_ms=parse_rtt(None, suite=options.suite) if options.rtt_ms is None else options.rtt_ms,
    )
    metadata.update(timing_metadata(timing, options.timing))
    counted = _instruction_pass(options, cases, plan, run_dir, echo)
    if counted is not None:
        deadline += counted.seconds  # the timing budget is the timing's own
        metadata["kvq_instructions_env"] = compact_json(counted.environment)
        summary.instruction_seconds = counted.seconds
    per_scenario = _scenario_metadata(options, cases, metadata, echo)
    with tqdm(total=len(cases), unit="bench", disable=_no_bar(options.progress), dynamic_ncols=True) as bar:
        for done, case in enumerate(cases):
            allowance = (deadline - time.monotonic()) / (len(cases) - done)
            try:
                meta = per_scenario.get(case.scenario, metadata)
                bench = _run_case(runner, case, sources[case.name], timing, allowance, run_dir, meta)
                if counted is not None and case.name in counted.per_op:
                    bench.update_metadata({"kvq_instructions": compact_json(counted.per_op[case.name])})
            except SystemExit as exc:  # pyperf exits(1) on Ctrl-C in a worker, and on a calibration failure
                if interrupted[0]:
                    raise KeyboardInterrupt from None
                raise BenchmarkFailed(f"{case.name}: pyperf stopped the run (exit status {exc.code})") from None
            writer.add(bench)
            line = summary_line(bench)
            summary.lines.append(line)
            if bar.disable:
                echo(line)
            else:
                bar.write(line)  # above the bar
            bar.update()


def _scenario_metadata(
    options: RunOptions, cases: list[Case], metadata: dict[str, str], echo: Callable[[str], None]
) -> dict[str, dict[str, str]]:
    """Run-wide metadata a scenario measures once per run (rtt_sweep: the latency injector's own error), recorded on
    that scenario's benchmarks for the report."""
    specs = {case.scenario: case.spec for case in cases}
    return {
        name: {**metadata, **spec.run_metadata(options.suite, echo)}
        for name, spec in specs.items()
        if spec.run_metadata is not None
    }


def _instruction_pass(
    options: RunOptions, cases: list[Case], plan: Path, run_dir: Path, echo: Callable[[str], None]
) -> Counted | None:
    """Instructions per operation for every case, or None (with one line saying why) when they cannot be counted."""
    if not options.instructions:
        return None
    try:
        check_available(options.backend)
    except InstructionsUnavailable as exc:
        echo(f"qbench run: {exc}")
        return None
    # A TypeScript program's work happens in Deno, not in this Python: only Python operations are counted.
    python_cases = [case for case in cases if case.spec.counted]
    if not python_cases:
        return None
    echo(f"counting instructions under callgrind ({_count(len(python_cases), 'benchmark')})")
    try:
        counted = count_instructions(plan, python_cases, run_dir)
    except RuntimeError as exc:
        raise BenchmarkFailed(str(exc)) from None
    echo(f"counted instructions in {counted.seconds:.1f} s")
    return counted


def _no_bar(progress: bool | None) -> bool | None:
    return None if progress is None else not progress


@contextlib.contextmanager
def _interruptible() -> Iterator[list[bool]]:
    """Record Ctrl-C (pyperf turns it into SystemExit(1)) so the run can tell it from a failure."""
    flag = [False]

    def on_sigint(signum: int, frame: Any) -> None:
        flag[0] = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGINT, on_sigint)
    except ValueError:  # not the main thread: leave signals alone
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _prepare_stores(
    options: RunOptions, cases: list[Case], run_dir: Path, echo: Callable[[str], None]
) -> dict[str, StoreSource]:
    """Seed (or find in the cache) every store the cases read, and ready it for this run's backend."""
    specs = [case.seed for case in cases if case.seed is not None]
    seeds = _seed(specs, options, echo)
    prepared: dict[SeedSpec, StoreSource] = {}
    for spec in dict.fromkeys(specs):
        prepared[spec] = _in_loop(prepare_source(backend=options.backend, seed_file=seeds[spec], run_dir=run_dir))
    empty = StoreSource(options.backend, None)
    return {case.name: prepared[case.seed] if case.seed else empty for case in cases}


def _seed(specs: list[SeedSpec], options: RunOptions, echo: Callable[[str], None]) -> dict[SeedSpec, Path]:
    unique = list(dict.fromkeys(specs))
    built: list[SeedSpec] = []
    started = time.perf_counter()
    to_build = len(missing_seeds(unique, cache_dir=options.cache_dir, plugins=options.plugins))
    no_bar = _no_bar(options.progress) or (None if to_build else True)
    with tqdm(total=to_build, unit="store", desc="seeding", disable=no_bar) as bar:

        def on_built(spec: SeedSpec) -> None:
            built.append(spec)
            bar.update()

        seeds = ensure_seeds(unique, cache_dir=options.cache_dir, on_built=on_built, plugins=options.plugins)
    if built:
        echo(
            f"seeded {len(built)} of {len(unique)} stores in {time.perf_counter() - started:.1f} s (cached in {options.cache_dir})"
        )
    return seeds


def _in_loop(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except (OSError, KvError) as exc:
        raise BenchmarkFailed(f"Cannot prepare a store: {exc}") from exc


def _write_plan(cases: list[Case], sources: dict[str, StoreSource], run_dir: Path, plugins: Sequence[str] = ()) -> Path:
    entries = [
        {
            "name": case.name,
            "scenario": case.scenario,
            "layout": case.layout,
            "params": case.params,
            "source": sources[case.name].to_json(),
            "run_dir": str(run_dir),
        }
        for case in cases
    ]
    path = run_dir / "plan.json"
    plan = {"cases": entries, "plugins": list(plugins), "plugin_path": plugin_search_path() if plugins else []}
    path.write_text(json.dumps(plan))
    return path


def _make_runner(plan_path: Path, affinity: str | None = None) -> pyperf.Runner:
    def add_cmdline_args(cmd: list[str], args: Any) -> None:
        cmd.extend((PLAN_OPTION, str(plan_path), CASE_OPTION, args.kvq_case))

    runner = pyperf.Runner(program_args=("-m", "bench.run.worker"), add_cmdline_args=add_cmdline_args)
    add_options(runner)
    pinned = [f"--affinity={affinity}"] if affinity else []
    runner.parse_args(["--quiet", "--inherit-environ", ",".join(_INHERITED_ENV), *pinned])
    return runner


def _run_case(
    runner: pyperf.Runner,
    case: Case,
    source: StoreSource,
    timing: Timing,
    allowance_s: float,
    run_dir: Path,
    metadata: dict[str, str],
) -> pyperf.Benchmark:
    if case.spec.run_case is not None:  # deno_seed_case: a TypeScript program on its own server, timed by Deno
        return case.spec.run_case(case, timing, metadata)
    started = time.monotonic()
    try:
        measured = asyncio.run(measure_case(case, source, private_dir=run_dir / "measure"))
    except (KvError, JobQueueError) as exc:
        raise BenchmarkFailed(f"{case.name}: {type(exc).__name__}: {exc}") from exc
    settings = plan_timing(timing, measured.probe_s, allowance_s - (time.monotonic() - started))
    bench = _time_in_workers(runner, case, settings)
    if case.spec.timed_derived is not None:
        measured.derived.update(case.spec.timed_derived(case, bench.mean()))
    bench.update_metadata({**metadata, **benchmark_metadata(case, measured)})
    return bench


def _time_in_workers(runner: pyperf.Runner, case: Case, settings: PyperfSettings) -> pyperf.Benchmark:
    args = runner.args
    args.kvq_case = case.name
    args.processes, args.values, args.warmups = settings.processes, settings.values, settings.warmups
    args.loops, args.min_time = settings.loops, settings.min_time
    with contextlib.redirect_stdout(io.StringIO()):  # pyperf prints its own summary; ours comes after
        try:
            bench = runner.bench_time_func(case.name, _runs_in_workers)
        except RuntimeError as exc:
            raise BenchmarkFailed(f"{case.name}: {exc}") from None
    if bench is None:
        raise BenchmarkFailed(f"{case.name}: pyperf returned no benchmark")
    return bench


def _runs_in_workers(loops: int) -> float:
    raise RuntimeError("the manager never runs a benchmark itself: bench.run.worker does")


def benchmark_metadata(case: Case, measured: Measured) -> dict[str, str]:
    """The kvq metadata of one benchmark (docs/results-format.md)."""
    return {
        "kvq_scenario": case.scenario,
        "kvq_layout": case.layout,
        "kvq_params": compact_json(case.params),
        "kvq_counts": compact_json(measured.counts),
        "kvq_per": case.per,
        "kvq_derived": compact_json(measured.derived),
        "kvq_nplus1": compact_json(measured.nplus1),
    }


def summary_line(bench: pyperf.Benchmark) -> str:
    """``name  mean +- stdev  calls, round trips [N+1]``: one line per finished benchmark."""
    meta = bench.get_metadata()
    counts = json.loads(str(meta["kvq_counts"]))
    values = bench.get_values()
    spread = f" +- {bench.format_value(bench.stdev())}" if len(values) > 1 else ""
    per = "/job" if meta.get("kvq_per") == "job" else ""
    text = (
        f"{bench.get_name():<66} {bench.format_value(bench.mean()):>9}{spread:<13} "
        f"{_count(counts['total_calls'], 'call')}{per}, {_count(counts['round_trips'], 'round trip')}{per}"
    )
    if "kvq_instructions" in meta:
        text += f", {float(json.loads(str(meta['kvq_instructions']))):,.0f} instructions{per}"
    findings = json.loads(str(meta["kvq_nplus1"]))
    if findings:
        text += f"  N+1: {findings[0]['count']:,} x {findings[0]['fingerprint']}"
    return text


def _count(value: float, noun: str) -> str:
    if isinstance(value, int):
        return f"{value:,} {noun}{'' if value == 1 else 's'}"
    return f"{value:,.2f} {noun}s"
