"""The README's worked example runs exactly as shown, with the output the README quotes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
