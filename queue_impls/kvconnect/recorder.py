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
from collections.abc import AsyncIterator, Sequence

from queue_impls.kv.codec import Key, decode_key
from queue_impls.kv.errors import KvError
from queue_impls.kv.types import Check, Consistency, KvEntry, Mutation, RawEntry, ReadRange
from queue_impls.meter.counting import CountingKv
from queue_impls.meter.trace import TraceEvent, keys_fingerprint

_OPEN_LISTS = 1024  # list iterations remembered for their next batch


def _key(encoded: bytes) -> Key:
    """The key tuple of an encoded key or range bound (a bound may end in a 0x00/0xFF the key does not have)."""
    for candidate in (encoded, encoded.rstrip(b"\x00"), encoded.rstrip(b"\xff")):
        try:
            return decode_key(candidate)
        except (KvError, UnicodeDecodeError, IndexError):
            continue
    return (encoded,)


class RequestRecorder:
    """Turns each data-path request into the calls and round trips of a ``CountingKv`` (which does the counting)."""

    def __init__(self, kv: CountingKv) -> None:
        self.kv = kv
        #: The counting clock: a server brackets the requests that arrived together (one read) with its
        #: ``arrivals_begin``/``arrivals_end``, so they share a serial wave as concurrent calls do
        self.arrivals = kv._clock
        self.requests: dict[str, int] = {"snapshot_read": 0, "atomic_write": 0, "watch": 0}
        # (start, end, limit, reverse) of the read that would continue a list -> that list's trace event
        self._open_lists: OrderedDict[tuple[bytes, bytes, int, bool], TraceEvent | None] = OrderedDict()

    async def snapshot_read(
        self, ranges: Sequence[ReadRange], consistency: Consistency, site: str
    ) -> list[list[RawEntry]]:
        """The read, counted as the call it is (get, get_many, list, or the next batch of a list); values are left as
        the store holds them (``_snapshot_read_stored``): the wire sends what Deno wrote as it came."""
        self.requests["snapshot_read"] += 1
        kv = self.kv
        one = ranges[0] if len(ranges) == 1 else None
        point = one.end == one.start + b"\x00" if one is not None else all(r.end == r.start + b"\x00" for r in ranges)
        open_lists = self._open_lists
        if one is not None and open_lists and (spec := (one.start, one.end, one.limit, one.reverse)) in open_lists:
            event = open_lists.pop(spec)  # the next batch of a list: another round trip of that call
        elif point and ranges:
            op = "get" if one is not None else "get_many"
            kv._calls[op] += 1
            event = self._event(op, tuple(_key(r.start) for r in ranges), site) if kv.tracing else None
        else:
            event = self._list_call(ranges, site)
        if event is None:  # nothing to hand to the primitive (``_for_event``): one coroutine frame less
            results = await kv._snapshot_read_stored(ranges, consistency)
        else:
            results = await kv._for_event(event, kv._snapshot_read_stored(ranges, consistency))
        if one is not None and not point:
            self._remember(one, results[0], event)
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
            event = self._event(op, keys, site, fp)
        if event is None:
            return await kv._atomic_write(checks, mutations)
        return await kv._for_event(event, kv._atomic_write(checks, mutations))

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

    def _event(self, op: str, keys: tuple[Key, ...], site: str, fingerprint: str | None = None) -> TraceEvent:
        kv = self.kv
        if fingerprint is None:
            fingerprint = kv.fingerprint(keys[0]) if len(keys) == 1 else keys_fingerprint(keys, kv.fingerprint)
        return kv._event(op, keys, fingerprint, site)

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

    def _remember(self, r: ReadRange, rows: list[RawEntry], event: TraceEvent | None) -> None:
        """After a full batch, the read Deno's iterator makes next: after the last key (forward) or before it."""
        if len(rows) < r.limit or not rows:
            return
        last = rows[-1].key
        nxt = (r.start, last, r.limit, True) if r.reverse else (last + b"\x00", r.end, r.limit, False)
        self._open_lists[nxt] = event
        while len(self._open_lists) > _OPEN_LISTS:
            self._open_lists.popitem(last=False)
