"""The command line of compare, gate and baseline: exit statuses and messages through bench.cli.main."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from tests.synthetic_results import Spec, write_results


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cli")

    def raise_one(name: str, counts: dict[str, Any]) -> None:
        if name.startswith("seed_case/optimized/"):
            counts["total_calls"] += 1

    spec = Spec(ns=(100, 1000), limits=(100,), statuses=("none",), rtts=(0,))
    foreign = tmp / "foreign.json"
    foreign.write_text("[1, 2, 3]")
    return {
        "base": write_results(tmp / "base.json", spec),
        "raised": write_results(tmp / "raised.json", spec, tweak=raise_one),
        "foreign": foreign,
        "dir": tmp,
    }


def test_gate_exit_statuses(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--baseline", str(files["base"]), str(files["base"])]) == 0
    assert main(["gate", "--baseline", str(files["base"]), str(files["raised"]), "--times", "report-only"]) == 1
    assert (
        "| `seed_case/optimized/N=100,K=1,limit=100,offset=0,status=none` | calls | 1 -> 2 |" in capsys.readouterr().out
    )
    assert main(["gate", "--baseline", str(files["base"]), str(files["foreign"])]) == 2
    assert "not a pyperf results file" in capsys.readouterr().err


def test_gate_rejects_an_unknown_times_mode(files: dict[str, Path]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["gate", str(files["base"]), "--times", "sometimes"])
    assert exit_info.value.code == 2


def test_compare_prints_markdown_and_refuses_foreign_files(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(files["base"]), str(files["raised"])]) == 0
    assert "| seed_case/optimized/N=100,K=1,limit=100,offset=0,status=none | calls | 1 | 2 | +1 (+100.0%) |" in (
        capsys.readouterr().out
    )
    assert main(["compare", str(files["foreign"]), str(files["base"])]) == 2
    assert capsys.readouterr().err.startswith("qbench compare: error: ")


def test_baseline_update_writes_the_baseline(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = files["dir"] / "baseline" / "quick.json"
    assert main(["baseline", "update", str(files["base"]), "-o", str(out)]) == 0
    assert out.read_bytes() == files["base"].read_bytes()
    assert main(["baseline", "update", str(files["foreign"]), "-o", str(files["dir"] / "x.json")]) == 2
    assert not (files["dir"] / "x.json").exists()


def test_gate_needs_results_or_against(files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--baseline", str(files["base"])]) == 2
    assert "give a results file to judge, or --against REF" in capsys.readouterr().err
    assert main(["gate", "--baseline", str(files["base"]), str(files["base"]), "--against", "HEAD"]) == 2
    assert "--against runs both trees itself" in capsys.readouterr().err


def test_gate_against_an_unknown_ref_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gate", "--against", "no-such-ref-anywhere"]) == 2
    assert "ref 'no-such-ref-anywhere'" in capsys.readouterr().err
