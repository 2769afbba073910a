"""A KV Connect server in front of any store: real Deno programs run against it unchanged, every request counted.

Needs the ``server`` extra (hypercorn, protobuf). See docs/kvconnect.md.

May import: queue_impls.kv, queue_impls.meter.
Third-party: hypercorn, granian (server.py, when asked for), google (protobuf), grpc_tools (generate.py only).
"""

from __future__ import annotations

from .server import KvConnectServer, serve_until_stopped

__all__ = ["KvConnectServer", "serve_until_stopped"]
