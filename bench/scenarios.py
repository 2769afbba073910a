"""What each suite runs: the scenarios, their parameter points, and every benchmark's stable name.

Names and parameters follow docs/results-format.md; docs/bench.md explains how the points were chosen.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from queue_impls.jobs.layouts import LAYOUTS
from queue_impls.kv.backends import backend_names

from .errors import UsageError

SCENARIOS: Final = ("list_by_name", "seed_case", "write_path", "worker_throughput", "worker_path", "rtt_sweep", "mixed")
#: Scenarios run only when named in --scenarios: deno_seed_case is the seed's own TypeScript queue, run by the real
#: Deno against a fresh KV Connect server (bench/deno_program.py), in the layouts it transcribes.
OPT_IN_SCENARIOS: Final = ("deno_seed_case",)
SCENARIO_LAYOUTS: Final[dict[str, tuple[str, ...]]] = {"deno_seed_case": ("naive", "optimized")}
SUITES: Final = ("smoke", "quick", "full")
BACKENDS: Final = backend_names()  # the KV backends registry (queue_impls/kv/backends), the default first
#: Status filters of list_by_name: none, one that 1% of a name's jobs match (failed), one that half match (pending).
STATUSES: Final = ("none", "rare", "half")
WRITE_OPS: Final = ("add", "claim", "complete", "fail_retry", "delete")
DEFAULT_RTT_MS: Final = (0.0, 1.0, 5.0, 20.0)

_LISTING: Final = ("N", "K", "limit", "offset", "status")
#: Parameters of each scenario, in the order they appear in benchmark names.
PARAM_ORDER: Final[dict[str, tuple[str, ...]]] = {
    "list_by_name": _LISTING,
    "seed_case": _LISTING,
    "deno_seed_case": _LISTING,
    "rtt_sweep": (*_LISTING, "rtt_ms"),
    "write_path": ("op",),
    "worker_throughput": ("N", "concurrency"),
    "worker_path": ("N", "concurrency", "batch"),
    "mixed": ("N", "K", "limit", "jobs", "every"),
}
#: The seed document's own case: 100 jobs of one name, one page of 100.
SEED_POINT: Final = {"N": 100, "K": 1, "limit": 100, "offset": 0, "status": "none"}
_MUTATING: Final = frozenset({"write_path", "worker_throughput", "worker_path", "mixed"})
#: worker_path's (concurrency, batch) points: one job at a time, eight at a time, eight per commit.
WORKER_PATH_POINTS: Final = ((1, 1), (8, 1), (8, 8))
_PER_JOB: Final = frozenset({"worker_throughput", "worker_path"})


@dataclass(frozen=True, slots=True)
class SeedSpec:
    """A store of N jobs over K names in one layout, with the status mix of seeding.py; cached on disk."""

    N: int
    K: int
    layout: str


@dataclass(frozen=True, slots=True)
class Case:
    """One benchmark: a scenario, a layout and the scenario's parameters."""

    scenario: str
    layout: str
    items: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, scenario: str, layout: str, params: Mapping[str, Any]) -> Case:
        order = PARAM_ORDER[scenario]
        return cls(scenario, layout, tuple((key, params[key]) for key in order))

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.items)

    @property
    def name(self) -> str:
        return f"{self.scenario}/{self.layout}/" + ",".join(f"{k}={_format(v)}" for k, v in self.items)

    @property
    def seed(self) -> SeedSpec | None:
        """The seeded store the case reads, or None for a case that starts from an empty store."""
        if self.scenario in ("write_path", *_PER_JOB, "deno_seed_case"):  # deno_seed_case: seeds itself
            return None
        return SeedSpec(self.params["N"], self.params["K"], self.layout)

    @property
    def mutates(self) -> bool:
        """The case writes to its store, so every process needs its own copy."""
        return self.scenario in _MUTATING

    @property
    def per(self) -> str:
        """What one timed execution is (kvq_per): one call, or one job (counts divided by N)."""
        return "job" if self.scenario in _PER_JOB else "call"


def _format(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True, slots=True)
class Timing:
    """How pyperf measures a suite's benchmarks (see plan_timing)."""

    processes: int
    values: int
    warmups: int
    min_time: float
    #: Let pyperf calibrate the loops in a worker (full); else derive them from the in-process probe.
    calibrate: bool
    #: The whole run should end within this many seconds: each benchmark gets an equal share of what is left.
    budget_s: float
    #: ... and never more than this many seconds, however much budget is left.
    max_seconds: float
    #: A benchmark over its share gets fewer processes, then fewer values, never fewer than these.
    min_processes: int
    min_values: int


@dataclass(frozen=True, slots=True)
class SuiteSpec:
    name: str
    timing: Timing
    #: list_by_name: the base point, and per parameter the values swept one at a time around it.
    list_base: Mapping[str, Any]
    list_axes: Mapping[str, tuple[Any, ...]]
    #: rtt_sweep: the listing measured under each RTT.
    rtt_point: Mapping[str, Any]
    throughput: Mapping[str, Any]
    concurrencies: tuple[int, ...]
    mixed: Mapping[str, Any]
    #: list_by_name points added to the one-at-a-time sweep (full: N crossed with the status filter).
    extra_points: tuple[Mapping[str, Any], ...] = ()
    #: rtt_sweep's RTTs when --rtt is not given.
    rtt_ms: tuple[float, ...] = DEFAULT_RTT_MS


_BASE: Final = {"N": 1000, "K": 1, "limit": 50, "offset": 0, "status": "none"}
_RTT_POINT: Final = {"N": 100, "K": 10, "limit": 10, "offset": 0, "status": "none"}
_QUICK_AXES: Final = {
    "N": (100, 1000, 10_000),
    "K": (1, 10),
    "limit": (10, 50, 100),
    "offset": (0, 500),
    "status": STATUSES,
}

