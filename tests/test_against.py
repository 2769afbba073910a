"""`qbench gate --against`: paired time verdicts against the A/A noise, the interval maths, the worktree's clean-up."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from bench.gate.against import _worktree, judge_clocks, judge_times
from bench.gate.gate import GateConfig
from bench.gate.significance import _signed_rank_critical, paired_ratio, signed_rank_interval
from bench.gate.tiers import causes


def rounds(
    slowdown: float, noise: float, control_noise: float | None = None, n: int = 8, seed: int = 1
) -> list[list[float]]:
    """n rounds of [A, B, A'] seconds: B is `slowdown` times A; each value has lognormal noise."""
    rng = random.Random(seed)
    c_noise = noise if control_noise is None else control_noise
    return [
        [
            0.01 * rng.lognormvariate(0, noise),
            0.01 * slowdown * rng.lognormvariate(0, noise),
            0.01 * rng.lognormvariate(0, c_noise),
        ]
        for _ in range(n)
    ]


def test_signed_rank_critical_values_match_the_tables() -> None:
    """Two-sided 5% critical values of Wilcoxon's signed-rank statistic (e.g. Siegel's table): n=6..20."""
    table = {6: 0, 7: 2, 8: 3, 10: 8, 12: 13, 16: 29, 20: 52}
    assert {n: _signed_rank_critical(n, 0.025) for n in table} == table
    assert _signed_rank_critical(5, 0.025) == -1  # five values cannot reach 95%: the interval is their whole range


def test_paired_ratio_is_robust_to_a_disturbed_round() -> None:
    interval = paired_ratio([1.1, 1.1, 1.1, 1.1])
    assert interval.ratio == pytest.approx(1.1) and interval.low == pytest.approx(1.1) and interval.n == 4
    disturbed = paired_ratio([1.10, 1.11, 1.09, 1.10, 3.0, 1.10, 1.12, 1.08])  # one round hit by another process
    assert disturbed.ratio == pytest.approx(1.10, abs=0.01) and disturbed.low > 1.08
    centre, low, high = signed_rank_interval([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    assert (centre, low, high) == (3.5, 1.0, 6.0)  # the 4th and 33rd of the 36 Walsh averages (n=8: T <= 3)
    with pytest.raises(ValueError, match="two or more"):
        paired_ratio([1.0])


def test_unchanged_code_passes_and_a_clear_slowdown_fails() -> None:
    config = GateConfig()
    same = {f"b{i}": rounds(1.0, 0.02, seed=i) for i in range(40)}
    found, notes = judge_times(same, config)
    assert found == [] and "A/A noise floor" in notes[0]
    slow = {"slow": rounds(1.15, 0.02), "same": rounds(1.0, 0.02, seed=5)}
    found, _ = judge_times(slow, config)
    assert [f.benchmark for f in found] == ["slow"]
    assert found[0].interval is not None and found[0].interval[0] > 1.05


def test_a_slowdown_inside_the_noise_floor_passes() -> None:
    """B is 15% slower, but A' differs from A by as much: this run cannot tell, so it does not fail."""
    noisy = {"noisy": rounds(1.15, 0.02, control_noise=0.3)}
    assert judge_times(noisy, GateConfig())[0] == []


def test_a_slowdown_below_the_threshold_passes() -> None:
    assert judge_times({"small": rounds(1.03, 0.002)}, GateConfig())[0] == []


def test_cpu_time_catches_a_slowdown_that_a_loaded_machine_hides_in_wall_time() -> None:
    """Wall time drowned in noise (other processes held the CPU), CPU time clear: one finding, on CPU time."""
    config = GateConfig()
    wall = {"slow": rounds(1.15, 0.02, control_noise=0.4), "same": rounds(1.0, 0.3, seed=3)}
    cpu = {"slow": rounds(1.15, 0.01, seed=2), "same": rounds(1.0, 0.01, seed=4)}
    assert judge_times(wall, config)[0] == []
    found, notes = judge_clocks(wall, cpu, config)
    assert [(f.benchmark, f.metric) for f in found] == [("slow", "CPU time")]
    assert "slower in CPU time" in found[0].why
    assert [n.split(":")[0] for n in notes] == ["Wall time", "CPU time"]
    lines = causes(found)
    assert lines[0].startswith("CPU time rose in 1 benchmarks") and "`slow` x1.1" in lines[0]


def test_a_slowdown_on_both_clocks_is_one_finding_and_no_cpu_clock_is_said() -> None:
    config = GateConfig()
    both = {"slow": rounds(1.2, 0.01)}
    found, _ = judge_clocks(both, both, config)
    assert [f.benchmark for f in found] == ["slow"]
    found, notes = judge_clocks(both, {}, config)
    assert [f.metric for f in found] == ["time"] and "judged on wall time alone" in notes[-1]
    assert causes(found)[0].startswith("wall time rose in 1 benchmarks")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_the_worktree_is_removed_even_on_ctrl_c(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "a.txt")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    commit = git(repo, "rev-parse", "HEAD").strip()
    tree = tmp_path / "base"
    with pytest.raises(KeyboardInterrupt), _worktree(repo, commit, tree) as path:
        assert (path / "a.txt").read_text() == "a\n"
        assert str(tree) in git(repo, "worktree", "list")
        raise KeyboardInterrupt
    assert not tree.exists()
    assert str(tree) not in git(repo, "worktree", "list")


class StubAgent:
    """Stands in for bench.gate.tree_agent.Agent: the protocol, not the benchmarks."""

    def __init__(self) -> None:
        self.closed = 0

    def measure(self, name: str) -> dict[str, object]:
        if name == "bad":
            raise RuntimeError("the store is gone")
        return {"counts": {"total_calls": 1}}

    def time(self, loops: int) -> dict[str, object]:
        return {"seconds": 0.001 * loops}

    def close(self) -> dict[str, object]:
        self.closed += 1
        return {"ok": True}


def test_the_agent_protocol_answers_each_line_and_reports_a_bad_case() -> None:
    import io
    import json

    from bench.gate.tree_agent import serve

    requests = io.StringIO(
        "\n".join(json.dumps(r) for r in [
            {"cmd": "measure", "name": "good"}, {"cmd": "measure", "name": "bad"}, {"cmd": "time", "loops": 3},
            {"cmd": "nonsense"}, {"cmd": "quit"}, {"cmd": "time", "loops": 1},
        ]) + "\n"
    )  # fmt: skip
    replies = io.StringIO()
    agent = StubAgent()
    serve(agent, requests, replies)  # type: ignore[arg-type]
    answers = [json.loads(line) for line in replies.getvalue().splitlines()]
    assert answers[0] == {"counts": {"total_calls": 1}}
    assert answers[1] == {"error": "RuntimeError: the store is gone"}
    assert answers[2] == {"seconds": 0.003}
    assert answers[3] == {"error": "unknown request 'nonsense'"}
    assert len(answers) == 4 and agent.closed == 1  # nothing after quit; the open case is closed


def test_the_real_agent_starts_in_this_checkout_and_names_it(tmp_path: Path) -> None:
    """The agent's hello names the checkout it imported bench from; --against refuses an agent that names another."""
    from bench.gate.against import AgainstOptions, AgentProcess

    root = Path(__file__).resolve().parent.parent
    options = AgainstOptions(ref="HEAD", suite="smoke", backend="memory", cache_dir=tmp_path / "cache")
    agent = AgentProcess("A", root, options, tmp_path / "run")
    try:
        assert agent.cases and all("/" in name for name in agent.cases)
    finally:
        agent.stop()


def test_an_agent_that_cannot_prepare_its_stores_says_why_in_one_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from bench.gate.against import AgainstOptions, AgentProcess
    from bench.gate.gate import GateError

    root = Path(__file__).resolve().parent.parent
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the seed cache's directory should be")
    options = AgainstOptions(ref="HEAD", suite="smoke", backend="sqlite", cache_dir=blocker)
    with pytest.raises(GateError, match=r"agent A could not prepare the smoke suite's stores in .*: \w+Error: "):
        AgentProcess("A", root, options, tmp_path / "run")
    assert "Traceback" not in capfd.readouterr().err
