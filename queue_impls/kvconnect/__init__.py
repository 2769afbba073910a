"""A KV Connect server in front of any store: real Deno programs run against it unchanged, every request counted.

Needs the ``server`` extra (h11, hpack, protobuf; hypercorn and granian to serve through them). See docs/kvconnect.md.

May import: queue_impls.kv, queue_impls.meter.
Third-party: h11, hpack, hypercorn, granian, google (protobuf), grpc_tools.
(h11 in http1.py, hpack in h2c.py, hypercorn and granian in server.py when asked for, grpc_tools in generate.py only.)
"""

from __future__ import annotations

from .server import KvConnectServer, serve_until_stopped

__all__ = ["KvConnectServer", "serve_until_stopped"]
