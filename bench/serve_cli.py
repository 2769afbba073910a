"""``qbench serve STORE_URL``: a KV Connect endpoint in front of a store, so a Deno program's requests are counted.

Registered by bench/cli.py; the server itself is the library's (queue_impls/kvconnect, docs/kvconnect.md).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from .errors import UsageError


def configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE_URL", help="the store to serve: memory:, sqlite:PATH, deno:PATH ...")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4512, help="port to listen on, 0 for any free one (default 4512)")
    parser.add_argument("--token", help="the access token clients send (DENO_KV_ACCESS_TOKEN); default: a new one")
    parser.add_argument("--latency", type=float, metavar="RTT_MS", help="add this round-trip time to every request")
    parser.add_argument("--trace", type=Path, metavar="FILE", help="write the request trace (JSON) here at exit")
    parser.add_argument(
        "--http-server",
        choices=("builtin", "hypercorn", "granian"),
        default="builtin",
        help="builtin (default: the package's own lean h2c + HTTP/1.1 server), hypercorn or granian (ASGI servers)",
    )


def handle_serve(args: argparse.Namespace) -> int:
    from queue_impls.kv.errors import KvError
    from queue_impls.kvconnect import serve_until_stopped
    from queue_impls.meter import LatencyModel

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {args.port}")
    if args.latency is not None and not args.latency >= 0:
        raise UsageError(f"--latency must be a non-negative number of milliseconds, got {args.latency}")
    if args.token is not None and not args.token.strip():
        raise UsageError("--token must not be empty")
    latency = LatencyModel(rtt_ms=args.latency) if args.latency else None
    try:
        asyncio.run(
            serve_until_stopped(
                args.store,
                host=args.host,
                port=args.port,
                token=args.token,
                latency=latency,
                trace_file=args.trace,
                http_server=args.http_server,
            )
        )
    except (KvError, OSError) as exc:
        raise UsageError(f"cannot serve {args.store}: {exc}") from exc
    return 0


COMMAND = (
    "serve",
    "serve a store over KV Connect (Deno.openKv(url)) and count every request",
    configure_serve,
    handle_serve,
)
