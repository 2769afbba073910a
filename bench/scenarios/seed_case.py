"""seed_case: the seed document's own case, 100 jobs of one name listed in one page of 100 (the report's headline)."""

from __future__ import annotations

from typing import Any, Final

from .base import Scenario
from .list_by_name import LISTING, ListByName

#: The seed document's own case: 100 jobs of one name, one page of 100.
SEED_POINT: Final = {"N": 100, "K": 1, "limit": 100, "offset": 0, "status": "none"}


def points(suite: str) -> list[dict[str, Any]]:
    return [dict(SEED_POINT)]


SCENARIO: Final = Scenario(
    name="seed_case",
    summary="the seed's listing: one page of 100 of 100 jobs of one name",
    params=LISTING,
    points=points,
    operation=ListByName,
    seeded=True,
)
