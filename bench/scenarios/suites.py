"""The suites (smoke, quick, full) and how pyperf times each one; the points of each suite are in the scenarios."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

SUITES: Final = ("smoke", "quick", "full")


@dataclass(frozen=True, slots=True)
class Timing:
    """How pyperf measures a suite's benchmarks (see bench/run/runner.py, plan_timing)."""

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


SUITE_SPECS: Final[dict[str, SuiteSpec]] = {
    "smoke": SuiteSpec(
        "smoke",
        Timing(
            1, 1, 0, min_time=1e-4, calibrate=False, budget_s=math.inf, max_seconds=1.0, min_processes=1, min_values=1
        ),
    ),
    "quick": SuiteSpec(
        "quick",
        Timing(2, 3, 1, min_time=0.01, calibrate=False, budget_s=50.0, max_seconds=2.0, min_processes=1, min_values=2),
    ),
    "full": SuiteSpec(
        "full",
        Timing(20, 3, 1, min_time=0.1, calibrate=True, budget_s=780.0, max_seconds=40.0, min_processes=1, min_values=2),
    ),
}
