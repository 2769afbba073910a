"""tools/: the shared harness's figures, the SQLite floor on the backend's published statements, and the room's
rules (outside the product, public APIs only)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest

from queue_impls.kv import decode_value, encode_key, encode_value, open_kv
from queue_impls.kv.backends.sqlite import STATEMENTS
from tools.harness import SelfTimed, format_ratio, format_us, grid, median_interval, rotating_blocks, rotation
from tools.sqlite_floor import open_floor

ROOT = Path(__file__).resolve().parents[1]


def test_the_interval_is_the_sign_test_s_order_statistics() -> None:
    interval = median_interval([float(v) for v in range(30)])
    assert (interval.median, interval.low, interval.high, interval.minimum, interval.n) == (14.5, 9, 20, 0, 30)
    hundred = median_interval([float(v) for v in reversed(range(100))])
    assert (hundred.low, hundred.high) == (39, 60)  # ranks 40 and 61: P(Binomial(100, 1/2) <= 39) <= 0.025
    assert (median_interval([3.0, 1.0, 2.0]).low, median_interval([3.0, 1.0, 2.0]).high) == (1.0, 3.0)
    with pytest.raises(ValueError, match="no values"):
        median_interval([])


def test_the_interval_covers_95_percent_or_more() -> None:
    for n in (6, 10, 20, 30, 57):
        k = median_interval([float(v) for v in range(n)]).low  # the lower bound's index
        assert 1 - 2 * sum(math.comb(n, j) for j in range(int(k) + 1)) / 2**n >= 0.95


def test_figures_print_with_their_interval() -> None:
    assert format_ratio(median_interval([1.0, 1.5, 2.0])) == "1.50x [1.00, 2.00]"
    assert format_us(median_interval([1e-6, 2e-6, 3e-6])) == "+2.0 us [+1.0, +3.0]"
    assert grid(["op", "us"], [["get", "1.0"], ["list", "10.5"]]) == [
        "op      us",
        "----  ----",
        "get    1.0",
        "list  10.5",
    ]


async def test_rounds_rotate_and_self_timed_ops_report_their_own_time() -> None:
    calls: list[str] = []

    async def a() -> None:
        calls.append("a")

    async def b() -> None:
        calls.append("b")

    async def c(n: int) -> float:
        calls.extend("c" * n)
        return n * 2.0

    rounds = await rotating_blocks({"a": a, "b": b, "c": SelfTimed(c)}, 4, rounds=3)
    assert "".join(calls) == "abc" + "aaaabbbbcccc" + "bbbbccccaaaa" + "ccccaaaabbbb"
    assert rounds.wall["c"] == [2.0, 2.0, 2.0] and len(rounds.wall["a"]) == 3 == len(rounds.cpu["a"])
    assert rounds.cpu["c"] == []  # its time is spent elsewhere
    assert rotation(["a", "b", "c"], 4) == ["b", "c", "a"]


async def test_the_floor_runs_the_backend_s_statements_on_the_backend_s_data(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    async with await open_kv(f"sqlite:{path}") as kv:
        await kv.set(("jobs", "a"), {"n": 1})
        await kv.set(("jobs", "b"), {"n": 2})
        stamp = (await kv.get(("jobs", "b"))).versionstamp
    async with open_floor(path) as floor:
        [(value, encoding, vs)] = await floor.get(encode_key(("jobs", "a")))
        assert decode_value(value, encoding) == {"n": 1} and vs.hex() < str(stamp)  # "a" was written first
        assert len(await floor.get_many([encode_key(("jobs", k)) for k in "abz"])) == 2
        prefix = encode_key(("jobs",))
        assert [row[0] for row in await floor.list(prefix + b"\x00", prefix + b"\xff", 10)] == [
            encode_key(("jobs", "a")),
            encode_key(("jobs", "b")),
        ]
        written = await floor.write([(encode_key(("jobs", "c")), *encode_value({"n": 3}))])
    async with await open_kv(f"sqlite:{path}") as kv:  # the backend reads what the floor wrote, stamps in order
        entry = await kv.get(("jobs", "c"))
        assert entry.value == {"n": 3} and entry.versionstamp == written.hex() > str(stamp)
    assert "?" in STATEMENTS.get_many(3) and STATEMENTS.get_many(3).count("?") == 4


def _modules(folder: str) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted((ROOT / folder).rglob("*.py"))]


def test_the_product_never_imports_tools() -> None:
    for folder in ("queue_impls", "bench"):
        for path, tree in _modules(folder):
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                assert not any(n == "tools" or n.startswith("tools.") for n in names), path


def test_tools_use_public_names_only() -> None:
    for path, tree in _modules("tools"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("queue_impls", "bench")):
                assert not [a.name for a in node.names if a.name.startswith("_")], (path, node.module)
                assert not any(part.startswith("_") for part in (node.module or "").split(".")), path
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                assert isinstance(node.value, ast.Name) and node.value.id == "self", (path, node.lineno, node.attr)
