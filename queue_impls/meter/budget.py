"""``kv_budget``: assert what a block of code may cost on a ``CountingKv``, in the style of Django's assertNumQueries.

On failure the message lists the block's calls grouped by op, key fingerprint and code site, biggest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .nplusone import detect_n_plus_one
from .trace import TraceEvent

if TYPE_CHECKING:
    from .counting import CountingKv
    from .counts import KvCounts
    from .measurement import Measurement

# budget keyword -> (counter, unit for messages, how a trace event contributes)
_LIMITS: dict[str, tuple[str, str]] = {
    "max_calls": ("total_calls", "call"),
    "max_round_trips": ("round_trips", "round trip"),
    "max_serial_round_trips": ("serial_round_trips", "serial round trip"),
    "max_entries_read": ("entries_read", "entry read"),
    "max_bytes_read": ("bytes_read", "byte read"),
}


class KvBudgetExceeded(AssertionError):
    """A block cost more (or, with ``exact=True``, other) than its budget."""


def _plural(n: int, unit: str) -> str:
    if n == 1:
        return f"1 {unit}"
    if unit.endswith("entry read"):
        return f"{n:,} entries read"
    if unit.endswith("byte read"):
        return f"{n:,} bytes read"
    return f"{n:,} {unit}s"


def _event_cost(event: TraceEvent, counter: str) -> int:
    return {
        "total_calls": 1,
        "round_trips": event.round_trips,
        "serial_round_trips": event.round_trips,
        "entries_read": event.entries,
        "bytes_read": event.bytes_read,
    }[counter]


def describe_calls(trace: Sequence[TraceEvent], counter: str = "total_calls", limit: int = 10) -> list[str]:
    """``1,000 x get ("jobs", ?) at app.py:88`` lines, grouped by op, fingerprint and site, costliest first."""
    groups: dict[tuple[str, str], list[TraceEvent]] = {}
    for event in trace:
        groups.setdefault((event.label, event.site), []).append(event)
    rows = sorted(groups.items(), key=lambda item: -sum(_event_cost(e, counter) for e in item[1]))
    lines = []
    for (label, site), events in rows[:limit]:
        trips = sum(e.round_trips for e in events)
        extra = f" ({_plural(trips, 'round trip')})" if trips != len(events) else ""
        lines.append(f"{len(events):,} x {label} at {site}{extra}")
    if len(rows) > limit:
        lines.append(f"... and {len(rows) - limit:,} more groups")
    return lines


class KvBudget:
    """Context manager (``with`` or ``async with``) that measures its block and raises ``KvBudgetExceeded``."""

    def __init__(self, kv: CountingKv, *, exact: bool = False, no_n_plus_one: bool = False, **limits: int) -> None:
        if not limits and not no_n_plus_one:
            raise TypeError(f"kv_budget() needs at least one limit ({', '.join(_LIMITS)}) or no_n_plus_one=True")
        for name, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"kv_budget({name}=...) must be a non-negative int, got {value!r}")
        self.kv = kv
        self.exact = exact
        self.no_n_plus_one = no_n_plus_one
        self.limits = limits
        self.measurement: Measurement | None = None

    @property
    def counts(self) -> KvCounts:
        if self.measurement is None:
            raise RuntimeError("kv_budget: enter the block first")
        return self.measurement.counts

    def __enter__(self) -> KvBudget:
        self.measurement = self.kv.measure(trace=True).__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        assert self.measurement is not None
        self.measurement.__exit__(exc_type, *rest)
        if exc_type is None:
            self.check()

    async def __aenter__(self) -> KvBudget:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: Any) -> None:
        self.__exit__(exc_type, *rest)

    def check(self) -> None:
        """Raise ``KvBudgetExceeded`` naming every limit broken and the calls behind it."""
        assert self.measurement is not None
        counts, trace = self.measurement.counts, self.measurement.trace
        problems = []
        for name, limit in self.limits.items():
            counter, unit = _LIMITS[name]
            got = getattr(counts, counter)
            if got > limit or (self.exact and got != limit):
                expected = f"exactly {_plural(limit, unit)}" if self.exact else f"at most {_plural(limit, unit)}"
                lines = describe_calls(trace, counter)
                problems.append(f"expected {expected}, got {got:,}:\n  " + "\n  ".join(lines or ["(no calls)"]))
        if self.no_n_plus_one:
            problems += [f"expected no N+1 pattern, found {finding}" for finding in detect_n_plus_one(trace)]
        if problems:
            raise KvBudgetExceeded("\n".join(problems))


def kv_budget(
    kv: CountingKv,
    *,
    max_calls: int | None = None,
    max_round_trips: int | None = None,
    max_serial_round_trips: int | None = None,
    max_entries_read: int | None = None,
    max_bytes_read: int | None = None,
    exact: bool = False,
    no_n_plus_one: bool = False,
) -> KvBudget:
    """``with kv_budget(ckv, max_round_trips=2): ...`` (or ``async with``). ``exact=True`` demands equality;
    ``no_n_plus_one=True`` also fails when ``detect_n_plus_one`` finds a pattern in the block."""
    given = {
        "max_calls": max_calls,
        "max_round_trips": max_round_trips,
        "max_serial_round_trips": max_serial_round_trips,
        "max_entries_read": max_entries_read,
        "max_bytes_read": max_bytes_read,
    }
    limits = {name: value for name, value in given.items() if value is not None}
    return KvBudget(kv, exact=exact, no_n_plus_one=no_n_plus_one, **limits)
