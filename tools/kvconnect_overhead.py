"""What ``qbench serve`` adds to each request: a Deno client through the server to SQLite against the same client
on its own local SQLite, measured side by side (alternating blocks inside one Deno process).

``python -m tools.kvconnect_overhead [--rounds 20] [--block 200] [--cpu CPUS|none]`` prints, per op, the median
microseconds of each path (Deno's own SQLite; the server on hypercorn in front of SQLite and of memory; the server on
granian in front of SQLite), each server path's difference from local (the added cost: HTTP/2 + protobuf + V8 codec +
our store, minus Deno's own SQLite) with its 95% interval, the floor of a Deno <-> Python round trip, the app's own
cost, and whether the get stays under the goal of 150 us added. Deno rotates the paths' order every round (the
harness's method, tools/harness.py, written in TypeScript in kvconnect_overhead.ts); the figures use the harness's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench.run.deno_program import run_program
from queue_impls.kv.codec import encode_key
from queue_impls.kvconnect import KvConnectServer
from queue_impls.kvconnect import datapath_pb2 as pb
from tools.harness import add_cpu_option, banner, differences, format_us, grid, median_interval, pin

PROGRAM: Final = Path(__file__).resolve().parent / "kvconnect_overhead.ts"
GOAL_US: Final = 150.0
#: The value the Deno program stores under ["k"] (as JavaScript writes it: numbers are floats).
_VALUE: Final = {"to": "user1@example.com", "template": "welcome", "locale": "en", "attempts": 0.0}


async def measure(rounds: int, block: int, directory: Path) -> tuple[dict[str, Any], float]:
    """Per-op, per-path samples, and the server process's CPU microseconds per request (all its servers)."""
    token = "overhead"
    sqlite = f"sqlite:{directory / 'served.db'}"
    async with (
        KvConnectServer.running(sqlite, trace=False, token=token) as server,
        KvConnectServer.running("memory:", trace=False, token=token) as memory,
        KvConnectServer.running(
            f"sqlite:{directory / 'granian.db'}", trace=False, token=token, http_server="granian"
        ) as fast,
    ):
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        echo_port = echo.sockets[0].getsockname()[1]
        allow = [f"--allow-read={directory}", f"--allow-write={directory}"]
        allow.append(f"--allow-net={memory.host}:{memory.port},{fast.host}:{fast.port},127.0.0.1:{echo_port}")
        extra = [f"memory={memory.url}", f"granian={fast.url}"]
        cpu = time.process_time()
        try:
            samples = await run_program(
                server, directory / "local.sqlite", rounds, block, echo_port, *extra, program=PROGRAM, allow=allow
            )
        finally:
            echo.close()
            await echo.wait_closed()
        cpu = time.process_time() - cpu
        requests = sum(sum(s.recorder.requests.values()) for s in (server, memory, fast))
    return samples, cpu / requests * 1e6


async def app_cost_us(n: int = 2000) -> float:
    """One get through the ASGI app alone, in process (auth, protobuf, counting, memory store, V8 codec): no HTTP."""
    async with KvConnectServer.running("memory:", trace=False, token="t") as server:
        await server.kv.inner.set(("k",), _VALUE)
        app = server.app
        data_token = await _data_token(app, server.token)
        k = encode_key(("k",))
        body = pb.SnapshotRead(ranges=[pb.ReadRange(start=k, end=k + b"\x00", limit=1)]).SerializeToString()
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v2/snapshot_read",
            "headers": [(b"authorization", f"Bearer {data_token}".encode())],
        }
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                await app(scope, receive, send)
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"the app answered {sent[0]}")
        return best


async def _data_token(app: Any, access_token: str) -> str:
    """A data-path token from the app's metadata exchange (``POST /``), as a KV Connect client gets one."""
    request = json.dumps({"supportedVersions": [1, 2, 3]}).encode()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "scheme": "http",
        "server": ("127.0.0.1", 0),
        "headers": [(b"authorization", f"Bearer {access_token}".encode()), (b"host", b"127.0.0.1")],
    }
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": request, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    if sent[0]["status"] != 200:
        raise RuntimeError(f"the metadata exchange answered {sent[0]['status']}: {body!r:.200}")
    token: str = json.loads(body)["token"]
    return token


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(64):
            writer.write(data)
    finally:
        writer.close()


PATHS: Final = (
    ("served", "hypercorn->sqlite"),
    ("memory", "hypercorn->memory"),
    ("granian", "granian->sqlite"),
)


def table(samples: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
    """Medians per path, and per server path the median of per-round differences from local (the added cost)."""
    header = ["op", "local us"]
    for _, label in PATHS:
        header += [f"{label} us", "added [95% interval]"]
    rows = []
    added: dict[str, dict[str, float]] = {}
    for op, s in samples.items():
        if op == "ping":
            continue
        row = [op, f"{statistics.median(s['local']):.1f}"]
        added[op] = {}
        for path, _ in PATHS:
            interval = median_interval(differences(s[path], s["local"]))
            added[op][path] = interval.median
            row += [f"{statistics.median(s[path]):.1f}", format_us(interval, scale=1)]
        rows.append(row)
    lines = grid(header, rows)
    lines.append(
        "(medians of per-round values, the paths' order rotating every round; added = median of the per-round "
        "differences from local)"
    )
    return "\n".join(lines), added


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="alternating blocks per op (default 20)")
    parser.add_argument("--block", type=int, default=200, help="ops per block (list: a fifth; default 200)")
    add_cpu_option(parser, default="none")  # the server and deno (which inherits it) share what is chosen
    args = parser.parse_args(argv)
    where = pin(args.cpu)
    print(banner(f"{args.rounds} rounds of rotating blocks inside one Deno process, per op", where))
    with tempfile.TemporaryDirectory(prefix="kvq-overhead-") as tmp:
        samples, cpu_us = asyncio.run(measure(args.rounds, args.block, Path(tmp)))
    text, added = table(samples)
    print(text)
    ping = statistics.median(samples["ping"]["ping"])
    print(f"floor: one-byte TCP ping-pong Deno <-> a Python asyncio echo server: {ping:.1f} us per round trip")
    print(f"the app alone, in process (no HTTP), per get: {asyncio.run(app_cost_us()):.1f} us (best of 3 x 2,000)")
    print(f"server process CPU per request (user + sys, all threads, all three servers): {cpu_us:.1f} us")
    for path, label in PATHS:
        cost = added["get"][path]
        verdict = "   met" if cost < GOAL_US else "MISSED"
        print(f"[{verdict}] added cost per get under {GOAL_US:.0f} us through {label}: {cost:+.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
