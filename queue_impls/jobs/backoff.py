"""Retry delays: exponential backoff ``min(cap, base * factor ** (attempt - 1))`` with jitter."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from ..kv.errors import short_repr
from .errors import InvalidJobOptionError

#: The longest retry delay (base and cap), in seconds: 30 days (Deno's own limit on an enqueue delay).
MAX_BACKOFF: Final = 30 * 24 * 3600.0
#: The largest growth factor between two retries.
MAX_FACTOR: Final = 1000.0

Jitter = Literal["full", "equal", "none"]
JITTERS: tuple[Jitter, ...] = ("full", "equal", "none")


@dataclass(frozen=True, slots=True)
class Backoff:
    """Defaults: 1 s, doubling, capped at 5 minutes, full jitter (AWS's "Exponential Backoff And Jitter").

    ``full`` waits uniform(0, d); ``equal`` waits d/2 + uniform(0, d/2); ``none`` waits exactly d.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: Jitter = "full"

    def __post_init__(self) -> None:
        limits = (("base", self.base, 0.0, MAX_BACKOFF), ("factor", self.factor, 1.0, MAX_FACTOR))
        for what, value, low, high in (*limits, ("cap", self.cap, 0.0, MAX_BACKOFF)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidJobOptionError(
                    f"backoff {what} must be a number in {low}..{high:.0f}, got {short_repr(value)}"
                )
            if not low <= value <= high:
                raise InvalidJobOptionError(
                    f"backoff {what} must be a number in {low}..{high:.0f}, got {short_repr(value)}"
                )
        if not isinstance(self.jitter, str) or self.jitter not in JITTERS:
            raise InvalidJobOptionError(f"backoff jitter must be one of {JITTERS}, got {short_repr(self.jitter)}")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter after failed attempt number ``attempt`` (1-based)."""
        try:
            raw = self.base * self.factor ** max(attempt - 1, 0)
        except OverflowError:  # far past the cap anyway
            return float(self.cap)
        return float(min(self.cap, raw))

    def delay(self, attempt: int, rng: random.Random) -> float:
        d = self.ceiling(attempt)
        if self.jitter == "full":
            return rng.uniform(0, d)
        if self.jitter == "equal":
            return d / 2 + rng.uniform(0, d / 2)
        return d

    def to_value(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_value(cls, value: Any) -> Backoff:
        """A Backoff from a Backoff, a dict of its fields (as stored in a job), or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, Backoff):
            return value
        if isinstance(value, dict) and set(value) <= {"base", "factor", "cap", "jitter"}:
            return cls(**value)
        raise InvalidJobOptionError(
            f"backoff must be a Backoff or a dict of base/factor/cap/jitter, got {short_repr(value)}"
        )
