"""The shape of the code, checked: no import cycle between modules, and each room of queue_impls imports only what
its package docstring allows (docs/architecture.md).

Imports are read with ast from every module of queue_impls and bench: relative imports resolved, imports inside
functions counted (they run too), ``if TYPE_CHECKING:`` blocks skipped (they never run). ``from package import name``
is an edge to ``package.name`` when that is a module, else to ``package``. A package's own parents are not edges
(Python imports them first, but they cannot close a cycle through the child's code).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("queue_impls", "bench", "tools")

#: Never imported by the library: benchmarks, reports and notebooks depend on it, not the other way round.
FORBIDDEN_IN_LIBRARY = ("bench", "pyperf", "pandas", "matplotlib", "numpy", "scipy", "tests")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in path.parts
    }


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that runs: everywhere in the tree except the body of ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for sub in child.orelse:
                yield from _import_nodes(ast.Module(body=[sub], type_ignores=[]))
            continue
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        yield from _import_nodes(child)


def _base(module: str, path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    package = package[: len(package) - (node.level - 1)]
    return ".".join([*package, node.module] if node.module else package)


def imports_of(module: str) -> set[str]:
    """Full names of what ``module`` imports (project modules resolved to modules, others as written)."""
    path = MODULES[module]
    found: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = _base(module, path, node)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            found.add(candidate if candidate in MODULES else base)
    return found


GRAPH = {module: {name for name in imports_of(module) if name in MODULES} - {module} for module in MODULES}


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan): each group of modules in a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component."""
    return [_one_cycle(graph, component) for component in _components(graph)]


def _one_cycle(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A path start -> ... -> start inside the component (breadth first, so a shortest one)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for target in sorted(graph[node] & component):
            if target == start:
                return [*paths[node], start]
            if target not in paths:
                paths[target] = [*paths[node], target]
                queue.append(target)
    raise AssertionError(f"no cycle in {component}")


def test_the_import_reader_sees_what_runs_and_skips_what_does_not() -> None:
    assert "queue_impls.meter.counting" in imports_of("queue_impls.meter")
    assert "queue_impls.kv.contract" in imports_of("queue_impls.kv.backends.memory")  # relative, two levels
    assert "queue_impls.meter.counting" not in imports_of("queue_impls.meter.budget")  # under TYPE_CHECKING
    assert "queue_impls.kv.backends.deno" in imports_of("queue_impls.kv.backends")  # inside a function
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_import_cycle_between_modules() -> None:
    """No two modules of the library, qbench or the tools import each other, directly or around a loop, at import
    time or inside a function."""
    cycles = [
        f"{' -> '.join(_one_cycle(GRAPH, c))} (modules in the cycle: {', '.join(sorted(c))})"
        for c in _components(GRAPH)
    ]
    assert not cycles, "import cycles: " + "; ".join(cycles)


# -- the rooms of queue_impls -------------------------------------------------------------------------------------

ROOMS = ("queue_impls", "queue_impls.kv", "queue_impls.meter", "queue_impls.jobs", "queue_impls.kvconnect")
_RULE = re.compile(r"^May import: (?P<rooms>.*)$", re.MULTILINE)
_THIRD_PARTY = re.compile(r"^Third-party: (?P<names>.*?)\.?$", re.MULTILINE)
_ONLY_IN = re.compile(r"(queue_impls(?:\.[a-z_]+)*)(?: in ([a-z_/]+\.py) only)?")


def room_of(module: str) -> str:
    """The room a module lives in: the longest room name it is inside of."""
    return max((room for room in ROOMS if module == room or module.startswith(room + ".")), key=len)


def rules(room: str) -> tuple[dict[str, str | None], set[str]]:
    """(room it may import -> the one file allowed to, or None for any; third-party top-level names), as written in
    the room's package docstring."""
    doc = ast.get_docstring(ast.parse(MODULES[room].read_text())) or ""
    rule = _RULE.search(doc)
    third = _THIRD_PARTY.search(doc)
    assert rule and third, f"{room}'s docstring needs a 'May import: ...' and a 'Third-party: ...' line"
    allowed = {target: where for target, where in _ONLY_IN.findall(rule["rooms"])}
    allowed = {target: where or None for target, where in allowed.items()}
    names = {m.group() for item in third["names"].split(",") if (m := re.match(r"[\w.]+", item.strip()))} - {"none"}
    return allowed, names


def _library_modules() -> list[str]:
    return [m for m in MODULES if m.startswith("queue_impls")]


@pytest.mark.parametrize("room", ROOMS)
def test_each_room_imports_only_what_its_docstring_allows(room: str) -> None:
    allowed, third_party = rules(room)
    broken = []
    for module in (m for m in _library_modules() if room_of(m) == room):
        filename = str(MODULES[module].relative_to(ROOT / room.replace(".", "/")))
        for name in imports_of(module):
            top = name.split(".")[0]
            if top == "queue_impls":
                target = room_of(name)
                where = allowed.get(target, "")
                if target != room and (where == "" or (where is not None and where != filename)):
                    broken.append(f"{module} imports {name}")
            elif top not in sys.stdlib_module_names and top != "__future__" and top not in third_party:
                broken.append(f"{module} imports {name} (third-party, not allowed in {room})")
    assert not broken, f"{room} breaks its rules ({MODULES[room]}): " + "; ".join(sorted(broken))


def test_the_library_never_imports_the_benchmarks_or_their_tools() -> None:
    found = sorted(
        f"{module} imports {name}"
        for module in _library_modules()
        for name in imports_of(module)
        if name.split(".")[0] in FORBIDDEN_IN_LIBRARY
    )
    assert not found, found


def test_the_kv_layer_depends_on_no_other_room() -> None:
    allowed, _ = rules("queue_impls.kv")
    assert set(allowed) <= {"queue_impls.kv"}
    assert "queue_impls.kv" in rules("queue_impls.meter")[0] and "queue_impls.jobs" not in rules("queue_impls.meter")[0]
