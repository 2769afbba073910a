"""The backends registry is what open_kv, the behaviour suites and qbench read: they must agree with it and it with
the backend modules."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run.stores import BACKENDS as QBENCH_BACKENDS
from queue_impls.kv import InvalidArgumentError, Kv, open_kv
from queue_impls.kv.backends import BACKENDS, DEFAULT_BACKEND, get_backend, url_forms
from queue_impls.kv.url import split_url
from tests.backends import BACKENDS as SUITE_STORES
from tests.backends import STORE_URLS


def _kv_classes(module_name: str) -> list[type[Kv]]:
    module = importlib.import_module(module_name)
    return [
        c for c in vars(module).values() if isinstance(c, type) and issubclass(c, Kv) and c.__module__ == module_name
    ]


def test_every_registered_backend_is_in_the_behaviour_suites_and_every_suite_store_is_registered() -> None:
    opened = {split_url(url)[0] for url in STORE_URLS.values()}
    assert opened == set(BACKENDS), "tests/backends.py and queue_impls/kv/backends disagree"
    suite_ids = {name for name, _, _ in SUITE_STORES}
    assert set(STORE_URLS) <= suite_ids
    labels = [form.label for b in BACKENDS.values() for form in b.url_forms if form.example]
    assert len(labels) == len(set(labels)), "two URL examples share a test id"
    # the remote form of each remote backend runs too, through our KV Connect server
    assert {f"{b.name}+http(sqlite)" for b in BACKENDS.values() if b.remote} <= suite_ids


def test_qbench_offers_every_registered_backend_the_default_first() -> None:
    assert tuple(QBENCH_BACKENDS) == tuple(BACKENDS)
    assert QBENCH_BACKENDS[0] == DEFAULT_BACKEND


@pytest.mark.parametrize("name", list(BACKENDS))
def test_each_record_names_its_module_s_opener_and_version_and_states_its_capabilities(name: str) -> None:
    backend = BACKENDS[name]
    classes = _kv_classes(backend.module)
    assert classes and {c.name for c in classes} == {name}
    assert callable(backend.opener_function())
    assert backend.native_watch == any("_watch" in vars(c) for c in classes)
    if backend.file_suffix is not None:
        assert backend.file_suffix.startswith(".")


def test_versions_name_the_engine() -> None:
    assert get_backend("sqlite").version().startswith("SQLite 3.")
    assert get_backend("memory").version() == "memory (in-process)"


def test_the_registry_opens_stores_of_each_in_process_backend(tmp_path: Path) -> None:
    import asyncio

    async def roundtrip(url: str) -> None:
        async with await open_kv(url) as kv:
            await kv.set(("k",), 1)
            assert (await kv.get(("k",))).value == 1

    for backend in BACKENDS.values():
        for form in backend.url_forms:
            if backend.in_process and form.example is not None:
                asyncio.run(roundtrip(form.example.format(dir=tmp_path)))


def test_urls_split_by_the_registry() -> None:
    assert split_url("sqlite:/a.db") == ("sqlite", "/a.db")
    assert split_url("deno+https://h.example/x") == ("deno", "https://h.example/x")
    assert split_url("/some/path.db") == (DEFAULT_BACKEND, "/some/path.db")
    assert url_forms()[-1] == "a bare path (SQLite)"
    with pytest.raises(InvalidArgumentError, match="Unknown KV URL scheme 'bogus'"):
        split_url("bogus:x")
    with pytest.raises(InvalidArgumentError, match="Unknown KV backend 'bogus'; expected one of"):
        get_backend("bogus")


def test_reading_the_registry_imports_no_backend_module() -> None:
    code = (
        "import sys; import queue_impls.kv, queue_impls.kv.backends as b; b.url_forms(); "
        "print(sorted(m for m in sys.modules if m.startswith('queue_impls.kv.backends.') or m == 'aiosqlite'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
