"""The event loop and SQLite's database thread in lockstep, for counting instructions (instructions.py).

aiosqlite runs each request on its database thread and hands the result back with ``call_soon_threadsafe`` (a
callback appended to the loop's ready queue, then a byte written to the loop's self-pipe). Left to the operating
system, the loop sometimes reaches ``select()`` before that byte is written and sometimes after; a byte written late
is read one pass of the loop later, sometimes after the measured span has ended, and with it the self-pipe read (a
``recv`` that ends in ``BlockingIOError``) and a pass of the loop move into or out of the count. The small
``rtt_sweep`` listings took one of two figures 3% apart that way.

In lockstep, each request is handed to the database thread and the loop's thread waits (the GIL released) until the
thread has run it and delivered its result, byte included: the hand-off always takes the same path, the one a lone
operation takes when its request outlasts the loop's other work. Every instruction of the real hand-off is still
executed and counted (the queue, the database work, ``call_soon_threadsafe``, the self-pipe's write and read, the
loop's pass that wakes the task); what the wait adds is an acknowledgement per request (one more queue item that
releases a lock), which the instruction pass measures on its own and subtracts (``HandOffs.acknowledgements``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Final

import aiosqlite

#: aiosqlite's request queue is replaced on every connection made after ``install()``; this is its type.
_QUEUE_ATTR: Final = "_tx"


class LockstepUnavailable(Exception):
    """This aiosqlite does not queue its requests the way lockstep expects."""


class HandOffs:
    """Counts the acknowledged hand-offs, so that the pass can subtract their cost."""

    def __init__(self) -> None:
        self.acknowledgements = 0
        self.queues: list[LockstepQueue] = []

    def live(self) -> LockstepQueue | None:
        """The queue of a connection still open (its thread answers), the one opened last; None if there is none."""
        return next((queue for queue in reversed(self.queues) if queue.running), None)


class LockstepQueue:
    """aiosqlite's request queue, put to in lockstep: ``put_nowait`` returns once the database thread has run the
    request and delivered its result to the loop. Reading it (aiosqlite 0.20's thread reads through the attribute)
    goes to the real queue."""

    __slots__ = ("_connection", "_counter", "_done", "_queue")

    def __init__(self, queue: Any, connection: Any, counter: HandOffs) -> None:
        self._queue = queue
        self._connection = connection
        self._counter = counter
        self._done = threading.Lock()
        self._done.acquire()

    @property
    def running(self) -> bool:
        return bool(self._connection._running)

    def put_nowait(self, item: tuple[Any, Callable[[], Any]]) -> None:
        self._queue.put_nowait(item)
        if self._connection._running:  # not stopping (the thread ends after a stop request, acknowledging nothing)
            self.acknowledge()

    def acknowledge(self) -> None:
        """Wait until the database thread has handed back everything queued before (its results' callbacks and
        self-pipe bytes are in the loop) and reached this item."""
        self._queue.put_nowait((None, self._done.release))
        self._counter.acknowledgements += 1
        self._done.acquire()

    def put(self, item: tuple[Any, Callable[[], Any]], block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        return self._queue.get(block, timeout)

    def get_nowait(self) -> Any:
        return self._queue.get_nowait()

    def empty(self) -> bool:
        return bool(self._queue.empty())

    def qsize(self) -> int:
        return int(self._queue.qsize())


def install(counter: HandOffs) -> None:
    """Make every aiosqlite connection opened from now on in this process hand its requests over in lockstep,
    counted in ``counter`` (a second call replaces the first's counter)."""
    connection_type: Any = aiosqlite.Connection
    original = getattr(connection_type.__init__, "_kvq_original", connection_type.__init__)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        queue = getattr(self, _QUEUE_ATTR, None)
        if queue is None or not hasattr(queue, "put_nowait") or not hasattr(self, "_running"):
            raise LockstepUnavailable(
                f"aiosqlite {aiosqlite.__version__}: its connections have no request queue {_QUEUE_ATTR!r} "
                "or no '_running' flag"
            )
        lockstep = LockstepQueue(queue, self, counter)
        counter.queues.append(lockstep)
        setattr(self, _QUEUE_ATTR, lockstep)

    __init__._kvq_original = original  # type: ignore[attr-defined]
    connection_type.__init__ = __init__
