"""qbench gate and baseline update: counts and complexity classes are hard, times fail only when significant and large."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.gate.gate import gate, update_baseline
from tests.synthetic_results import Spec, write_results

RAISED = "list_by_name/optimized/N=1000,K=1,limit=50,offset=0,status=none"
SEED_NAIVE = "seed_case/naive/N=100,K=1,limit=100,offset=0,status=none"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("gate") / "baseline.json")


def raise_one(name: str, counts: dict[str, Any]) -> None:
    if name == RAISED:
        counts["round_trips"] += 1


def test_passes_on_the_baseline_itself(baseline: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gate(baseline=baseline, results=baseline) == 0
    assert "qbench gate: passed" in capsys.readouterr().out


def test_a_count_raised_by_one_fails_and_is_named(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = write_results(tmp_path / "r.json", Spec(seed=7), tweak=raise_one)
    assert gate(baseline=baseline, results=results) == 1
    out = capsys.readouterr().out
    assert f"| `{RAISED}` | round_trips | 2 -> 3 | exact count rose by 1 |" in out
    assert out.count("exact count rose") == 1


def test_ignored_counts_do_not_fail(baseline: Path, tmp_path: Path) -> None:
    results = write_results(tmp_path / "r.json", tweak=raise_one)
    config = tmp_path / "gate.toml"
    config.write_text('[counts]\nignore = ["list_by_name/optimized/*"]\n')
    assert gate(baseline=baseline, results=results, config=config) == 0


def grow_with_n(name: str, counts: dict[str, Any]) -> None:
    """naive's calls grow with N at one page size: a class change from O(1) to O(N)."""
    if name.startswith("list_by_name/naive/") and "limit=10," in name and "status=none" in name:
        n = int(name.split("N=")[1].split(",")[0])
        counts["total_calls"] += n // 100


def test_a_worse_complexity_class_fails(baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = write_results(tmp_path / "r.json", tweak=grow_with_n)
    assert gate(baseline=baseline, results=results) == 1
    out = capsys.readouterr().out
    assert "| `list_by_name/naive/N=*,K=1,limit=10,offset=0,status=none` | calls | O(1) -> O(N) |" in out
    assert "complexity class in N got worse" in out


def test_a_significant_large_slowdown_fails_unless_report_only(
    baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = write_results(tmp_path / "r.json", Spec(seed=3, time_scale={SEED_NAIVE: 1.3}))
    assert gate(baseline=baseline, results=results, times="fail") == 1
    failed = capsys.readouterr().out
    assert f"| `{SEED_NAIVE}` | time |" in failed and "slower (> 10%), significant" in failed
    assert gate(baseline=baseline, results=results) == 0  # report-only by default: two runs, two machines' moods
    reported = capsys.readouterr().out
    assert "Reported only (not failing)" in reported and SEED_NAIVE in reported


def test_small_or_overridden_slowdowns_pass(baseline: Path, tmp_path: Path) -> None:
    small = write_results(tmp_path / "small.json", Spec(seed=3, time_scale={SEED_NAIVE: 1.05}))
    assert gate(baseline=baseline, results=small, times="fail") == 0
    big = write_results(tmp_path / "big.json", Spec(seed=3, time_scale={SEED_NAIVE: 1.3}))
    config = tmp_path / "gate.toml"
    config.write_text('[times]\nmode = "fail"\nthreshold = 0.1\n[times.thresholds]\n"seed_case/*" = 0.5\n')
    assert gate(baseline=baseline, results=big, config=config) == 0
    assert gate(baseline=baseline, results=big, times="fail") == 1


def test_an_insignificant_slowdown_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Values spread ±40%: 15% slower everywhere is not significant (Welch p ≈ 0.7), so it cannot fail."""
    noisy = (0.6, 1.0, 1.4)
    base = write_results(tmp_path / "base.json", Spec(pattern=noisy))
    slower = write_results(tmp_path / "new.json", Spec(pattern=noisy, time_factor=1.15))
    assert gate(baseline=base, results=slower, times="fail") == 0
    assert "slower (>" not in capsys.readouterr().out


def test_writes_the_step_summary(
    baseline: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    results = write_results(tmp_path / "r.json", tweak=raise_one)
    assert gate(baseline=baseline, results=results) == 1
    assert summary.read_text() == "earlier step\n" + capsys.readouterr().out


def unusable_inputs(tmp_path: Path) -> dict[str, Path]:
    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({"hello": "world"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    other = write_results(tmp_path / "other.json", Spec(layouts=("batched",)))
    return {"missing": tmp_path / "nope.json", "foreign": foreign, "broken": broken, "no common benchmark": other}


@pytest.mark.parametrize("case", ["missing", "foreign", "broken", "no common benchmark"])
def test_unusable_input_exits_2(tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base.json", Spec(layouts=("naive",), ns=(100, 1000)))
    assert gate(baseline=base, results=unusable_inputs(tmp_path)[case]) == 2
    assert capsys.readouterr().err.startswith("qbench gate: ")


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[times]\nmode = "sometimes"\n', "times.mode"),
        ("[times]\nthreshold = -1\n", "threshold"),
        ("[times\n", "gate"),
        ("times = 3\n", "times must be a table"),
        ("[times]\nthresholds = 3\n", "times.thresholds must be a table"),
        ("[instructions]\nthresholds = []\n", "instructions.thresholds must be a table"),
        ('[counts]\nignore = "abc"\n', "counts.ignore must be a list"),
        ("[coverage]\nallow_missing = [1]\n", "coverage.allow_missing must be a list"),
    ],
)
def test_a_bad_config_exits_2(
    baseline: Path, tmp_path: Path, text: str, named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(text)
    assert gate(baseline=baseline, results=baseline, config=config) == 2
    assert named in capsys.readouterr().err


def test_baseline_update_copies_a_valid_results_file(baseline: Path, tmp_path: Path) -> None:
    out = update_baseline(results=baseline, out=tmp_path / "reports" / "baseline" / "quick.json")
    assert out.read_bytes() == baseline.read_bytes()
    assert gate(baseline=out, results=baseline) == 0


def test_baseline_update_refuses_a_foreign_file(tmp_path: Path) -> None:
    foreign = unusable_inputs(tmp_path)["foreign"]
    with pytest.raises(Exception, match=r"foreign\.json"):
        update_baseline(results=foreign, out=tmp_path / "quick.json")
    assert not (tmp_path / "quick.json").exists()
