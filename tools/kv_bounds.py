"""Lower bounds behind kv_micro's missed targets, measured side by side in one run: what no implementation can avoid.

``python -m tools.kv_bounds [--blocks 30] [--block-ms 40] [--entries 10000] [--cpu N|none]``

Two questions, each answered by rotating blocks of calls in one process (tools/harness.py):

1. *List page.* Within 1.3x of the single-hop floor (tools/sqlite_floor.py) leaves 0.3 x floor for everything a backend does with the
   50 rows the floor only fetches. How much of that budget does turning the page's 50 stored values into Python values
   take alone, with the fastest decoders in the standard library (the codec's one-call JSON scan of the whole page, and
   ``marshal.loads`` of the same values, the fastest CPython deserialiser), and the 50 keys and entry objects?
2. *Deno bridge.* How much of a get's bridge overhead is the pipe round trip itself (``DenoKv.ping``: a
   frame to the bridge and back, JSON on both sides, no store), and how much is Deno's KV thread waking from idle (the
   in-process get after 200 us of idling, minus the hot in-process get)?

Every figure is a median over the rounds of one run; nothing here is a threshold or a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import marshal
import os
import resource
import statistics
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from queue_impls.kv import encode_key, open_kv
from queue_impls.kv.backends.deno import DenoKv
from queue_impls.kv.codec import decode_key, decode_values
from queue_impls.kv.types import new_entry
from tools.deno_inprocess import deno_inprocess, deno_unavailable
from tools.harness import Op, SelfTimed, add_cpu_option, banner, calibrate, pin, rotating_blocks
from tools.kv_stores import GET, LIST_PAGE, Workload, floor_factory, kv_ops, seed

#: The list-page target: the SQLite backend within this factor of the floor.
LIST_TARGET = 1.3
#: The bridge's target: overhead per round trip, microseconds.
BRIDGE_TARGET_US = 100.0


@dataclass(frozen=True)
class Settings:
    blocks: int = 30
    block_seconds: float = 0.04
    entries: int = 10_000
    #: sequential calls per op for the CPU accounting of the bridge
    cpu_calls: int = 3000


async def interleave(ops: dict[str, Op | SelfTimed], settings: Settings) -> dict[str, float]:
    """Median microseconds per call of each op, the ops timed in rotating order every round."""
    calls = {name: await calibrate([fn], settings.block_seconds) for name, fn in ops.items()}
    times = await rotating_blocks(ops, calls, settings.blocks)
    return {name: statistics.median(values) * 1e6 for name, values in times.wall.items()}


# -------------------------------------------------------------------------------------------------- list page


def page_decoders(rows: Sequence[tuple[bytes, bytes, int, bytes]], prefix_len: int) -> dict[str, Op]:
    """Pure-CPU ops over one fetched page: its values (two ways), and its keys + entry objects."""
    payloads = [(v, enc) for _, v, enc, _ in rows]
    marshalled = [marshal.dumps(value) for value in decode_values(payloads)]
    suffixes = [k[prefix_len:] for k, _, _, _ in rows]
    stamps = [vs.hex() for _, _, _, vs in rows]
    prefix_key = decode_key(rows[0][0][:prefix_len])

    async def json_scan() -> object:
        return decode_values(payloads)

    async def marshal_each() -> object:
        loads = marshal.loads
        return [loads(m) for m in marshalled]

    async def keys_and_entries() -> object:
        return [new_entry(prefix_key + decode_key(s), None, vs) for s, vs in zip(suffixes, stamps, strict=True)]

    return {
        "values: one JSON scan (this codec)": json_scan,
        "values: marshal.loads each": marshal_each,
        "keys + entry objects": keys_and_entries,
    }


async def list_page_bounds(settings: Settings, tmp: Path) -> list[str]:
    workload = Workload(entries=settings.entries)
    async with contextlib.AsyncExitStack() as stack:
        floor = await stack.enter_async_context(floor_factory(tmp / "floor", workload))
        kv = await stack.enter_async_context(await open_kv(f"sqlite:{tmp / 'kv.db'}"))
        await seed(kv, workload)
        floor_page = floor[LIST_PAGE]
        assert not isinstance(floor_page, SelfTimed)
        rows = await floor_page()  # the page as the floor fetched it: (k, v, enc, vs) rows
        assert isinstance(rows, list) and len(rows) == workload.page
        ops: dict[str, Op | SelfTimed] = {
            "floor list page(50)": floor_page,
            "sqlite list page(50)": kv_ops(kv, workload)[LIST_PAGE],
        }
        ops.update(page_decoders(rows, len(encode_key(workload.prefix))))
        medians = await interleave(ops, settings)
    return list_page_lines(medians)


def list_page_lines(us: dict[str, float]) -> list[str]:
    floor, ours = us["floor list page(50)"], us["sqlite list page(50)"]
    budget = (LIST_TARGET - 1) * floor
    lines = [
        f"List page: floor {floor:.1f} us, SQLite backend {ours:.1f} us ({ours / floor:.2f}x).",
        f"  Within {LIST_TARGET}x of the floor leaves {budget:.1f} us for all work on the page's 50 rows. Measured here:",
    ]
    for name in ("values: one JSON scan (this codec)", "values: marshal.loads each", "keys + entry objects"):
        lines.append(f"  {name:<36} {us[name]:7.1f} us = {us[name] / budget:5.2f}x the budget")
    return lines


# ----------------------------------------------------------------------------------------------------- bridge


async def bridge_bounds(settings: Settings, tmp: Path) -> list[str]:
    why = deno_unavailable()
    if why is not None:
        return [f"Bridge: skipped, {why}"]
    workload = Workload(entries=settings.entries)
    async with contextlib.AsyncExitStack() as stack:
        kv = await stack.enter_async_context(await open_kv(f"deno:{tmp / 'bridge.sqlite'}"))
        assert isinstance(kv, DenoKv)
        await seed(kv, workload)
        run = await stack.enter_async_context(deno_inprocess(tmp / "inprocess.sqlite", workload.entries))

        def inside(op: str) -> SelfTimed:  # timed inside Deno, reported back
            return SelfTimed(lambda loops: run(op, loops))

        ops: dict[str, Op | SelfTimed] = {
            "bridge get": kv_ops(kv, workload)[GET],
            "bridge ping": kv.ping,
            "in-process get (hot)": inside("get"),
            "in-process get from idle 200 us": inside("get from idle 200 us"),
            "in-process idle 200 us": inside("idle 200 us"),
        }
        medians = await interleave(ops, settings)
        cpu = {
            name: await cpu_per_call(ops[name], kv.pid, settings.cpu_calls) for name in ("bridge get", "bridge ping")
        }
    return bridge_lines(medians) + cpu_lines(cpu, settings.cpu_calls)


def _thread_cpu(pid: int) -> dict[str, float]:
    """Seconds of CPU (user + system) per thread name of process ``pid``, from /proc; {} where there is no /proc."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def cpu_per_call(op: Op | SelfTimed, pid: int, calls: int) -> dict[str, float]:
    """Microseconds of CPU per call, this process and each thread (by name) of the deno process, over ``calls``."""
    assert not isinstance(op, SelfTimed)
    before, deno_before = resource.getrusage(resource.RUSAGE_SELF), _thread_cpu(pid)
    for _ in range(calls):
        await op()
    after, deno_after = resource.getrusage(resource.RUSAGE_SELF), _thread_cpu(pid)
    mine = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    out = {"python": mine / calls * 1e6}
    for name, seconds in deno_after.items():
        out[f"deno {name}"] = (seconds - deno_before.get(name, 0.0)) / calls * 1e6
    return out


