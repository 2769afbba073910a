"""The gate's tiers on synthetic files whose verdict is known: coverage, N+1, instructions, causes first."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyperf
import pytest

from bench.gate.gate import gate
from tests.synthetic_results import INSTRUCTIONS_ENV, Spec, write_results

OPTIMIZED_PAGE = "list_by_name/optimized/N=1000,K=1,limit=50,offset=0,status=none"
SITE = "queue_impls/jobs/layouts/optimized.py:30"


def rewrite(path: Path, edit: Callable[[str, dict[str, Any]], None]) -> Path:
    """Edit each benchmark's metadata in place (edit(name, metadata) mutates the dict)."""
    suite = pyperf.BenchmarkSuite.load(str(path))
    benches = []
    for bench in suite:
        runs = []
        for run in bench.get_runs():
            meta = dict(run._metadata)  # pyperf keeps a run's metadata here; no public setter exists
            edit(bench.get_name(), meta)
            runs.append(pyperf.Run(run.values, warmups=run.warmups, metadata=meta, collect_metadata=False))
        benches.append(pyperf.Benchmark(runs))
    pyperf.BenchmarkSuite(benches).dump(str(path), replace=True)
    return path


def plant_nplus1(name: str, meta: dict[str, Any]) -> None:
    """One extra get per listed job in the optimized layout: what an N+1 planted there records."""
    if name.startswith(("list_by_name/optimized/", "seed_case/optimized/")):
        limit = json.loads(meta["kvq_params"])["limit"]
        finding = {"source": 'list ("jobs_by_name", ?)', "fingerprint": 'get ("jobs", ?)', "count": limit, "site": SITE}
        meta["kvq_nplus1"] = json.dumps([finding])
        counts = json.loads(meta["kvq_counts"])
        counts["calls"]["get"] = limit
        counts["total_calls"] += limit
        counts["round_trips"] += limit
        meta["kvq_counts"] = json.dumps(counts)


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("tiers") / "base.json", Spec(instructions_env=INSTRUCTIONS_ENV))


def test_a_planted_nplus1_is_the_first_cause_with_its_site(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = rewrite(write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV)), plant_nplus1)
    assert gate(baseline=base, results=new) == 1
    lines = capsys.readouterr().out.splitlines()
    head = "\n".join(lines[:15])
    assert lines[0].startswith("## qbench gate: FAILED")
    assert lines[2] == (
        f'- new N+1 `get ("jobs", ?)` at {SITE}: 10 to 100 repeats per call, in '
        "`seed_case/optimized/N=100,K=1,limit=100,offset=0,status=none`, "
        "`list_by_name/optimized/N=100,K=1,limit=10,offset=0,status=none`, "
        "`list_by_name/optimized/N=100,K=1,limit=10,offset=0,status=rare` and 16 more"
    )
    assert "- exact counts rose in 19 benchmarks, largest first: " in head
    assert sum(line.startswith("- ") for line in lines[:12]) == 2  # one line per cause, not per metric


def test_a_grown_nplus1_names_its_growth(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def grow(name: str, meta: dict[str, Any]) -> None:
        findings = json.loads(meta.get("kvq_nplus1", "[]"))
        for f in findings:
            f["count"] += 1
        meta["kvq_nplus1"] = json.dumps(findings)

    new = rewrite(write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV)), grow)
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    assert '- grown N+1 `get ("jobs", ?)` at queue_impls/jobs/naive.py:88' in out
    assert "N+1 grew by 1 per call" in out


def test_a_missing_benchmark_fails_unless_allowed(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, omit=(OPTIMIZED_PAGE,)))
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    assert f"- 1 baseline benchmarks missing from the results: `{OPTIMIZED_PAGE}`" in out
    assert gate(baseline=base, results=new, allow_missing=("list_by_name/optimized/*",)) == 0


def test_another_suite_or_backend_fails(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    new = write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, suite="smoke", backend="memory"))
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    assert "- results of another suite: baseline quick, results smoke" in out
    assert "- results of another backend: baseline sqlite, results memory" in out


