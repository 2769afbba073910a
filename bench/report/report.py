"""`qbench report`: turn one results file into index.html (self-contained) and README.md with PNG plots beside it.

The report is SECTIONS, an ordered list: each section a heading, its plots (each with its caption) and its text and
tables. A new section is one entry there (with its plot function in plots.py). Everything shown is computed from the
results file; see docs/reports.md for what each section means.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pyperf
from matplotlib.figure import Figure as MplFigure

from bench.files import replace_directory
from bench.report import plots
from bench.report.complexity import classify
from bench.report.deno import typescript_section
from bench.report.document import Block, Figure, Heading, Paragraph, Table, fmt_time, to_html, to_markdown
from bench.results import benchmark_info, load, load_suite
from bench.run import latency_accuracy
from bench.scenarios import BUILTIN

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


def rtt_blocks(df: pd.DataFrame, suite: pyperf.BenchmarkSuite) -> list[Block]:
    """What the RTT plot's prediction is, how far the listing's measurements are from it, and the injector's error."""
    blocks: list[Block] = []
    found = plots.rtt_points(df)
    if found is not None:
        blocks += _listing_agreement(found[1])
    points = latency_model_points(suite)
    if points:
        blocks += _injector_error(points)
    return blocks


def _listing_agreement(rows: pd.DataFrame) -> list[Block]:
    swept = sorted(r for r in rows["rtt_ms"].unique() if r > 0)
    if rows["local"].isna().all() or not swept:
        return [Paragraph("Predicted: serial round trips × RTT. RTT 0 was not swept, so the local work is not known.")]
    table: list[list[object]] = []
    for layout in plots.layouts_of(rows):
        mine = rows[rows["layout"] == layout].set_index("rtt_ms")
        measured, predicted = mine["measured"].astype(float), mine["predicted"].astype(float)
        cells: list[object] = [layout, fmt_time(float(mine["local"].iloc[0]))]
        for rtt in swept:
            if rtt in mine.index and pd.notna(predicted[rtt]):
                m, p = measured[rtt], predicted[rtt]
                cells.append(f"{fmt_time(m)} / {fmt_time(p)} ({m / p:.3f})")
            else:
                cells.append(None)
        table.append(cells)
    ratios = (rows["measured"] / rows["predicted"])[rows["rtt_ms"] > 0].dropna()
    text = (
        "Predicted (dashed) = the model's network time, serial round trips × RTT (`predict`), plus the local work: the "
        "same call measured at RTT 0. The local work is what the model does not model: the queue's code between round "
        "trips (decoding and filtering jobs, building the page) and the wrapper's. At RTT 0 it also holds the store's "
        "own time, which under a simulated RTT runs inside the round trip (as a remote server's time is inside its "
        "RTT) while it takes less than half an RTT; so the prediction can sit above the measurement by up to that "
        "time per round trip. "
        f"At every RTT swept, measured / predicted is between {ratios.min():.3f} and {ratios.max():.3f}: within "
        f"{max(abs(ratios.min() - 1), abs(ratios.max() - 1)):.1%} (measured is pyperf's mean, with its noise)."
    )
    headers = ["layout", "local work (RTT 0)", *(f"RTT {r:g} ms: measured / predicted" for r in swept)]
    return [Paragraph(text), Table(headers, table)]


def latency_model_points(suite: pyperf.BenchmarkSuite) -> list[latency_accuracy.Point]:
    """The injector measurement ``qbench run`` recorded on the rtt_sweep benchmarks (empty when there is none)."""
    for bench in suite.get_benchmarks():
        recorded = benchmark_info(bench).get("kvq_latency_model")
        if recorded:
            try:
                return [latency_accuracy.Point(**point) for point in json.loads(recorded)]
            except (TypeError, ValueError):
                return []
    return []


