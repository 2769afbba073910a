"""The report's RTT section: prediction = network model + local work at RTT 0, and the injector's measured error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyperf
import pytest

from bench.report import plots
from bench.report.report import report
from bench.results import load
from bench.run import latency_accuracy
from tests.synthetic_results import Spec, write_results

INJECTOR = [
    latency_accuracy.Point(0.1, "serial", 1, 200, 200, 103e-6, 140e-6, 2.5e-6).to_json(),
    latency_accuracy.Point(0.1, "concurrent", 4, 200, 800, 104e-6, 150e-6, 2.5e-6).to_json(),
    latency_accuracy.Point(20.0, "serial", 1, 3, 9, 20.05e-3, 20.3e-3, 9e-6, asyncio_sleep_s=21e-3).to_json(),
]


def with_injector(path: Path) -> Path:
    suite = pyperf.BenchmarkSuite.load(str(path))
    for bench in suite.get_benchmarks():
        if bench.get_metadata()["kvq_scenario"] == "rtt_sweep":
            bench.update_metadata({"kvq_latency_model": json.dumps(INJECTOR)})
    suite.dump(str(path), replace=True)
    return path


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("rtt")
    report(results=with_injector(write_results(tmp / "r.json", Spec(noise=0.0))), out=tmp / "out")
    readme = (tmp / "out" / "README.md").read_text()
    return readme[readme.index("## Network round-trip time") : readme.index("## Speedup over naive")]


def test_prediction_adds_the_local_work_measured_at_rtt_0(tmp_path: Path) -> None:
    df = load(write_results(tmp_path / "r.json", Spec(noise=0.0)))
    found = plots.rtt_points(df)
    assert found is not None
    rows = found[1]
    naive = rows[rows["layout"] == "naive"].set_index("rtt_ms")
    local = naive.at[0.0, "measured"]
    assert naive.at[5.0, "predicted"] == pytest.approx(naive.at[5.0, "model"] + local)
    # synthetic times are round trips x (25 us + RTT) + local work: serial code meets its prediction exactly
    assert (naive["measured"] / naive["predicted"]).to_list() == pytest.approx([1.0] * 4)


def test_the_section_states_the_local_work_and_the_agreement(text: str) -> None:
    assert "plus the local work: the same call measured at RTT 0" in text
    assert "the store's own time" in text and "the queue's code between round trips" in text
    assert re.search(r"At every RTT swept, measured / predicted is between 1\.000 and 1\.000: within 0\.0%", text)
    assert "| layout | local work (RTT 0) | RTT 1 ms: measured / predicted | RTT 5 ms: measured / predicted |" in text
    assert "| naive | 2.96 ms | 105 ms / 105 ms (1.000) | 513 ms / 513 ms (1.000) | 2.04 s / 2.04 s (1.000) |" in text


def test_the_section_shows_the_injectors_own_error(text: str) -> None:
    assert "**The model's own error.**" in text and "4 on one event loop (concurrent)" in text
    # worst: 0.1 ms concurrent, 104 us measured against 100 + 2.5 us predicted
    assert "Worst measured / predicted: 1.015 (RTT 0.1 ms, concurrent)" in text and "within 1.5%" in text
    assert "| 0.1 | 2.5 µs | 1.005 | +0.5 µs | 1.015 | 1.366 |" in text
    assert "| 20 | 9.0 µs | 1.002 | +41.0 µs | – | 1.015 |" in text


def test_no_injector_record_no_injector_table(tmp_path: Path) -> None:
    report(results=write_results(tmp_path / "r.json"), out=tmp_path / "out")
    assert "The model's own error" not in (tmp_path / "out" / "README.md").read_text()
