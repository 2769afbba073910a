"""The project's own HTTP server for KV Connect: h2c (HTTP/2 with prior knowledge, what Deno's client opens) and
HTTP/1.1 on one port, in the event loop's thread, calling ``Handler.respond`` directly (no ASGI layer).

A connection's first bytes decide: the HTTP/2 preface hands it to ``h2c.H2Connection``, anything else to
``http1.H1Connection``. ``HttpServer.close`` stops listening, lets the requests in flight finish (up to a grace
period), and closes every connection (HTTP/2: after a GOAWAY).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Mapping
from typing import Protocol

from .app import MAX_BODY, Response

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
GRACE_S = 1.0  # how long a closing server waits on the requests in flight

__all__ = ["GRACE_S", "MAX_BODY", "PREFACE", "Connection", "Handler", "HttpServer"]


class Arrivals(Protocol):
    """Told when requests that arrived together (in one read of a connection) are dispatched, and when that is over:
    the counting clock, so that they count as concurrent (one serial wave)."""

    def arrivals_begin(self) -> None: ...

    def arrivals_end(self) -> None: ...


class Handler(Protocol):
    """What the server calls for each request: ``KvConnectApp`` (or a canned answer, to measure the server alone)."""

    @property
    def arrivals(self) -> Arrivals: ...

    @property
    def closing(self) -> asyncio.Event: ...

    async def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, scheme: str = "http", origin: str = ""
    ) -> Response: ...

    def refuse(self, status: int, message: str) -> Response: ...


class Connection(Protocol):
    """One client connection, whichever HTTP version it speaks."""

    def shutdown(self) -> None: ...

    async def finished(self) -> None: ...

    def abort(self) -> None: ...


class _Sniffer(asyncio.BufferedProtocol):
    """Reads a new connection's first bytes, then hands the transport to the HTTP/2 or the HTTP/1.1 protocol."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = bytearray(1024)
        self._seen = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.sniffing.add(transport)  # closed with the server if its first bytes never come

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self._seen += bytes(self._buffer[:nbytes])
        if len(self._seen) < len(PREFACE) and PREFACE.startswith(self._seen):
            return  # not enough to tell yet
        assert self._transport is not None
        self._server.sniffing.discard(self._transport)
        if self._seen.startswith(PREFACE):
            from .h2c import H2Connection

            self._server.adopt(H2Connection(self._transport, self._server))
            rest = self._seen[len(PREFACE) :]
        else:
            from .http1 import H1Connection

            self._server.adopt(H1Connection(self._transport, self._server))
            rest = self._seen
        protocol = self._transport.get_protocol()
        if rest:
            assert isinstance(protocol, asyncio.BufferedProtocol)
            buffer = memoryview(protocol.get_buffer(len(rest)))
            buffer[: len(rest)] = rest  # the protocols' buffers hold at least any first read of this size
            protocol.buffer_updated(len(rest))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._server.sniffing.discard(self._transport)

    def eof_received(self) -> bool | None:
        return None


class HttpServer:
    """Serves ``handler`` on an already bound, listening socket (so that port 0 is known before serving starts)."""

    def __init__(self, handler: Handler, sock: socket.socket) -> None:
        self.handler = handler
        host, port = sock.getsockname()[:2]
        self.origin = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._sock = sock
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self.sniffing: set[asyncio.Transport] = set()  # connections whose first bytes are not in yet

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Sniffer(self), sock=self._sock)

    def adopt(self, connection: Connection) -> None:
        """A connection from its protocol on: closed with the server, forgotten when it ends."""
        self._connections.add(connection)

    def forget(self, connection: Connection) -> None:
        self._connections.discard(connection)

    async def close(self, grace_s: float = GRACE_S) -> None:
        """Stop listening; each connection finishes the requests in flight (up to ``grace_s``), then closes."""
        if self._server is not None:
            self._server.close()
        for transport in list(self.sniffing):
            transport.close()
        connections = list(self._connections)
        for connection in connections:
            connection.shutdown()
        if connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.finished() for c in connections)), grace_s)
        for connection in connections:
            connection.abort()
        if self._server is not None:
            await self._server.wait_closed()