def _injector_error(points: list[latency_accuracy.Point]) -> list[Block]:
    by_rtt: dict[float, dict[str, latency_accuracy.Point]] = {}
    for point in points:
        by_rtt.setdefault(point.rtt_ms, {})[point.mode] = point
    rows: list[list[object]] = []
    for rtt, modes in sorted(by_rtt.items()):
        serial, concurrent = modes.get("serial"), modes.get("concurrent")
        rows.append(
            [
                f"{rtt:g}",
                None if serial is None else f"{serial.local_s * 1e6:.1f} µs",
                None if serial is None else f"{serial.ratio:.3f}",
                None if serial is None else f"{serial.error_us:+.1f} µs",
                None if concurrent is None else f"{concurrent.ratio:.3f}",
                None if serial is None else f"{serial.mean_s / serial.predicted_s:.3f}",
            ]
        )
    worst = max(points, key=lambda p: abs(p.ratio - 1))
    callers = max(p.callers for p in points)
    text = (
        "**The model's own error.** Measured by `python -m bench.run.latency_accuracy` in this run: chains of gets "
        f"on the in-memory store, one caller (serial) and {callers} on one event loop (concurrent), each RTT in "
        "blocks interleaved with the same chains at RTT 0. Predicted per round trip = RTT + the local work per round "
        "trip at RTT 0; measured = the median round trip. "
        f"Worst measured / predicted: {worst.ratio:.3f} (RTT {worst.rtt_ms:g} ms, {worst.mode}), so the injected "
        f"round trip is what the model says within {abs(worst.ratio - 1):.1%}. The mean (last column) also holds the "
        "round trips the machine delayed by descheduling the process, which a loaded machine does."
    )
    headers = [
        "RTT (ms)",
        "local work per round trip",
        "serial: measured / predicted",
        "serial: error per round trip",
        f"concurrent ({callers}): measured / predicted",
        "serial: mean / predicted",
    ]
    return [Paragraph(text), Table(headers, rows)]


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


def worker_path_blocks(suite: pyperf.BenchmarkSuite) -> list[Block]:
    """One row per ``worker_path`` benchmark: a job's KV cost from claim to outcome, per job (exact), split into
    finding jobs and committing them, with its time and CPU instructions per job. Nothing without such benchmarks."""
    benches = [b for b in suite.get_benchmarks() if benchmark_info(b).get("kvq_scenario") == "worker_path"]
    if not benches:
        return []
    rows: list[list[object]] = []
    per_point: dict[tuple[int, int], list[float]] = {}
    for bench in benches:
        meta = benchmark_info(bench)
        params, counts, derived = meta["kvq_params"], meta["kvq_counts"], meta.get("kvq_derived") or {}
        jobs, concurrency, batch = int(params["N"]), int(params["concurrency"]), int(params.get("batch", 1))
        values = bench.get_values()
        spread = f" ± {fmt_time(bench.stdev() / jobs)}" if len(values) > 1 else ""
        instructions = meta.get("kvq_instructions")
        rows.append(
            [
                meta.get("kvq_layout"),
                concurrency,
                batch,
                f"{float(params.get('rtt_ms', 0)):g}",
                f"{counts['round_trips']:.2f}",
                f"{derived.get('claim_read_round_trips_per_job', float('nan')):.2f}",
                f"{derived.get('commit_round_trips_per_job', float('nan')):.2f}",
                f"{counts['entries_read']:.2f}",
                f"{counts['mutations']:.2f}",
                f"{counts['bytes_written']:,.0f}",
                f"{fmt_time(bench.mean() / jobs)}{spread}" if values else None,
                None if instructions is None else f"{float(json.loads(str(instructions))):,.0f}",
            ]
        )
        per_point.setdefault((concurrency, batch), []).append(float(counts["round_trips"]))
    headers = ["layout", "concurrency", "batch", "RTT (ms)", "round trips", "finding", "committing", "entries read", "mutations",
               "bytes written", "time (mean ± stdev)", "CPU instructions"]  # fmt: skip
    spans = "; ".join(f"concurrency {c}, batch {b}: {_span(values)}" for (c, b), values in sorted(per_point.items()))
    note = (
        f"A job's cost from its claim to its outcome, per job, for {int(benchmark_info(benches[0])['kvq_params']['N'])}"
        " ready jobs run by one Worker with a no-op handler. Round trips are split into finding jobs (ready-queue "
        "lists, limit reads, promote and reap sweeps) and committing them (each commit writes outcomes and claims "
        "the next jobs; outcomes ready together share one commit). Round trips per job by point: "
        f"{spans}. The counts are exact and gated; a remote store multiplies the round trips by its RTT (`qbench run "
        "--rtt` runs these points under simulated round-trip times too)."
    )
    return [Heading("The worker path"), Paragraph(note), Table(headers, rows)]


def _span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f}" if low == high else f"{low:.2f} to {high:.2f}"


