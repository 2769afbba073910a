"""What an access pattern cost, as exact counters: calls, round trips, entries, bytes, mutations.

``KvCounts`` is filled in by ``CountingKv`` (see docs/counting.md for what each counter means).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Final

#: The public calls that ``calls`` counts, in display order.
OPS: Final = ("get", "get_many", "list", "set", "delete", "commit")

_SCALARS: Final = (
    "round_trips",
    "serial_round_trips",
    "entries_read",
    "bytes_read",
    "mutations",
    "checks",
    "bytes_written",
)


def _zero_calls() -> dict[str, int]:
    return dict.fromkeys(OPS, 0)


@dataclass(slots=True)
class KvCounts:
    """Counters of one store (live) or of a span of time (a snapshot or a ``since`` delta)."""

    #: API calls per op: a list() counts once however many batches it pulls; an atomic commit counts once.
    calls: dict[str, int] = field(default_factory=_zero_calls)
    #: Primitive reads and writes (one snapshot read or one atomic write each).
    round_trips: int = 0
    #: Round trips on the critical path: concurrent requests (asyncio.gather) count once per wave.
    serial_round_trips: int = 0
    #: Entries the store returned; a list batch counts whole, consumed or not.
    entries_read: int = 0
    #: Encoded key + encoded value bytes of every entry read.
    bytes_read: int = 0
    #: Mutations sent in commits (set, delete, sum, min, max), including commits whose check failed.
    mutations: int = 0
    #: Checks sent in commits.
    checks: int = 0
    #: Encoded key + encoded value bytes of every mutation sent (a delete: its key only).
    bytes_written: int = 0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    def reset(self) -> None:
        """Zero every counter (the serial-round-trip clock keeps running; only the count restarts)."""
        for op in self.calls:
            self.calls[op] = 0
        for name in _SCALARS:
            setattr(self, name, 0)

    def snapshot(self) -> KvCounts:
        """A frozen copy, to pass to ``since`` later."""
        copy = KvCounts(dict(self.calls))
        for name in _SCALARS:
            setattr(copy, name, getattr(self, name))
        return copy

    def since(self, snapshot: KvCounts) -> KvCounts:
        """What happened between ``snapshot`` and now."""
        delta = KvCounts({op: n - snapshot.calls.get(op, 0) for op, n in self.calls.items()})
        for name in _SCALARS:
            setattr(delta, name, getattr(self, name) - getattr(snapshot, name))
        return delta

    def as_dict(self) -> dict[str, int]:
        """Flat view: ``calls.get``... plus ``total_calls`` and every scalar counter."""
        out = {f"calls.{op}": n for op, n in self.calls.items()}
        out["total_calls"] = self.total_calls
        out.update({f.name: getattr(self, f.name) for f in fields(self) if f.name != "calls"})
        return out

    def __str__(self) -> str:
        calls = ", ".join(f"{op} {n:,}" for op, n in self.calls.items() if n)
        parts = [f"calls {self.total_calls:,} ({calls or 'none'})"]
        parts += [f"{name.replace('_', ' ')} {getattr(self, name):,}" for name in _SCALARS]
        return "; ".join(parts)
