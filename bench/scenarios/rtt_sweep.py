"""rtt_sweep: the listing under a simulated network round-trip time, measured against the latency model's prediction
(kvq_derived.predicted_s); the latency injector's own error is measured once per run and recorded beside it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from queue_impls.meter import LatencyModel

from .base import Case, Param, Scenario
from .list_by_name import LISTING, ListByName

#: rtt_sweep's RTTs in milliseconds per suite, when --rtt is not given.
DEFAULT_RTT_MS: Final = (0.0, 1.0, 5.0, 20.0)
SUITE_RTT_MS: Final[dict[str, tuple[float, ...]]] = {
    "smoke": (0.0, 1.0),
    "quick": DEFAULT_RTT_MS,
    "full": DEFAULT_RTT_MS,
}
#: The listing measured under each RTT, per suite.
RTT_POINTS: Final[dict[str, dict[str, Any]]] = {
    "smoke": {"N": 20, "K": 2, "limit": 5, "offset": 0, "status": "none"},
    "quick": {"N": 100, "K": 10, "limit": 10, "offset": 0, "status": "none"},
    "full": {"N": 100, "K": 10, "limit": 10, "offset": 0, "status": "none"},
}


def points(suite: str) -> list[dict[str, Any]]:
    return [{**RTT_POINTS[suite], "rtt_ms": rtt} for rtt in SUITE_RTT_MS[suite]]


def latency(case: Case) -> LatencyModel:
    return LatencyModel(rtt_ms=case.params["rtt_ms"])


def latency_model_check(suite: str, echo: Callable[[str], None]) -> dict[str, str]:
    """The latency injector's own error, recorded on the rtt_sweep benchmarks for the report."""
    from bench.run import latency_accuracy  # measures the injector itself: imported only when rtt_sweep runs

    measured = latency_accuracy.for_suite(suite)
    worst = max(measured, key=lambda p: abs(p.ratio - 1))
    echo(f"latency injector: measured/predicted per round trip, worst {worst.ratio:.3f} at RTT {worst.rtt_ms:g} ms")
    return {"kvq_latency_model": json.dumps([p.to_json() for p in measured], separators=(",", ":"))}


SCENARIO: Final = Scenario(
    name="rtt_sweep",
    summary="the listing under a simulated round-trip time per KV call (--rtt)",
    params=(*LISTING, Param("rtt_ms")),
    points=points,
    operation=ListByName,
    seeded=True,
    latency=latency,
    derived_units={"predicted_s": "second"},
    run_metadata=latency_model_check,
    overridable=("rtt_ms",),
)