def plugin_scenarios(df: pd.DataFrame, suite: pyperf.BenchmarkSuite) -> list[Block]:
    """One row per benchmark of the scenarios that are not built in (a plug-in's): its exact counts, time,
    instructions and N+1 finding. Nothing when the results file holds built-in scenarios only."""
    builtin = {scenario.name for scenario in BUILTIN}
    benches = [b for b in suite.get_benchmarks() if benchmark_info(b).get("kvq_scenario") not in builtin]
    if not benches:
        return []
    rows: list[list[object]] = []
    for bench in benches:
        meta = benchmark_info(bench)
        counts = meta["kvq_counts"]
        values = bench.get_values()
        spread = f" ± {fmt_time(bench.stdev())}" if len(values) > 1 else ""
        found = meta.get("kvq_nplus1") or []
        instructions = meta.get("kvq_instructions")
        rows.append(
            [
                f"`{bench.get_name()}`",
                _int(float(counts["total_calls"])),
                _int(float(counts["round_trips"])),
                _int(float(counts["entries_read"])),
                _int(float(counts["bytes_read"])),
                _int(float(counts["bytes_written"])),
                f"{fmt_time(bench.mean())}{spread}" if values else None,
                None if instructions is None else f"{float(json.loads(instructions)):,.0f}",
                f"{found[0]['count']} × `{found[0]['fingerprint']}`" if found else "–",
            ]
        )
    headers = ["benchmark", "KV calls", "round trips", "entries read", "bytes read", "bytes written",
               "time (mean ± stdev)", "CPU instructions", "N+1"]  # fmt: skip
    per_job = any(benchmark_info(b).get("kvq_per") == "job" for b in benches)
    note = "Scenarios registered by plug-ins (`qbench run --plugin`), one row per benchmark" + (
        "; a scenario measured per job shows counts per job." if per_job else "."
    )
    return [Heading("Plug-in scenarios"), Paragraph(note), Table(headers, rows)]


def environment(suite: pyperf.BenchmarkSuite, results: Path) -> list[Block]:
    meta = suite.get_benchmarks()[0].get_metadata()
    rows: list[list[object]] = [[label, meta[key]] for key, label in ENV_KEYS if key in meta]
    dates = suite.get_dates()
    if dates:
        rows.append(["run", f"{dates[0]:%Y-%m-%d %H:%M} to {dates[1]:%Y-%m-%d %H:%M}"])
    rows.append(["results file", f"`{results.name}` ({len(suite.get_benchmarks())} benchmarks)"])
    return [Table(["", "value"], rows)]


# -- the sections, in the order the report shows them ---------------------------------------------------------


@dataclass(frozen=True)
class Inputs:
    """What every section reads: the tidy frame, the pyperf suite, the results file's path."""

    df: pd.DataFrame
    suite: pyperf.BenchmarkSuite
    results: Path


@dataclass(frozen=True)
class Plot:
    """One figure: its file name (``name``.png), its title, the function that draws it (None: nothing to draw)."""

    name: str
    title: str
    make: Callable[[pd.DataFrame], MplFigure | None]
    caption: str


@dataclass(frozen=True)
class Section:
    """A heading, its plots and its text and tables (``blocks``); ``plots_first``: the plots above the text."""

    heading: str | None
    plots: tuple[Plot, ...] = ()
    blocks: Callable[[Inputs], list[Block]] = lambda inputs: []
    level: int = 2
    plots_first: bool = True

    def render(self, inputs: Inputs, figures: dict[str, Figure]) -> list[Block]:
        shown: list[Block] = [figures[p.name] for p in self.plots if p.name in figures]
        text = self.blocks(inputs)
        body = [*shown, *text] if self.plots_first else [*text, *shown]
        return ([Heading(self.heading, self.level)] if self.heading else []) + body


