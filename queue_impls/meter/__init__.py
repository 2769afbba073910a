"""The cost meter: what an access pattern costs on any store, counted exactly, traced, priced and budgeted.

Owns ``CountingKv`` (a store that wraps a store and counts calls, round trips, entries and bytes), its counters
(``KvCounts``), the serial-round-trip clock, trace events and their fingerprints and code sites, the N+1 detector,
the latency model and ``predict``, and ``kv_budget``. Import everything from here: ``from queue_impls.meter import
CountingKv``; the modules inside are the room's own layout. See docs/counting.md.

May import: queue_impls.kv (never jobs, kvconnect or bench).
Third-party: none.
"""

from .budget import KvBudget, KvBudgetExceeded, describe_calls, kv_budget
from .counting import CountingKv
from .counts import OPS, KvCounts, LiveCounts
from .latency import (
    DENO_DEPLOY_CROSS_REGION_STRONG,
    DENO_DEPLOY_SAME_REGION,
    PRESETS,
    LatencyModel,
    NoWaitTimer,
    PreciseTimer,
    RoundTrip,
    Timer,
    predict,
    sleep_until,
    use_timer,
)
from .measurement import Measurement
from .nplusone import NPlusOneFinding, detect_n_plus_one
from .trace import Fingerprinter, TraceEvent, is_varying, key_fingerprint, keys_fingerprint

__all__ = [
    "DENO_DEPLOY_CROSS_REGION_STRONG",
    "DENO_DEPLOY_SAME_REGION",
    "OPS",
    "PRESETS",
    "CountingKv",
    "Fingerprinter",
    "KvBudget",
    "KvBudgetExceeded",
    "KvCounts",
    "LatencyModel",
    "LiveCounts",
    "Measurement",
    "NPlusOneFinding",
    "NoWaitTimer",
    "PreciseTimer",
    "RoundTrip",
    "Timer",
    "TraceEvent",
    "describe_calls",
    "detect_n_plus_one",
    "is_varying",
    "key_fingerprint",
    "keys_fingerprint",
    "kv_budget",
    "predict",
    "sleep_until",
    "use_timer",
]
