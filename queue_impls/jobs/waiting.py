"""How an idle worker waits without polling: it watches the queue-version key, which every commit that may make a
job claimable bumps, and wakes when it moves (or when the next delayed job is due, or for a safety re-check)."""

from __future__ import annotations

import asyncio
import contextlib

from ..kv import Kv
from .keys import VERSION


class VersionWatch:
    """Follows ``("queue", "version")`` through ``kv.watch`` in a task of its own; ``changed`` is set by every
    change after the first yield. ``alive`` turns False if the watch ends (the worker then polls on a timer)."""

    def __init__(self, kv: Kv) -> None:
        self.changed = asyncio.Event()
        self.started = asyncio.Event()
        self._task = asyncio.create_task(self._pump(kv))

    async def _pump(self, kv: Kv) -> None:
        try:
            async for _ in kv.watch([VERSION]):
                if self.started.is_set():
                    self.changed.set()
                self.started.set()
        finally:
            self.started.set()  # never leave a waiter behind: a watch that failed at once reads as not alive

    @property
    def alive(self) -> bool:
        return not self._task.done()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(BaseException):
            await self._task
