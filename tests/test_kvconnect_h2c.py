"""The builtin server's HTTP/2 on the wire, from a client that does what Deno's does not: small windows, many streams
in one write, resets, pings, padding, oversized frames (the ``h2`` library as the client)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from queue_impls.kv.codec import encode_key
from queue_impls.kvconnect import KvConnectServer
from queue_impls.kvconnect import datapath_pb2 as pb

TOKEN = "h2c-token"


class Client:
    """An HTTP/2 client on one connection: requests are sent at once, events read until a condition holds."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, settings: dict[int, int]) -> None:
        self.reader, self.writer = reader, writer
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.events: list[Any] = []
        self.data: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.status: dict[int, int] = {}
        self.flush()

    def flush(self) -> None:
        self.writer.write(self.conn.data_to_send())

    def request(self, path: str, body: bytes, token: str, **options: Any) -> int:
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "POST"), (":scheme", "http"), (":authority", "test"), (":path", path)]
        headers.append(("authorization", f"Bearer {token}"))
        self.conn.send_headers(stream, headers, priority_weight=options.pop("priority_weight", None))
        self.conn.send_data(stream, body, end_stream=True, **options)
        self.data[stream] = bytearray()
        self.flush()
        return stream

    async def until(self, done: Any, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not done():
                chunk = await self.reader.read(65536)
                if not chunk:
                    raise ConnectionError("the server closed the connection")
                for event in self.conn.receive_data(chunk):
                    self._event(event)
                self.flush()

    def _event(self, event: Any) -> None:
        self.events.append(event)
        if isinstance(event, h2.events.ResponseReceived):
            self.status[event.stream_id] = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            self.data[event.stream_id] += event.data
        elif isinstance(event, h2.events.StreamEnded):
            self.ended.add(event.stream_id)

    async def answer(self, stream: int) -> tuple[int, bytes]:
        await self.until(lambda: stream in self.ended)
        return self.status[stream], bytes(self.data[stream])

    async def data_token(self) -> str:
        stream = self.request("/", json.dumps({"supportedVersions": [1, 2, 3]}).encode(), TOKEN)
        status, body = await self.answer(stream)
        assert status == 200, body
        token: str = json.loads(body)["token"]
        return token


@contextlib.asynccontextmanager
async def client(server: KvConnectServer, **settings: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        yield Client(reader, writer, {getattr(h2.settings.SettingCodes, k): v for k, v in settings.items()})
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def get_request(*keys: tuple[Any, ...]) -> bytes:
    ranges = [pb.ReadRange(start=encode_key(k), end=encode_key(k) + b"\x00", limit=1) for k in keys]
    return pb.SnapshotRead(ranges=ranges).SerializeToString()


async def test_many_requests_in_one_write_are_each_answered_and_counted() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server) as c:
        for i in range(20):
            await server.kv.inner.set(("k", i), bytes([i]) * 3)
        token = await c.data_token()
        streams = {}
        for i in range(20):
            stream = c.conn.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", "/v2/snapshot_read")]
            c.conn.send_headers(stream, [*headers, ("authorization", f"Bearer {token}")])
            c.conn.send_data(stream, get_request(("k", i)), end_stream=True)
            c.data[stream] = bytearray()
            streams[stream] = i
        c.flush()  # all twenty requests in one write
        await c.until(lambda: set(streams) <= c.ended)
        for stream, i in streams.items():
            out = pb.SnapshotReadOutput.FromString(bytes(c.data[stream]))
            assert c.status[stream] == 200 and out.ranges[0].values[0].value == bytes([i]) * 3
        assert server.recorder.requests["snapshot_read"] == 20
        assert {op: n for op, n in server.kv.counts.calls.items() if n} == {"get": 20}


async def test_requests_in_one_write_are_one_serial_wave_with_no_loop_pass_of_their_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The requests of one read are concurrent for the counting clock (one wave, though each completes before the
    next is read), and the clock marks them so without scheduling the end of the event-loop pass (a callback and an
    extra pass of the loop per request)."""
    async with KvConnectServer.running("memory:", token=TOKEN, trace=False) as server, client(server) as c:
        await server.kv.inner.set(("k",), b"v")
        token = await c.data_token()
        scheduled: list[Any] = []
        loop = asyncio.get_running_loop()
        real = loop.call_soon
        monkeypatch.setattr(
            loop, "call_soon", lambda callback, *a, **kw: scheduled.append(callback) or real(callback, *a, **kw)
        )
        streams = []
        for _ in range(5):
            stream = c.conn.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "http"), (":authority", "t"), (":path", "/v2/snapshot_read")]
            c.conn.send_headers(stream, [*headers, ("authorization", f"Bearer {token}")])
            c.conn.send_data(stream, get_request(("k",)), end_stream=True)
            c.data[stream] = bytearray()
            streams.append(stream)
        c.flush()  # five gets in one write
        await c.until(lambda: set(streams) <= c.ended)
        assert (server.kv.counts.round_trips, server.kv.counts.serial_round_trips) == (5, 1)
        await c.answer(c.request("/v2/snapshot_read", get_request(("k",)), token))  # one more, after them
        assert (server.kv.counts.round_trips, server.kv.counts.serial_round_trips) == (6, 2)
        assert not [f for f in scheduled if getattr(f, "__self__", None) is server.kv._clock]


async def test_an_answer_larger_than_the_clients_window_waits_for_its_window_update() -> None:
    value = bytes(range(256)) * 200  # 51,200 bytes: more than the stream window the client allows
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server, INITIAL_WINDOW_SIZE=1000) as c:
        await server.kv.inner.set(("big",), value)
        token = await c.data_token()
        stream = c.request("/v2/snapshot_read", get_request(("big",)), token)
        await c.until(lambda: len(c.data[stream]) >= 1000)
        with contextlib.suppress(TimeoutError):
            await c.until(lambda: False, timeout=0.3)
        assert len(c.data[stream]) == 1000 and stream not in c.ended  # held back at the window's edge
        c.conn.increment_flow_control_window(100_000, stream_id=stream)
        c.conn.increment_flow_control_window(100_000)
        c.flush()
        status, body = await c.answer(stream)
        assert status == 200 and pb.SnapshotReadOutput.FromString(body).ranges[0].values[0].value == value


async def test_pings_padding_and_priorities_are_understood() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server) as c:
        await server.kv.inner.set(("k",), b"v")
        c.conn.ping(b"12345678")
        c.flush()
        await c.until(lambda: any(isinstance(e, h2.events.PingAckReceived) for e in c.events))
        token = await c.data_token()
        stream = c.request("/v2/snapshot_read", get_request(("k",)), token, priority_weight=32, pad_length=17)
        status, body = await c.answer(stream)
        assert status == 200 and pb.SnapshotReadOutput.FromString(body).ranges[0].values[0].value == b"v"


async def test_errors_keep_their_status_and_text_over_h2c() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server) as c:
        assert (await c.answer(c.request("/", b"", "wrong")))[0] == 401
        token = await c.data_token()
        status, body = await c.answer(c.request("/v2/snapshot_read", b"\xff\xff", token))
        assert status == 400 and body.startswith(b"Invalid SnapshotRead")
        assert server.app.errors == {401: 1, 400: 1}


async def test_a_reset_watch_ends_and_the_connection_serves_on() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server) as c:
        token = await c.data_token()
        watch = pb.Watch(keys=[pb.WatchKey(key=encode_key(("w",)))]).SerializeToString()
        stream = c.request("/v2/watch", watch, token)
        await c.until(lambda: len(c.data[stream]) >= 4)
        c.conn.reset_stream(stream)
        c.flush()
        await server.kv.inner.set(("w",), b"changed")  # no frame may follow on the reset stream
        status, _ = await c.answer(c.request("/v2/snapshot_read", get_request(("w",)), token))
        assert status == 200
        assert not [e for e in c.events if isinstance(e, h2.events.StreamReset)]


async def test_a_stopping_server_ends_an_open_watch_and_says_goaway() -> None:
    stack = contextlib.AsyncExitStack()
    server = await stack.enter_async_context(KvConnectServer.running("memory:", token=TOKEN))
    async with client(server) as c:
        try:
            token = await c.data_token()
            watch = pb.Watch(keys=[pb.WatchKey(key=encode_key(("w",)))]).SerializeToString()
            stream = c.request("/v2/watch", watch, token)
            await c.until(lambda: len(c.data[stream]) >= 4)
        finally:
            await asyncio.wait_for(stack.aclose(), 5.0)
        with contextlib.suppress(ConnectionError):
            await c.until(lambda: any(isinstance(e, h2.events.ConnectionTerminated) for e in c.events))
        assert stream in c.ended  # a complete answer, then GOAWAY
        goaway = [e for e in c.events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ((20000).to_bytes(3) + b"\x00\x00\x00\x00\x00\x01" + bytes(20000), 6),  # a frame over 16,384 bytes
        (b"\x00\x00\x04\x09\x04\x00\x00\x00\x07abcd", 1),  # CONTINUATION without HEADERS
        (b"\x00\x00\x03\x01\x05\x00\x00\x00\x01\xff\xff\xff", 9),  # a header block that does not decode
    ],
    ids=["frame-size", "stray-continuation", "bad-hpack"],
)
async def test_a_connection_error_is_a_goaway_with_its_code(raw: bytes, code: int) -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server, client(server) as c:
        await c.until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in c.events))
        c.writer.write(raw)
        with contextlib.suppress(ConnectionError):
            await c.until(lambda: any(isinstance(e, h2.events.ConnectionTerminated) for e in c.events))
        goaway = [e for e in c.events if isinstance(e, h2.events.ConnectionTerminated)]
        assert goaway and goaway[0].error_code == code


def _http1_keep_alive(url: str, body: bytes) -> list[int]:
    """Three metadata exchanges on one HTTP/1.1 connection, then one with a bad token."""
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    statuses = []
    try:
        for token in (TOKEN, TOKEN, TOKEN, "wrong"):
            connection.request("POST", "/", body, {"Authorization": f"Bearer {token}"})
            response = connection.getresponse()
            response.read()
            assert not response.will_close  # the server keeps the connection open
            statuses.append(response.status)
        return statuses
    finally:
        connection.close()


async def test_http1_keeps_a_connection_alive_across_requests() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server:
        body = json.dumps({"supportedVersions": [3]}).encode()
        assert await asyncio.to_thread(_http1_keep_alive, server.url, body) == [200, 200, 200, 401]


async def test_a_stopping_server_closes_a_connection_that_never_spoke() -> None:
    async with KvConnectServer.running("memory:", token=TOKEN) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"PRI * HTTP")  # not yet enough to tell HTTP/2 from HTTP/1.1
        await writer.drain()
        await asyncio.sleep(0.05)
    try:
        assert await asyncio.wait_for(reader.read(), 5.0) == b""  # closed by the server
    finally:
        writer.close()