SECTIONS: tuple[Section, ...] = (
    Section("Headline: the seed's case", blocks=lambda i: headline(i.df)),
    Section(None, blocks=lambda i: typescript_section(i.df)),  # deno.py: only with deno_seed_case benchmarks
    Section(
        "Cost against the number of jobs",
        plots=(
            Plot(
                "counts_vs_n",
                "KV calls and round trips vs N",
                plots.counts_vs_n,
                "Exact KV calls and round trips of one list_jobs call as the store grows (log-log). A flat line is "
                "O(1) in N; a line of slope 1 is O(N).",
            ),
        ),
    ),
    Section(
        "Complexity class per layout",
        level=3,
        plots=(
            Plot(
                "time_vs_n",
                "Time vs N",
                plots.time_vs_n,
                "pyperf mean time per list_jobs call, error bars one standard deviation.",
            ),
            Plot(
                "instructions_vs_n",
                "CPU instructions vs N",
                plots.instructions_vs_n,
                "CPU instructions of one list_jobs call counted under callgrind: deterministic, so what the gate's "
                "instruction tier compares, whatever else the machine was doing.",
            ),
        ),
        blocks=lambda i: complexity(i.df),
        plots_first=False,
    ),
    Section(
        "Network round-trip time",
        plots=(
            Plot(
                "time_vs_rtt",
                "Time vs round-trip time",
                plots.time_vs_rtt,
                "Measured time under a simulated network round-trip time (markers), against the prediction "
                "(dashed): serial round trips × RTT plus the local work measured at RTT 0. As the RTT grows, the "
                "round trips decide the cost.",
            ),
        ),
        blocks=lambda i: rtt_blocks(i.df, i.suite),
    ),
    Section(
        "Speedup over naive",
        plots=(
            Plot(
                "speedup_heatmap",
                "Speedup over naive",
                plots.speedup_heatmap,
                "Naive time divided by the layout's time for each N and page size; above 1 the layout is faster.",
            ),
        ),
    ),
    Section(
        "The price of an index: writes",
        plots=(
            Plot(
                "bytes_written",
                "Bytes written per operation",
                plots.bytes_written,
                "Bytes each write operation stores, per layout: what an index costs on every write.",
            ),
        ),
    ),
    Section(
        "Mixed workload break-even",
        plots=(
            Plot(
                "break_even",
                "Mixed-workload break-even",
                plots.break_even,
                "KV cost per job written when a dashboard reads r pages per job written; a dot marks where a layout "
                "starts to beat naive.",
            ),
        ),
        blocks=lambda i: break_even_blocks(i.df),
    ),
    Section(None, blocks=lambda i: worker_path_blocks(i.suite)),  # only with worker_path benchmarks
    Section(None, blocks=lambda i: plugin_scenarios(i.df, i.suite)),  # only with a plug-in's scenarios
    Section("N+1 findings", blocks=lambda i: findings(i.suite)),
    Section("Environment", blocks=lambda i: environment(i.suite, i.results)),
)
#: Every plot of every section, in the report's order.
PLOTS: tuple[Plot, ...] = tuple(plot for section in SECTIONS for plot in section.plots)


def write_figures(df: pd.DataFrame, out: Path) -> dict[str, Figure]:
    figures = {}
    for plot in PLOTS:
        fig = plot.make(df)
        if fig is None:
            continue
        fig.savefig(out / f"{plot.name}.png", dpi=DPI)
        plt.close(fig)
        figures[plot.name] = Figure(f"{plot.name}.png", plot.title, plot.caption)
    return figures


def build(df: pd.DataFrame, suite: pyperf.BenchmarkSuite, results: Path, figures: dict[str, Figure]) -> list[Block]:
    meta = suite.get_benchmarks()[0].get_metadata()
    blocks: list[Block] = [
        Heading(f"kvq-bench report: {meta.get('kvq_suite', '?')} suite on {meta.get('kvq_backend', '?')}", 1),
        Paragraph(
            f"Generated by `qbench report {results.name}` from the results file alone; "
            "regenerate it, never edit it by hand."
        ),
    ]
    inputs = Inputs(df, suite, results)
    for section in SECTIONS:
        blocks += section.render(inputs, figures)
    return blocks


def report(*, results: Path, out: Path) -> None:
    """Write out/index.html, out/README.md and the PNG plots for one results file, replacing the old report whole.

    Files in ``out`` that the report does not write (the results file kept beside it) stay.
    """
    df, suite = load(results), load_suite(results)
    matplotlib.use("Agg")  # files only, never a window

    def write(staging: Path) -> None:
        blocks = build(df, suite, results, write_figures(df, staging))
        (staging / "README.md").write_text(to_markdown(blocks), encoding="utf-8")
        title = blocks[0].text if isinstance(blocks[0], Heading) else "kvq-bench report"
        (staging / "index.html").write_text(to_html(blocks, title=title, images=staging), encoding="utf-8")

    replace_directory(out, write, owned=report_file)


def report_file(name: str) -> bool:
    """Whether a report directory's file ``name`` is one `qbench report` writes (and so replaces)."""
    return name in ("index.html", "README.md") or name in {f"{plot.name}.png" for plot in PLOTS}
