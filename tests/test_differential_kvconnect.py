"""Differential test through KV Connect: the real Deno client talking to our server (on memory and on SQLite) gives,
op for op, what the real Deno KV opened locally gives.

The operations are test_differential's generator; each store is our ``deno+http://`` backend, so every op goes
Python -> the Deno bridge -> Deno's KV Connect client -> queue_impls/kvconnect -> the store, and back.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from queue_impls.kv import Kv, open_kv
from queue_impls.kvconnect import KvConnectServer

from .backends import deno_token
from .test_differential import Run, empty, fill, operations, ranked

pytestmark = pytest.mark.deno

SERVED = ("memory:", "sqlite:{dir}/served.db")
NAMES = ("deno::memory: (local)", *(f"deno+http -> {url}" for url in SERVED))


@pytest.fixture
async def kvs(tmp_path: Path) -> AsyncIterator[list[Kv]]:
    """Local Deno KV, then the Deno client through a server on each store (servers stopped at the end)."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [await open_kv("deno::memory:")]
        stack.push_async_callback(opened[0].close)
        for url in SERVED:
            server = await stack.enter_async_context(KvConnectServer.running(url.format(dir=tmp_path), trace=False))
            with deno_token(server.token):
                kv = await open_kv(f"deno+{server.url}")
            stack.push_async_callback(kv.close)
            opened.append(kv)
        yield opened


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=st.builds(lambda first, rest: [first, *rest], fill, st.lists(operations, max_size=20)))
async def test_deno_through_our_server_matches_local_deno(kvs: list[Kv], ops: list[tuple[Any, ...]]) -> None:
    runs = [Run(kv) for kv in kvs]
    normalised = []
    for run in runs:
        await empty(run.kv)
        result = [await run.apply(op) for op in ops]
        ranks = {vs: i for i, vs in enumerate(sorted(set(run.stamps)))}
        normalised.append(ranked(result, ranks))
    for name, other in zip(NAMES[1:], normalised[1:], strict=True):
        for i, (want, got) in enumerate(zip(normalised[0], other, strict=True)):
            assert got == want, f"{name} differs from local Deno: at op {i} {ops[i]!r}"
