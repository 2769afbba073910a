"""HTTP/1.1 for the KV Connect server, through ``h11``: one request at a time per connection (keep-alive and
pipelining as h11 allows), a watch's answer sent chunked until the client goes or the server stops."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import unquote

import h11

from .app import MAX_BODY, WatchStream

if TYPE_CHECKING:
    from .listener import HttpServer

_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


class H1Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection; takes over the transport (whose first bytes the listener hands on)."""

    def __init__(self, transport: asyncio.Transport, server: HttpServer) -> None:
        self._transport = transport
        self._server = server
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self._buffer = bytearray(1 << 16)
        self._request: h11.Request | None = None
        self._body: list[bytes] = []
        self._size = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        transport.set_protocol(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self._h11.receive_data(bytes(memoryview(self._buffer)[:nbytes]))
        self._next_events()

    def eof_received(self) -> bool | None:
        self._h11.receive_data(b"")
        self._next_events()
        return True  # keep the transport open: an answer may still be on its way

    def _next_events(self) -> None:
        while self._task is None and not self._transport.is_closing():
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError as exc:
                self._refuse(exc.error_status_hint, f"Bad HTTP/1.1 request: {exc}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body, self._size = event, [], 0
                if self._h11.they_are_waiting_for_100_continue:
                    self._transport.write(self._h11.send(h11.InformationalResponse(status_code=100, headers=[])))
            elif isinstance(event, h11.Data):
                self._size += len(event.data)
                if self._size <= MAX_BODY:
                    self._body.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._task = asyncio.get_running_loop().create_task(self._answer())
            elif isinstance(event, h11.ConnectionClosed):
                self._transport.close()
                return

    def _refuse(self, status: int, message: str) -> None:
        """An answer to a request h11 could not read; then the connection closes."""
        if self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            data = message.encode()
            headers = [*_TEXT, (b"content-length", str(len(data)).encode()), (b"connection", b"close")]
            try:
                self._transport.write(self._h11.send(h11.Response(status_code=status, headers=headers)))
                self._transport.write(self._h11.send(h11.Data(data=data)) + self._h11.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:
                pass
        self._transport.close()

    async def _answer(self) -> None:
        request = self._request
        assert request is not None
        handler = self._server.handler
        headers = {bytes(k).decode("latin-1"): bytes(v).decode("latin-1") for k, v in request.headers}
        path = bytes(request.target).decode("latin-1").partition("?")[0]
        if self._size > MAX_BODY:
            self._refuse(413, f"Request body too large (max {MAX_BODY} bytes)")
            return
        status, response_headers, body = await handler.respond(
            bytes(request.method).decode("latin-1"),
            unquote(path) if "%" in path else path,
            headers,
            b"".join(self._body),
            origin=self._server.origin,
        )
        if self._gone.done():
            if isinstance(body, WatchStream):
                await body.close()
            return
        if isinstance(body, WatchStream):
            self._send(h11.Response(status_code=status, headers=response_headers))
            if await body.run(self._send_watch, self._gone, handler.closing):
                self._send(h11.EndOfMessage())
        else:
            length = [(b"content-length", str(len(body)).encode())]
            if self._closing:
                length.append((b"connection", b"close"))
            self._send(h11.Response(status_code=status, headers=response_headers + length))
            self._send(h11.Data(data=body), h11.EndOfMessage())
        self._next_cycle()

    async def _send_watch(self, chunk: bytes) -> None:
        self._send(h11.Data(data=chunk))

    def _send(self, *events: h11.Event) -> None:
        if not self._transport.is_closing():
            self._transport.write(b"".join(self._h11.send(event) or b"" for event in events))

    def _next_cycle(self) -> None:
        self._task = None
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE and not self._closing:
            self._h11.start_next_cycle()
            self._next_events()  # a pipelined request may be waiting
        elif self._h11.our_state is not h11.IDLE or self._closing:
            self._transport.close()

    def shutdown(self) -> None:
        """Close now if idle, else once the answer in flight is sent."""
        self._closing = True
        if self._task is None:
            self._transport.close()

    async def finished(self) -> None:
        await asyncio.shield(self._gone)

    def abort(self) -> None:
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._gone.done():
            self._gone.set_result(None)
        self._server.forget(self)
