"""bench/'s rooms import only what docs/architecture.md says they may, and no bench module imports itself in a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"

#: Room -> the bench rooms its modules may import (docs/architecture.md, "The rooms of bench/"). A module's room is
#: its first path part under bench/ (a top-level module is its own room). Developer diagnostics are not rooms.
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "files": {"errors"},
    "scenarios": {"errors", "scenarios"},
    "results": {"scenarios", "files", "errors"},
    "run": {"scenarios", "results", "files", "errors", "run"},
    "report": {"results", "scenarios", "files", "errors", "report"},
    "gate": {"results", "report", "files", "errors", "gate"},
    "cli": {"errors", "files", "results", "scenarios", "run", "report", "gate", "serve_cli"},
    "serve_cli": {"errors"},
    "__main__": {"cli"},
}
#: Imports allowed beyond the table, each inside a function (named in docs/architecture.md).
EXCEPTIONS = {
    ("scenarios/deno_seed_case.py", "run"),  # runs the Deno program
    ("scenarios/rtt_sweep.py", "run"),  # measures the latency injector once per run
    ("report/report.py", "run"),  # run.latency_accuracy's record type
    ("gate/tree_agent.py", "run"),  # runs a tree's benchmarks
    ("gate/tree_agent.py", "scenarios"),
}
DIAGNOSTICS = {
    "kv_micro", "kv_interleaved", "kv_bounds", "counting_variants", "get_instructions", "deno_inprocess",
    "kvconnect_overhead", "huey_vs", "worker_idle",
}  # fmt: skip


def _modules() -> list[Path]:
    return [
        p for p in sorted(BENCH.rglob("*.py")) if p.relative_to(BENCH).parts[0].removesuffix(".py") not in DIAGNOSTICS
    ]


def _room(path: Path) -> str:
    return path.relative_to(BENCH).parts[0].removesuffix(".py")


def _module_name(path: Path) -> str:
    parts = ["bench", *path.relative_to(BENCH).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """Absolute names of the bench modules ``path`` imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bench"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            if module.split(".")[0] == "bench":
                found.add(module)
                found |= {
                    f"{module}.{a.name}"
                    for a in node.names
                    if (BENCH.parent / f"{module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()
                }
    return found


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(BENCH)))
def test_each_room_imports_only_the_rooms_it_may(path: Path) -> None:
    room = _room(path)
    rel = str(path.relative_to(BENCH))
    # A room's cli.py is command line: like bench/cli.py, it may import every room.
    allowed = (ALLOWED["cli"] if path.name == "cli.py" else ALLOWED.get(room, set())) | {room}
    for module in _imports(path, top_level_only=False):
        parts = module.split(".")
        if len(parts) == 1:
            continue  # `import bench` itself
        target = parts[1]
        assert target in allowed or (rel, target) in EXCEPTIONS, (
            f"{rel} imports {module}: {room} may not import {target}"
        )
