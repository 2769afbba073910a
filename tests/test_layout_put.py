"""A layout's own put() (every built-in one: the record and its copies rewritten without a diff) adds exactly the
mutations of Layout.put's generic diff, for every transition a job makes; a subclass that adds index entries takes
the diff."""

from __future__ import annotations

from typing import Any

import pytest

from queue_impls.jobs import Job, JobStatus
from queue_impls.jobs.layouts import LAYOUTS, IndexedLayout, Layout, NaiveLayout, OptimizedLayout, make_layout
from queue_impls.kv import AtomicOperation, Key, open_kv

PENDING = Job("0190-a", "mail", {"to": "x"}, JobStatus.PENDING, 0, 3, 1.0, 1.0)
RUNNING = PENDING.replace(status=JobStatus.RUNNING, attempts=1, started_at=2.0, worker="w")
TRANSITIONS = [
    (None, PENDING),
    (PENDING, RUNNING),
    (RUNNING, RUNNING.replace(status=JobStatus.COMPLETED, completed_at=3.0)),
    (RUNNING, RUNNING.replace(status=JobStatus.PENDING, error="e", errors=[{"attempt": 1, "error": "e", "at": 2.5}])),
    (RUNNING, RUNNING.replace()),  # no change: nothing written
    (RUNNING, RUNNING.replace(name="other")),  # another name: the index entry moves (the diff's path)
    (RUNNING, None),
]


async def _mutations(layout: Layout, old: Job | None, new: Job | None, *, generic: bool) -> list[Any]:
    async with await open_kv("memory:") as kv:
        op = AtomicOperation(kv)
        (Layout.put if generic else type(layout).put)(layout, op, old, new)
        # The diff's deletes come in the order of a set difference (it varies with the hash seed): compare them as a
        # set, ahead of the sets in their order.
        deletes = sorted((m for m in op._mutations if m[0] == "delete"), key=repr)
        return [deletes, [m for m in op._mutations if m[0] != "delete"]]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize(("old", "new"), TRANSITIONS)
async def test_put_adds_the_mutations_of_the_generic_diff(layout: str, old: Job | None, new: Job | None) -> None:
    made = make_layout(layout)
    assert await _mutations(made, old, new, generic=False) == await _mutations(made, old, new, generic=True)


class _Extra:
    index_prefixes = (("extra",),)

    def index_entries(self, job: Job) -> dict[Key, Any]:
        return {**super().index_entries(job), ("extra", job.status.value, job.id): job.id}  # type: ignore[misc]


class NaiveExtra(_Extra, NaiveLayout):
    name = "naive_extra"


class OptimizedExtra(_Extra, OptimizedLayout):
    name = "optimized_extra"

    def shared_entries(self, job: Job, value: dict[str, Any]) -> dict[Key, Any]:
        return {**super().shared_entries(job, value), ("extra", job.status.value, job.id): job.id}


class IndexedExtra(_Extra, IndexedLayout):
    name = "indexed_extra"

    def shared_entries(self, job: Job, value: dict[str, Any]) -> dict[Key, Any]:
        return {**super().shared_entries(job, value), ("extra", job.status.value, job.id): job.id}


@pytest.mark.parametrize("cls", [NaiveExtra, OptimizedExtra, IndexedExtra])
async def test_a_subclass_with_more_index_entries_gets_the_diff(cls: type[Layout]) -> None:
    made = cls()
    deletes, sets = await _mutations(made, PENDING, RUNNING, generic=False)
    made_keys = [m[1] for m in deletes + sets]
    assert ("extra", "pending", PENDING.id) in made_keys and ("extra", "running", PENDING.id) in made_keys
    assert await _mutations(made, PENDING, RUNNING, generic=False) == await _mutations(
        made, PENDING, RUNNING, generic=True
    )
