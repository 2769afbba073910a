"""The report's section on the seed's TypeScript queue (deno_seed_case) beside its Python port (seed_case).

Shown only when the results file has ``deno_seed_case`` benchmarks (``qbench run --scenarios seed_case,deno_seed_case``).
"""

from __future__ import annotations

import pandas as pd

from bench.report.document import Block, Heading, Paragraph, Table, fmt_time

PORTS = (("deno_seed_case", "TypeScript (Deno, through qbench serve)"), ("seed_case", "Python"))
METRICS = (
    ("calls", "KV calls"),
    ("round_trips", "round trips"),
    ("entries_read", "entries read"),
    ("bytes_read", "bytes read"),
)
#: Counters the two ports must agree on (bytes differ: V8's serialisation against this project's codec).
SHARED = ("calls", "round_trips", "entries_read")


def _port_rows(df: pd.DataFrame, scenario: str) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    part = df[df["scenario"] == scenario]
    for row in part.itertuples(index=False):
        metric = "time" if row.metric == "time" else str(row.metric)
        if row.kind == "count" or metric == "time":
            rows.setdefault(str(row.layout), {})[metric] = float(row.value)  # type: ignore[arg-type]
    return rows


def typescript_section(df: pd.DataFrame) -> list[Block]:
    if "deno_seed_case" not in set(df["scenario"]):
        return []
    ports = {scenario: _port_rows(df, scenario) for scenario, _ in PORTS}
    table: list[list[object]] = []
    equal = []
    for layout in ports["deno_seed_case"]:
        for scenario, label in PORTS:
            metrics = ports[scenario].get(layout)
            if metrics is None:
                continue
            time = fmt_time(metrics["time"]) if "time" in metrics else None
            table.append([layout, label, *(_int(metrics.get(m)) for m, _ in METRICS), time])
        if layout in ports["seed_case"]:
            ts, py = ports["deno_seed_case"][layout], ports["seed_case"][layout]
            equal.append(all(ts.get(m) == py.get(m) for m in SHARED))
    verdict = (
        "The counts of the two ports are equal (calls, round trips, entries read)."
        if equal and all(equal)
        else "**The counts of the two ports differ.**"
        if equal
        else "Run `seed_case` too to compare with the Python port."
    )
    return [
        Heading("The seed's own TypeScript, run by Deno"),
        Paragraph(
            "bench/deno_seed/queue.ts is the seed's listJobs before (naive) and after (optimized) its change, run by the "
            "real Deno against a fresh `qbench serve` per benchmark; the server counts every request. Its time is "
            "measured inside Deno and includes the HTTP round trips to the server, so it is not comparable with the "
            f"in-process Python time. {verdict}"
        ),
        Table(["layout", "port", *(label for _, label in METRICS), "time per call (mean)"], table),
    ]


def _int(value: float | None) -> object:
    return None if value is None else (int(value) if value.is_integer() else value)
