"""What a scenario is: its declaration (``Scenario``), one benchmark of it (``Case``) and how one execution runs
(``Operation``: untimed preparation, then the timed call).

The same operations serve the worker processes (timed by pyperf), the in-process measurement of exact counts and
the callgrind pass. Every queue runs on the queue's FakeClock, so a job added with no delay is ready at once and the
counts repeat exactly (see docs/bench.md).
"""

from __future__ import annotations

import abc
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from queue_impls.jobs import FakeClock, Queue
from queue_impls.kv import Kv

if TYPE_CHECKING:  # only for annotations: the scenarios room does not import the run room
    import pyperf

    from queue_impls.meter import KvCounts, LatencyModel

    from .suites import Timing

#: The layout label of a scenario that does not use the queue's layouts (a user's function over a store).
NO_LAYOUT: Final = "store"


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of a scenario, in the order it appears in benchmark names.

    ``text``: a string parameter (else a finite number). ``column``: a column of the tidy frame ``bench.results.load``
    returns (and a key complexity fits slice on); a parameter that is not stays in kvq_params and the name only.
    """

    name: str
    text: bool = False
    column: bool = True


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """A store of N jobs over K names in one layout, with the status mix of bench/run/seeding.py; cached on disk."""

    N: int
    K: int
    layout: str


#: What builds a scenario's operation for one case on one store.
OperationFactory = Callable[["Case", Kv], "Operation"]


@dataclass(frozen=True, eq=False)
class Scenario:
    """Everything qbench needs to know about one scenario; registered in bench/scenarios/__init__.py.

    The runner, the worker processes, the callgrind pass, the results file and the report read these fields and
    never test a scenario's name.
    """

    name: str
    #: One line: what one timed execution is.
    summary: str
    params: tuple[Param, ...]
    #: The parameter points a suite runs (suite name -> points, each a mapping of every parameter).
    points: Callable[[str], Sequence[Mapping[str, Any]]]
    #: Builds the timed operation; None when ``run_case`` runs the benchmark itself.
    operation: OperationFactory | None
    #: The case reads a seeded store of N jobs over K names in its layout (else it starts from an empty store).
    seeded: bool = False
    #: The case writes to its store, so every process needs its own copy.
    mutates: bool = False
    #: What one timed execution is (kvq_per): one call, or one job (counts divided by the parameter N).
    per: Literal["call", "job"] = "call"
    #: The layouts it runs in (None: every layout chosen); (NO_LAYOUT,) for a scenario that uses no layout.
    layouts: tuple[str, ...] | None = None
    #: Runs only when named in --scenarios (not in "all").
    opt_in: bool = False
    #: Figures computed from one execution's counts (kvq_derived), e.g. round trips per job spent claiming.
    derived: Callable[[Case, KvCounts], dict[str, float]] | None = None
    #: Figures computed from pyperf's mean time per execution (kvq_derived), e.g. jobs per second.
    timed_derived: Callable[[Case, float], dict[str, float]] | None = None
    #: The unit of each derived figure (the results frame's ``unit`` column).
    derived_units: Mapping[str, str] = field(default_factory=dict)
    #: A simulated network for the case's store: workers wrap it in CountingKv with this model; the in-process
    #: pass predicts its time (kvq_derived.predicted_s) and adds it to the planning probe. A case it gives None for
    #: runs on the store as it is.
    latency: Callable[[Case], LatencyModel | None] | None = None
    #: Run-wide metadata measured once when the scenario is in a run (suite, echo) -> kvq metadata.
    run_metadata: Callable[[str, Callable[[str], None]], dict[str, str]] | None = None
    #: Runs one benchmark itself (not timed by pyperf workers, not counted under callgrind): case, timing, metadata.
    run_case: Callable[[Case, Timing, dict[str, str]], pyperf.Benchmark] | None = None
    #: Parameters a command-line option may replace (--rtt replaces rtt_ms): the points are then crossed with them.
    overridable: tuple[str, ...] = ()

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)

    @property
    def counted(self) -> bool:
        """Whether its operation is Python code the callgrind pass can count."""
        return self.operation is not None and self.run_case is None

    def cases(self, suite: str, layouts: Sequence[str], overrides: Mapping[str, Sequence[Any]]) -> list[Case]:
        """The benchmarks this scenario runs in a suite, the layouts of one point side by side."""
        points = [dict(p) for p in self.points(suite)]
        for key, values in overrides.items():
            if key in self.overridable:
                points = unique_points([{**{k: v for k, v in p.items() if k != key}, key: value} for p in points
                                  for value in values])  # fmt: skip
        if self.layouts == (NO_LAYOUT,):
            chosen: Sequence[str] = (NO_LAYOUT,)
        else:
            chosen = [lay for lay in layouts if self.layouts is None or lay in self.layouts]
        return [Case.make(self, layout, point) for point in points for layout in chosen]


def unique_points(points: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The points in their order, each once (a point is its set of parameter values)."""
    seen: set[tuple[tuple[str, Any], ...]] = set()
    out = []
    for point in points:
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            out.append(dict(point))
    return out


