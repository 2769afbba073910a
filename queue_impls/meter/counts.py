"""What an access pattern cost, as exact counters: calls, round trips, entries, bytes, mutations.

``KvCounts`` is filled in by ``CountingKv`` (see docs/counting.md for what each counter means).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, Final

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


class LiveCounts(KvCounts):
    """The counters of a live ``CountingKv``, current whenever they are read, however long a reference is held.

    The wrapper counts into plain fields of its own on its hot paths (an attribute update where this record would
    take a dict update and several slot updates, each a new int object); reading anything here first calls
    ``fold``, which adds what it counted since the last read. ``calls`` reads as a copy of the per-op counts, current
    when read (a dict held from an earlier read keeps its values, like a snapshot). Snapshots and deltas are plain
    ``KvCounts``.
    """

    __slots__ = ("_fold",)

    def __init__(self, fold: Callable[[], None]) -> None:
        super().__init__()
        self._fold = fold

    def __getattribute__(self, name: str) -> Any:
        if name[0] != "_":  # a counter, a property or a method: bring the record up to date first
            object.__getattribute__(self, "_fold")()
        return object.__getattribute__(self, name)

    @property
    def calls(self) -> dict[str, int]:
        return dict(LiveCounts.own_calls(self))

    @calls.setter
    def calls(self, value: dict[str, int]) -> None:  # the dataclass __init__ sets it once
        _CALLS_SLOT.__set__(self, value)

    @staticmethod
    def own_calls(counts: LiveCounts) -> dict[str, int]:
        """The per-op dict itself, for the wrapper to update in place."""
        calls: dict[str, int] = _CALLS_SLOT.__get__(counts)
        return calls

    def reset(self) -> None:
        self._fold()
        calls = LiveCounts.own_calls(self)
        for op in calls:
            calls[op] = 0
        for name in _SCALARS:
            setattr(self, name, 0)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KvCounts):
            return NotImplemented
        return self.snapshot() == (other.snapshot() if isinstance(other, LiveCounts) else other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like KvCounts


_CALLS_SLOT: Any = KvCounts.__dict__["calls"]  # the slot behind KvCounts.calls
