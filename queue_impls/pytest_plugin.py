"""pytest plugin (registered through the ``pytest11`` entry point): KV cost budgets as fixtures.

``kv_budget`` is ``queue_impls.meter.kv_budget``; ``counting_kv`` is a traced ``CountingKv`` over a fresh
in-memory store. Imports happen inside the fixtures, so a pytest run that uses neither never loads the KV layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from queue_impls.meter import CountingKv, KvBudget


@pytest.fixture
def kv_budget() -> Callable[..., KvBudget]:
    """``with kv_budget(ckv, max_round_trips=2): ...``: fails the test with the calls grouped by fingerprint."""
    from queue_impls.meter import kv_budget as budget

    return budget


@pytest.fixture
def counting_kv() -> CountingKv:
    """A traced CountingKv over a fresh in-memory store (which holds no resources to release)."""
    from queue_impls.kv.backends.memory import MemoryKv
    from queue_impls.meter import CountingKv

    return CountingKv(MemoryKv(), trace=True)
