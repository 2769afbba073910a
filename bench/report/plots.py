"""The report's plots: each function takes the tidy frame of `bench.results.load` and returns a Figure (or None).

Every plot gives a layout the same colour and marker, so a reader learns them once.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.report.document import time_unit
from bench.scenarios import param_columns

LAYOUT_ORDER = ("naive", "optimized", "batched", "indexed")
COLOURS = {"naive": "#d62728", "optimized": "#1f77b4", "batched": "#ff7f0e", "indexed": "#2ca02c"}
MARKERS = {"naive": "o", "optimized": "s", "batched": "^", "indexed": "D"}
LINESTYLES = {"naive": "-", "optimized": "--", "batched": "-.", "indexed": ":"}
EXTRA_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
SLICE_PARAMS = ("K", "limit", "offset", "status")
STATUS_TITLES = {"none": "no status filter", "rare": "status filter matching 1%", "half": "status filter matching 50%"}


def colour(layout: str) -> str:
    if layout in COLOURS:
        return COLOURS[layout]
    return EXTRA_COLOURS[hash(layout) % len(EXTRA_COLOURS)]


def layouts_of(df: pd.DataFrame) -> list[str]:
    present = set(df["layout"].dropna())
    return [lay for lay in LAYOUT_ORDER if lay in present] + sorted(present - set(LAYOUT_ORDER))


def select(df: pd.DataFrame, scenario: str, metric: str, **params: object) -> pd.DataFrame:
    """Rows of one scenario and metric whose parameters equal `params` (None matches a missing parameter)."""
    rows = df[(df["scenario"] == scenario) & (df["metric"] == metric)]
    for key, value in params.items():
        rows = rows[rows[key].isna()] if value is None else rows[rows[key] == value]
    return rows


def n_slice(df: pd.DataFrame) -> dict[str, Any] | None:
    """The list_by_name parameters besides N that were swept over the most N values (ties: no status filter, then
    the largest page); None when no slice has two N, since a plot against N needs two points."""
    rows = df[(df["scenario"] == "list_by_name") & (df["metric"] == "calls")]
    if rows.empty:
        return None
    spans = rows.groupby(list(SLICE_PARAMS), dropna=False)["N"].nunique()
    ranked: list[tuple[tuple[Any, ...], int]] = list(spans.items())  # type: ignore[arg-type]
    key, count = max(ranked, key=lambda kv: (kv[1], kv[0][3] == "none", kv[0][1]))
    return dict(zip(SLICE_PARAMS, key, strict=True)) if count >= 2 else None


def describe(params: dict[str, Any]) -> str:
    """K=1, limit=50, offset=0, no status filter."""
    text = [f"{k}={params[k]:g}" for k in SLICE_PARAMS if k in params and k != "status"]
    if "status" in params:
        text.append(STATUS_TITLES.get(params["status"], f"status={params['status']}"))
    return ", ".join(text)


def _figure(ncols: int = 1, width: float = 6.4, nrows: int = 1, height: float = 4.4) -> tuple[Figure, list[Axes]]:
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    return fig, list(axes.flat)


def style(layout: str) -> dict[str, Any]:
    """Colour, marker and size of a layout; sizes differ so lines that coincide stay visible."""
    rank = LAYOUT_ORDER.index(layout) if layout in LAYOUT_ORDER else len(LAYOUT_ORDER)
    return {
        "color": colour(layout),
        "marker": MARKERS.get(layout, "o"),
        "markersize": 10 - 1.5 * rank,
        "linewidth": 2.6 - 0.4 * rank,
        "label": layout,
    }


def _legend(fig: Figure, ax: Axes) -> None:
    fig.legend(*ax.get_legend_handles_labels(), title="layout", loc="outside right upper")


def _lines(ax: Axes, rows: pd.DataFrame, x: str, y: str = "value") -> None:
    for layout in layouts_of(rows):
        part = rows[rows["layout"] == layout].sort_values(x)
        ax.plot(part[x], part[y], **style(layout))


def counts_vs_n(df: pd.DataFrame) -> Figure | None:
    """KV calls and round trips per list call against N, log-log, one line per layout; a row per status filter."""
    chosen = n_slice(df)
    if chosen is None:
        return None
    slices = [{**chosen, "status": s} for s in STATUS_TITLES]
    slices = [p for p in slices if select(df, "list_by_name", "calls", **p)["N"].nunique() >= 2]
    fig, axes = _figure(2, width=5.2, nrows=len(slices), height=3.6)
    for row, params in enumerate(slices):
        for col, (metric, label) in enumerate((("calls", "KV calls"), ("round_trips", "round trips"))):
            ax = axes[row * 2 + col]
            _lines(ax, select(df, "list_by_name", metric, **params), "N")
            ax.set(xscale="log", yscale="log", xlabel="jobs in the store, N", ylabel=f"{label} per call")
            ax.set_title(f"{label} vs N, {STATUS_TITLES.get(params['status'], params['status'])}")
            ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes[0])
    fig.suptitle(f"Cost of one list_jobs call ({describe({k: v for k, v in chosen.items() if k != 'status'})})")
    return fig


def time_vs_n(df: pd.DataFrame) -> Figure | None:
    """Mean time per list call against N, log-log, with pyperf's standard deviation as error bars."""
    chosen = n_slice(df)
    if chosen is None:
        return None
    rows = select(df, "list_by_name", "time", **chosen)
    scale, unit = time_unit(rows["value"].tolist())
    fig, (ax,) = _figure()
    for layout in layouts_of(rows):
        part = rows[rows["layout"] == layout].sort_values("N")
        ax.errorbar(part["N"], part["value"] / scale, yerr=part["stdev"].fillna(0) / scale, capsize=3, **style(layout))
    ax.set(xscale="log", yscale="log", xlabel="jobs in the store, N", ylabel=f"time per call ({unit})")
    ax.set_title(f"Time per list_jobs call vs N\n({describe(chosen)})")
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, ax)
    return fig


