"""serial_round_trips against a model: on structured programs the critical path is a sum along a sequence and a max
across what runs side by side, so random nested programs have an exact expected count.

A spawning task's own steps between ``create_task`` and its ``await`` are plain gets: were it to yield to the loop
there, its child's reads could finish first, and the wrapper counts a finished descendant's round trips before the
task's next one whether or not it awaited them (docs/counting.md, "Limits").
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.kv.counting import CountingKv


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


def programs(depth: int = 3) -> st.SearchStrategy[tuple[Step, ...]]:
    def extend(inner: st.SearchStrategy[tuple[Step, ...]]) -> st.SearchStrategy[tuple[Step, ...]]:
        step = st.one_of(
            st.just(Get()),
            st.lists(inner, min_size=1, max_size=3).map(lambda ps: Gather(tuple(ps))),
            st.builds(Spawn, inner, st.lists(st.just(Get()), max_size=3).map(tuple)),
        )
        return st.lists(step, max_size=4).map(tuple)

    return st.recursive(st.lists(st.just(Get()), max_size=3).map(tuple), extend, max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(programs())
def test_serial_round_trips_follow_the_structure_of_the_program(program: tuple[Step, ...]) -> None:
    async def main() -> tuple[int, int]:
        ckv = CountingKv(MemoryKv())
        await ckv.set(("k",), 1)
        async with ckv.measure() as m:
            await run(ckv, program)
        return m.counts.round_trips, m.counts.serial_round_trips

    assert asyncio.run(main()) == expected(program)
