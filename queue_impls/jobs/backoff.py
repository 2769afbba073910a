"""Retry delays: exponential backoff ``min(cap, base * factor ** (attempt - 1))`` with jitter."""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import InvalidJobOptionError

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
        for what, value, low in (("base", self.base, 0.0), ("factor", self.factor, 1.0), ("cap", self.cap, 0.0)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < low:
                raise InvalidJobOptionError(f"backoff {what} must be a finite number >= {low}, got {value!r}")
        if self.jitter not in JITTERS:
            raise InvalidJobOptionError(f"backoff jitter must be one of {JITTERS}, got {self.jitter!r}")

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
        raise InvalidJobOptionError(f"backoff must be a Backoff or a dict of base/factor/cap/jitter, got {value!r}")
