"""Fixtures and helpers of the job-queue suites: ``queue`` is every layout on every backend (via ``kv``).

Test modules import the fixtures they use from here (``from .jobs_support import clock, kv_factory, layout, queue``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from queue_impls.jobs import LAYOUTS, FakeClock, Job, Queue
from queue_impls.kv import Kv

from .backends import KvFactory, backend_params

#: The stores the queue suites run on: one of each kind (the KV suites cover the wrappers and in-memory variants).
JOB_BACKENDS = ("memory", "sqlite", "deno-file")


@pytest.fixture(params=[p for p in backend_params() if p.id in JOB_BACKENDS])
def kv_factory(request: pytest.FixtureRequest) -> KvFactory:
    """Overrides tests/conftest.py's kv_factory in the modules that import it, so ``kv`` is one store of each kind."""
    factory: KvFactory = request.param
    return factory


@pytest.fixture(params=LAYOUTS, ids=[f"layout={name}" for name in LAYOUTS])
def layout(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(kv: Kv, layout: str, clock: FakeClock) -> Queue:
    return Queue(kv, layout, clock, rng=random.Random(1234))


def recorder() -> tuple[list[Job], Callable[[Job], Any]]:
    """A handler that records the jobs it ran."""
    seen: list[Job] = []

    async def handler(job: Job) -> None:
        seen.append(job)

    return seen, handler


def failing(message: str = "boom") -> Callable[[Job], Any]:
    async def handler(job: Job) -> None:
        raise RuntimeError(message)

    return handler
