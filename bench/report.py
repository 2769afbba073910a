"""`qbench report`: turn one results file into index.html (self-contained) and README.md with PNG plots beside it.

Everything shown is computed from the results file; see docs/reports.md for what each section means.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pyperf

from bench import plots
from bench.complexity import classify
from bench.document import Block, Figure, Heading, Paragraph, Table, fmt_time, to_html, to_markdown
from bench.results import benchmark_info, load, load_suite

HEADLINE_METRICS = (
    ("calls", "KV calls"),
    ("round_trips", "round trips"),
    ("entries_read", "entries read"),
    ("bytes_read", "bytes read"),
)
COMPLEXITY_METRICS = ("calls", "round_trips", "entries_read", "bytes_read")
SEED_CLAIM = '101 queries -> 100 for 100 jobs, a "50% reduction"'
ENV_KEYS = (
    ("kvq_suite", "suite"),
    ("kvq_backend", "backend"),
    ("kvq_backend_version", "backend version"),
    ("kvq_rtt_ms", "RTT sweep (ms)"),
    ("kvq_version", "kvq-bench version"),
    ("kvq_git_commit", "git commit"),
    ("python_version", "Python"),
    ("python_implementation", "implementation"),
    ("cpu_model_name", "CPU"),
    ("cpu_count", "CPU count"),
    ("platform", "platform"),
)
DPI = 110


SeedCounts = dict[str, dict[str, float]]
SeedTimes = dict[str, tuple[float, float]]


def seed_table(df: pd.DataFrame) -> tuple[SeedCounts, SeedTimes]:
    """The seed case per layout (in layout order): {layout: {metric: count}}, {layout: (mean s, stdev s)}."""
    seed = df[df["scenario"] == "seed_case"]
    counts: SeedCounts = {}
    for row in seed[seed["kind"].isin(("count", "instructions"))].itertuples(index=False):
        counts.setdefault(str(row.layout), {})[str(row.metric)] = float(row.value)  # type: ignore[arg-type]
    times: SeedTimes = {}
    for row in seed[seed["metric"] == "time"].itertuples(index=False):
        stdev = float(row.stdev) if pd.notna(row.stdev) else 0.0  # type: ignore[arg-type]
        times[str(row.layout)] = (float(row.value), stdev)  # type: ignore[arg-type]
    order = plots.layouts_of(seed)
    return {lay: counts[lay] for lay in order if lay in counts}, times


def headline(df: pd.DataFrame) -> list[Block]:
    counts, times = seed_table(df)
    if not counts:
        return [Paragraph("This results file has no `seed_case` benchmark, so there is no headline.")]
    rows: list[list[object]] = []
    for layout, metrics in counts.items():
        row: list[object] = [layout, *(_int(metrics.get(m)) for m, _ in HEADLINE_METRICS)]
        if layout in times:
            row.append(f"{fmt_time(times[layout][0])} ± {fmt_time(times[layout][1])}")
        if "instructions" in metrics:
            row.append(f"{metrics['instructions']:,.0f}")
        rows.append(row)
    headers = ["layout", *(label for _, label in HEADLINE_METRICS), "time per call (mean ± stdev)"]
    if any("instructions" in metrics for metrics in counts.values()):
        headers.append("CPU instructions per call (callgrind)")
    return [Paragraph(_claim(counts, times)), Table(headers, rows)]


def _int(value: float | None) -> object:
    return None if value is None else (int(value) if value.is_integer() else value)


def _claim(counts: SeedCounts, times: SeedTimes) -> str:
    text = (
        "The seed's case: list one page of 100 jobs of one name from 100 jobs (`list_jobs(name, limit=100)`). "
        f"The seed claimed {SEED_CLAIM}."
    )
    if "naive" not in counts or "optimized" not in counts:
        return text
    naive, opt = counts["naive"], counts["optimized"]
    text += (
        f" **Measured: naive {naive['calls']:.0f} KV calls -> optimized {opt['calls']:.0f} "
        f"({100 * (1 - opt['calls'] / naive['calls']):.0f}% fewer); round trips {naive['round_trips']:.0f} -> "
        f"{opt['round_trips']:.0f}"
    )
    if "naive" in times and "optimized" in times:
        t_naive, t_opt = times["naive"][0], times["optimized"][0]
        text += f"; time {fmt_time(t_naive)} -> {fmt_time(t_opt)} ({t_naive / t_opt:.1f}× faster)"
    return text + ".**"


def complexity(df: pd.DataFrame) -> list[Block]:
    """Class per layout and metric on the plotted slice, and the worst class of any list_by_name slice."""
    lists = df[df["scenario"] == "list_by_name"]
    classes = classify(lists, [*COMPLEXITY_METRICS, "time"])
    if classes.empty:
        return [Paragraph("No list_by_name sweep over N with two or more N values: no complexity classes.")]
    chosen = plots.n_slice(df) or {}
    shown = classes
    for key, value in chosen.items():
        shown = shown[shown[key] == value]
    counts = classes[classes["kind"] == "count"]
    rows = []
    for layout in plots.layouts_of(classes):
        mine = shown[shown["layout"] == layout].set_index("metric")["label"]
        worst = counts[counts["layout"] == layout].sort_values("rank", kind="stable").iloc[-1:]
        where = "–" if worst.empty else f"{worst['label'].iloc[0]} ({worst['metric'].iloc[0]}, {_slice(worst.iloc[0])})"
        rows.append([layout, *(mine.get(m) for m in [*COMPLEXITY_METRICS, "time"]), where])
    headers = ["layout", *COMPLEXITY_METRICS, "time", "worst count class in any slice"]
    note = (
        f"Class of each cost in N for list_jobs({plots.describe(chosen)}), fitted over "
        f"N = {', '.join(f'{n:g}' for n in sorted(lists['N'].dropna().unique()))}. A bare class is exact: the count "
        "is a + b·f(N) for every N swept; `~` marks the closest class when none is exact (always so for time, "
        "which is fitted by least squares). The class describes the swept range only; see docs/reports.md."
    )
    return [Paragraph(note), Table(headers, rows)]


def _slice(row: pd.Series) -> str:
    keys = ("K", "limit", "offset", "status")
    return ", ".join(
        f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if pd.notna(row[k])
    )


def break_even_blocks(df: pd.DataFrame) -> list[Block]:
    rt, by = plots.mixed_costs(df, "round_trips"), plots.mixed_costs(df, "bytes")
    if "naive" not in rt:
        return []
    rows = [[layout, read, write, _ratio(rt, layout), _ratio(by, layout)] for layout, (read, write) in rt.items()]
    headers = [
        "layout",
        "round trips per page read",
        "round trips per job written",
        "beats naive on round trips above (pages/job)",
        "beats naive on bytes above (pages/job)",
    ]
    return [Table(headers, rows)]


def _ratio(costs: plots.Costs, layout: str) -> str:
    if layout == "naive":
        return "–"
    ratio = plots.layout_break_even(costs, layout)
    return "never" if ratio is None else ("always" if ratio == 0 else f"{ratio:.3g}")


def findings(suite: pyperf.BenchmarkSuite) -> list[Block]:
    """N+1 findings of the detector, grouped by code site: which layout, which pattern, how many calls at most."""
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    for bench in suite.get_benchmarks():
        meta = benchmark_info(bench)
        for item in meta.get("kvq_nplus1") or []:
            key = (meta.get("kvq_layout", "?"), item["site"], item["source"], item["fingerprint"])
            groups.setdefault(key, []).append(int(item["count"]))
    if not groups:
        return [Paragraph("The N+1 detector found no repeated per-item reads in any benchmark's trace.")]
    rows = [
        [lay, f"`{site}`", f"`{src}`", f"`{fp}`", len(c), max(c)] for (lay, site, src, fp), c in sorted(groups.items())
    ]
    headers = ["layout", "code site", "after", "repeated call", "benchmarks", "max repeats in one call"]
    return [Table(headers, rows)]


def environment(suite: pyperf.BenchmarkSuite, results: Path) -> list[Block]:
    meta = suite.get_benchmarks()[0].get_metadata()
    rows: list[list[object]] = [[label, meta[key]] for key, label in ENV_KEYS if key in meta]
    dates = suite.get_dates()
    if dates:
        rows.append(["run", f"{dates[0]:%Y-%m-%d %H:%M} to {dates[1]:%Y-%m-%d %H:%M}"])
    rows.append(["results file", f"`{results.name}` ({len(suite.get_benchmarks())} benchmarks)"])
    return [Table(["", "value"], rows)]


def write_figures(df: pd.DataFrame, out: Path) -> dict[str, Figure]:
    figures = {}
    for name, title, make in plots.PLOTS:
        fig = make(df)
        if fig is None:
            continue
        fig.savefig(out / f"{name}.png", dpi=DPI)
        plt.close(fig)
        figures[name] = Figure(f"{name}.png", title, CAPTIONS[name])
    return figures


CAPTIONS = {
    "counts_vs_n": "Exact KV calls and round trips of one list_jobs call as the store grows (log-log). A flat line is "
    "O(1) in N; a line of slope 1 is O(N).",
    "time_vs_n": "pyperf mean time per list_jobs call, error bars one standard deviation.",
    "instructions_vs_n": "CPU instructions of one list_jobs call counted under callgrind: deterministic, so what the "
    "gate's instruction tier compares, whatever else the machine was doing.",
    "time_vs_rtt": "Measured time under a simulated network round-trip time, against the prediction "
    "serial round trips × RTT: round trips, not local work, decide the cost on a remote store.",
    "speedup_heatmap": "Naive time divided by the layout's time for each N and page size; above 1 the layout is faster.",
    "bytes_written": "Bytes each write operation stores, per layout: what an index costs on every write.",
    "break_even": "KV cost per job written when a dashboard reads r pages per job written; a dot marks where a layout "
    "starts to beat naive.",
}


def build(df: pd.DataFrame, suite: pyperf.BenchmarkSuite, results: Path, figures: dict[str, Figure]) -> list[Block]:
    meta = suite.get_benchmarks()[0].get_metadata()
    blocks: list[Block] = [
        Heading(f"kvq-bench report: {meta.get('kvq_suite', '?')} suite on {meta.get('kvq_backend', '?')}", 1),
        Paragraph(
            f"Generated by `qbench report {results.name}` from the results file alone; "
            "regenerate it, never edit it by hand."
        ),
    ]
    blocks += [Heading("Headline: the seed's case"), *headline(df)]
    blocks += [Heading("Cost against the number of jobs"), *_figs(figures, "counts_vs_n")]
    blocks += [
        Heading("Complexity class per layout", 3),
        *complexity(df),
        *_figs(figures, "time_vs_n", "instructions_vs_n"),
    ]
    blocks += [Heading("Network round-trip time"), *_figs(figures, "time_vs_rtt")]
    blocks += [Heading("Speedup over naive"), *_figs(figures, "speedup_heatmap")]
    blocks += [Heading("The price of an index: writes"), *_figs(figures, "bytes_written")]
    blocks += [Heading("Mixed workload break-even"), *_figs(figures, "break_even"), *break_even_blocks(df)]
    blocks += [Heading("N+1 findings"), *findings(suite)]
    return [*blocks, Heading("Environment"), *environment(suite, results)]


def _figs(figures: dict[str, Figure], *names: str) -> list[Block]:
    return [figures[n] for n in names if n in figures]


def report(*, results: Path, out: Path) -> None:
    """Write out/index.html, out/README.md and the PNG plots for one results file."""
    df, suite = load(results), load_suite(results)
    matplotlib.use("Agg")  # files only, never a window
    out.mkdir(parents=True, exist_ok=True)
    blocks = build(df, suite, results, write_figures(df, out))
    (out / "README.md").write_text(to_markdown(blocks), encoding="utf-8")
    title = blocks[0].text if isinstance(blocks[0], Heading) else "kvq-bench report"
    (out / "index.html").write_text(to_html(blocks, title=title, images=out), encoding="utf-8")
