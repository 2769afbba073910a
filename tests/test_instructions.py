"""The instruction tier's counting: callgrind's dumps read back, one line and no figure without valgrind, and (where
valgrind is installed) a real count that repeats exactly enough and sees a slower operation."""

from __future__ import annotations

import shutil
from pathlib import Path

import aiosqlite
import pytest

from bench.run import instructions
from bench.run.instructions import (
    ClientRequests,
    InstructionsUnavailable,
    acknowledgements,
    check_available,
    figure,
    read_dumps,
)
from bench.run.runner import RunOptions, _instruction_pass
from bench.scenarios import LAYOUTS


def dump(directory: Path, n: int, label: str, total: int) -> None:
    (directory / f"cg.out.{n}").write_text(
        f"version: 1\ncreator: callgrind-3.19.0\ndesc: Trigger: Client Request: {label}\nevents: Ir\n"
        f"summary: {total}\ntotals: {total + 300}\n"
    )


def test_the_figure_is_the_span_minus_the_empty_span(tmp_path: Path) -> None:
    dump(tmp_path, 1, "op:0", 1_250_000)
    dump(tmp_path, 2, "empty:0", 50_000)
    dump(tmp_path, 3, "op:1", 10_050_000)
    dump(tmp_path, 4, "empty:1", 50_000)
    (tmp_path / "cg.out").write_text("desc: Trigger: Program termination\nsummary: 999\n")
    spans = read_dumps(tmp_path)
    assert spans == {"op:0": 1_250_000, "empty:0": 50_000, "op:1": 10_050_000, "empty:1": 50_000}
    assert figure(spans, 0) == 1_200_000
    assert figure(spans, 1, per_job=50) == 200_000.0


def test_the_acknowledgements_of_the_lockstep_are_subtracted(tmp_path: Path) -> None:
    # Three requests to the database thread; the ack span holds ACK_SAMPLES acknowledgements of 9,000 instructions.
    dump(tmp_path, 1, "op:0", 1_250_000)
    dump(tmp_path, 2, "empty:0", 50_000)
    dump(tmp_path, 3, "ack:0:3", 50_000 + instructions.ACK_SAMPLES * 9_000)
    spans = read_dumps(tmp_path)
    assert acknowledgements(spans, 0) == 27_000
    assert figure(spans, 0) == 1_200_000 - 27_000
    assert acknowledgements(spans, 1) == 0  # no ack span: the operation made no database request


def test_the_environment_names_the_counting_method() -> None:
    env = instructions.environment()
    assert (
        env["method"] == instructions.METHOD and "lockstep" in env["method"] and "switchinterval=100" in env["method"]
    )
    assert env["aiosqlite"] == aiosqlite.__version__


def test_a_missing_dump_is_an_error_not_a_zero(tmp_path: Path) -> None:
    dump(tmp_path, 1, "op:0", 1_250_000)
    with pytest.raises(RuntimeError, match="empty:0"):
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

PLANT = """
import queue_impls.kv.backends.sqlite as sqlite_backend

_read_range = sqlite_backend._read_range


def _slower_read_range(*args, **kwargs):
    for _ in range(2000):  # planted: more CPU per SQLite read, the same KV counts
        pass
    return _read_range(*args, **kwargs)


sqlite_backend._read_range = _slower_read_range
"""


@needs_valgrind
@pytest.mark.timeout(900)  # three callgrind passes: about 40 s on an idle machine, minutes on a loaded one
def test_a_real_count_repeats_and_sees_a_planted_read_slowdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.run.instructions import count_instructions
    from bench.run.runner import _prepare_stores, _write_plan
    from bench.scenarios import build_cases

    # A listing, a write, a listing through the latency model and eight racing workers: each took one of several
    # figures (up to 10% apart) before the database thread worked in lockstep with the loop.
    every = build_cases(suite="smoke", layouts=("optimized",), rtt_ms=(0.0,),
                        scenarios=("seed_case", "write_path", "rtt_sweep", "worker_throughput"))  # fmt: skip
    cases = [case for case in every if case.name.endswith(("status=none", "op=add", "rtt_ms=0", "concurrency=8"))]
    assert len(cases) == 4
    options = RunOptions("smoke", "sqlite", ("optimized",), (0.0,), (), tmp_path / "r.json", tmp_path / "cache")
    plan = _write_plan(cases, _prepare_stores(options, cases, tmp_path, lambda line: None), tmp_path)
    first = count_instructions(plan, cases, tmp_path / "first")
    second = count_instructions(plan, cases, tmp_path / "second")
    for case in cases:
        assert first.per_op[case.name] > 100_000
        assert abs(second.per_op[case.name] / first.per_op[case.name] - 1) < 0.003, case.name
    assert first.environment["valgrind"].startswith("valgrind-")
    plant = tmp_path / "plant"
    plant.mkdir()
    (plant / "sitecustomize.py").write_text(PLANT)
    monkeypatch.setenv("PYTHONPATH", str(plant))
    planted = count_instructions(plan, cases, tmp_path / "planted")
    read = cases[0].name  # seed_case: one list, every read through _read_range
    assert planted.per_op[read] / first.per_op[read] > 1.02


def test_compare_report_and_export_show_instructions(tmp_path: Path) -> None:
    from bench.gate.compare import compare
    from bench.report.report import report
    from bench.results import export_csv, load
    from tests.synthetic_results import INSTRUCTIONS_ENV, Spec, write_results

    name = "seed_case/naive/N=100,K=1,limit=100,offset=0,status=none"
    base = write_results(tmp_path / "base.json", Spec(instructions_env=INSTRUCTIONS_ENV))
    new = write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale={name: 1.1}))
    text = compare(base=base, new=new)
    assert "| CPU instructions | 124 | 1.001× | 1 up, 0 down |" in text
    assert (
        "### CPU instructions per operation (callgrind)" in text
        and f"| {name} | 21,450,000 | 23,595,000 | +10.0% |" in text
    )
    report(results=new, out=tmp_path / "report")
    readme = (tmp_path / "report" / "README.md").read_text()
    assert "CPU instructions per call (callgrind)" in readme and "| naive | 101 | 102 |" in readme
    assert (tmp_path / "report" / "instructions_vs_n.png").stat().st_size > 10_000
    rows = export_csv(new, tmp_path / "new.csv")
    frame = load(new)
    assert rows == len(frame) and (frame[frame.metric == "instructions"].unit == "instructions").sum() > 100
