"""The instruction tier's counting: callgrind's dumps read back, one line and no figure without valgrind, and (where
valgrind is installed) a real count that repeats exactly enough and sees a slower operation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import instructions
from bench.instructions import ClientRequests, InstructionsUnavailable, check_available, figure, read_dumps
from bench.runner import RunOptions, _instruction_pass
from bench.scenarios import LAYOUTS


def dump(directory: Path, n: int, label: str, total: int) -> None:
    (directory / f"cg.out.{n}").write_text(
        f"version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: Client Request: {label}\nevents: Ir\n"
        f"summary: {total}\ntotals: {total + 300}\n"
    )


def test_the_figure_is_the_span_minus_the_empty_span(tmp_path: Path) -> None:
    dump(tmp_path, 1, "op:0:0", 1_250_000)
    dump(tmp_path, 2, "empty:0:0", 50_000)
    dump(tmp_path, 3, "op:1:0", 10_050_000)
    dump(tmp_path, 4, "empty:1:0", 50_000)
    (tmp_path / "cg.out").write_text("desc: Trigger: Program termination\nsummary: 999\n")
    spans = read_dumps(tmp_path)
    assert spans == {"op:0:0": 1_250_000, "empty:0:0": 50_000, "op:1:0": 10_050_000, "empty:1:0": 50_000}
    assert figure(spans, 0) == 1_200_000
    assert figure(spans, 1, per_job=50) == 200_000.0


def test_a_missing_dump_is_an_error_not_a_zero(tmp_path: Path) -> None:
    dump(tmp_path, 1, "op:0:0", 1_250_000)
    with pytest.raises(RuntimeError, match="empty:0:0"):
        figure(read_dumps(tmp_path), 0)


def test_client_requests_are_no_ops_outside_valgrind() -> None:
    assert ClientRequests().running_on_valgrind() is False


def test_without_valgrind_the_run_says_so_in_one_line_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    with pytest.raises(InstructionsUnavailable, match="valgrind is not installed"):
        check_available("sqlite")
    lines: list[str] = []
    options = RunOptions("smoke", "sqlite", LAYOUTS, (0.0,), (), tmp_path / "r.json", tmp_path)
    assert _instruction_pass(options, [], tmp_path / "plan.json", tmp_path, lines.append) is None
    assert lines == ["qbench run: valgrind is not installed: instruction counts not recorded"]


def test_deno_is_not_counted() -> None:
    with pytest.raises(InstructionsUnavailable, match="another process"):
        check_available("deno")


needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
