"""Details of what reporting shows: the notebook's slice, compare's labels, export's integers, two plots' legibility."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.lines import Line2D

from bench.cli import main
from bench.gate.compare import compare
from bench.report import plots
from bench.results import COLUMNS
from tests.synthetic_results import Spec, write_results

matplotlib.use("Agg")


def listing_frame() -> pd.DataFrame:
    """round_trips of list_by_name at N=1000: K and offset swept at limit 50, limit swept at K=1, offset 0."""
    points = [(1, 50, 0, 2), (10, 50, 0, 3), (1, 50, 500, 3), (1, 10, 0, 2), (1, 100, 0, 4)]
    rows: list[dict[str, Any]] = []
    for n in (100, 1000):
        for k, limit, offset, value in points:
            for layout, scale in (("naive", 10), ("indexed", 1)):
                rows.append(
                    {
                        **dict.fromkeys(COLUMNS),
                        "scenario": "list_by_name",
                        "layout": layout,
                        "N": n,
                        "K": k,
                        "limit": limit,
                        "offset": offset,
                        "status": "none",
                        "metric": "round_trips",
                        "kind": "count",
                        "value": float(value * scale),
                    }
                )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_a_slice_never_averages_over_a_parameter_it_leaves_free() -> None:
    df = listing_frame()
    selection = {"scenario": "list_by_name", "metric": "round_trips", "status": "none"}
    mean = df[(df["N"] == 1000) & (df["limit"] == 50) & (df["layout"] == "indexed")]["value"].mean()
    assert round(mean, 2) == 2.67  # what a pivot on limit and N alone showed
    part, free = plots.slice_rows(df, selection)
    assert free == ["N", "K", "limit", "offset"] and len(part) == len(df)
    table = plots.slice_table(df, selection)
    assert list(table.index.names) == free and list(table.columns) == ["naive", "indexed"]
    assert len(table) * 2 == len(df) and all(float(v).is_integer() for v in table.to_numpy().flat)
    assert table.loc[(1000, 10, 50, 0), "indexed"] == 3 and table.loc[(1000, 1, 50, 500), "indexed"] == 3


def test_a_slice_plot_gives_each_line_its_own_colour_and_marker() -> None:
    fig = plots.slice_plot(listing_frame(), {"scenario": "list_by_name", "metric": "round_trips", "K": 1, "offset": 0})
    assert fig is not None
    lines = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("naive")]
    assert [line.get_label() for line in lines] == ["naive, limit=10", "naive, limit=50", "naive, limit=100"]
    assert len({line.get_color() for line in lines}) == 3 and len({line.get_marker() for line in lines}) == 3
    assert {line.get_color() for line in lines}.isdisjoint(
        {line.get_color() for line in fig.axes[0].get_lines() if line.get_label().startswith("indexed")}
    )


def test_compare_does_not_call_a_figure_derived_from_time_exact(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base.json")
    new = write_results(tmp_path / "new.json", Spec(seed=5, time_factor=1.5))
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in compare(base=base, new=new).splitlines()
            if line.startswith("| ")}  # fmt: skip
    jobs = rows["worker_throughput/naive/N=200,concurrency=1", "jobs_per_s"]
    assert "exact" not in jobs.replace("not exact", "") and "derived from the time" in jobs
    assert rows["rtt_sweep/naive/N=100,K=1,limit=100,offset=0,status=none,rtt_ms=5.0", "predicted_s"].endswith(
        "| exact |"
    )


def test_export_writes_integer_counts_as_integers(tmp_path: Path) -> None:
    assert main(["export", str(write_results(tmp_path / "r.json")), "-o", str(tmp_path / "r.csv")]) == 0
    with (tmp_path / "r.csv").open() as f:
        rows = list(csv.DictReader(f))
    seed = {r["metric"]: r for r in rows if r["benchmark"].startswith("seed_case/naive/")}
    assert seed["calls"]["value"] == "101" and seed["bytes_read"]["value"] == "22000"
    assert (seed["calls"]["N"], seed["calls"]["limit"]) == ("100", "100")
    assert "." in seed["time"]["value"]  # times stay floats
    per_job = [r for r in rows if r["benchmark"].startswith("worker_throughput/") and r["metric"] == "round_trips"]
    assert per_job and all("." in r["value"] or float(r["value"]).is_integer() for r in per_job)
    rtts = {r["rtt_ms"] for r in rows if r["scenario"] == "rtt_sweep"}
    assert rtts == {"0", "1", "5", "20"}


def test_the_heatmap_title_fits_with_one_layout(tmp_path: Path) -> None:
    df = plots_frame(tmp_path, ("naive", "optimized"))
    fig = plots.speedup_heatmap(df)
    assert fig is not None
    fig.canvas.draw()
    title = fig.get_suptitle()
    box = fig._suptitle.get_window_extent()  # type: ignore[union-attr]
    assert "grey: not measured" in title.replace("\n", " ")
    assert box.x0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1


def plots_frame(tmp_path: Path, layouts: tuple[str, ...]) -> pd.DataFrame:
    from bench.results import load

    return load(write_results(tmp_path / "r.json", Spec(layouts=layouts)))


def break_even_frame(costs: dict[str, tuple[float, float]], unit: str = "bytes") -> pd.DataFrame:
    rows = []
    for layout, (read, write) in costs.items():
        for metric, value in ((f"read_{unit}_per_page", read), (f"write_{unit}_per_job", write)):
            rows.append({**dict.fromkeys(COLUMNS), "scenario": "mixed", "layout": layout, "metric": metric,
                         "kind": "derived", "value": value})  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_both_close_break_even_points_are_visible_and_labelled() -> None:
    # the committed report's bytes: optimized beats naive above 0.142 pages per job, indexed above 0.138
    costs = {"naive": (50854, 2596), "optimized": (42554, 3773), "batched": (30454, 2596), "indexed": (21304, 6664)}
    fig = plots.break_even(break_even_frame(costs))
    assert fig is not None
    ax = fig.axes[0]
    dots = {line.get_marker(): line for line in ax.get_lines() if len(line.get_xdata()) == 1}
    assert set(dots) == {"s", "D"}  # optimized's square and indexed's diamond; batched always wins: no crossing
    assert dots["s"].get_markersize() > dots["D"].get_markersize()  # the one beneath is larger: a ring shows
    assert dots["s"].get_zorder() < dots["D"].get_zorder()
    labels = sorted(text.get_text() for text in ax.texts)
    assert labels == ["indexed: 0.138", "optimized: 0.142"]
    offsets = {text.get_text(): text.xyann for text in ax.texts}  # type: ignore[attr-defined]
    assert offsets["indexed: 0.138"] != offsets["optimized: 0.142"]


def test_a_break_even_outside_the_default_range_widens_it() -> None:
    costs = {"naive": (10.0, 1.0), "indexed": (9.0, 400.0)}  # indexed wins only above 399 pages per job
    fig = plots.break_even(break_even_frame(costs))
    assert fig is not None
    low, high = fig.axes[0].get_xlim()
    assert low <= 1e-2 and high >= 399 * 10
    assert [t.get_text() for t in fig.axes[0].texts] == ["indexed: 399"]


def test_coinciding_layouts_show_their_markers_at_different_places() -> None:
    costs = {"naive": (102.0, 5.45), "optimized": (1.0, 5.45), "batched": (6.0, 5.45), "indexed": (1.0, 5.45)}
    fig = plots.break_even(break_even_frame(costs, "round_trips"))
    assert fig is not None
    lines: dict[str, Line2D] = {str(line.get_label()): line for line in fig.axes[0].get_lines()}
    opt, idx = lines["optimized"], lines["indexed"]
    assert list(opt.get_ydata()) == list(idx.get_ydata())  # one line drawn twice
    assert (opt.get_marker(), opt.get_linestyle()) != (idx.get_marker(), idx.get_linestyle())
    marked = [set(_marked_x(line)) for line in (opt, idx)]
    assert marked[0] and marked[1] and marked[0].isdisjoint(marked[1])


def _marked_x(line: Line2D) -> list[float]:
    start, step = line.get_markevery()  # type: ignore[misc]
    return [float(x) for x in list(line.get_xdata())[start::step] if math.isfinite(float(x))]