def test_half_the_benchmarks_cannot_pass(base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = [b.get_name() for b in pyperf.BenchmarkSuite.load(str(base))]
    new = write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, omit=tuple(names[::2])))
    assert gate(baseline=base, results=new) == 1
    assert f"- {len(names[::2])} baseline benchmarks missing" in capsys.readouterr().out


def test_more_instructions_than_the_threshold_fail_and_are_named(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slower = {OPTIMIZED_PAGE: 1.05, "seed_case/naive/N=100,K=1,limit=100,offset=0,status=none": 1.10}
    new = write_results(tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale=slower))
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    assert (
        "- CPU instructions per operation rose in 2 benchmarks (geometric mean x1.075): "
        "`seed_case/naive/N=100,K=1,limit=100,offset=0,status=none` x1.100, "
        f"`{OPTIMIZED_PAGE}` x1.050"
    ) in out
    assert "+5.00% instructions (> 1.0%)" in out


def test_instructions_within_the_threshold_pass(base: Path, tmp_path: Path) -> None:
    new = write_results(
        tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale={OPTIMIZED_PAGE: 1.008})
    )
    assert gate(baseline=base, results=new) == 0


def test_fewer_instructions_pass(base: Path, tmp_path: Path) -> None:
    new = write_results(
        tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale={OPTIMIZED_PAGE: 0.5})
    )
    assert gate(baseline=base, results=new) == 0


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({**INSTRUCTIONS_ENV, "python": "CPython 3.12.1 (main) [GCC 13]"}, "python 'CPython 3.11.9"),
        ({**INSTRUCTIONS_ENV, "valgrind": "valgrind-3.22.0"}, "valgrind 'valgrind-3.19.0' -> 'valgrind-3.22.0'"),
        (None, "the results has no instruction figures"),
    ],
)
def test_instructions_from_another_build_are_not_comparable(
    base: Path, tmp_path: Path, env: dict[str, str] | None, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write_results(tmp_path / "new.json", Spec(instructions_env=env))
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    assert "- CPU instructions not comparable: " in out and said in out
    config = tmp_path / "gate.toml"
    config.write_text('[instructions]\nincomparable = "report-only"\n')
    assert gate(baseline=base, results=new, config=config) == 0
    assert "CPU instructions not comparable" in capsys.readouterr().out


def test_a_per_benchmark_instruction_threshold(base: Path, tmp_path: Path) -> None:
    new = write_results(
        tmp_path / "new.json", Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale={OPTIMIZED_PAGE: 1.05})
    )
    config = tmp_path / "gate.toml"
    config.write_text('[instructions]\nthreshold = 0.02\n[instructions.thresholds]\n"list_by_name/*" = 0.06\n')
    assert gate(baseline=base, results=new, config=config) == 0


def test_causes_come_in_order_and_the_step_summary_gets_them(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    slower = {"write_path/naive/op=add": 1.2}
    spec = Spec(instructions_env=INSTRUCTIONS_ENV, instruction_scale=slower, omit=(OPTIMIZED_PAGE,))
    new = rewrite(write_results(tmp_path / "new.json", spec), plant_nplus1)
    assert gate(baseline=base, results=new) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "## qbench gate: FAILED (4 causes)"
    assert [line.split(" ")[1] for line in lines[2:6]] == ["new", "exact", "CPU", "1"]  # N+1, counts, CPU, coverage
    assert summary.read_text() == out


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[instructions]\nincomparable = "ignore"\n', "instructions.incomparable"),
        ("[instructions]\nthreshold = -0.1\n", "instructions threshold"),
        ("[against]\nrounds = 1\n", "against.rounds"),
        ("[against]\nconfidence = 1.5\n", "against.confidence"),
        ("[coverage]\nallow_missing = [1]\n", "coverage.allow_missing"),
    ],
)
def test_bad_tier_settings_exit_2(
    base: Path, tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(text)
    assert gate(baseline=base, results=base, config=config) == 2
    assert named in capsys.readouterr().err