def instructions_vs_n(df: pd.DataFrame) -> Figure | None:
    """CPU instructions per list call against N, log-log (callgrind: exact, so no error bars)."""
    chosen = n_slice(df)
    if chosen is None:
        return None
    rows = select(df, "list_by_name", "instructions", **chosen)
    if rows.empty:
        return None
    fig, (ax,) = _figure()
    _lines(ax, rows, "N")
    ax.set(xscale="log", yscale="log", xlabel="jobs in the store, N", ylabel="CPU instructions per call")
    ax.set_title(f"CPU instructions per list_jobs call vs N\n({describe(chosen)})")
    ax.grid(True, which="both", alpha=0.3)
    _legend(fig, ax)
    return fig


def rtt_points(df: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """rtt_sweep at its most swept parameter point: per layout and RTT the measured mean time (s) and its stdev, the
    model's network time (``predicted_s``), the local work (the layout's time at RTT 0, when swept) and their sum."""
    measured = select(df, "rtt_sweep", "time")
    if measured.empty:
        return None
    keys = ["N", *SLICE_PARAMS]
    point: tuple[Any, ...] = measured.groupby(keys, dropna=False).size().idxmax()  # type: ignore[assignment]
    params = dict(zip(keys, point, strict=True))  # one parameter point, if several were swept
    times = select(df, "rtt_sweep", "time", **params).set_index(["layout", "rtt_ms"])
    model = select(df, "rtt_sweep", "predicted_s", **params).set_index(["layout", "rtt_ms"])["value"]
    out = pd.DataFrame({"measured": times["value"], "stdev": times["stdev"], "model": model}).reset_index()
    local = out[out["rtt_ms"] == 0].set_index("layout")["measured"]
    out["local"] = out["layout"].map(local)
    out["predicted"] = out["model"] + out["local"]
    return params, out


def time_vs_rtt(df: pd.DataFrame) -> Figure | None:
    """rtt_sweep: measured time per call (points) and the prediction (lines) against RTT: the round-trip model's
    network time plus the local work measured at RTT 0 (the bare model where RTT 0 was not swept)."""
    found = rtt_points(df)
    if found is None:
        return None
    params, rows = found
    scale, unit = time_unit(rows["measured"].tolist())
    fig, (ax,) = _figure(width=7.0, height=5.0)
    for layout in layouts_of(rows):
        part = rows[rows["layout"] == layout].sort_values("rtt_ms")
        marks = {**style(layout), "label": f"{layout} measured", "linestyle": "none"}
        ax.plot(part["rtt_ms"], part["measured"] / scale, zorder=3, **marks)
        predicted = part["predicted"].fillna(part["model"])
        keep = predicted > 0
        lines = {**style(layout), "marker": None, "linestyle": "--", "label": f"{layout} predicted"}
        ax.plot(part["rtt_ms"][keep], predicted[keep] / scale, **lines)
    ax.set(
        yscale="log",
        xlabel="simulated network round-trip time, RTT (ms)",
        ylabel=f"time per call ({unit})",
    )
    ax.set_title(
        f"Time per list_jobs call vs RTT, measured (markers) and predicted (dashed)\n(N={params['N']:g}, "
        f"{describe(params)})"
    )
    ax.set_xticks(sorted(rows["rtt_ms"].unique()))
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize="small")
    return fig


