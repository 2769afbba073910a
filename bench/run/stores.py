"""The stores benchmarks run on: a seeded file prepared once per run, opened by every worker process.

SQLite: the cached seed is copied into the run's directory and opened from there (read-only cases share it,
writing cases take a private copy). Deno: the seed's entries are copied once into a Deno KV file. Memory: each
process loads the entries of the run's copy into its own store (nothing can be shared across processes).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from queue_impls.kv import Kv, open_kv
from queue_impls.kv.backends import backend_names, get_backend

from .seeding import copy_entries

#: The stores qbench runs on (--backend): the KV backends registry (queue_impls/kv/backends), the embedded default first.
BACKENDS: Final = backend_names()
#: The backend whose files the seed cache holds (bench/seeding.py writes them with it).
SEED_BACKEND = "sqlite"


@dataclass(frozen=True, slots=True)
class StoreSource:
    """Where a case's store comes from: a backend and a prepared file (None: an empty store)."""

    backend: str
    path: str | None

    def to_json(self) -> dict[str, Any]:
        return {"backend": self.backend, "path": self.path}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StoreSource:
        return cls(str(data["backend"]), data["path"])


async def prepare_source(*, backend: str, seed_file: Path, run_dir: Path) -> StoreSource:
    """Turn a cached seed file into the file this run's processes open (done once per seed and run)."""
    own = get_backend(backend).file_suffix
    copies_entries = own is not None and backend != SEED_BACKEND  # a store file of another format
    suffix = own if copies_entries else get_backend(SEED_BACKEND).file_suffix
    target = run_dir / f"{seed_file.stem}{suffix}"
    if not target.exists():
        if copies_entries:
            await _copy_file_into(seed_file, f"{backend}:{target}")
        else:  # the seed's format, or in memory: each process loads this copy (the cache may be pruned meanwhile)
            shutil.copyfile(seed_file, target)
    return StoreSource(backend, str(target))


async def _copy_file_into(seed_file: Path, url: str) -> None:
    async with await open_kv(f"{SEED_BACKEND}:{seed_file}") as source, await open_kv(url) as target:
        await copy_entries(source, target)


async def open_store(source: StoreSource, *, private_dir: Path, private: bool) -> Kv:
    """Open a case's store; ``private``: a copy this process may write to (files go into ``private_dir``)."""
    scheme = source.backend
    suffix = get_backend(scheme).file_suffix
    if suffix is None:  # in memory only: each process loads the seed's entries
        return await _open_memory(scheme, source.path)
    if source.path is None:
        path = _fresh_path(private_dir, suffix)
    elif private:
        path = _fresh_path(private_dir, suffix)
        shutil.copyfile(source.path, path)
    else:
        path = Path(source.path)
    return await open_kv(f"{scheme}:{path}")


async def _open_memory(scheme: str, seed_file: str | None) -> Kv:
    kv = await open_kv(f"{scheme}:")
    if seed_file is not None:
        async with await open_kv(f"{SEED_BACKEND}:{seed_file}") as source:
            await copy_entries(source, kv)
    return kv


def _fresh_path(directory: Path, suffix: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1_000_000):
        path = directory / f"store-{n}{suffix}"
        if not path.exists():
            return path
    raise RuntimeError(f"no free store name in {directory}")


def backend_version(backend: str) -> str:
    """The version of the engine behind a backend (the registry's): SQLite's library version, Deno's version, or the
    memory store's."""
    return get_backend(backend).version()
