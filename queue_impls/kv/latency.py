"""Injected network latency: make a local store take as long as a remote one, and predict it from counts.

Presets come from Deno Deploy's published KV read latencies (see docs/counting.md).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from .counts import KvCounts
from .errors import InvalidArgumentError


@dataclass(frozen=True)
class LatencyModel:
    """Per round trip: one RTT (times 1 + uniform(0, jitter)) plus ``per_kib_ms`` per KiB sent or received.

    The request half (RTT/2 + request transfer) is slept before the store is touched and the response half after,
    as real ``asyncio.sleep`` calls, so concurrent requests overlap as they would on a network. Jitter only adds
    (a network has a floor, not a mean), so ``predict`` is a lower bound for serial code.
    """

    rtt_ms: float = 5.0
    per_kib_ms: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("rtt_ms", "per_kib_ms", "jitter"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidArgumentError(f"LatencyModel.{name} must be a non-negative number, got {value!r}")

    def rng(self) -> random.Random:
        """A fresh random source for the jitter: each wrapper owns one, so runs repeat exactly."""
        return random.Random(self.seed)

    def round_trip_ms(self, rng: random.Random) -> float:
        """One RTT with jitter drawn from ``rng``."""
        if self.jitter:
            return self.rtt_ms * (1.0 + rng.uniform(0.0, self.jitter))
        return self.rtt_ms

    def transfer_ms(self, nbytes: int) -> float:
        return nbytes / 1024 * self.per_kib_ms

    async def sleep(self, ms: float) -> None:
        await asyncio.sleep(ms / 1000)


def predict(counts: KvCounts, model: LatencyModel) -> float:
    """Analytic time in milliseconds: serial round trips x RTT + bytes read and written x per-KiB time.

    Exact (up to scheduling overhead) for serial code without jitter. With concurrency it charges every byte
    serially, as if transfers shared one link, while the sleeping model lets them overlap.
    """
    return counts.serial_round_trips * model.rtt_ms + model.transfer_ms(counts.total_bytes)


#: A read served by a KV replica in the caller's region (Deno Deploy's published best case).
DENO_DEPLOY_SAME_REGION = LatencyModel(rtt_ms=7.0)
#: A strongly consistent read from a region far from the primary (Deno Deploy's published figure).
DENO_DEPLOY_CROSS_REGION_STRONG = LatencyModel(rtt_ms=94.0)

PRESETS: dict[str, LatencyModel] = {
    "same-region": DENO_DEPLOY_SAME_REGION,
    "cross-region-strong": DENO_DEPLOY_CROSS_REGION_STRONG,
}
