"""HTTP/2 over cleartext (RFC 9113) for the KV Connect server: what a request/response server needs, lean.

A request is its HEADERS (and CONTINUATION) and DATA frames; when it ends, ``Handler.respond`` answers it at once,
in a context of its own (a task takes over only if the answer has to wait), and the answers made while one read is
handled leave, HEADERS and DATA frames together, in one write. A watch's answer is sent frame by frame. Flow control
both ways: the server opens its receive windows wide at once (2^31 - 1, topped up as data arrives), and sends no
more DATA than the client's windows allow (the rest waits for its WINDOW_UPDATE). Header blocks are decoded with
``hpack``; a block that leaves the decoder's table as it was (a request whose headers are all indexed, as a client's
repeated requests are) is decoded once and remembered. Responses are encoded without the dynamic table. No server
push, no priorities (PRIORITY frames are read and ignored), no h2c upgrade from HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import struct
import types
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import hpack

from .app import MAX_BODY, WatchStream

if TYPE_CHECKING:
    from .listener import HttpServer

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 6, 7, 8, 9
MAX_WINDOW = 2**31 - 1
MAX_FRAME = 16384  # the default SETTINGS_MAX_FRAME_SIZE, which this server keeps for what it receives
MAX_STREAMS = 1000  # SETTINGS_MAX_CONCURRENT_STREAMS this server announces
_log = logging.getLogger(__name__)
_HEAD = struct.Struct(">HBBBL")  # length (24 bits, as 16 + 8), type, flags, stream id
_SETTING = struct.Struct(">HL")
_WATCH_BUFFER = 1 << 20  # a watch waits for the client's window once this much of its answer is held back
_HEADER_CACHE = 256
_STATIC_STATUS = {200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}


class ConnectionError_(Exception):
    """A connection error (RFC 9113, 5.4.1): GOAWAY with ``code``, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(kind: int, flags: int, stream_id: int, payload: bytes | memoryview = b"") -> bytes:
    size = len(payload)
    return _HEAD.pack(size >> 8, size & 0xFF, kind, flags, stream_id) + payload


