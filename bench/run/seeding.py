"""Seeded stores for the benchmarks: N jobs over K names in one layout, built once and cached as SQLite files.

Seeding never counts as measured time: a store is built through the queue's public API on the memory backend,
copied into a SQLite file, and kept under the cache directory keyed by a hash of the code that shapes it.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

import queue_impls
from queue_impls.jobs import FakeClock, JobStatus, Queue
from queue_impls.kv import Kv, encode_key, encode_value, open_kv
from queue_impls.kv.limits import MAX_MUTATIONS, MAX_TOTAL_KEY_SIZE, MAX_TOTAL_MUTATION_SIZE

from ..scenarios import SeedSpec
from ..scenarios.data import job_name, payload
from .plugins import import_plugins, plugin_search_path

#: Bump when the meaning of a seed changes in a way the hashed sources do not show.
SEED_FORMAT: Final = 1
#: Another code version's seed of the same parameters is deleted once unused this long: until then another checkout
#: (the other tree of ``qbench gate --against``, a second worktree, a concurrent run) may be copying it.
PRUNE_AFTER_S: Final = 86_400.0
#: Pending jobs of a seed wait this long (about ten years), so no worker in a benchmark ever runs them.
PENDING_DELAY: Final = 315_360_000.0


def planned_status(ordinal: int) -> JobStatus:
    """The status of the ordinal-th job of its name: 1 in 100 failed, every other one pending, the rest completed."""
    if ordinal % 100 == 0:
        return JobStatus.FAILED
    return JobStatus.PENDING if ordinal % 2 == 1 else JobStatus.COMPLETED


async def seed(kv: Kv, spec: SeedSpec) -> None:
    """Fill ``kv`` with spec.N jobs, job i named job_name(i % K), statuses interleaved as planned_status says."""
    queue = Queue(kv, spec.layout, clock=FakeClock())
    for i in range(spec.N):
        status = planned_status(i // spec.K)
        pending = status == JobStatus.PENDING
        await queue.add(job_name(i % spec.K), payload(i), delay=PENDING_DELAY if pending else 0.0, max_attempts=1)
        if not pending:
            [lease] = await queue.claim("seeder", max_jobs=1)
            if status == JobStatus.FAILED:
                await queue.fail(lease, "seeded failure")
            else:
                await queue.complete(lease)


# -- copying a store -----------------------------------------------------------------------------------------


async def copy_entries(source: Kv, target: Kv) -> int:
    """Copy every entry of ``source`` into ``target`` in commits within Deno's limits; returns how many."""
    batch = _Batch(target)
    copied = 0
    async for entry in source.list(prefix=(), batch_size=1000):
        await batch.add(entry.key, entry.value)
        copied += 1
    await batch.flush()
    return copied


class _Batch:
    """Set mutations gathered into commits that respect the mutation count and size limits."""

    def __init__(self, kv: Kv) -> None:
        self.kv = kv
        self.items: list[tuple[Any, Any]] = []
        self.size = 0
        self.key_size = 0

    async def add(self, key: Any, value: Any) -> None:
        key_size = len(encode_key(key))
        size = key_size + len(encode_value(value)[0])
        full = len(self.items) >= MAX_MUTATIONS or self.size + size > MAX_TOTAL_MUTATION_SIZE
        if full or self.key_size + key_size > MAX_TOTAL_KEY_SIZE:
            await self.flush()
        self.items.append((key, value))
        self.size += size
        self.key_size += key_size

    async def flush(self) -> None:
        if not self.items:
            return
        op = self.kv.atomic()
        for key, value in self.items:
            op.set(key, value)
        await op.commit()
        self.items, self.size, self.key_size = [], 0, 0


# -- the cache -------------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(os.environ.get("KVQ_CACHE_DIR") or Path(base) / "kvq-bench" / "seeds")


def code_version(plugins: Sequence[str] = ()) -> str:
    """A hash of every source file that shapes a seeded store: this module, the scenarios' data, the queue, the KV
    value and key codec, the SQLite backend's file format (other KV modules do not change what is stored), and the
    run's plug-in modules (a plug-in layout shapes the stores seeded in it)."""
    package = Path(queue_impls.__file__).parent
    sources = [
        Path(__file__),
        Path(__file__).resolve().parents[1] / "scenarios" / "data.py",
        *sorted((package / "jobs").rglob("*.py")),
        package / "kv" / "codec.py",
        package / "kv" / "backends" / "sqlite.py",
    ]
    digest = hashlib.sha256(f"format {SEED_FORMAT}".encode())
    for path in sources:
        digest.update(str(path.relative_to(package.parent)).encode())
        digest.update(path.read_bytes())
    for name in plugins:
        module = sys.modules.get(name)
        file = getattr(module, "__file__", None)
        digest.update(name.encode())
        if file:
            digest.update(Path(file).read_bytes())
    return digest.hexdigest()


