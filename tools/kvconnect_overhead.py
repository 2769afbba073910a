"""What ``qbench serve`` adds to each request: a Deno client through the server to SQLite against the same client
on its own local SQLite, measured side by side (rotating blocks inside one Deno process), with the floors beside it.

``python -m tools.kvconnect_overhead [--rounds 20] [--block 200] [--cpu CPUS|none]`` prints, per route and op, the
median microseconds and the difference from Deno's local SQLite (the added cost) with its 95% interval. The routes:
each server stack (builtin, hypercorn, granian) in front of SQLite, the builtin one also in front of memory, and each
stack as a no-op (the same server replaying its first answer to each distinct request: the same bytes on the wire, no
app work), so a reader sees what the HTTP stack alone adds and what the app and its store add (printed per stack as
route minus no-op). Then the floors: a one-byte TCP ping-pong between Deno and a Python asyncio echo server, the app
alone in process (no HTTP; on SQLite and memory), a store's get alone in process; the server process's CPU per get on
each route alone; and whether each route stays under the goal of 150 us added per get. Deno rotates the routes' order every round (the
harness's method, tools/harness.py, written in TypeScript in kvconnect_overhead.ts); the figures use the harness's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import functools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.run.deno_program import run_program
from queue_impls.kv import open_kv
from queue_impls.kv.codec import encode_key
from queue_impls.kv.v8 import v8_dumps
from queue_impls.kvconnect import KvConnectServer
from queue_impls.kvconnect import datapath_pb2 as pb
from queue_impls.kvconnect.app import KvConnectApp, Response, WatchStream
from queue_impls.meter import CountingKv
from tools.harness import add_cpu_option, banner, differences, format_us, grid, median_interval, pin

PROGRAM: Final = Path(__file__).resolve().parent / "kvconnect_overhead.ts"
GOAL_US: Final = 150.0
#: The value the Deno program stores under ["k"] (as JavaScript writes it: numbers are floats).
_VALUE: Final = {"to": "user1@example.com", "template": "welcome", "locale": "en", "attempts": 0.0}


@dataclass(frozen=True)
class Route:
    """One way a Deno ``kv.get`` is served: a server stack in front of a store, or that stack with canned answers."""

    name: str  # the Deno program's name of the path ("served" is its first URL)
    label: str
    store: str  # "sqlite" or "memory"
    http_server: str
    canned: bool = False


ROUTES: Final = (
    Route("served", "builtin->sqlite", "sqlite", "builtin"),
    Route("memory", "builtin->memory", "memory", "builtin"),
    Route("noop", "builtin no-op", "memory", "builtin", canned=True),
    Route("hypercorn", "hypercorn->sqlite", "sqlite", "hypercorn"),
    Route("hypercorn_noop", "hypercorn no-op", "memory", "hypercorn", canned=True),
    Route("granian", "granian->sqlite", "sqlite", "granian"),
    Route("granian_noop", "granian no-op", "memory", "granian", canned=True),
)


class CannedApp(KvConnectApp):
    """The app answering each distinct request (path and body) once, then replaying that answer: the server stack's
    own cost with the same bytes on the wire and no app work (no auth, protobuf, counting, store)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._answers: dict[tuple[str, bytes], Response] = {}

    async def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, scheme: str = "http", origin: str = ""
    ) -> Response:
        answer = self._answers.get((path, body))
        if answer is None:
            answer = await super().respond(method, path, headers, body, scheme=scheme, origin=origin)
            if answer[0] == 200 and not isinstance(answer[2], WatchStream) and len(self._answers) < 64:
                self._answers[(path, body)] = answer
        return answer


class CannedServer(KvConnectServer):
    def __init__(self, kv: CountingKv, token: str, *, metadata_ttl_s: float = 3600.0) -> None:
        super().__init__(kv, token, metadata_ttl_s=metadata_ttl_s)
        self.app = CannedApp(self.recorder, token, metadata_ttl_s=metadata_ttl_s)


async def measure(rounds: int, block: int, directory: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """Per-op, per-route samples, and per route the server process's CPU microseconds per get (user + sys, all
    threads), from the CPU time noted at the Deno program's marker bytes."""
    token = "overhead"
    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, KvConnectServer] = {}
        for route in ROUTES:
            store = f"sqlite:{directory / (route.name + '.db')}" if route.store == "sqlite" else "memory:"
            kind = CannedServer if route.canned else KvConnectServer
            running = kind.running(store, trace=False, token=token, http_server=route.http_server)
            servers[route.name] = await stack.enter_async_context(running)
        marks: list[float] = []
        echo = await asyncio.start_server(functools.partial(_echo, marks), "127.0.0.1", 0)
        stack.push_async_callback(echo.wait_closed)
        stack.callback(echo.close)
        echo_port = echo.sockets[0].getsockname()[1]
        others = [s for name, s in servers.items() if name != "served"]
        allow = [f"--allow-read={directory}", f"--allow-write={directory}"]
        allow.append(f"--allow-net={','.join(f'{s.host}:{s.port}' for s in others)},127.0.0.1:{echo_port}")
        extra = [f"{name}={s.url}" for name, s in servers.items() if name != "served"]
        samples = await run_program(
            servers["served"],
            directory / "local.sqlite",
            rounds,
            block,
            echo_port,
            *extra,
            program=PROGRAM,
            allow=allow,
        )
    cpu = samples.pop("cpu")
    gets = cpu.pop("gets")[0]
    per_get = {name: (marks[i + 1] - marks[i]) / gets * 1e6 for name, (i,) in cpu.items()}
    return samples, per_get