@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark: a scenario, a layout and the scenario's parameters."""

    spec: Scenario
    layout: str
    items: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, spec: Scenario, layout: str, params: Mapping[str, Any]) -> Case:
        missing = [key for key in spec.param_names if key not in params]
        if missing:
            raise ValueError(f"scenario {spec.name!r}: point {dict(params)!r} has no {', '.join(missing)}")
        return cls(spec, layout, tuple((key, params[key]) for key in spec.param_names))

    @property
    def scenario(self) -> str:
        return self.spec.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.items)

    @property
    def name(self) -> str:
        return f"{self.scenario}/{self.layout}/" + ",".join(f"{k}={_format(v)}" for k, v in self.items)

    @property
    def seed(self) -> SeedSpec | None:
        """The seeded store the case reads, or None for a case that starts from an empty store."""
        if not self.spec.seeded:
            return None
        return SeedSpec(self.params["N"], self.params["K"], self.layout)

    @property
    def mutates(self) -> bool:
        return self.spec.mutates

    @property
    def per(self) -> str:
        return self.spec.per

    @property
    def divisor(self) -> int:
        """What counts are divided by: N jobs for a per-job scenario, else 1."""
        return int(self.params["N"]) if self.per == "job" else 1


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Operation(abc.ABC):
    """One scenario at one point, on one store."""

    def __init__(self, case: Case, kv: Kv) -> None:
        self.case = case
        self.params = case.params
        self.kv = kv

    async def setup(self) -> None:
        """Untimed work once, after the store is opened (a user scenario's seeding); none by default."""
        return None

    async def prepare(self) -> None:
        """Untimed work before each execution (add the job the next claim takes, ...); none by default."""
        return None

    @abc.abstractmethod
    async def execute(self) -> None:
        """One timed execution."""

    async def traced(self) -> dict[str, float]:
        """The one execution the in-process pass counts; returns derived figures it measured on the way (the
        default: execute once, no figures; mixed measures its reads and writes apart)."""
        await self.execute()
        return {}


class QueueOperation(Operation):
    """An operation on the job queue in the case's layout."""

    def __init__(self, case: Case, kv: Kv) -> None:
        super().__init__(case, kv)
        # A fake clock and a seeded rng: the retry delay's jitter lands in the stored job (its run_at), so an
        # unseeded rng made fail_retry's bytes written differ from run to run and the exact-count gate flaky.
        self.queue = Queue(kv, case.layout, clock=FakeClock(), rng=random.Random(0))


async def timed(operation: Operation, loops: int) -> float:
    """Seconds spent in ``loops`` executions, each after its untimed preparation (pyperf's time_func contract)."""
    total = 0.0
    for _ in range(loops):
        await operation.prepare()
        start = time.perf_counter()
        await operation.execute()
        total += time.perf_counter() - start
    return total
