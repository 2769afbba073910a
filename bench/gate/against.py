"""`qbench gate --against REF`: this checkout against a git ref, both run in one job, time judged on interleaved runs.

REF is checked out in a temporary worktree. Three agents (bench/gate/tree_agent.py) run the suite: A (REF), B (this
checkout) and A' (REF again, the A/A control). Each measures its own tree's exact counts, N+1 findings and, when
asked, CPU instructions; then every benchmark is timed in rounds A B A' (the order rotating), all on one pinned CPU, in
wall time and in the agents' CPU time. On each clock, a benchmark's slowdown is the Hodges-Lehmann estimate of B/A
over the rounds with a signed-rank interval; the A'/A ratios in the same rounds give the noise floor. The worktree
is removed however the gate ends, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import pyperf

from bench.gate.gate import GateConfig, GateError, Verdict, evaluate
from bench.gate.significance import RatioInterval, paired_ratio
from bench.gate.tiers import FileInfo, Finding
from bench.results import ResultsWriter, compact_json, load

#: One timed value lasts about this long (the loops are chosen from the first execution).
VALUE_S = 0.01
_ORDERS = list(itertools.permutations(range(3)))


@dataclass(frozen=True)
class AgainstOptions:
    ref: str
    suite: str = "quick"
    backend: str = "sqlite"
    affinity: str | None = None
    cache_dir: Path | None = None
    instructions: bool = True
    #: Keep the two trees' results files here (base.json, new.json); None: a temporary directory.
    keep: Path | None = None


def judge_against(options: AgainstOptions, config: GateConfig) -> tuple[Verdict, str, str]:
    """Run REF and this checkout; the verdict and the labels of the two sides."""
    repo = _git_root(Path.cwd())
    commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{options.ref}^{{commit}}", what=f"ref {options.ref!r}")
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="qbench-against-") as tmp:
        work = Path(tmp)
        with _worktree(repo, commit, work / "base") as base_tree:
            _check_agent(base_tree, options.ref)
            paths = _run_both(options, config, base_tree, repo, work)
        base_frame, new_frame = load(paths["base"]), load(paths["new"])
        verdict = evaluate(
            base_frame, new_frame, config, base_info=paths["base_info"], new_info=paths["new_info"],
            paired_times=paths["paired"],
        )  # fmt: skip
        verdict.notes += paths["notes"]
        if options.keep is not None:
            options.keep.mkdir(parents=True, exist_ok=True)
            for side in ("base", "new"):
                shutil.copyfile(paths[side], options.keep / f"{side}.json")
            rounds = {name: {"A": [r[0] for r in v], "B": [r[1] for r in v], "A'": [r[2] for r in v]}
                      for name, v in paths["rounds"].items()}  # fmt: skip
            (options.keep / "rounds.json").write_text(json.dumps(rounds, indent=1) + "\n")
    return verdict, f"{options.ref} ({commit[:12]})", f"this checkout ({repo})"


# -- git ---------------------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str, what: str = "git") -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise GateError(f"{what}: {done.stderr.strip() or 'not found'}")
    return done.stdout.strip()


def _git_root(path: Path) -> Path:
    try:
        return Path(_git(path, "rev-parse", "--show-toplevel", what="--against needs a git checkout"))
    except FileNotFoundError:
        raise GateError("--against needs git on PATH") from None


@contextlib.contextmanager
def _worktree(repo: Path, commit: str, path: Path) -> Iterator[Path]:
    _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit, what="git worktree add")
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(path, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A CI runner cancels with SIGTERM: unwind as for Ctrl-C, so the worktree is removed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


#: Where a tree's agent lives: since the bench rooms, bench/gate/; before them, bench/ (a base ref may be either).
AGENT_MODULES: Final = ("bench.gate.tree_agent", "bench.tree_agent")


def agent_module(tree: Path) -> str | None:
    """The module of ``tree``'s agent, or None when the tree has none."""
    for module in AGENT_MODULES:
        if (tree / (module.replace(".", "/") + ".py")).is_file():
            return module
    return None


def _check_agent(tree: Path, ref: str) -> None:
    if agent_module(tree) is None:
        raise GateError(f"{ref} has no bench/gate/tree_agent.py: --against needs a ref of kvq-bench that has --against")


# -- the agents ----------------------------------------------------------------------------------------------------