async def app_cost_us(store: str, n: int = 2000) -> float:
    """One get through the app alone, in process (no HTTP): ``respond()`` as the builtin server calls it, each request
    in a context of its own and run in one step, on a store opened as the server opens it (SQLite read on the loop),
    the value written as Deno writes it (V8). Auth, protobuf, counting, the store's read and the answer's encoding."""
    async with KvConnectServer.running(store, trace=False, token="t") as server:
        app = server.app
        headers = {"authorization": f"Bearer {await _data_token(app, server.token)}", "user-agent": "in-process"}
        k = encode_key(("k",))
        value = pb.KvValue(data=v8_dumps(_VALUE), encoding=pb.VE_V8)
        write = pb.AtomicWrite(mutations=[pb.Mutation(key=k, value=value, mutation_type=pb.M_SET)])
        status, _, out = await app.respond("POST", "/v2/atomic_write", headers, write.SerializeToString())
        if status != 200:
            raise RuntimeError(f"the app answered {status} to a write: {out!r:.200}")
        body = pb.SnapshotRead(ranges=[pb.ReadRange(start=k, end=k + b"\x00", limit=1)]).SerializeToString()
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                answer = _step(app.respond("POST", "/v2/snapshot_read", headers, body))
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        if answer[0] != 200 or not pb.SnapshotReadOutput.FromString(answer[2]).ranges[0].values:
            raise RuntimeError(f"the app answered {answer!r:.200}")
        return best


def _step(coroutine: Any) -> Any:
    """Run a coroutine that never waits in one step, in a context of its own (as the builtin server runs a request)."""
    try:
        contextvars.copy_context().run(coroutine.send, None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the request waited: the store did not read on the loop")


async def store_get_us(url: str, n: int = 2000) -> float:
    """One ``get`` of the benchmark's value straight from a store, in process (no server, no counting): for SQLite,
    the query plus aiosqlite's hop to its thread and back."""
    kv = await open_kv(url)
    try:
        await kv.set(("k",), _VALUE)
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            for _ in range(n):
                await kv.get(("k",))
            best = min(best, (time.perf_counter() - started) / n * 1e6)
        return best
    finally:
        await kv.close()


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


async def _echo(marks: list[float], reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes each byte; a marker byte (2) also notes this process's CPU time (user + sys, all threads) in ``marks``."""
    try:
        while data := await reader.read(64):
            if data == b"\x02":
                marks.append(time.process_time())
            writer.write(data)
    finally:
        writer.close()


def table(samples: dict[str, Any]) -> tuple[str, dict[str, dict[str, float]]]:
    """Per route, per op: the median microseconds, and the median of per-round differences from local (the added
    cost) with its 95% interval."""
    ops = [op for op in samples if op != "ping"]
    header = ["route"]
    for op in ops:
        header += [f"{op} us", "added [95% interval]"]
    rows = [["Deno's local SQLite"] + [c for op in ops for c in (f"{statistics.median(samples[op]['local']):.1f}", "")]]
    added: dict[str, dict[str, float]] = {op: {} for op in ops}
    for route in ROUTES:
        row = [route.label]
        for op in ops:
            s = samples[op]
            interval = median_interval(differences(s[route.name], s["local"]))
            added[op][route.name] = interval.median
            row += [f"{statistics.median(s[route.name]):.1f}", format_us(interval, scale=1)]
        rows.append(row)
    lines = grid(header, rows)
    lines.append(
        "(medians of per-round values, the routes' order rotating every round; added = median of the per-round "
        "differences from local; no-op = the same server answering from a replay of its first answers: no app work)"
    )
    return "\n".join(lines), added


def app_share(samples: dict[str, Any]) -> list[str]:
    """What the app and its store add inside each server stack: the route minus the same stack's no-op, per round."""
    lines = []
    for server in ("builtin", "hypercorn", "granian"):
        routes = [r for r in ROUTES if r.http_server == server]
        noop = next(r for r in routes if r.canned)
        for route in (r for r in routes if not r.canned):
            interval = median_interval(differences(samples["get"][route.name], samples["get"][noop.name]))
            lines.append(
                f"the app and store inside {server}, per get: {route.label} - {noop.label}: {format_us(interval, 1)}"
            )
    return lines


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
    print("\n".join(app_share(samples)))
    ping = statistics.median(samples["ping"]["ping"])
    print(f"floor: one-byte TCP ping-pong Deno <-> a Python asyncio echo server: {ping:.1f} us per round trip")
    with tempfile.TemporaryDirectory(prefix="kvq-overhead-") as tmp:
        app_sqlite = asyncio.run(app_cost_us(f"sqlite:{Path(tmp) / 'app.db'}"))
    app_memory = asyncio.run(app_cost_us("memory:"))
    print(
        "the app alone, in process (no HTTP: respond() as the builtin server calls it, the value as Deno writes it), "
        f"per get: sqlite {app_sqlite:.1f} us, memory {app_memory:.1f} us (best of 3 x 2,000)"
    )
    with tempfile.TemporaryDirectory(prefix="kvq-overhead-") as tmp:
        sqlite = asyncio.run(store_get_us(f"sqlite:{Path(tmp) / 'alone.db'}"))
    memory = asyncio.run(store_get_us("memory:"))
    print(f"the store alone, in process, per get: sqlite {sqlite:.1f} us, memory {memory:.1f} us (best of 3 x 2,000)")
    cpu = ", ".join(f"{route.label} {cpu_us[route.name]:.1f}" for route in ROUTES)
    print(f"server process CPU per get (user + sys, all threads; each route alone, {5 * args.block:,} gets): {cpu} us")
    for route in ROUTES:
        cost = added["get"][route.name]
        verdict = "   met" if cost < GOAL_US else "MISSED"
        print(f"[{verdict}] added cost per get under {GOAL_US:.0f} us through {route.label}: {cost:+.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