def seed_path(spec: SeedSpec, cache_dir: Path, version: str) -> Path:
    """Where the seed lives in the cache: its parameters in the name, the code version and parameters hashed."""
    key = hashlib.sha256(f"{version}|{spec.N}|{spec.K}|{spec.layout}".encode()).hexdigest()[:16]
    return cache_dir / f"seed-N{spec.N}-K{spec.K}-{spec.layout}-{key}.db"


def build_seed_file(spec: SeedSpec, path: str, plugins: Sequence[str] = (), search: Sequence[str] = ()) -> str:
    """Seed on the memory backend, copy into a new SQLite file, and move it into place atomically (in a process of
    the pool: after importing the run's plug-ins, whose layouts it may seed)."""
    import_plugins(plugins, search=search)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        asyncio.run(_build(spec, tmp))
        os.replace(tmp, target)
        _prune_older_versions(target)
    finally:
        for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            if os.path.exists(leftover):
                os.unlink(leftover)
    return path


def _prune_older_versions(target: Path) -> None:
    """Delete the seeds of the same parameters built by other code versions and unused for ``PRUNE_AFTER_S``: the
    cache keeps one per parameters and code version in use (``ensure_seeds`` marks a seed used by its mtime)."""
    prefix = target.name.rsplit("-", 1)[0] + "-"
    cutoff = time.time() - PRUNE_AFTER_S
    for stale in target.parent.glob(f"{prefix}*.db"):
        if stale != target and len(stale.name) == len(target.name) and _mtime(stale) < cutoff:
            stale.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def _mark_used(path: Path) -> bool:
    """Touch a cached seed so no other checkout prunes it while it is in use; False when it is not there."""
    try:
        os.utime(path)
    except FileNotFoundError:
        return False
    return True


async def _build(spec: SeedSpec, path: str) -> None:
    async with await open_kv("memory:") as memory:
        await seed(memory, spec)
        async with await open_kv(f"sqlite:{path}") as file:
            await copy_entries(memory, file)


def missing_seeds(specs: Sequence[SeedSpec], *, cache_dir: Path, plugins: Sequence[str] = ()) -> list[SeedSpec]:
    """The specs whose seed is not in the cache for the current code version."""
    version = code_version(plugins)
    return [spec for spec in dict.fromkeys(specs) if not seed_path(spec, cache_dir, version).exists()]


def ensure_seeds(
    specs: Sequence[SeedSpec],
    *,
    cache_dir: Path,
    on_built: Callable[[SeedSpec], None] | None = None,
    plugins: Sequence[str] = (),
) -> dict[SeedSpec, Path]:
    """The cached file of every spec, building the missing ones in parallel worker processes (which import the
    run's ``plugins`` first)."""
    version = code_version(plugins)
    paths = {spec: seed_path(spec, cache_dir, version) for spec in dict.fromkeys(specs)}
    missing = [spec for spec, path in paths.items() if not _mark_used(path)]
    if len(missing) == 1:
        build_seed_file(missing[0], str(paths[missing[0]]))
        if on_built:
            on_built(missing[0])
    elif missing:
        _build_in_pool(missing, paths, on_built, plugins)
    return paths


def _build_in_pool(
    missing: Sequence[SeedSpec],
    paths: dict[SeedSpec, Path],
    on_built: Callable[[SeedSpec], None] | None,
    plugins: Sequence[str],
) -> None:
    from concurrent.futures import ProcessPoolExecutor  # only the manager seeds: keep workers' imports light
    from multiprocessing import get_context

    # Largest first, so the long builds overlap with the short ones.
    ordered = sorted(missing, key=lambda s: s.N, reverse=True)
    workers = min(len(ordered), os.cpu_count() or 1)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        search = plugin_search_path() if plugins else []
        futures = {pool.submit(build_seed_file, spec, str(paths[spec]), plugins, search): spec for spec in ordered}
        for future in futures:
            future.result()
            if on_built:
                on_built(futures[future])
