"""``Measurement``: what one block of code cost on a ``CountingKv`` (``async with ckv.measure() as m: ...``)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from .counts import KvCounts
from .serial_clock import install_on_running_loop
from .trace import TraceEvent

if TYPE_CHECKING:
    from .counting import CountingKv


class Measurement:
    """What happened between entering and leaving a ``with``/``async with`` block on one ``CountingKv``.

    Entering is a sync point (``CountingKv.sync_point``), so the block's serial round trips start after
    everything that completed before it.
    """

    def __init__(self, kv: CountingKv, trace: bool | None = None) -> None:
        self.kv = kv
        self._trace_option = trace
        self._start = kv.counts.snapshot()
        self._final: KvCounts | None = None
        self._first_event = len(kv.trace)
        self._saved_tracing = kv.tracing
        self._started = time.perf_counter()
        self.elapsed_s = 0.0
        self.trace: list[TraceEvent] = []

    def __enter__(self) -> Measurement:
        kv = self.kv
        if _loop_running():
            kv.sync_point()
        self._saved_tracing = kv.tracing
        if self._trace_option is not None:
            kv.tracing = self._trace_option
        if kv.tracing:
            install_on_running_loop()
        self._start = kv.counts.snapshot()
        self._first_event = len(kv.trace)
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        kv = self.kv
        self.elapsed_s = time.perf_counter() - self._started
        self._final = kv.counts.since(self._start)
        self.trace = kv.trace[self._first_event :]
        kv.tracing = self._saved_tracing

    async def __aenter__(self) -> Measurement:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    @property
    def counts(self) -> KvCounts:
        """The block's counts: frozen after the block, live (so far) inside it."""
        return self._final if self._final is not None else self.kv.counts.since(self._start)

    @property
    def elapsed_ms(self) -> float:
        return self.elapsed_s * 1000


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
