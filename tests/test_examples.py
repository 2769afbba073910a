"""The README's worked example runs exactly as shown, with the output the README quotes; the plug-in example of
examples/README.md runs end to end."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.results import load, load_suite
from queue_impls.jobs import Queue

ROOT = Path(__file__).resolve().parents[1]


def test_the_quickstart_prints_what_the_readme_shows() -> None:
    done = subprocess.run(
        [sys.executable, "examples/quickstart.py"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "naive: 100 jobs in 101 KV calls, 102 round trips"
    assert lines[1].startswith('  N+1: 100 x get ("jobs", ?) at queue_impls/jobs/layouts/naive.py:')
    assert lines[2:] == ["  ran 100 jobs", "optimized: 100 jobs in 1 KV calls, 1 round trips", "  ran 100 jobs"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert done.stdout.strip() in readme  # the README quotes this very output


def test_the_readme_budget_test_passes_as_written(pytester) -> None:  # type: ignore[no-untyped-def]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("async def test_listing_stays_cheap")
    block = readme[start : readme.index("```", start)]
    pytester.makepyfile(test_budget="from queue_impls.jobs import Queue\n\n\n" + block)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-o", "asyncio_mode=auto")
    result.assert_outcomes(passed=1)


def _readme_commands() -> list[list[str]]:
    """The shell commands examples/README.md shows for the plug-in, split into arguments."""
    text = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    block = text[text.index("```sh\n") + len("```sh\n") :]
    return [shlex.split(line) for line in block[: block.index("```")].splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(600)  # the callgrind pass over the plug-in's benchmarks: seconds idle, minutes on a loaded machine
def test_the_plugin_example_runs_as_its_readme_shows(tmp_path: Path) -> None:
    """The README's two commands, with the output directory moved to a temporary one: the plug-in's layout and
    function scenario are in the results file with exact counts, N+1 findings and times, and in the report."""
    commands = _readme_commands()
    assert [c[:3] for c in commands] == [
        [".venv/bin/qbench", "run", "--plugin"],
        [".venv/bin/qbench", "report", "reports/examples/results.json"],
    ]
    out = tmp_path / "examples"
    for command in commands:
        args = [arg.replace("reports/examples", str(out)) for arg in command[1:]]
        done = subprocess.run(
            [sys.executable, "-m", "bench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr
        if command[1] == "run":
            assert "7 benchmarks (-k matched 7 of 97)" in done.stdout
    frame = load(out / "results.json")
    calls = frame[frame.metric == "calls"].set_index("benchmark").value
    assert calls["seed_case/by_status/N=100,K=1,limit=100,offset=0,status=none"] == 4  # one list per status
    assert calls["customer_orders/store/N=20,fetch=one_by_one"] == 21
    assert calls["customer_orders/store/N=20,fetch=get_many"] == 3
    assert set(frame[frame.kind == "time"].benchmark) == set(calls.index)
    findings = {b.get_name(): json.loads(str(b.get_metadata()["kvq_nplus1"])) for b in load_suite(out / "results.json")}
    assert [(f["count"], f["fingerprint"]) for f in findings["customer_orders/store/N=20,fetch=one_by_one"]] == [
        (20, 'get ("orders", ?)')
    ]
    assert findings["customer_orders/store/N=20,fetch=get_many"] == []
    if shutil.which("valgrind"):
        assert set(frame[frame.metric == "instructions"].benchmark) == set(calls.index)
    report = (out / "README.md").read_text(encoding="utf-8")
    assert "## Plug-in scenarios" in report and "`customer_orders/store/N=20,fetch=one_by_one` | 21 | 21 |" in report
    assert "| by_status | 4 | 4 |" in report


@pytest.fixture
def plugin_imported(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """examples.plugin imported in this process, and gone afterwards with what it registered: the registry tests
    compare the registries with the built-ins."""
    import bench.scenarios as scenario_registry
    from queue_impls.jobs import layouts as layout_registry

    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.setattr(layout_registry, "_REGISTRY", dict(layout_registry._REGISTRY))
    monkeypatch.setattr(scenario_registry, "_REGISTRY", dict(scenario_registry._REGISTRY))
    import examples.plugin  # noqa: F401  (registers by_status and customer_orders)

    yield
    sys.modules.pop("examples.plugin", None)


async def test_the_example_layout_lists_what_indexed_lists_and_keeps_its_index_whole(plugin_imported: None) -> None:
    """by_status (examples/plugin.py) answers every filter as the built-in indexed layout does, after adds, claims,
    completions, failures and deletes, and check_integrity finds no index entry missing or orphaned."""
    import random

    from queue_impls.jobs import FakeClock, JobStatus
    from queue_impls.jobs.integrity import check_integrity
    from queue_impls.kv import open_kv

    async def build(layout: str) -> tuple[object, Queue]:
        kv = await open_kv("memory:")
        queue = Queue(kv, layout, clock=FakeClock(), rng=random.Random(0))
        steps = random.Random(1)
        ids = [await queue.add(f"n{i % 3}", {"i": i}, max_attempts=1) for i in range(60)]
        for _ in range(40):
            [lease] = await queue.claim("w", max_jobs=1)
            if steps.random() < 0.3:
                await queue.fail(lease, "x")
            elif steps.random() < 0.8:
                await queue.complete(lease)
        for i in range(0, 60, 7):
            await queue.delete(ids[i])
        return kv, queue

    (_, indexed), (kv, by_status) = await build("indexed"), await build("by_status")
    for status in [None, *JobStatus]:
        for name in [None, "n0", "n1"]:
            for limit, offset in [(5, 0), (10, 3), (100, 0)]:
                want = await indexed.list_jobs(status=status, name=name, limit=limit, offset=offset)
                got = await by_status.list_jobs(status=status, name=name, limit=limit, offset=offset)
                assert [(j.name, j.data, j.status) for j in got] == [(j.name, j.data, j.status) for j in want]
    problems = await check_integrity(kv, "by_status")  # type: ignore[arg-type]
    assert {p.kind for p in problems} <= {"expired_lease"}  # the fake clock's leases, not the layout's index


def _seed_table(text: str) -> list[str]:
    """The rows of the first table whose header starts "| layout | KV calls" (header, rule and one row per layout)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| layout | KV calls"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_the_readme_shows_the_committed_report_figures() -> None:
    """The README's seed-case table is the committed report's, figure for figure: no number there is typed in."""
    readme = (ROOT / "README.md").read_text()
    report = (ROOT / "reports" / "latest" / "README.md").read_text()
    assert _seed_table(readme) == _seed_table(report)