def cpu_lines(cpu: dict[str, dict[str, float]], calls: int) -> list[str]:
    lines = [
        f"  CPU per call over {calls} sequential calls (getrusage; deno's threads by name from /proc, 10 ms ticks):"
    ]
    for op, parts in cpu.items():
        shown = ", ".join(f"{name} {us:.0f} us" for name, us in parts.items() if us >= 0.5 or name == "python")
        lines.append(f"    {op}: {shown}")
    return lines


def bridge_lines(us: dict[str, float]) -> list[str]:
    overhead = us["bridge get"] - us["in-process get (hot)"]
    wake = us["in-process get from idle 200 us"] - us["in-process idle 200 us"] - us["in-process get (hot)"]
    floor = us["bridge ping"] + max(wake, 0.0)
    return [
        f"Bridge: get through the bridge {us['bridge get']:.1f} us, in Deno's own process {us['in-process get (hot)']:.1f} us:"
        f" overhead {overhead:+.1f} us (target under {BRIDGE_TARGET_US:.0f} us).",
        f"  ping (frame there and back, JSON both sides, no store) {us['bridge ping']:.1f} us;"
        f" Deno's KV call from idle costs {wake:+.1f} us more than hot.",
        f"  Unavoidable for any request/reply client that waits for each reply: ping + idle wake-up = {floor:.1f} us;"
        f" the rest ({overhead - floor:+.1f} us) is this backend's Python and JS work per get.",
    ]


# ------------------------------------------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.kv_bounds", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--blocks", type=int, default=30, help="rounds (default 30)")
    parser.add_argument("--block-ms", type=float, default=40.0, help="calibrated block length, ms (default 40)")
    parser.add_argument("--entries", type=int, default=10_000, help="entries seeded per store (default 10000)")
    add_cpu_option(parser)
    parser.add_argument("--skip-bridge", action="store_true", help="only the list-page bounds")
    args = parser.parse_args(list(argv))
    if args.blocks < 1 or args.block_ms <= 0 or args.entries < Workload(1).page:
        parser.error(f"need --blocks >= 1, --block-ms > 0 and --entries >= {Workload(1).page}")
    return args


async def run(settings: Settings, bridge: bool) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="kv_bounds-") as tmp:
        (Path(tmp) / "floor").mkdir()
        lines = await list_page_bounds(settings, Path(tmp))
        if bridge:
            lines += ["", *await bridge_bounds(settings, Path(tmp))]
    return lines


def main(argv: Sequence[str]) -> None:
    args = parse(argv)
    where = pin(args.cpu)  # before any thread or subprocess starts: they inherit it
    settings = Settings(args.blocks, args.block_ms / 1000, args.entries)
    print(banner(f"medians over {settings.blocks} rounds of rotating blocks, {settings.entries} entries", where))
    print()
    print("\n".join(asyncio.run(run(settings, not args.skip_bridge))))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
