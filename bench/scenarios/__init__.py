"""The scenarios: what a suite runs, one module per scenario, registered here by name.

Owns: each scenario's parameters, its points per suite, its timed operation, its derived figures and the layouts it
applies to (``Scenario`` in base.py); the suites and their timing (suites.py); the data the built-ins work on
(data.py); ``function_scenario`` for a user's own async function over a store (function.py).
May import: queue_impls, bench.errors; bench.run only lazily, inside a hook that runs a benchmark (deno_seed_case,
rtt_sweep's injector check). Everything else in bench reads the declarations from here.

A new scenario is one module declaring a ``Scenario`` (named as the module) and one line in BUILTIN_MODULES below. A user's scenario registers
with ``register_scenario`` (from a module ``qbench run --plugin`` imports) or through an entry point in the
``kvq_bench.scenarios`` group of an installed package (``name = "module:SCENARIO"``, loaded on first look-up).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from queue_impls.jobs.layouts import LAYOUTS

from ..errors import UsageError
from . import rtt_sweep
from .base import NO_LAYOUT, Case, Operation, Param, QueueOperation, Scenario, SeedSpec, timed
from .function import function_scenario
from .suites import SUITE_SPECS, SUITES, SuiteSpec, Timing

#: The built-in scenarios, in the order suites run and reports show them: one line per scenario module, each a module
#: of this package that declares ``SCENARIO``.
BUILTIN_MODULES: Final = (
    "list_by_name",
    "seed_case",
    "write_path",
    "worker_throughput",
    "worker_path",
    "rtt_sweep",
    "mixed",
    "deno_seed_case",
)


def _declared(module: str) -> Scenario:
    declared = importlib.import_module(f"{__name__}.{module}").SCENARIO
    if not isinstance(declared, Scenario) or declared.name != module:
        raise TypeError(f"{__name__}.{module}.SCENARIO must be the Scenario named {module!r}")
    return declared


BUILTIN: Final[tuple[Scenario, ...]] = tuple(_declared(module) for module in BUILTIN_MODULES)
#: Installed packages name their scenarios under this entry-point group (``name = "module:SCENARIO"``).
ENTRY_POINT_GROUP: Final = "kvq_bench.scenarios"

_REGISTRY: dict[str, Scenario] = {s.name: s for s in BUILTIN}
_entry_points_loaded = False


class ScenarioPluginError(UsageError):
    """A scenario could not be registered: not a Scenario, a bad name, a name taken, or a failing entry point."""


def register_scenario(scenario: Scenario) -> Scenario:
    """Register ``scenario`` under its name; returns it. The same object twice is a no-op; another under a taken name
    is a ScenarioPluginError."""
    if not isinstance(scenario, Scenario):
        raise ScenarioPluginError(f"register_scenario takes a Scenario (see function_scenario), got {scenario!r:.80}")
    if not scenario.name.isidentifier():
        raise ScenarioPluginError(f"A scenario's name must be an identifier, got {scenario.name!r}")
    taken = _REGISTRY.get(scenario.name)
    if taken is not None and taken is not scenario:
        raise ScenarioPluginError(f"Scenario name {scenario.name!r} is taken ({taken.summary})")
    _REGISTRY[scenario.name] = scenario
    return scenario


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as exc:
            raise ScenarioPluginError(f"Entry point {point.name} = {point.value!r} ({ENTRY_POINT_GROUP}) failed to "
                                      f"load: {type(exc).__name__}: {exc}") from exc  # fmt: skip
        register_scenario(loaded)


def scenarios() -> tuple[Scenario, ...]:
    """Every registered scenario: the built-ins in their order, then plug-ins in the order they were registered."""
    _load_entry_points()
    return tuple(_REGISTRY.values())


def scenario_names(*, opt_in: bool = True) -> tuple[str, ...]:
    """Registered scenario names (``opt_in=False``: only those "all" runs)."""
    return tuple(s.name for s in scenarios() if opt_in or not s.opt_in)


def get_scenario(name: str) -> Scenario:
    """The scenario registered as ``name``; UsageError names the known ones (and the closest)."""
    found = _REGISTRY.get(name)
    if found is None:
        _load_entry_points()
        found = _REGISTRY.get(name)
    if found is None:
        raise UsageError(f"Unknown scenario {name!r}{suggest(name, scenario_names())}: expected one of "
                         f"{', '.join(scenario_names())}")  # fmt: skip
    return found


def param_columns(among: Iterable[Scenario] | None = None) -> tuple[str, ...]:
    """The parameter columns of the results frame: the column parameters of every registered scenario (or of those
    given), in the order they first appear (the built-ins: N, K, limit, offset, status, op, concurrency, rtt_ms)."""
    return tuple(dict.fromkeys(p.name for s in _among(among) for p in s.params if p.column))


def text_params(among: Iterable[Scenario] | None = None) -> frozenset[str]:
    """Parameters declared as text (every other parameter is a number)."""
    return frozenset(p.name for s in _among(among) for p in s.params if p.text)


def derived_units(among: Iterable[Scenario] | None = None) -> dict[str, str]:
    """The unit of every derived figure a registered scenario (or one given) declares."""
    return {key: unit for s in _among(among) for key, unit in s.derived_units.items()}


def _among(among: Iterable[Scenario] | None) -> Iterable[Scenario]:
    return scenarios() if among is None else among


#: The built-in scenarios that run by default, and the opt-in ones (the registry adds plug-ins to both lookups).
SCENARIOS: Final = tuple(s.name for s in BUILTIN if not s.opt_in)
OPT_IN_SCENARIOS: Final = tuple(s.name for s in BUILTIN if s.opt_in)


def build_cases(
    *,
    suite: str,
    layouts: Sequence[str],
    rtt_ms: Sequence[float] | None = None,
    scenarios: Sequence[str] = SCENARIOS,
    overrides: Mapping[str, Sequence[Any]] | None = None,
) -> list[Case]:
    """Every benchmark of a suite, scenario by scenario, the layouts of one point side by side.

    ``rtt_ms`` (--rtt) replaces the rtt_ms parameter; ``overrides`` replaces any parameter a scenario declares
    overridable.
    """
    if suite not in SUITE_SPECS:
        raise UsageError(f"Unknown suite {suite!r}: expected one of {', '.join(SUITES)}")
    replace = dict(overrides or {})
    if rtt_ms is not None:
        replace["rtt_ms"] = tuple(rtt_ms)
    return [case for name in scenarios for case in get_scenario(name).cases(suite, layouts, replace)]


# -- parsing command-line values: UsageError names what is known, and the closest ------------------------------


def suggest(value: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or nothing."""
    import difflib

    close = difflib.get_close_matches(value, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_choice(value: str, *, known: Sequence[str], what: str) -> str:
    if value not in known:
        raise UsageError(f"Unknown {what} {value!r}{suggest(value, known)}: expected one of {', '.join(known)}")
    return value


def parse_list(
    value: str | None, *, known: Sequence[str], what: str, default: Sequence[str] | None = None
) -> tuple[str, ...]:
    """A comma-separated subset of ``known`` (None or "all": ``default``, else all of them), in the order given."""
    if value is None or value.strip() == "all":
        return tuple(known if default is None else default)
    items = [item.strip() for item in value.split(",") if item.strip()]
    if not items:
        raise UsageError(f"Empty {what} list {value!r}: expected a comma-separated subset of {', '.join(known)}")
    return tuple(dict.fromkeys(parse_choice(item, known=known, what=what) for item in items))


def parse_rtt(value: str | None, *, suite: str) -> tuple[float, ...]:
    """RTTs in milliseconds, comma separated, each a finite number in 0..1000 (None: the suite's default)."""
    if value is None:
        return rtt_sweep.SUITE_RTT_MS[suite]
    try:
        rtts = tuple(float(item) for item in value.split(",") if item.strip())
    except ValueError:
        raise UsageError(f"Bad --rtt {value!r}: expected comma-separated milliseconds, e.g. 0,1,5,20") from None
    if not rtts or any(not math.isfinite(r) or not 0 <= r <= 1000 for r in rtts):
        raise UsageError(f"Bad --rtt {value!r}: each RTT must be a number of milliseconds in 0..1000")
    return tuple(dict.fromkeys(rtts))


__all__ = [
    "BUILTIN",
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "LAYOUTS",
    "NO_LAYOUT",
    "OPT_IN_SCENARIOS",
    "SCENARIOS",
    "SUITES",
    "SUITE_SPECS",
    "Case",
    "Operation",
    "Param",
    "QueueOperation",
    "Scenario",
    "ScenarioPluginError",
    "SeedSpec",
    "SuiteSpec",
    "Timing",
    "build_cases",
    "derived_units",
    "function_scenario",
    "get_scenario",
    "param_columns",
    "register_scenario",
    "scenario_names",
    "scenarios",
    "text_params",
    "timed",
]
