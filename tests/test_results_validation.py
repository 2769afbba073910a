"""A results file whose kvq metadata has the wrong types is refused on load, by every command that reads one:
exit status 2 and one line naming the benchmark and the field, never a traceback or a verdict on the code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.results import load_suite, metadata_problem
from tests.synthetic_results import Spec, write_results

SPEC = Spec(layouts=("naive", "optimized"), ns=(100, 1000), limits=(100,), statuses=("none",), rtts=(0,), values=3)
FIRST = "seed_case/naive/N=100,K=1,limit=100,offset=0,status=none"
COUNTS = {
    "calls": {"get": 1},
    "total_calls": 1,
    "round_trips": 1,
    "serial_round_trips": 1,
    "entries_read": 1,
    "bytes_read": 1,
    "mutations": 0,
    "checks": 0,
    "bytes_written": 0,
}

#: (metadata key, the value stored in the file, what the error must name)
BAD: list[tuple[str, Any, str]] = [
    ("kvq_counts", "[1]", "kvq_counts must be a JSON object"),
    ("kvq_counts", "{}", "kvq_counts has no calls, total_calls, round_trips"),
    ("kvq_counts", json.dumps({k: v for k, v in COUNTS.items() if k != "bytes_read"}), "kvq_counts has no bytes_read"),
    ("kvq_counts", json.dumps({**COUNTS, "calls": [1]}), "kvq_counts.calls must be a JSON object"),
    ("kvq_counts", json.dumps({**COUNTS, "calls": {"get": "3"}}), "kvq_counts.calls.get must be a count"),
    ("kvq_counts", json.dumps({**COUNTS, "round_trips": -1}), "kvq_counts.round_trips must be a count"),
    ("kvq_counts", json.dumps({**COUNTS, "mutations": True}), "kvq_counts.mutations must be a count"),
    ("kvq_counts", json.dumps({**COUNTS, "total_calls": 2**64}), "kvq_counts.total_calls must be a count"),
    ("kvq_counts", json.dumps({**COUNTS, "total_calls": float("nan")}), "kvq_counts.total_calls must be a count"),
    ("kvq_counts", "{calls", "kvq_counts is not valid JSON"),
    ("kvq_counts", "[" * 100_000 + "]" * 100_000, "kvq_counts is not valid JSON"),
    ("kvq_counts", '{"calls": {}, "total_calls": ' + "9" * 5000 + "}", "kvq_counts is not valid JSON"),
    ("kvq_counts", 7, "kvq_counts must be a JSON text"),
    ("kvq_params", '"x"', "kvq_params must be a JSON object"),
    ("kvq_params", '{"N": "100"}', "kvq_params.N must be a finite number"),
    ("kvq_params", '{"status": 1}', "kvq_params.status must be a string"),
    ("kvq_derived", "[]", "kvq_derived must be a JSON object"),
    ("kvq_derived", '{"predicted_s": "1"}', "kvq_derived.predicted_s must be a finite number"),
    ("kvq_nplus1", "{}", "kvq_nplus1 must be a JSON array"),
    ("kvq_nplus1", '[{"count": 1}]', "kvq_nplus1[0].source must be a string"),
    ("kvq_nplus1", '[{"source": "a", "fingerprint": "b", "site": "c", "count": "x"}]', "kvq_nplus1[0].count"),
    ("kvq_per", "jobs", "kvq_per must be 'call' or 'job'"),
    ("kvq_layout", 3, "kvq_layout must be a string"),
    ("kvq_backend", 1.5, "kvq_backend must be a string"),
]
IDS = [f"{key}={value!s:.30}" for key, value, _ in BAD]


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("valid") / "good.json", SPEC)


def damaged(good: Path, out: Path, key: str, value: Any) -> Path:
    """A copy of `good` whose first benchmark has metadata `key` set to `value` (as stored in the JSON file)."""
    data = json.loads(good.read_text())
    data["benchmarks"][0]["metadata"][key] = value
    out.write_text(json.dumps(data))
    return out


def commands(bad: Path, good: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "report": ["report", str(bad), "-o", str(tmp / "report")],
        "compare": ["compare", str(good), str(bad)],
        "gate": ["gate", "--baseline", str(good), str(bad)],
        "gate-baseline": ["gate", "--baseline", str(bad), str(good)],
        "baseline update": ["baseline", "update", str(bad), "-o", str(tmp / "baseline.json")],
        "export": ["export", str(bad), "-o", str(tmp / "out.csv")],
    }


@pytest.mark.parametrize(("key", "value", "named"), BAD, ids=IDS)
def test_every_command_refuses_the_field_by_name(
    key: str, value: Any, named: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = damaged(good, tmp_path / "bad.json", key, value)
    baseline = (tmp_path / "baseline.json").read_bytes() if (tmp_path / "baseline.json").exists() else None
    for name, argv in commands(bad, good, tmp_path).items():
        assert main(argv) == 2, name
        out, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1, (name, err)
        assert f"benchmark {FIRST!r}: {named}" in err, (name, err)
        assert "FAILED" not in out and "complexity class" not in out, name
    assert baseline is None and not (tmp_path / "baseline.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json"]  # no report, CSV or temporary file


@pytest.mark.parametrize(
    "text", ["", "[1, 2]", "[" * 100_000 + "]" * 100_000, '{"benchmarks": "x"}'], ids=["empty", "array", "deep", "odd"]
)
def test_a_file_that_is_not_a_results_file_is_one_line(
    text: str, good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    for name, argv in commands(bad, good, tmp_path).items():
        assert main(argv) == 2, name
        assert "is not a pyperf results file" in capsys.readouterr().err, name


def test_empty_counts_do_not_replace_a_baseline_or_fail_the_code(
    good: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = tmp_path / "baseline.json"
    baseline.write_bytes(good.read_bytes())
    bad = damaged(good, tmp_path / "bad.json", "kvq_counts", "{}")
    assert main(["baseline", "update", str(bad), "-o", str(baseline)]) == 2
    assert baseline.read_bytes() == good.read_bytes()
    assert main(["gate", "--baseline", str(baseline), str(bad)]) == 2  # unusable input, not "the code got worse"
    out, err = capsys.readouterr()
    assert out == "" and "kvq_counts has no calls" in err


def test_the_installed_command_prints_one_line_and_no_traceback(good: Path, tmp_path: Path) -> None:
    bad = damaged(good, tmp_path / "bad.json", "kvq_counts", "[1]")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "report", str(bad), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_real_and_synthetic_results_files_pass(good: Path) -> None:
    """The checks must not refuse what `qbench run` writes: the committed baseline is a real run."""
    for path in (good, Path(__file__).parent.parent / "reports" / "baseline" / "quick.json"):
        suite = load_suite(path)
        assert [metadata_problem(b.get_metadata()) for b in suite] == [None] * len(suite)


def test_extra_fields_are_allowed(good: Path) -> None:
    meta = dict(load_suite(good).get_benchmarks()[0].get_metadata())
    meta["kvq_counts"] = json.dumps({**COUNTS, "instructions": 12345, "future": {"x": 1}})
    meta["kvq_params"] = json.dumps({"N": 1, "jobs": 100, "note": "any"})
    assert metadata_problem(meta) is None
