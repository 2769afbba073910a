"""Shared fixtures: ``kv`` is every backend in turn (see tests/backends.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from queue_impls.kv import Kv

from .backends import KvFactory, backend_params


@pytest.fixture(params=backend_params())
def kv_factory(request: pytest.FixtureRequest) -> KvFactory:
    factory: KvFactory = request.param
    return factory


@pytest.fixture
async def kv(kv_factory: KvFactory, tmp_path: Path) -> AsyncIterator[Kv]:
    async with kv_factory(tmp_path) as store:
        yield store
