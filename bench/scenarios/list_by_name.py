"""list_by_name: the dashboard's call, one page of one name's jobs (with a status filter), swept one parameter at a
time around a base point; the sweep over N is what the complexity classes are fitted on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from queue_impls.jobs import Queue

from .base import Param, QueueOperation, Scenario, unique_points
from .data import STATUS_FILTERS, job_name

#: Status filters of list_by_name: none, one that 1% of a name's jobs match (failed), one that half match (pending).
STATUSES: Final = ("none", "rare", "half")
#: The parameters of a listing (seed_case, rtt_sweep and deno_seed_case list too).
LISTING: Final = (Param("N"), Param("K"), Param("limit"), Param("offset"), Param("status", text=True))

BASE: Final = {"N": 1000, "K": 1, "limit": 50, "offset": 0, "status": "none"}
QUICK_AXES: Final = {
    "N": (100, 1000, 10_000),
    "K": (1, 10),
    "limit": (10, 50, 100),
    "offset": (0, 500),
    "status": STATUSES,
}
#: Per suite: the base point, the values swept one at a time around it, and points added to that sweep (full: N
#: crossed with the status filter).
SWEEPS: Final[dict[str, tuple[Mapping[str, Any], Mapping[str, tuple[Any, ...]], tuple[Mapping[str, Any], ...]]]] = {
    "smoke": (
        {"N": 20, "K": 1, "limit": 5, "offset": 0, "status": "none"},
        {"K": (1, 2), "offset": (0, 5), "status": STATUSES},
        (),
    ),
    "quick": (BASE, QUICK_AXES, ()),
    "full": (
        BASE,
        {**QUICK_AXES, "N": (100, 1000, 10_000, 100_000)},
        tuple({**BASE, "N": n, "status": s} for n in (100, 10_000) for s in ("rare", "half")),
    ),
}


def one_at_a_time(base: Mapping[str, Any], axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The base point, then each axis swept with the others held at the base (duplicates dropped)."""
    points = [dict(base)]
    for key, values in axes.items():
        points += [{**base, key: value} for value in values]
    return unique_points(points)


def points(suite: str) -> list[dict[str, Any]]:
    base, axes, extra = SWEEPS[suite]
    return unique_points([*one_at_a_time(base, axes), *extra])


async def list_page(queue: Queue, *, limit: int, offset: int = 0, status: str = "none") -> None:
    """The dashboard's call: one page of the first name's jobs (status: a key of STATUS_FILTERS)."""
    await queue.list_jobs(status=STATUS_FILTERS[status], name=job_name(0), limit=limit, offset=offset)


class ListByName(QueueOperation):
    """list_jobs by name (and status filter): the seed's listJobs, and rtt_sweep's listing."""

    async def execute(self) -> None:
        p = self.params
        await list_page(self.queue, limit=p["limit"], offset=p["offset"], status=p["status"])


SCENARIO: Final = Scenario(
    name="list_by_name",
    summary="one page of one name's jobs (list_jobs by name and status), on a seeded store",
    params=LISTING,
    points=points,
    operation=ListByName,
    seeded=True,
)
