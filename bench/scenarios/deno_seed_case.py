"""deno_seed_case: the seed's own TypeScript queue, run by the real Deno against a fresh KV Connect server (its
counts are the server's; timed by Deno itself), in the two layouts the seed transcribes. Opt-in: it needs deno."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from .base import Case, Scenario
from .list_by_name import LISTING
from .seed_case import SEED_POINT

if TYPE_CHECKING:
    import pyperf

    from .suites import Timing


def points(suite: str) -> list[dict[str, Any]]:
    return [dict(SEED_POINT)]


def run_case(case: Case, timing: Timing, metadata: dict[str, str]) -> pyperf.Benchmark:
    from bench.run.deno_program import run_deno_case  # deno and the KV Connect server: only when it runs

    return run_deno_case(case, timing, metadata)


SCENARIO: Final = Scenario(
    name="deno_seed_case",
    summary="the seed's TypeScript listing, run by Deno through a counting KV Connect server",
    params=LISTING,
    points=points,
    operation=None,
    layouts=("naive", "optimized"),
    opt_in=True,
    run_case=run_case,
)
