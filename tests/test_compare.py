"""qbench compare: exact count changes, time changes with significance, a geometric-mean summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.errors import ResultsError
from bench.gate.compare import compare, geometric_mean
from tests.synthetic_results import Spec, write_results

RAISED = "write_path/indexed/op=add"


def raise_bytes(name: str, counts: dict[str, Any]) -> None:
    if name == RAISED:
        counts["bytes_written"] += 31


def test_identical_files_change_nothing(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json")
    text = compare(base=base, new=base)
    assert "| mean time | 124 | 1.000× | 0 up, 0 down, 0 significant |" in text
    assert "### Exact counts that changed\n\nNone." in text


def test_counts_show_their_exact_change_and_times_their_ratio(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json")
    new = write_results(tmp_path / "new.json", Spec(seed=5, time_factor=1.5), tweak=raise_bytes)
    text = compare(base=base, new=new)
    assert f"| {RAISED} | bytes_written | 620 | 651 | +31 (+5.0%) |" in text
    assert "| exact counts | 1192 | 1.000× | 1 up, 0 down |" in text
    gm_row = next(line for line in text.splitlines() if line.startswith("| mean time"))
    assert float(gm_row.split("|")[3].strip().rstrip("×")) == pytest.approx(1.5, abs=0.02)
    assert gm_row.endswith("| 124 up, 0 down, 124 significant |")
    seed = next(line for line in text.splitlines() if line.startswith("| seed_case/naive/"))
    assert "| time | 2.97 ms |" in seed and "significant (p=" in seed and "not significant" not in seed


def test_all_counts_lists_unchanged_ones(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json", Spec(layouts=("naive",), ns=(100,)))
    text = compare(base=base, new=base, all_counts=True)
    assert "| seed_case/naive/N=100,K=1,limit=100,offset=0,status=none | calls | 101 | 101 | = |" in text


def test_no_common_benchmark_is_an_error(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json", Spec(layouts=("naive",)))
    new = write_results(tmp_path / "new.json", Spec(layouts=("indexed",)))
    with pytest.raises(ResultsError, match="no benchmark in common"):
        compare(base=base, new=new)


def test_geometric_mean_skips_undefined_ratios() -> None:
    assert geometric_mean([2.0, 8.0, None, 0.0]) == pytest.approx(4.0)
    assert geometric_mean([None]) is None
