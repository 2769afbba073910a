"""serial_round_trips against a model: on structured programs the critical path is a sum along a sequence and a max
across what runs side by side, so random nested programs have an exact expected count.

A spawning task's own steps between ``create_task`` and its ``await`` are plain gets: were it to yield to the loop
there, its child's reads could finish first, and the wrapper counts a finished descendant's round trips before the
task's next one whether or not it awaited them (docs/counting.md, "Limits").
"""

from __future__ import annotations

import asyncio
import tempfile
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_impls.kv import Kv, open_kv
from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import CountingKv


@dataclass(frozen=True)
class Get:
    """One awaited get."""


@dataclass(frozen=True)
class Gather:
    """``asyncio.gather`` of sub-programs, each in its own task."""

    programs: tuple[tuple[Step, ...], ...]


@dataclass(frozen=True)
class Spawn:
    """``create_task(child)``, then the creator's own gets, then ``await`` the child."""

    child: tuple[Step, ...]
    own: tuple[Get, ...]


Step = Get | Gather | Spawn


def expected(program: tuple[Step, ...]) -> tuple[int, int]:
    """(round trips, serial round trips) of a program."""
    total = serial = 0
    for step in program:
        if isinstance(step, Get):
            parts = [(1, 1)]
        elif isinstance(step, Gather):
            parts = [expected(p) for p in step.programs]
        else:
            parts = [expected(step.child), expected(step.own)]
        total += sum(t for t, _ in parts)
        serial += max((s for _, s in parts), default=0)
    return total, serial


async def run(ckv: CountingKv, program: tuple[Step, ...]) -> None:
    for step in program:
        if isinstance(step, Get):
            await ckv.get(("k",))
        elif isinstance(step, Gather):
            await asyncio.gather(*(run(ckv, p) for p in step.programs))
        else:
            child = asyncio.create_task(run(ckv, step.child))
            await run(ckv, step.own)
            await child


def programs(spawns: bool = True) -> st.SearchStrategy[tuple[Step, ...]]:
    """Nested programs of gets, gathers and (if ``spawns``) create_task + own gets + await."""

    def extend(inner: st.SearchStrategy[tuple[Step, ...]]) -> st.SearchStrategy[tuple[Step, ...]]:
        steps: list[st.SearchStrategy[Step]] = [
            st.just(Get()),
            st.lists(inner, min_size=1, max_size=3).map(lambda ps: Gather(tuple(ps))),
        ]
        if spawns:
            steps.append(st.builds(Spawn, inner, st.lists(st.just(Get()), max_size=3).map(tuple)))
        return st.lists(st.one_of(steps), max_size=4).map(tuple)

    return st.recursive(st.lists(st.just(Get()), max_size=3).map(tuple), extend, max_leaves=12)


async def counted(kv: Kv, program: tuple[Step, ...], trace: bool) -> tuple[int, int]:
    ckv = CountingKv(kv, trace=trace)
    await ckv.set(("k",), 1)
    async with ckv.measure() as m:
        await run(ckv, program)
    await ckv.close()
    return m.counts.round_trips, m.counts.serial_round_trips


@settings(max_examples=150, deadline=None)
@given(programs(), st.booleans())
def test_serial_round_trips_follow_the_structure_of_the_program(program: tuple[Step, ...], trace: bool) -> None:
    # trace=True counts through the read primitive, trace=False through the get's own one-frame path.
    assert asyncio.run(counted(MemoryKv(), program, trace)) == expected(program)


@settings(max_examples=40, deadline=None)
@given(programs(spawns=False), st.booleans())
def test_on_sqlite_too_where_the_structure_does_not_depend_on_timing(program: tuple[Step, ...], trace: bool) -> None:
    # A gather's creator waits for it, and siblings never feed each other's clocks, so these counts do not depend
    # on which read the database thread finishes first (a spawning creator's own reads would: see the docstring).
    with tempfile.TemporaryDirectory() as tmp:

        async def main() -> tuple[int, int]:
            return await counted(await open_kv(f"sqlite:{tmp}/kv.db"), program, trace)

        assert asyncio.run(main()) == expected(program)