class AgentProcess:
    """One tree's agent: a subprocess speaking JSON lines."""

    def __init__(self, label: str, tree: Path, options: AgainstOptions, run_dir: Path) -> None:
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", agent_module(tree) or AGENT_MODULES[0], "--suite", options.suite, "--backend", options.backend,
                   "--run-dir", str(run_dir)]  # fmt: skip
        if options.cache_dir is not None:
            command += ["--cache-dir", str(options.cache_dir)]
        if options.affinity:
            command += ["--affinity", options.affinity]
        env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
        self.label = label
        self.process = subprocess.Popen(
            command, cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        hello = self._reply()
        if "error" in hello:
            self.stop()
            raise GateError(
                f"agent {label} could not prepare the {options.suite} suite's stores in {tree}: {hello['error']}"
            )
        if Path(hello.get("tree", "")).resolve() != tree.resolve():
            self.stop()
            raise GateError(f"agent {label} imported bench from {hello.get('tree')}, not from {tree}")
        self.cases: list[str] = list(hello["cases"])

    def ask(self, **request: Any) -> dict[str, Any]:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(json.dumps(request) + "\n")
        stdin.flush()
        reply = self._reply()
        if "error" in reply:
            raise GateError(f"{self.label} ({request.get('cmd')} {request.get('name', '')}): {reply['error']}")
        return reply

    def _reply(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.process.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self.process.wait()
            raise GateError(f"agent {self.label} exited (status {self.process.returncode}): see the messages above")
        return dict(json.loads(line))

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                assert self.process.stdin is not None
                self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _run_both(
    options: AgainstOptions, config: GateConfig, base_tree: Path, new_tree: Path, work: Path
) -> dict[str, Any]:
    agents: list[AgentProcess] = []
    try:
        for label, tree in (("A (base)", base_tree), ("B (new)", new_tree), ("A' (base again)", base_tree)):
            print(f"qbench gate: starting {label} in {tree}", file=sys.stderr)
            agents.append(AgentProcess(label, tree, options, work / f"run-{len(agents)}"))
        return _measure_all(options, config, agents, work)
    finally:
        for agent in agents:
            agent.stop()


def _measure_all(options: AgainstOptions, config: GateConfig, agents: list[AgentProcess], work: Path) -> dict[str, Any]:
    base, new, _ = agents
    names = [name for name in new.cases if name in set(base.cases)]
    measured = {side.label: {name: side.ask(cmd="measure", name=name) for name in side.cases} for side in (base, new)}
    counted = {side.label: _instructions(side, options) for side in (base, new)}
    print(f"qbench gate: timing {len(names)} benchmarks interleaved, {config.against_rounds} rounds", file=sys.stderr)
    timed = {name: _interleave(name, agents, config, measured[new.label][name]) for name in names}
    rounds = {name: wall for name, (wall, _) in timed.items()}
    cpu_rounds = {name: cpu for name, (_, cpu) in timed.items() if cpu}
    paired, notes = judge_clocks(rounds, cpu_rounds, config)
    paths: dict[str, Any] = {"paired": paired, "notes": notes, "rounds": rounds}
    for key, side, index in (("base", base, 0), ("new", new, 1)):
        path = work / f"{key}.json"
        _write_results(path, options, side, measured[side.label], counted[side.label], rounds, index)
        paths[key] = path
        env = counted[side.label].get("environment")
        paths[f"{key}_info"] = FileInfo({name: list(m["nplus1"]) for name, m in measured[side.label].items()}, env)
    for side in (base, new):
        if "unavailable" in counted[side.label]:
            notes.append(f"{side.label}: {counted[side.label]['unavailable']}")
    return paths


def _instructions(agent: AgentProcess, options: AgainstOptions) -> dict[str, Any]:
    if not options.instructions:
        return {}
    print(f"qbench gate: counting instructions of {agent.label} under callgrind", file=sys.stderr)
    return agent.ask(cmd="instructions")


def _interleave(
    name: str, agents: list[AgentProcess], config: GateConfig, measured: dict[str, Any]
) -> tuple[list[list[float]], list[list[float]]]:
    """Seconds per execution of each agent in each round, wall and CPU: two lists of rounds x [A, B, A'].

    The CPU list is empty when an agent does not report CPU time (a ref from before it did). A benchmark that looks
    slower than the threshold on either clock after ``against.rounds`` rounds gets more, up to
    ``against.max_rounds``: a real slowdown then clears the noise, a chance one falls back.
    """
    loops = max(1, math.ceil(VALUE_S / max(float(measured["probe_s"]), 1e-6)))
    for agent in agents:
        agent.ask(cmd="open", name=name)
    wall: list[list[float]] = []
    cpu: list[list[float]] | None = []
    target = config.against_rounds
    while len(wall) < target:
        row: list[float] = [0.0, 0.0, 0.0]
        cpu_row: list[float] | None = [0.0, 0.0, 0.0]
        for index in _ORDERS[len(wall) % len(_ORDERS)]:
            reply = agents[index].ask(cmd="time", loops=loops)
            row[index] = float(reply["seconds"]) / loops
            if cpu_row is not None and "cpu_seconds" in reply:
                cpu_row[index] = max(float(reply["cpu_seconds"]), 1e-9) / loops
            else:
                cpu_row = None
        wall.append(row)
        if cpu is not None and cpu_row is not None:
            cpu.append(cpu_row)
        else:
            cpu = None
        if len(wall) == target < config.against_max_rounds and _looks_slower([wall, cpu or []], config):
            target = config.against_max_rounds
    for agent in agents:
        agent.ask(cmd="close")
    return wall, cpu or []


def _looks_slower(clocks: list[list[list[float]]], config: GateConfig) -> bool:
    return any(
        paired_ratio([b / a for a, b, _ in values]).ratio - 1 > config.against_threshold for values in clocks if values
    )


def judge_clocks(
    wall: dict[str, list[list[float]]], cpu: dict[str, list[list[float]]], config: GateConfig
) -> tuple[list[Finding], list[str]]:
    """Slowdowns on either clock, one finding per benchmark (when both clocks find one, the one whose interval's
    lower bound is the higher)."""
    found, notes = judge_times(wall, config)
    if not cpu:
        notes.append("CPU time: not reported by both trees (a ref from before it was); judged on wall time alone.")
        return found, notes
    cpu_found, cpu_notes = judge_times(cpu, config, clock="CPU time")
    best: dict[str, Finding] = {}
    for finding in found + cpu_found:
        held = best.get(finding.benchmark)
        if held is None or (finding.interval or (0, 0))[0] > (held.interval or (0, 0))[0]:
            best[finding.benchmark] = finding
    return [best[name] for name in dict.fromkeys(f.benchmark for f in found + cpu_found)], notes + cpu_notes


def judge_times(
    rounds: dict[str, list[list[float]]], config: GateConfig, clock: str = "wall time"
) -> tuple[list[Finding], list[str]]:
    """Slowdowns above the threshold whose interval clears the A/A noise floor; a note on the noise."""
    findings, floors = [], []
    for name, values in rounds.items():
        slow = paired_ratio([b / a for a, b, _ in values], config.against_confidence)
        noise = paired_ratio([c / a for a, _, c in values], config.against_confidence)
        floor = max(noise.high, 1 / noise.low)
        floors.append(floor)
        if slow.ratio - 1 > config.against_threshold and slow.low > floor:
            findings.append(_time_finding(name, slow, floor, config.against_threshold, clock))
    worst = max(floors, default=1.0)
    median = sorted(floors)[len(floors) // 2] if floors else 1.0
    note = (
        f"{clock[0].upper() + clock[1:]}: interleaved A B A' rounds on one CPU; A/A noise floor {median - 1:+.1%} (median), "
        f"{worst - 1:+.1%} (worst benchmark); {sum(len(v) > config.against_rounds for v in rounds.values())} "
        f"benchmarks got {config.against_max_rounds} rounds instead of {config.against_rounds}."
    )
    return findings, [note]


def _time_finding(name: str, slow: RatioInterval, floor: float, threshold: float, clock: str) -> Finding:
    why = (
        f"{slow.ratio - 1:+.1%} slower in {clock} (Hodges-Lehmann), {slow.n} paired rounds, "
        f"interval [{slow.low:.3f}, {slow.high:.3f}] "
        f"above the threshold ({threshold:.0%}) and the A/A noise (x{floor:.3f})"
    )
    metric = "time" if clock == "wall time" else clock
    return Finding(name, metric, "A", f"x{slow.ratio:.3f}", why, tier="time", ratio=slow.ratio,
                   interval=(slow.low, slow.high))  # fmt: skip


def _write_results(
    path: Path,
    options: AgainstOptions,
    agent: AgentProcess,
    measured: dict[str, dict[str, Any]],
    counted: dict[str, Any],
    rounds: dict[str, list[list[float]]],
    index: int,
) -> None:
    """One tree's results file, its times the interleaved values: what `qbench compare` and the report read."""
    writer = ResultsWriter(path)
    common = {"kvq_suite": options.suite, "kvq_backend": options.backend, "kvq_git_commit": agent.label}
    if "environment" in counted:
        common["kvq_instructions_env"] = compact_json(counted["environment"])
    for name, m in measured.items():
        values = [row[index] for row in rounds.get(name, [])] or [float(m["probe_s"]) or 1e-9]
        meta: dict[str, Any] = {
            "name": name, "unit": "second", **common, "kvq_scenario": m["scenario"], "kvq_layout": m["layout"],
            "kvq_params": compact_json(m["params"]), "kvq_counts": compact_json(m["counts"]), "kvq_per": m["per"],
            "kvq_derived": compact_json(m["derived"]), "kvq_nplus1": compact_json(m["nplus1"]),
        }  # fmt: skip
        if name in counted.get("per_op", {}):
            meta["kvq_instructions"] = compact_json(counted["per_op"][name])
        writer.add(pyperf.Benchmark([pyperf.Run(values, metadata=meta, collect_metadata=False)]))
