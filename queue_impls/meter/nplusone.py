"""Finds N+1 access patterns in a ``CountingKv`` trace: one read whose results feed many point reads.

Modelled on Sentry's N+1 DB span detector (a source query, then >= N repeated queries with one fingerprint that
differs from the source's) and Prosopite (repeats grouped by fingerprint and call site), plus what a KV trace can
check that theirs cannot: the repeated keys really come out of the source's results. Rule and limits: docs/counting.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .trace import TraceEvent, is_varying

_READS = ("get", "get_many", "list")
_MAX_DEPTH = 4


@dataclass(frozen=True)
class NPlusOneFinding:
    """``count`` point reads with one fingerprint, at one code site, whose keys came out of ``source``."""

    source: TraceEvent
    #: ``get ("jobs", ?)``: op and key fingerprint of the repeated reads.
    fingerprint: str
    count: int
    #: ``file:line`` of the repeated reads.
    site: str
    reads: tuple[TraceEvent, ...]

    @property
    def waves(self) -> int:
        """Distinct serial waves the repeated reads ran in (1 when they were all issued concurrently)."""
        return len({r.wave for r in self.reads})

    def __str__(self) -> str:
        return (
            f"N+1: {self.count:,} x {self.fingerprint} at {self.site} (in {self.waves:,} serial waves), "
            f"keys taken from {self.source.label} at {self.source.site}; read them with one get_many per 10 keys, "
            "or store what you need in the index entries"
        )


def _atoms(value: Any, out: set[Any], depth: int = 0) -> None:
    """Every scalar inside a value that could be a key part (bools excluded: True == 1 would match anything)."""
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str | bytes | int | float):
        out.add(value)
    elif depth < _MAX_DEPTH and isinstance(value, dict):
        for item in value.values():
            _atoms(item, out, depth + 1)
    elif depth < _MAX_DEPTH and isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _atoms(item, out, depth + 1)


def _source_atoms(event: TraceEvent) -> set[Any]:
    """What a read handed back that the caller did not already have in the keys it asked with."""
    out: set[Any] = set()
    for key, value in event.results:
        _atoms(key, out)
        _atoms(value, out)
    for key in event.keys:
        out.difference_update(p for p in key if not isinstance(p, bool))
    return out


def _fed_parts(event: TraceEvent) -> list[Any]:
    return (
        [p for p in event.keys[0] if is_varying(p) and isinstance(p, str | bytes | int | float)] if event.keys else []
    )


def _feeding_source(
    event: TraceEvent, fed_by: dict[Any, list[TraceEvent]], hashable: Iterable[Any]
) -> TraceEvent | None:
    """The most recent read whose results hold one of the event's varying key parts (and is not a repeat itself)."""
    best: TraceEvent | None = None
    for part in hashable:
        for source in reversed(fed_by.get(part, ())):
            if source.label != event.label:
                if best is None or source.index > best.index:
                    best = source
                break
    return best


def detect_n_plus_one(trace: Sequence[TraceEvent], k: int = 3) -> list[NPlusOneFinding]:
    """Findings, in trace order: a read (list, get_many or get) whose returned key parts or values supply a varying
    part of the keys of ``k`` or more later ``get`` calls that share one fingerprint and one code site."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"k must be an int >= 2 (a single follow-up read is not a repeat), got {k!r}")
    fed_by: dict[Any, list[TraceEvent]] = {}
    groups: dict[tuple[int, str, str], list[TraceEvent]] = {}
    sources: dict[int, TraceEvent] = {}
    for event in sorted(trace, key=lambda e: e.index):
        if event.op not in _READS or event.error is not None:
            continue
        if event.op == "get":
            source = _feeding_source(event, fed_by, _fed_parts(event))
            if source is not None:
                sources[source.index] = source
                groups.setdefault((source.index, event.label, event.site), []).append(event)
        for atom in _source_atoms(event):
            fed_by.setdefault(atom, []).append(event)
    findings = [
        NPlusOneFinding(sources[index], label, len(reads), site, tuple(reads))
        for (index, label, site), reads in groups.items()
        if len(reads) >= k
    ]
    findings.sort(key=lambda f: (f.source.index, -f.count))
    return findings