def speedup_heatmap(df: pd.DataFrame) -> Figure | None:
    """Speedup (naive time / layout time) of each layout over naive, on the N x limit grid of list_by_name."""
    chosen = n_slice(df) or {"K": 1, "offset": 0, "status": "none"}
    fixed = {k: chosen[k] for k in ("K", "offset", "status")}
    rows = select(df, "list_by_name", "time", **fixed)
    others = [lay for lay in layouts_of(rows) if lay != "naive"]
    if rows.empty or "naive" not in set(rows["layout"]) or not others:
        return None
    grid = rows.pivot_table(index=["limit", "N"], columns="layout", values="value")
    speedups = {lay: (grid["naive"] / grid[lay]).unstack("N") for lay in others}
    top = max(max(float(np.nanmax(s.to_numpy())) for s in speedups.values()), 2.0)
    fig, axes = _figure(len(others), width=4.2)
    for ax, layout in zip(axes, others, strict=True):
        image = _heat(ax, speedups[layout], top)
        ax.set_title(f"{layout} over naive")
    fig.colorbar(image, ax=axes, label="speedup (naive time / layout time)")
    title = f"Speedup over naive, time per list_jobs call ({describe(fixed)}); grey: not measured"
    fig.suptitle(_wrap(fig, title))
    return fig


def _wrap(fig: Figure, title: str) -> str:
    """A figure title broken into lines that fit the figure's width (about 10 characters per inch at 12 pt)."""
    return textwrap.fill(title, width=max(int(fig.get_figwidth() * 10), 20))


def _heat(ax: Axes, table: pd.DataFrame, top: float) -> Any:
    values = table.to_numpy(dtype=float)
    cmap = matplotlib.colormaps["RdYlGn"].with_extremes(bad="#dddddd")
    image = ax.imshow(values, cmap=cmap, norm=matplotlib.colors.LogNorm(1 / top, top), aspect="auto", origin="lower")
    ax.set_xticks(range(len(table.columns)), [f"{n:g}" for n in table.columns])
    ax.set_yticks(range(len(table.index)), [f"{v:g}" for v in table.index])
    ax.set(xlabel="jobs in the store, N", ylabel="page size, limit")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            dark = value > top**0.6 or value < top**-0.6
            label = f"{value:,.0f}×" if value >= 100 else f"{value:.1f}×"
            ax.text(j, i, label, ha="center", va="center", fontsize=10, color="white" if dark else "black")
    return image


def bytes_written(df: pd.DataFrame) -> Figure | None:
    """write_path: bytes written per operation, grouped by operation, one bar per layout (write amplification)."""
    rows = select(df, "write_path", "bytes_written")
    if rows.empty:
        return None
    ops = list(dict.fromkeys(rows["op"]))
    layouts = layouts_of(rows)
    fig, (ax,) = _figure(width=7.2)
    width = 0.8 / len(layouts)
    for i, layout in enumerate(layouts):
        values = [rows[(rows["layout"] == layout) & (rows["op"] == op)]["value"].sum() for op in ops]
        bars = ax.bar(
            np.arange(len(ops)) + i * width - 0.4 + width / 2, values, width, color=colour(layout), label=layout
        )
        ax.bar_label(bars, fmt="%g", fontsize=7, rotation=90, padding=2)
    ax.margins(y=0.12)  # room for the labels above the tallest bar
    ax.set(
        xticks=range(len(ops)),
        xticklabels=ops,
        xlabel="operation",
        ylabel="bytes written per operation",
        title="Write amplification: bytes written per operation",
    )
    ax.grid(True, axis="y", alpha=0.3)
    _legend(fig, ax)
    return fig


