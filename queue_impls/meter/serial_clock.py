"""The serial-round-trip clock: how many round trips lie on the critical path of concurrent code.

Each asyncio task that made a round trip owns a lane, held in the clock's context variable; a lane's clock is mutated
in place, so a round trip costs no ``ContextVar.set``. A task created by a lane's owner inherits, through the task
factory installed here, a fork: the creator's lane and its clock at the moment of creation. So the round trips of
tasks spawned together (gather, TaskGroup, create_task) start at the same clock, and a task's next round trip starts
after what its finished descendants did. Tasks with no lane or fork that start in the same event-loop pass are
siblings too; later ones start after everything completed so far. See docs/counting.md, "serial_round_trips".
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from contextvars import ContextVar, Token
from typing import Any

from .trace import SPAWN_SITE, spawn_site


class Lane:
    """One asyncio task's chain of round trips on one clock.

    ``clock`` is where the task's next round trip starts: the end of its own latest round trip (or where the task
    started) or of any finished round trip of its descendants, whichever is later.
    """

    __slots__ = ("clock", "parent")

    def __init__(self, clock: int, parent: Lane | None) -> None:
        self.clock = clock
        self.parent = parent


class _Fork:
    """What a task created by a lane's owner starts from: the creator's lane and where the creator's next round trip
    would start at that moment (after its own latest one and after everything its finished descendants did)."""

    __slots__ = ("clock", "lane")

    def __init__(self, lane: Lane) -> None:
        self.lane = lane
        self.clock = lane.clock


_LaneState = Lane | _Fork | None


class SerialClock:
    """One counting store's clock. A round trip is ``lane = clock.begin(); end = lane.clock`` before it is sent and
    ``clock.end(lane, end)`` once it is back; ``issued`` is the latest end of any round trip begun, which is the
    number of serial round trips so far."""

    __slots__ = ("__weakref__", "_arrivals", "_root_clock", "_root_loop", "completed", "issued", "lane_var")

    def __init__(self) -> None:
        self.lane_var: ContextVar[_LaneState] = ContextVar(f"kvq_lane_{id(self)}", default=None)
        self.issued = 0  # latest end of any round trip begun
        self.completed = 0  # latest end of any round trip completed
        self._root_clock = 0
        self._root_loop: asyncio.AbstractEventLoop | None = None
        self._arrivals = False  # between arrivals_begin and arrivals_end

    def begin(self) -> Lane:
        """Start a round trip on the current task's lane (given one first if it has none): its clock moves to the
        trip's end, which the caller reads as ``lane.clock`` before anything else runs."""
        lane = self.lane_var.get()
        if not isinstance(lane, Lane):
            lane = self.own_lane(lane)
        end = lane.clock = lane.clock + 1
        if end > self.issued:
            self.issued = end
        return lane

    def end(self, lane: Lane, end: int) -> None:
        """A round trip that ended at ``end`` is back: every ancestor's next round trip starts after it."""
        if end > self.completed:
            self.completed = end
        parent = lane.parent
        while parent is not None:  # every ancestor: one whose own round trip is in flight may be ahead of this end
            if parent.clock < end:
                parent.clock = end
            parent = parent.parent

    def current_lane(self) -> Lane:
        lane = self.lane_var.get()
        return lane if isinstance(lane, Lane) else self.own_lane(lane)

    def wave(self) -> int:
        """Where the current task's next round trip would start (a trace event's ``wave``)."""
        state = self.lane_var.get()
        return state.clock if state is not None else self.completed

    def sync_point(self) -> None:
        """Treat every round trip completed so far as happened-before the current task's next one."""
        lane = self.current_lane()
        lane.clock = max(lane.clock, self.completed)

    def own_lane(self, fork: _Fork | None, loop: asyncio.AbstractEventLoop | None = None) -> Lane:
        """Give the current task its own lane, starting where its creator's ``fork`` says (no fork: a root lane)."""
        loop = loop or asyncio.get_running_loop()
        lane = Lane(self._root_start(loop), None) if fork is None else Lane(fork.clock, fork.lane)
        self.lane_var.set(lane)
        if id(self) not in _CLOCKS:  # the checks of _register and install_task_factory inline: a call each less
            _register(self)
        if not isinstance(loop.get_task_factory(), _ForkingTaskFactory):
            install_task_factory(loop)
        return lane

    def close(self) -> None:
        """No more forks of this clock's lanes in new tasks."""
        _CLOCKS.pop(id(self), None)

    def arrivals_begin(self) -> None:
        """Lane-less contexts that make round trips from now until ``arrivals_end`` are siblings of each other and of
        those of the event-loop pass they are in: the root rule for work that a caller knows arrived together (a
        server's requests from one read), without scheduling the end of the pass."""
        self._arrivals = True
        loop = asyncio.get_running_loop()
        if self._root_loop is not loop:  # no pass of root lanes is open: these start after everything completed
            self._root_clock = self.completed
            self._root_loop = None

    def arrivals_end(self) -> None:
        self._arrivals = False

    def _root_start(self, loop: asyncio.AbstractEventLoop) -> int:
        if self._root_loop is not loop and not self._arrivals:
            self._root_clock = self.completed
            self._root_loop = loop
            loop.call_soon(self._end_root_pass)
        return self._root_clock

    def _end_root_pass(self) -> None:
        self._root_loop = None


