"""Run the KV Connect app under hypercorn (HTTP/1.1 and h2c) in front of a store, counting every request.

``KvConnectServer.running(store_url)`` serves in the current event loop (tests, benchmarks); ``serve_until_stopped``
is ``qbench serve``: it serves until SIGINT/SIGTERM, then prints the counts and N+1 findings and writes the trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from queue_impls.kv.contract import Kv
from queue_impls.kv.url import open_kv
from queue_impls.meter import CountingKv, LatencyModel, NPlusOneFinding, detect_n_plus_one

from .app import KvConnectApp
from .recorder import RequestRecorder

TOKEN_ENV = "DENO_KV_ACCESS_TOKEN"
HTTP_SERVERS = ("builtin", "hypercorn", "granian")
_TOP = 10  # fingerprints in the summary


async def _wait_listening(host: str, port: int, task: asyncio.Future[Any], timeout_s: float = 10.0) -> None:
    """Until a TCP connection to host:port succeeds (the server binds in the background), or the server failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if task.done():
            task.result()
            raise OSError(f"the HTTP server stopped before listening on {host}:{port}")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)
        else:
            writer.close()
            await writer.wait_closed()
            return


def _listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket: connections queue from now on, before the HTTP server accepts them."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


class KvConnectServer:
    """A KV Connect endpoint for one store: ``url`` for ``Deno.openKv``, ``token`` for DENO_KV_ACCESS_TOKEN."""

    def __init__(self, kv: CountingKv, token: str, *, metadata_ttl_s: float = 3600.0) -> None:
        self.kv = kv
        self.token = token
        self.recorder = RequestRecorder(kv)
        self.app = KvConnectApp(self.recorder, token, metadata_ttl_s=metadata_ttl_s)
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls,
        store: str | Kv,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        latency: LatencyModel | None = None,
        trace: bool = True,
        metadata_ttl_s: float = 3600.0,
        http_server: str = "builtin",
    ) -> AsyncIterator[KvConnectServer]:
        """Serve ``store`` (a KV URL, opened and closed here, or an open store, left open) until the block exits.

        ``http_server``: ``"builtin"`` (the default: this package's own lean h2c and HTTP/1.1 server, listener.py),
        ``"hypercorn"`` (an ASGI server in pure Python) or ``"granian"`` (an ASGI server with HTTP in Rust; its
        embedded mode is marked experimental by granian, and it binds the port itself: port 0 picks a free one first).
        """
        if http_server not in HTTP_SERVERS:
            raise ValueError(f"Unknown HTTP server {http_server!r}: expected one of {', '.join(HTTP_SERVERS)}")
        inner = await open_kv(store) if isinstance(store, str) else store
        if isinstance(store, str):
            inner.read_on_loop()  # a request's read then costs no hop to aiosqlite's thread and back
        kv = CountingKv(inner, latency=latency, trace=trace, owns_inner=isinstance(store, str))
        try:
            server = cls(kv, token or secrets.token_urlsafe(18), metadata_ttl_s=metadata_ttl_s)
            serving = {
                "builtin": server._serving_builtin,
                "hypercorn": server._serving_hypercorn,
                "granian": server._serving_granian,
            }[http_server]
            async with serving(host, port):
                try:
                    yield server
                finally:
                    server.app.end_watches()  # an open watch stream must not hold up the HTTP server's shutdown
        finally:
            await kv.close()

    @contextlib.asynccontextmanager
    async def _serving_builtin(self, host: str, port: int) -> AsyncIterator[None]:
        from .listener import HttpServer

        sock = _listening_socket(host, port)
        self.host, self.port = host, sock.getsockname()[1]
        server = HttpServer(self.app, sock)  # owns (and closes) the socket from here
        try:
            await server.start()
        except BaseException:
            sock.close()
            raise
        try:
            yield
        finally:
            await server.close()

    @contextlib.asynccontextmanager
    async def _serving_hypercorn(self, host: str, port: int) -> AsyncIterator[None]:
        from hypercorn.asyncio import serve
        from hypercorn.config import Config

        sock = _listening_socket(host, port)
        self.host, self.port = host, sock.getsockname()[1]
        config = Config()
        config.bind = [f"fd://{sock.detach()}"]  # hypercorn owns (and closes) the socket from here
        config.accesslog = None
        config.errorlog = None
        config.graceful_timeout = 1.0
        config.keep_alive_timeout = 3600.0
        # hypercorn closes a connection after 1,000 requests by default; Deno's client then stalls (measured)
        config.keep_alive_max_requests = 2**62
        stop = asyncio.Event()
        task = asyncio.ensure_future(serve(self.app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
        try:
            await asyncio.sleep(0)
            if task.done():
                task.result()
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(task, 10.0)
            except TimeoutError:
                task.cancel()

    @contextlib.asynccontextmanager
    async def _serving_granian(self, host: str, port: int) -> AsyncIterator[None]:
        from granian.constants import HTTPModes, Interfaces
        from granian.server.embed import Server

        if port == 0:
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((host, 0))
                port = probe.getsockname()[1]
        self.host, self.port = host, port
        server = Server(
            self.app, address=host, port=port, interface=Interfaces.ASGINL, http=HTTPModes.auto, log_enabled=False
        )
        task = asyncio.ensure_future(server.serve())
        try:
            await _wait_listening(host, port, task)
            yield
        finally:
            server.stop()  # type: ignore[no-untyped-call]
            try:
                await asyncio.wait_for(task, 10.0)
            except TimeoutError:
                task.cancel()

    # -- what it counted -------------------------------------------------------------------------------------

    def findings(self) -> list[NPlusOneFinding]:
        return detect_n_plus_one(self.kv.trace)

    def summary(self) -> str:
        counts = self.kv.counts
        requests = ", ".join(f"{kind} {n:,}" for kind, n in self.recorder.requests.items())
        lines = [
            f"requests: {requests}",
            f"counts: {counts}",
            *(f"  {op:<10} {n:,}" for op, n in counts.calls.items() if n),
        ]
        by_label: dict[str, list[int]] = {}
        for event in self.kv.trace:
            tally = by_label.setdefault(event.label, [0, 0])
            tally[0] += 1
            tally[1] += event.round_trips
        if by_label:
            lines.append("by fingerprint (calls, round trips):")
            ranked = sorted(by_label.items(), key=lambda item: -item[1][1])
            lines += [f"  {calls:>7,} x {label} ({trips:,} round trips)" for label, (calls, trips) in ranked[:_TOP]]
            if len(ranked) > _TOP:
                lines.append(f"  ... and {len(ranked) - _TOP:,} more fingerprints (--trace FILE has every request)")
        if self.app.errors:
            lines.append("refused: " + ", ".join(f"HTTP {s} x{n}" for s, n in sorted(self.app.errors.items())))
        findings = self.findings()
        lines += [str(f) for f in findings] if findings else ["N+1: none found"]
        return "\n".join(lines)

    def trace_json(self) -> dict[str, Any]:
        counts = self.kv.counts
        return {
            "requests": dict(self.recorder.requests),
            "counts": {"calls": counts.calls, **{k: v for k, v in counts.as_dict().items() if "." not in k}},
            "n_plus_one": [
                {"source": f.source.label, "fingerprint": f.fingerprint, "count": f.count, "site": f.site}
                for f in self.findings()
            ],
            "events": [
                {
                    "index": e.index,
                    "op": e.op,
                    "fingerprint": e.fingerprint,
                    "keys": [repr(k) for k in e.keys],
                    "site": e.site,
                    "wave": e.wave,
                    "round_trips": e.round_trips,
                    "entries": e.entries,
                    "bytes_read": e.bytes_read,
                    "bytes_written": e.bytes_written,
                    "duration_s": e.duration_s,
                    "error": e.error,
                }
                for e in self.kv.trace
            ],
        }

    def write_trace(self, path: Path) -> None:
        """The trace as JSON, written whole (temporary file + rename)."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(self.trace_json(), f, indent=1)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


async def serve_until_stopped(
    store_url: str,
    *,
    host: str = "127.0.0.1",
    port: int = 4512,
    token: str | None = None,
    latency: LatencyModel | None = None,
    trace_file: Path | None = None,
    out: TextIO = sys.stdout,
    http_server: str = "builtin",
) -> None:
    """``qbench serve``: serve until SIGINT or SIGTERM, then print counts and N+1 findings (and write the trace)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        running = KvConnectServer.running(
            store_url, host=host, port=port, token=token, latency=latency, http_server=http_server
        )
        async with running as server:
            print(
                f"qbench serve: {store_url} on {server.url} (KV Connect, protocol 1-3, HTTP/1.1 and h2c, {http_server})",
                file=out,
            )
            if token is None:
                print(f"  {TOKEN_ENV}={server.token}", file=out)
            print(f"  Deno: Deno.openKv({server.url!r}); stop with Ctrl-C or SIGTERM", file=out, flush=True)
            await stop.wait()
            print(f"qbench serve: stopped\n{server.summary()}", file=out, flush=True)
            if trace_file is not None:
                server.write_trace(trace_file)
                print(f"wrote the trace to {trace_file}", file=out, flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