def break_even_ratio(read: float, write: float, base_read: float, base_write: float) -> float | None:
    """Reads per write above which a layout costs less than the baseline (None: never, 0: always)."""
    saved, extra = base_read - read, write - base_write
    if saved <= 0:
        return None if extra >= 0 else 0.0
    return max(extra / saved, 0.0)


Costs = dict[str, tuple[float, float]]


def mixed_costs(df: pd.DataFrame, unit: str = "round_trips") -> Costs:
    """Per layout, in layout order: (read cost per page, write cost per job) from the mixed scenario's figures."""
    read = select(df, "mixed", f"read_{unit}_per_page").groupby("layout")["value"].mean()
    write = select(df, "mixed", f"write_{unit}_per_job").groupby("layout")["value"].mean()
    both = [lay for lay in LAYOUT_ORDER if lay in read.index and lay in write.index]
    both += sorted(set(read.index) & set(write.index) - set(both))
    return {lay: (float(read[lay]), float(write[lay])) for lay in both}


def layout_break_even(costs: Costs, layout: str) -> float | None:
    """break_even_ratio of a layout against naive (None also when naive was not measured)."""
    if "naive" not in costs or layout not in costs:
        return None
    return break_even_ratio(*costs[layout], *costs["naive"])


def break_even(df: pd.DataFrame) -> Figure | None:
    """Mixed workload: KV cost per job as the number of page reads per job written grows; crossings are break-evens."""
    panels = [(unit, mixed_costs(df, unit)) for unit in ("round_trips", "bytes")]
    panels = [(unit, costs) for unit, costs in panels if "naive" in costs]  # break-evens are against naive
    if not panels:
        return None
    fig, axes = _figure(len(panels), width=5.6)
    for ax, (unit, costs) in zip(axes, panels, strict=True):
        ratios = np.logspace(*_break_even_span(costs), 200)
        for i, (layout, (r, w)) in enumerate(costs.items()):
            # markers at staggered positions: lines that coincide (same costs) still show every layout's marker
            marks = {**style(layout), "linestyle": LINESTYLES.get(layout, "-"), "markevery": (4 + 7 * i, 28)}
            ax.plot(ratios, r * ratios + w, **marks)
        _mark_break_evens(ax, costs)
        label = "round trips" if unit == "round_trips" else "bytes"
        ax.set(
            xscale="log",
            yscale="log",
            xlabel="pages read per job written",
            ylabel=f"KV {label} per job written",
            title=f"Mixed workload: {label}",
        )
        ax.grid(True, which="both", alpha=0.3)
    _legend(fig, axes[0])
    fig.suptitle("Mixed workload: cost per job as reads grow; a dot marks where a layout starts to beat naive")
    return fig


def _break_evens(costs: Costs) -> dict[str, float]:
    """Each layout's break-even against naive, where there is a crossing (not "never", not "always")."""
    ratios = {layout: layout_break_even(costs, layout) for layout in costs if layout != "naive"}
    return {layout: ratio for layout, ratio in ratios.items() if ratio}


def _break_even_span(costs: Costs) -> tuple[float, float]:
    """log10 of the x range: 0.01 to 100 pages per job, widened to show every break-even with a decade around it."""
    found = [math.log10(r) for r in _break_evens(costs).values()]
    return min([-2.0, *(f - 1 for f in found)]), max([2.0, *(f + 1 for f in found)])