# Every open clock that has given a task a lane, by id: the task factory forks their lanes into each new task. A plain
# dict of weak references (each removes itself when its clock is collected): iterating a WeakSet on every task
# creation cost about twice as much.
_CLOCKS: dict[int, weakref.ref[SerialClock]] = {}


def _register(clock: SerialClock) -> None:
    key = id(clock)
    if key not in _CLOCKS:
        _CLOCKS[key] = weakref.ref(clock, lambda ref: _CLOCKS.pop(key, None))


class _ForkingTaskFactory:
    """The task factory installed on each event loop a clock counts in, around whatever factory was there.

    A new task copies its creator's context; before the copy, each clock's lane variable is set to a ``_Fork`` of the
    creator's lane (its clock at this moment), and set back after. So a child starts from where its creator was when it
    was created, and the creator's own lane needs no update of its context variable on every round trip. It also
    records where a task running KV layer code itself was made (``trace.SPAWN_SITE``), for trace sites.
    """

    def __init__(self, previous: Any) -> None:
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Future[Any]:
        context = kwargs.get("context")
        spawned = spawn_site(coro)  # a task running KV layer code itself: its trace site is where it was made
        if context is not None:  # the task runs in this very context, not in a copy: fork there, for good
            # (a context already entered somewhere cannot be run in: left as it is, the task will fail on it itself)
            with contextlib.suppress(RuntimeError):
                context.run(_fork_lanes, loop, False)
                if spawned is not None:
                    context.run(SPAWN_SITE.set, spawned)
            return self._create(loop, coro, kwargs)
        forked = _fork_lanes(loop, True)
        site_token = SPAWN_SITE.set(spawned) if spawned is not None else None
        try:
            return self._create(loop, coro, kwargs)
        finally:
            if site_token is not None:
                SPAWN_SITE.reset(site_token)
            for var, token in reversed(forked):
                var.reset(token)

    def _create(self, loop: asyncio.AbstractEventLoop, coro: Any, kwargs: dict[str, Any]) -> asyncio.Future[Any]:
        if self.previous is None:
            return asyncio.Task(coro, loop=loop, **kwargs)
        task: asyncio.Future[Any] = self.previous(loop, coro, **kwargs)
        return task


def _fork_lanes(loop: asyncio.AbstractEventLoop, undo: bool) -> list[tuple[ContextVar[_LaneState], Token[_LaneState]]]:
    """Set every clock's lane variable in the current context to a fork of the current task's lane.

    A task that inherited a fork and has made no round trip yet gets its own lane first, so that what its children do
    is joined into it. Returns the tokens to undo the forks with (none when ``undo`` is false).
    """
    tokens: list[tuple[ContextVar[_LaneState], Token[_LaneState]]] = []
    for ref in list(_CLOCKS.values()):
        clock = ref()
        if clock is None:
            continue
        var = clock.lane_var
        state = var.get()
        if state is None:
            continue  # lane-less creator: its children are lane-less too (the root rule applies to them)
        lane = state if isinstance(state, Lane) else clock.own_lane(state, loop)
        token = var.set(_Fork(lane))
        if undo:
            tokens.append((var, token))
    return tokens


def install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    factory = loop.get_task_factory()
    if not isinstance(factory, _ForkingTaskFactory):
        loop.set_task_factory(_ForkingTaskFactory(factory))


def install_on_running_loop() -> None:
    """Install the task factory on the running loop, if there is one (so tasks made before a traced wrapper's first
    call already carry their creation site)."""
    with contextlib.suppress(RuntimeError):
        install_task_factory(asyncio.get_running_loop())