def _integer(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """HPACK's integer with an N-bit prefix (RFC 7541, 5.1)."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((first | value,))
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 127) | 128)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(data: bytes) -> bytes:
    return _integer(len(data), 7) + data


def encode_headers(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    """A response header block using only the static table: literals are not indexed, so the client's decoder
    table is never touched and every block stands alone (and the few an app answers with are made once)."""
    key = (status, *headers)
    block = _HEADER_BLOCKS.get(key)
    if block is None:
        if len(_HEADER_BLOCKS) >= _HEADER_CACHE:
            _HEADER_BLOCKS.clear()
        block = _HEADER_BLOCKS[key] = _encode_headers(status, headers)
    return block


_HEADER_BLOCKS: dict[tuple[Any, ...], bytes] = {}


def _encode_headers(status: int, headers: list[tuple[bytes, bytes]]) -> bytes:
    index = _STATIC_STATUS.get(status)
    block = [bytes((0x80 | index,)) if index else b"\x08" + _string(str(status).encode())]
    block += [b"\x00" + _string(name.lower()) + _string(value) for name, value in headers]
    return b"".join(block)


class _Stream:
    __slots__ = (
        "_gone",
        "body",
        "closed",
        "ended",
        "headers",
        "id",
        "pending",
        "size",
        "started",
        "window",
        "writable",
    )

    def __init__(self, stream_id: int, window: int) -> None:
        self.id = stream_id
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.size = 0
        self.started = False  # the request is complete and being answered
        self.window = window  # how much DATA the client lets us send on this stream
        self.pending = memoryview(b"")  # answer held back by flow control
        self.ended = False  # END_STREAM queued after ``pending``
        self.closed = False  # reset, or the connection lost
        self._gone: asyncio.Future[None] | None = None  # made only for a watch, which waits on it
        self.writable: asyncio.Future[None] | None = None  # a watch waiting for the client's window

    def gone(self) -> asyncio.Future[None]:
        """Done once the stream is reset or the connection lost (what a watch's answer waits on)."""
        if self._gone is None:
            self._gone = asyncio.get_running_loop().create_future()
            if self.closed:
                self._gone.set_result(None)
        return self._gone

    def close(self) -> None:
        self.closed = True
        if self._gone is not None:
            _settle(self._gone)


class H2Connection(asyncio.BufferedProtocol):
    """One HTTP/2 connection; takes over the transport (its preface already read)."""

    def __init__(self, transport: asyncio.Transport, server: HttpServer) -> None:
        self._transport = transport
        self._server = server
        self._handler = server.handler
        self._arrivals = server.handler.arrivals
        self._buffer = bytearray(1 << 16)
        self._partial = b""  # the start of a frame not yet complete
        self._decoder = hpack.Decoder()
        self._header_cache: dict[bytes, dict[str, str]] = {}
        self._streams: dict[int, _Stream] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._blocked: dict[int, _Stream] = {}
        self._out: list[bytes] | None = None  # frames to write at the end of the read being handled
        self._last_stream = 0
        self._block: tuple[int, int, list[bytes]] | None = None  # (stream, flags, fragments) awaiting CONTINUATION
        self._send_window = 65535  # the connection's window for what we send
        self._initial_window = 65535  # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self._max_frame = MAX_FRAME  # the client's SETTINGS_MAX_FRAME_SIZE
        self._received = 0  # DATA bytes since the last WINDOW_UPDATE we sent for the connection
        self._closing = False  # the server is stopping
        self._goaway = False  # the client said GOAWAY
        self._lost = False
        self._done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        transport.set_protocol(self)
        settings = _SETTING.pack(3, MAX_STREAMS) + _SETTING.pack(4, MAX_WINDOW)
        transport.write(frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - 65535).to_bytes(4)))

    # -- receiving -----------------------------------------------------------------------------------------------

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._buffer)

    def buffer_updated(self, nbytes: int) -> None:
        received = memoryview(self._buffer)[:nbytes]
        data = self._partial + received if self._partial else bytes(received)
        out: list[bytes] = []
        self._out = out  # answers made while reading (run eagerly) leave with the control frames, in one write
        pos, end = 0, len(data)
        arrivals = self._arrivals
        arrivals.arrivals_begin()  # the requests of one read arrived together: one serial wave
        try:
            while end - pos >= 9:
                high, low, kind, flags, stream_id = _HEAD.unpack_from(data, pos)
                size = (high << 8) | low
                if size > MAX_FRAME:
                    raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {size} bytes (max {MAX_FRAME})")
                if end - pos - 9 < size:
                    break
                payload = data[pos + 9 : pos + 9 + size]
                pos += 9 + size
                self._frame(kind, flags, stream_id & MAX_WINDOW, payload, out)
        except ConnectionError_ as exc:
            self._out = None
            self._fail(exc, out)
            return
        finally:
            arrivals.arrivals_end()
        self._out = None
        self._partial = data[pos:]
        if out and not self._lost:
            self._transport.write(b"".join(out))
        if self._closing:
            self._check_done()

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        if self._block is not None and kind != CONTINUATION:
            raise ConnectionError_(PROTOCOL_ERROR, "a header block was interrupted by another frame")
        if kind == DATA:
            self._data(flags, stream_id, payload, out)
        elif kind == HEADERS:
            self._headers(flags, stream_id, payload, out)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload, out)
        elif kind == SETTINGS:
            self._settings(flags, stream_id, payload, out)
        elif kind == PING:
            if len(payload) != 8 or stream_id:
                raise ConnectionError_(FRAME_SIZE_ERROR if stream_id == 0 else PROTOCOL_ERROR, "bad PING")
            if not flags & ACK:
                out.append(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            self._reset(stream_id)
        elif kind == CONTINUATION:
            self._continuation(flags, stream_id, payload, out)
        elif kind == GOAWAY:
            self._goaway = True  # the client opens no more streams; it closes the connection when it is done
        elif kind == PUSH_PROMISE:
            raise ConnectionError_(PROTOCOL_ERROR, "a client cannot push")
        # PRIORITY and unknown frame types are ignored (RFC 9113, 5.5)

    def _data(self, flags: int, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        self._received += len(payload)
        if self._received > MAX_WINDOW // 2:
            out.append(frame(WINDOW_UPDATE, 0, 0, self._received.to_bytes(4)))
            self._received = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream already answered or reset: its data is dropped
        if flags & PADDED:
            payload = _unpad(payload)
        stream.size += len(payload)
        if stream.size <= MAX_BODY:
            stream.body.append(payload)
        if flags & END_STREAM:
            self._dispatch(stream)

    def _headers(self, flags: int, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        if stream_id == 0 or stream_id % 2 == 0:
            raise ConnectionError_(PROTOCOL_ERROR, f"HEADERS on stream {stream_id}")
        if flags & PADDED:
            payload = _unpad(payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        if flags & END_HEADERS:
            self._header_block(stream_id, flags, payload, out)
        else:
            self._block = (stream_id, flags, [payload])

    def _continuation(self, flags: int, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        if self._block is None or self._block[0] != stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, f"CONTINUATION on stream {stream_id} without HEADERS")
        self._block[2].append(payload)
        if flags & END_HEADERS:
            stream_id, first_flags, fragments = self._block
            self._block = None
            self._header_block(stream_id, first_flags, b"".join(fragments), out)

    def _header_block(self, stream_id: int, flags: int, block: bytes, out: list[bytes]) -> None:
        headers = self._decode(block)  # decoded even when refused: the decoder's table must follow the client's
        stream = self._streams.get(stream_id)
        if stream is None:
            if stream_id <= self._last_stream:
                return  # trailers of a stream already answered
            self._last_stream = stream_id
            if len(self._streams) >= MAX_STREAMS or self._closing or self._goaway:
                out.append(frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4)))
                return
            stream = self._streams[stream_id] = _Stream(stream_id, self._initial_window)
            stream.headers = headers
        if flags & END_STREAM:
            self._dispatch(stream)

    def _decode(self, block: bytes) -> dict[str, str]:
        cached = self._header_cache.get(block)
        if cached is not None:
            return cached
        table = self._decoder.header_table
        before = (tuple(table.dynamic_entries), table.maxsize)
        try:
            pairs = self._decoder.decode(block, raw=True)
        except hpack.HPACKError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, f"bad header block: {exc}") from None
        headers = {bytes(name).decode("latin-1"): bytes(value).decode("latin-1") for name, value in pairs}
        if (tuple(table.dynamic_entries), table.maxsize) == before:
            if len(self._header_cache) >= _HEADER_CACHE:
                self._header_cache.clear()
            self._header_cache[block] = headers
        else:  # the table moved: blocks remembered before may now index other entries
            self._header_cache.clear()
        return headers

    def _settings(self, flags: int, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        if stream_id:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            return
        if len(payload) % 6:
            raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS of a length not a multiple of 6")
        for offset in range(0, len(payload), 6):
            code, value = _SETTING.unpack_from(payload, offset)
            if code == 4:  # INITIAL_WINDOW_SIZE: applies to open streams too
                if value > MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, f"initial window {value}")
                for stream in self._streams.values():
                    stream.window += value - self._initial_window
                self._initial_window = value
            elif code == 5:
                if not MAX_FRAME <= value <= 2**24 - 1:
                    raise ConnectionError_(PROTOCOL_ERROR, f"max frame size {value}")
                self._max_frame = value
        out.append(frame(SETTINGS, ACK, 0))
        self._unblock(out)

    def _window_update(self, stream_id: int, payload: bytes, out: list[bytes]) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE of a length other than 4")
        increment = int.from_bytes(payload) & MAX_WINDOW
        if stream_id == 0:
            if not increment or self._send_window + increment > MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, f"connection window update of {increment}")
            self._send_window += increment
            self._unblock(out)
            return
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.window += increment
            out += self._take(stream)

    def _reset(self, stream_id: int) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None:
            self._blocked.pop(stream_id, None)
            stream.close()
            if stream.writable is not None:
                _settle(stream.writable)

    # -- answering -----------------------------------------------------------------------------------------------

    def _dispatch(self, stream: _Stream) -> None:
        """Answer ``stream`` at once, in a context of its own, as far as the answer goes without waiting (a get from
        memory, or from SQLite read on the loop, goes all the way: no task, no event-loop pass); a task takes over
        the rest when it has to wait (a write on aiosqlite's thread, the latency model, a watch)."""
        if stream.started:
            return
        stream.started = True
        answer = self._answer(stream)
        context = contextvars.copy_context()  # what a task would run in: the same lanes of the serial clock
        try:
            waiting = context.run(answer.send, None)
        except StopIteration:
            return
        except Exception:
            _log.exception("KV Connect stream %d failed", stream.id)
            self._write([frame(RST_STREAM, 0, stream.id, INTERNAL_ERROR.to_bytes(4))])
            self._reset(stream.id)
            return
        task = asyncio.Task(_finish(answer, waiting), loop=asyncio.get_running_loop(), context=context)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._closing:
            self._check_done()

    async def _answer(self, stream: _Stream) -> None:
        h = stream.headers
        path = h.get(":path", "").partition("?")[0]
        if "%" in path:
            path = unquote(path)
        if stream.size > MAX_BODY:
            status, headers, body = self._handler.refuse(413, f"Request body too large (max {MAX_BODY} bytes)")
        else:
            data = stream.body[0] if len(stream.body) == 1 else b"".join(stream.body)
            status, headers, body = await self._handler.respond(
                h.get(":method", ""), path, h, data, scheme=h.get(":scheme", "http"), origin=self._server.origin
            )
        if stream.closed:
            if isinstance(body, WatchStream):
                await body.close()
            return
        head = frame(HEADERS, END_HEADERS, stream.id, encode_headers(status, headers))
        if not isinstance(body, WatchStream):
            size = len(body)
            if size <= self._max_frame and size <= self._send_window and size <= stream.window:  # the usual answer
                self._send_window -= size
                stream.window -= size
                del self._streams[stream.id]
                self._write([head, frame(DATA, END_STREAM, stream.id, body)])
            else:
                self._write([head, *self._send(stream, body, end=True)])
            return
        self._write([head])
        if await body.run(lambda chunk: self._send_watch(stream, chunk), stream.gone(), self._handler.closing):
            self._write(self._send(stream, b"", end=True))

    async def _send_watch(self, stream: _Stream, chunk: bytes) -> None:
        self._write(self._send(stream, chunk, end=False))
        if len(stream.pending) > _WATCH_BUFFER and not stream.closed:
            stream.writable = asyncio.get_running_loop().create_future()
            await stream.writable

    def _send(self, stream: _Stream, data: bytes, *, end: bool) -> list[bytes]:
        if stream.closed:
            return []
        stream.pending = memoryview(bytes(stream.pending) + data) if stream.pending else memoryview(data)
        stream.ended = end
        return self._take(stream)

    def _take(self, stream: _Stream) -> list[bytes]:
        """The DATA frames of ``stream``'s held-back answer that the windows allow now."""
        out = []
        data = stream.pending
        while data:
            size = min(len(data), self._max_frame, self._send_window, stream.window)
            if size <= 0:
                break
            self._send_window -= size
            stream.window -= size
            last = size == len(data) and stream.ended
            out.append(frame(DATA, END_STREAM if last else 0, stream.id, data[:size]))
            data = data[size:]
        stream.pending = data
        if data:
            self._blocked[stream.id] = stream
            return out
        self._blocked.pop(stream.id, None)
        if stream.writable is not None:
            _settle(stream.writable)
        if stream.ended:
            if not out:
                out.append(frame(DATA, END_STREAM, stream.id))
            del self._streams[stream.id]  # the caller writes ``out``, then sees whether a stopping server may close
        return out

    def _unblock(self, out: list[bytes]) -> None:
        for stream in list(self._blocked.values()):
            out += self._take(stream)

    def _write(self, frames: list[bytes]) -> None:
        if self._out is not None:
            self._out += frames
        elif frames and not self._lost:
            self._transport.write(b"".join(frames) if len(frames) > 1 else frames[0])

    # -- the connection's end ------------------------------------------------------------------------------------

    def _fail(self, exc: ConnectionError_, out: list[bytes]) -> None:
        reason = str(exc).encode()[:200]
        out.append(frame(GOAWAY, 0, 0, self._last_stream.to_bytes(4) + exc.code.to_bytes(4) + reason))
        self._transport.write(b"".join(out))
        self._transport.close()

    def shutdown(self) -> None:
        """Refuse new streams; once the streams in flight are answered, say GOAWAY and close."""
        self._closing = True
        self._check_done()

    def _check_done(self) -> None:
        if self._closing and not self._streams and not self._tasks - {asyncio.current_task()} and not self._lost:
            self._write([frame(GOAWAY, 0, 0, self._last_stream.to_bytes(4) + NO_ERROR.to_bytes(4))])
            self._transport.close()

    async def finished(self) -> None:
        await asyncio.shield(self._done)

    def abort(self) -> None:
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        for stream in self._streams.values():
            stream.close()
            if stream.writable is not None:
                _settle(stream.writable)
        self._streams.clear()
        self._blocked.clear()
        _settle(self._done)
        self._server.forget(self)

    def eof_received(self) -> bool | None:
        return None


@types.coroutine
def _rest(coroutine: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    """The rest of a coroutine whose first step already ran and yielded ``waiting``: what it yields goes to the
    task running this (which waits on it and resumes us), what the task sends or throws goes back into it."""
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # the task was cancelled: so is the answer
            try:
                waiting = coroutine.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = coroutine.send(sent)
            except StopIteration:
                return


async def _finish(coroutine: Coroutine[Any, Any, None], waiting: Any) -> None:
    await _rest(coroutine, waiting)


def _settle(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def _unpad(payload: bytes) -> bytes:
    if not payload or payload[0] >= len(payload):
        raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]