def _mark_break_evens(ax: Axes, costs: Costs) -> None:
    """A dot in the layout's marker at each break-even, larger first so that one on top of another leaves a ring,
    and its ratio written beside it, one line lower per layout so that labels of close points do not overlap."""
    read, write = costs["naive"]
    for i, (layout, ratio) in enumerate(_break_evens(costs).items()):
        dot = style(layout)
        ax.plot([ratio], [read * ratio + write], marker=dot["marker"], color=dot["color"],
                markersize=dot["markersize"] + 4, markeredgecolor="black", linestyle="none", zorder=4 + i)  # fmt: skip
        ax.annotate(
            f"{layout}: {ratio:.3g}",
            (ratio, read * ratio + write),
            xytext=(10, -12 - 12 * i),
            textcoords="offset points",
            fontsize=8,
            color=dot["color"],
        )


# -- slicing the frame by hand (the notebook) ---------------------------------------------------------------------


def slice_rows(df: pd.DataFrame, selection: Mapping[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """The rows whose columns equal ``selection``, and the columns that still vary among them: every row is one
    benchmark's metric, so a table indexed by all of those (and the layout) has one value per cell, never a mean."""
    mask = pd.Series(True, index=df.index)
    for column, value in selection.items():
        mask &= df[column] == value
    part = df[mask]
    # Besides the parameters, a slice can leave free several scenarios or metrics at once.
    free = [
        c
        for c in ("scenario", "metric", *param_columns())
        if c in part and c not in selection and part[c].nunique(dropna=True) > 1
    ]
    return part, free


def slice_table(df: pd.DataFrame, selection: Mapping[str, Any]) -> pd.DataFrame:
    """``slice_rows`` as a table: one row per combination of the free columns, one column per layout."""
    part, free = slice_rows(df, selection)
    if part.empty:
        return pd.DataFrame()
    index = free or ["metric"]
    filled = part.assign(**{c: part[c].astype(object).where(part[c].notna(), "–") for c in index})
    table = filled.pivot_table(index=index, columns="layout", values="value", aggfunc=_one)
    return table[[lay for lay in layouts_of(part) if lay in table.columns]]


def _one(values: pd.Series) -> Any:
    if len(values) != 1:
        raise ValueError(f"{len(values)} values in one cell of a slice: a free column is missing from its index")
    return values.iloc[0]


def slice_plot(df: pd.DataFrame, selection: Mapping[str, Any], x: str = "N") -> Figure | None:
    """The slice against ``x`` (log-log): one line per layout and combination of the other free columns. A layout
    keeps its colour family; its lines get distinct shades, markers and line styles."""
    part, free = slice_rows(df, selection)
    others = [c for c in free if c != x]
    if part.empty or x not in free:
        return None
    fig, (ax,) = _figure(width=7.0)
    for layout in layouts_of(part):
        mine = part[part["layout"] == layout]
        groups = list(mine.groupby(others, dropna=False)) if others else [((), mine)]
        for i, (key, group) in enumerate(groups):
            values = key if isinstance(key, tuple) else (key,)
            label = ", ".join([layout, *(f"{c}={v:g}" if isinstance(v, float) else f"{c}={v}" for c, v in
                                         zip(others, values, strict=True))])  # fmt: skip
            ax.plot(*group.sort_values(x)[[x, "value"]].T.to_numpy(), label=label, color=shade(layout, i, len(groups)),
                    marker="osD^vP*X"[i % 8], linestyle=("-", "--", "-.", ":")[i % 4])  # fmt: skip
    metric = selection.get("metric", "value")
    ax.set(xscale="log", yscale="log", xlabel=x, ylabel=str(metric), title=_wrap(fig, str(dict(selection))))
    ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    return fig


def shade(layout: str, i: int, n: int) -> tuple[float, float, float]:
    """The i-th of n distinct shades of a layout's colour: from darker (i=0) to lighter."""
    base = np.array(matplotlib.colors.to_rgb(colour(layout)))
    if n <= 1:
        return (float(base[0]), float(base[1]), float(base[2]))
    t = i / (n - 1)  # 0 .. 1: darkened by 40% at 0, lightened by 55% towards white at 1
    mixed = base * (1 - 0.4 * (1 - t)) + (np.ones(3) - base) * 0.55 * t
    return (float(mixed[0]), float(mixed[1]), float(mixed[2]))
