"""qbench report: a self-contained index.html and a README.md with its PNGs, all computed from the results file."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import ResultsError
from bench.report.report import report
from tests.synthetic_results import Spec, write_results

PLOTS = ("counts_vs_n", "time_vs_n", "time_vs_rtt", "speedup_heatmap", "bytes_written", "break_even")


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    assert main(["report", str(write_results(tmp / "results.json")), "-o", str(tmp / "latest")]) == 0
    return tmp / "latest"


def test_writes_readme_html_and_every_plot(out: Path) -> None:
    names = {p.name for p in out.iterdir()}
    assert names == {"index.html", "README.md", *(f"{p}.png" for p in PLOTS)}
    for plot in PLOTS:
        assert (out / f"{plot}.png").read_bytes().startswith(b"\x89PNG")


def test_html_is_self_contained(out: Path) -> None:
    page = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == len(PLOTS)
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"href=|url\(|<script|<link", page)
    first = base64.b64decode(sources[0].split(",", 1)[1])
    assert first == (out / "counts_vs_n.png").read_bytes()


def test_readme_links_the_pngs_beside_it(out: Path) -> None:
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", (out / "README.md").read_text())
    assert sorted(links) == sorted(f"{p}.png" for p in PLOTS)


def test_headline_recomputes_the_seed_case(out: Path) -> None:
    text = (out / "README.md").read_text()
    assert 'The seed claimed 101 queries -> 100 for 100 jobs, a "50% reduction".' in text
    assert "**Measured: naive 101 KV calls -> optimized 1 (99% fewer); round trips 102 -> 2; time " in text
    assert "| naive | 101 | 102 | 200 | 22000 | 2.97 ms ± " in text


def test_complexity_findings_and_environment(out: Path) -> None:
    text = (out / "README.md").read_text()
    assert (
        "| naive | O(1) | O(1) | O(1) | O(1) | ~O(1) | O(N) (round_trips, K=1, limit=100, offset=0, status=rare) |"
        in text
    )
    assert (
        '| naive | `queue_impls/jobs/naive.py:88` | `list ("jobs_by_name", ?)` | `get ("jobs", ?)` | 19 | 10000 |'
        in text
    )
    assert "| backend version | 3.45.1 |" in text and "| CPU | Synthetic CPU @ 2.0GHz |" in text
    assert "| optimized | 2 | 6 | always | 0.675 |" in text


def test_escapes_text_from_the_results_file(out: Path) -> None:
    page = (out / "index.html").read_text()
    assert "<code>list (&quot;jobs_by_name&quot;, ?)</code>" in page


def test_the_worker_path_section_shows_each_points_cost_per_job(tmp_path: Path) -> None:
    results = write_results(tmp_path / "r.json", Spec(layouts=("naive", "indexed"), worker_path=True))
    report(results=results, out=tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    start = text.index("## The worker path")
    section = text[start : text.index("\n## ", start)]
    assert "concurrency 1, batch 1: 1.42; concurrency 8, batch 1: 0.40; concurrency 8, batch 8: 0.38." in section
    # round trips = finding + committing, per job; time per job = the run's time / N
    assert "| naive | 1 | 1 | 0 | 1.42 | 0.40 | 1.02 | 1.00 | 10.08 | 260 | 47." in section
    assert "| indexed | 8 | 8 | 0 | 0.38 | 0.22 | 0.16 | 1.12 | 8.40 | 620 | " in section
    assert section.count("\n| naive |") == 3 and section.count("\n| indexed |") == 3


def test_no_worker_path_section_without_its_benchmarks(out: Path) -> None:
    assert "## The worker path" not in (out / "README.md").read_text()


def test_a_partial_results_file_still_reports(tmp_path: Path) -> None:
    results = write_results(tmp_path / "r.json", Spec(layouts=("naive",), ns=(100,), rtts=()))
    report(results=results, out=tmp_path / "out")
    text = (tmp_path / "out" / "README.md").read_text()
    assert "no complexity classes" in text and "bytes_written.png" in text
    assert not {"counts_vs_n.png", "speedup_heatmap.png", "time_vs_rtt.png"} & {
        p.name for p in (tmp_path / "out").iterdir()
    }


def test_a_foreign_file_is_refused_before_writing(tmp_path: Path) -> None:
    foreign = tmp_path / "f.json"
    foreign.write_text('{"benchmarks": 3}')
    with pytest.raises(ResultsError):
        report(results=foreign, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