SUITE_SPECS: Final[dict[str, SuiteSpec]] = {
    "smoke": SuiteSpec(
        name="smoke",
        timing=Timing(
            1, 1, 0, min_time=1e-4, calibrate=False, budget_s=math.inf, max_seconds=1.0, min_processes=1, min_values=1
        ),
        list_base={"N": 20, "K": 1, "limit": 5, "offset": 0, "status": "none"},
        list_axes={"K": (1, 2), "offset": (0, 5), "status": STATUSES},
        rtt_point={"N": 20, "K": 2, "limit": 5, "offset": 0, "status": "none"},
        throughput={"N": 5},
        concurrencies=(1, 8),
        mixed={"N": 20, "K": 1, "limit": 5, "jobs": 4, "every": 2},
        rtt_ms=(0.0, 1.0),
    ),
    "quick": SuiteSpec(
        name="quick",
        timing=Timing(
            2, 3, 1, min_time=0.01, calibrate=False, budget_s=50.0, max_seconds=2.0, min_processes=1, min_values=2
        ),
        list_base=_BASE,
        list_axes=_QUICK_AXES,
        rtt_point=_RTT_POINT,
        throughput={"N": 50},
        concurrencies=(1, 8),
        mixed={"N": 1000, "K": 10, "limit": 50, "jobs": 40, "every": 10},
    ),
    "full": SuiteSpec(
        name="full",
        timing=Timing(
            20, 3, 1, min_time=0.1, calibrate=True, budget_s=780.0, max_seconds=40.0, min_processes=1, min_values=2
        ),
        list_base=_BASE,
        list_axes={**_QUICK_AXES, "N": (100, 1000, 10_000, 100_000)},
        rtt_point=_RTT_POINT,
        throughput={"N": 1000},
        concurrencies=(1, 8),
        mixed={"N": 1000, "K": 1, "limit": 50, "jobs": 100, "every": 10},
        extra_points=tuple({**_BASE, "N": n, "status": s} for n in (100, 10_000) for s in ("rare", "half")),
    ),
}


def one_at_a_time(base: Mapping[str, Any], axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The base point, then each axis swept with the others held at the base (duplicates dropped)."""
    points = [dict(base)]
    for key, values in axes.items():
        points += [{**base, key: value} for value in values]
    return _unique(points)


def _unique(points: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[tuple[str, Any], ...]] = set()
    out = []
    for point in points:
        key = tuple(sorted(point.items()))
        if key not in seen:
            seen.add(key)
            out.append(point)
    return out


def scenario_points(spec: SuiteSpec, scenario: str, rtt_ms: Sequence[float]) -> list[dict[str, Any]]:
    """The parameter points a suite runs for one scenario."""
    if scenario == "list_by_name":
        return _unique([*one_at_a_time(spec.list_base, spec.list_axes), *map(dict, spec.extra_points)])
    if scenario in ("seed_case", "deno_seed_case"):
        return [dict(SEED_POINT)]
    if scenario == "rtt_sweep":
        return [{**spec.rtt_point, "rtt_ms": rtt} for rtt in rtt_ms]
    if scenario == "write_path":
        return [{"op": op} for op in WRITE_OPS]
    if scenario == "worker_throughput":
        return [{**spec.throughput, "concurrency": c} for c in spec.concurrencies]
    if scenario == "worker_path":
        return [{**spec.throughput, "concurrency": c, "batch": b} for c, b in WORKER_PATH_POINTS]
    return [dict(spec.mixed)]


def build_cases(
    *, suite: str, layouts: Sequence[str], rtt_ms: Sequence[float], scenarios: Sequence[str] = SCENARIOS
) -> list[Case]:
    """Every benchmark of a suite, scenario by scenario, the layouts of one point side by side."""
    spec = SUITE_SPECS[suite]
    return [
        Case.make(scenario, layout, point)
        for scenario in scenarios
        for point in scenario_points(spec, scenario, rtt_ms)
        for layout in layouts
        if layout in SCENARIO_LAYOUTS.get(scenario, (layout,))
    ]


# -- parsing command-line values: UsageError names what is known ------------------------------------------------


def parse_choice(value: str, *, known: Sequence[str], what: str) -> str:
    if value not in known:
        raise UsageError(f"Unknown {what} {value!r}: expected one of {', '.join(known)}")
    return value


def parse_list(value: str | None, *, known: Sequence[str], what: str) -> tuple[str, ...]:
    """A comma-separated subset of ``known`` (None or "all": all of them), in the order given."""
    if value is None or value.strip() == "all":
        return tuple(known)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise UsageError(f"Empty {what} list {value!r}: expected a comma-separated subset of {', '.join(known)}")
    return tuple(dict.fromkeys(parse_choice(item, known=known, what=what) for item in items))


def parse_rtt(value: str | None, *, suite: str) -> tuple[float, ...]:
    """RTTs in milliseconds, comma separated, each a finite number in 0..1000 (None: the suite's default)."""
    if value is None:
        return SUITE_SPECS[suite].rtt_ms
    try:
        rtts = tuple(float(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise UsageError(f"Bad --rtt {value!r}: expected comma-separated milliseconds, e.g. 0,1,5,20") from None
    if not rtts or any(not math.isfinite(r) or not 0 <= r <= 1000 for r in rtts):
        raise UsageError(f"Bad --rtt {value!r}: each RTT must be a number of milliseconds in 0..1000")
    return tuple(dict.fromkeys(rtts))


__all__ = [
    "BACKENDS",
    "LAYOUTS",
    "SCENARIOS",
    "SUITES",
    "Case",
    "SeedSpec",
    "SuiteSpec",
    "Timing",
    "build_cases",
]
