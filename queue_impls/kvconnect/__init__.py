"""A KV Connect server in front of any store: real Deno programs run against it unchanged, every request counted.

Needs the ``server`` extra (hypercorn, protobuf). See docs/kvconnect.md.
"""

from __future__ import annotations

from .server import KvConnectServer, serve_until_stopped

__all__ = ["KvConnectServer", "serve_until_stopped"]
