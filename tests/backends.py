"""The stores every behaviour suite runs on: every example URL of every registered backend, the counting wrappers
around some, and the real Deno client through our KV Connect server.

Each entry: (id, factory, marks). A factory is an async context manager taking the test's tmp_path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from queue_impls.kv import Kv, open_kv
from queue_impls.kv.backends import BACKENDS as REGISTRY
from queue_impls.kv.backends.sqlite import SqliteKv

KvFactory = Callable[[Path], contextlib.AbstractAsyncContextManager[Kv]]


@contextlib.asynccontextmanager
async def sqlite_store(path: Path | str, **options: bool) -> AsyncIterator[SqliteKv]:
    """The SQLite store on ``path`` (``open_kv`` options as given), typed for the tests of its internals; closed
    at the end."""
    kv = await open_kv(f"sqlite:{path}", **options)
    assert isinstance(kv, SqliteKv)
    try:
        yield kv
    finally:
        await kv.close()


def url_factory(url_for: Callable[[Path], str], **options: Any) -> KvFactory:
    @contextlib.asynccontextmanager
    async def factory(tmp_path: Path) -> AsyncIterator[Kv]:
        kv = await open_kv(url_for(tmp_path), **options)
        try:
            yield kv
        finally:
            await kv.close()

    return factory


def counting_factory(inner: KvFactory, **options: Any) -> KvFactory:
    """The same store worn by CountingKv: the whole suite then checks the wrapper never changes a result."""

    @contextlib.asynccontextmanager
    async def factory(tmp_path: Path) -> AsyncIterator[Kv]:
        from queue_impls.meter import CountingKv

        async with inner(tmp_path) as kv:
            counting = CountingKv(kv, **options)
            try:
                yield counting
            finally:
                await counting.close()

    return factory


def kvconnect_factory(store_url: str) -> KvFactory:
    """Our ``deno+http://`` backend (the real Deno client, in the bridge) through a KV Connect server on ``store_url``.

    The server runs in the test's event loop on an ephemeral port and is stopped when the store closes.
    """

    @contextlib.asynccontextmanager
    async def factory(tmp_path: Path) -> AsyncIterator[Kv]:
        from queue_impls.kvconnect import KvConnectServer

        async with KvConnectServer.running(store_url.format(dir=tmp_path), trace=False) as server:
            with deno_token(server.token):
                kv = await open_kv(f"deno+{server.url}")
            try:
                yield kv
            finally:
                await kv.close()

    return factory


@contextlib.contextmanager
def deno_token(token: str) -> Iterator[None]:
    """DENO_KV_ACCESS_TOKEN set for the deno processes started inside the block."""
    saved = os.environ.get("DENO_KV_ACCESS_TOKEN")
    os.environ["DENO_KV_ACCESS_TOKEN"] = token
    try:
        yield
    finally:
        if saved is None:
            del os.environ["DENO_KV_ACCESS_TOKEN"]
        else:
            os.environ["DENO_KV_ACCESS_TOKEN"] = saved


def _registered() -> list[tuple[str, KvFactory, list[Any]]]:
    """Every example URL of every registered backend (queue_impls/kv/backends), as (id, factory, marks)."""
    stores = []
    for backend in REGISTRY.values():
        marks = [pytest.mark.deno] if backend.needs_deno else []
        for form in backend.url_forms:
            if form.example is not None:
                stores.append((form.label, url_factory(_example_url(form.example)), marks))
    return stores


def _example_url(example: str) -> Callable[[Path], str]:
    return lambda tmp_path: example.format(dir=tmp_path)


#: The URL each entry opens (with "{dir}" for the test's tmp_path): what test_architecture checks against the registry.
STORE_URLS: dict[str, str] = {
    form.label: form.example for backend in REGISTRY.values() for form in backend.url_forms if form.example
}

BACKENDS: list[tuple[str, KvFactory, list[Any]]] = [
    *_registered(),
    # The wrapper's two read paths: untraced (get in one frame) on memory and Deno, traced (through the primitives)
    # on SQLite.
    ("counting(memory)", counting_factory(url_factory(lambda _: "memory:")), []),
    ("traced(sqlite)", counting_factory(url_factory(lambda p: f"sqlite:{p / 'kv.db'}"), trace=True), []),
    # A SQLite file with every call on aiosqlite's thread: the path a call takes when the loop's connection finds the
    # file locked (the default store reads and commits on the loop).
    ("sqlite-thread", url_factory(lambda p: f"sqlite:{p / 'kv.db'}", on_loop=False), []),
    ("counting(deno-mem)", counting_factory(url_factory(lambda _: "deno::memory:")), [pytest.mark.deno]),
    # The real Deno client speaking KV Connect (deno+http://) to our server (queue_impls/kvconnect) in front of SQLite.
    ("deno+http(sqlite)", kvconnect_factory("sqlite:{dir}/served.db"), [pytest.mark.deno]),
]


def backend_params() -> list[Any]:
    return [pytest.param(factory, id=name, marks=marks) for name, factory, marks in BACKENDS]
