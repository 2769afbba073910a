"""Counts the KV Connect requests of a client through a ``CountingKv``, as the Python port of its code would count.

Each request is one round trip. A snapshot read of one point range counts as a ``get``, of several point ranges as a
``get_many``, of a key range as a ``list`` call; the next batch of the same list (a read that resumes right after the
previous batch's last key) is another round trip of that same call, as Deno's list iterator pulls it. An atomic write
of one set or one delete and no check counts as a ``set``/``delete``, anything else as a ``commit``. A watch counts
each message it sends as one read of its keys, as ``CountingKv.watch`` counts each yield. So a Deno program
and its Python port give the same calls, round trips and entries (bytes differ: V8 and this project's codec size
values differently). Trace events carry the client's User-Agent as their site.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

from queue_impls.kv.codec import Key, decode_key
from queue_impls.kv.errors import KvError
from queue_impls.kv.types import Check, Consistency, KvEntry, Mutation, RawEntry, ReadRange
from queue_impls.meter.counting import CountingKv
from queue_impls.meter.trace import TraceEvent, keys_fingerprint

_T = TypeVar("_T")

_OPEN_LISTS = 1024  # list iterations remembered for their next batch


def _key(encoded: bytes) -> Key:
    """The key tuple of an encoded key or range bound (a bound may end in a 0x00/0xFF the key does not have)."""
    for candidate in (encoded, encoded.rstrip(b"\x00"), encoded.rstrip(b"\xff")):
        try:
            return decode_key(candidate)
        except (KvError, UnicodeDecodeError, IndexError):
            continue
    return (encoded,)


def _is_point(r: ReadRange) -> bool:
    return r.end == r.start + b"\x00"


class RequestRecorder:
    """Turns each data-path request into the calls and round trips of a ``CountingKv`` (which does the counting)."""

    def __init__(self, kv: CountingKv) -> None:
        self.kv = kv
        self.requests: dict[str, int] = {"snapshot_read": 0, "atomic_write": 0, "watch": 0}
        # (start, end, limit, reverse) of the read that would continue a list -> that list's trace event
        self._open_lists: OrderedDict[tuple[bytes, bytes, int, bool], TraceEvent | None] = OrderedDict()

    async def snapshot_read(
        self, ranges: Sequence[ReadRange], consistency: Consistency, site: str
    ) -> list[list[RawEntry]]:
        self.requests["snapshot_read"] += 1
        kv = self.kv
        continued = self._continuation(ranges)
        if continued is not None:
            event = continued[0]
        elif ranges and all(_is_point(r) for r in ranges):
            op = "get" if len(ranges) == 1 else "get_many"
            event = self._call(op, tuple(_key(r.start) for r in ranges), site)
        else:
            event = self._list_call(ranges, site)
        results = await self._primitive(event, kv._snapshot_read_stored(ranges, consistency))
        if len(ranges) == 1 and not _is_point(ranges[0]):
            self._remember(ranges[0], results[0], event)
        return results

    async def atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation], site: str) -> str | None:
        self.requests["atomic_write"] += 1
        kv = self.kv
        single = not checks and len(mutations) == 1 and mutations[0].kind in ("set", "delete")
        op = mutations[0].kind if single else "commit"
        event = None
        kv._calls[op] += 1
        if kv.tracing:
            keys = tuple(_key(c.key) for c in checks) + tuple(_key(m.key) for m in mutations)
            if single:
                fp = keys_fingerprint(keys, kv.fingerprint)
            else:
                kinds = ["check"] * len(checks) + [m.kind for m in mutations]
                fp = ", ".join(f"{kind} {kv.fingerprint(k)}" for kind, k in zip(kinds, keys, strict=True))
            event = self._event(op, keys, fp, site)
        return await self._primitive(event, kv._atomic_write(checks, mutations))

    def _primitive(self, event: TraceEvent | None, call: Awaitable[_T]) -> Awaitable[_T]:
        """One of the wrapper's primitives, awaited with ``event`` handed to it (``CountingKv._for_event``)."""
        return self.kv._for_event(event, call)

    def watch(self, keys: Sequence[Key]) -> AsyncIterator[list[KvEntry]]:
        """The store's ``watch`` through the counting wrapper: each yield (each message sent) is one read."""
        self.requests["watch"] += 1
        return self._watch(self.kv.watch(keys))

    async def _watch(self, stream: AsyncIterator[list[KvEntry]]) -> AsyncIterator[list[KvEntry]]:
        try:
            async for entries in stream:
                yield entries
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    # -- calls and trace events ---------------------------------------------------------------------------

    def _event(self, op: str, keys: tuple[Key, ...], fingerprint: str, site: str) -> TraceEvent:
        event = self.kv._event(op, keys, fingerprint)
        event.site = site
        return event

    def _call(self, op: str, keys: tuple[Key, ...], site: str) -> TraceEvent | None:
        kv = self.kv
        kv._calls[op] += 1
        if not kv.tracing:
            return None
        return self._event(op, keys, keys_fingerprint(keys, kv.fingerprint), site)

    def _list_call(self, ranges: Sequence[ReadRange], site: str) -> TraceEvent | None:
        kv = self.kv
        kv._calls["list"] += 1
        if not kv.tracing:
            return None
        first = ranges[0] if ranges else ReadRange(b"", b"", 0)
        if first.end.endswith(b"\xff") and first.start == first.end[:-1] + b"\x00":
            event = kv._list_event(_key(first.end[:-1]), None, None)
        elif first.end.endswith(b"\xff") and first.start.startswith(first.end[:-1]):
            event = kv._list_event(_key(first.end[:-1]), _key(first.start), None)
        else:
            event = kv._list_event(None, _key(first.start), _key(first.end))
        event.site = site
        return event

    # -- list batches ----------------------------------------------------------------------------------------

    def _continuation(self, ranges: Sequence[ReadRange]) -> tuple[TraceEvent | None] | None:
        if len(ranges) != 1:
            return None
        r = ranges[0]
        spec = (r.start, r.end, r.limit, r.reverse)
        if spec not in self._open_lists:
            return None
        event = self._open_lists.pop(spec)
        return (event,)

    def _remember(self, r: ReadRange, rows: list[RawEntry], event: TraceEvent | None) -> None:
        """After a full batch, the read Deno's iterator makes next: after the last key (forward) or before it."""
        if len(rows) < r.limit or not rows:
            return
        last = rows[-1].key
        nxt = (r.start, last, r.limit, True) if r.reverse else (last + b"\x00", r.end, r.limit, False)
        self._open_lists[nxt] = event
        while len(self._open_lists) > _OPEN_LISTS:
            self._open_lists.popitem(last=False)
