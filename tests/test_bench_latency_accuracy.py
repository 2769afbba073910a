"""bench.run.latency_accuracy, smoke-tested cheaply: one RTT, one block, serial and concurrent, both stores."""

from __future__ import annotations

import pytest

from bench.run import latency_accuracy


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_prints_measured_against_predicted_per_rtt(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    latency_accuracy.main(["--rtt", "0.5,2", "--blocks", "1", "--concurrency", "2", "--store", store])
    out = capsys.readouterr().out
    lines = [line.split() for line in out.splitlines() if line.strip().startswith(("0.5 ", "2 "))]
    assert [(row[0], row[1]) for row in lines] == [
        ("0.5", "serial"),
        ("0.5", "concurrent"),
        ("2", "serial"),
        ("2", "concurrent"),
    ]
    assert "worst meas/pred:" in out and "load average" in out


def test_a_point_predicts_rtt_plus_local_work() -> None:
    point = latency_accuracy.Point(1.0, "serial", 1, 50, 50, measured_s=1.02e-3, mean_s=1.1e-3, local_s=10e-6)
    assert point.predicted_s == pytest.approx(1.01e-3)
    assert point.ratio == pytest.approx(1.02 / 1.01) and point.error_us == pytest.approx(10.0)
    assert latency_accuracy.Point(**point.to_json()) == point


def test_chains_fit_a_block() -> None:
    assert [latency_accuracy.chain_length(r) for r in (0.1, 1.0, 100.0)] == [200, 50, 3]


def test_the_suite_measurement_covers_its_rtts() -> None:
    points = latency_accuracy.for_suite("smoke")
    assert [(p.rtt_ms, p.mode) for p in points] == [(1.0, "serial"), (1.0, "concurrent")]
    assert all(p.round_trips == latency_accuracy.chain_length(1.0) and p.measured_s > 1e-3 for p in points)
