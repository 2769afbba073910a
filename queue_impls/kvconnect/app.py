"""The KV Connect protocol as an ASGI application in front of a store (protocol versions 1 to 3).

``POST /`` is the metadata exchange (JSON, checked against the access token); ``POST /v2/snapshot_read`` and
``POST /v2/atomic_write`` are the data path (protobuf, checked against the token the exchange handed out, until it
expires); ``POST /v2/watch`` answers a stream of length-prefixed messages until the client goes or the server stops.
Errors are plain text: 401 for a bad token, 400 for a request the server refuses (Deno's client shows the text), 500
only for a failure of the server itself (which Deno's client retries). See docs/kvconnect.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any

from queue_impls.kv.errors import KvError

from . import datapath_pb2 as pb
from . import wire
from .recorder import RequestRecorder

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: (status, headers, body): a watch's body is a ``WatchStream``, sent frame by frame.
Response = tuple[int, list[tuple[bytes, bytes]], "bytes | WatchStream"]

_log = logging.getLogger(__name__)

PROTOCOL_VERSIONS = (1, 2, 3)
DATA_PATH = "/v2"
_SNAPSHOT_READ, _ATOMIC_WRITE, _WATCH = (f"{DATA_PATH}/{name}" for name in ("snapshot_read", "atomic_write", "watch"))
MAX_BODY = 16 * 1024 * 1024
_TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
_PROTOBUF = [(b"content-type", b"application/x-protobuf")]
_JSON = [(b"content-type", b"application/json")]
_STREAM = [(b"content-type", b"application/octet-stream")]
WATCH_PING_S = 5.0  # an idle watch stream sends an empty frame this often (as Deno's own server does)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class KvConnectApp:
    """An ASGI app serving one store. ``token`` is the access token clients must present (DENO_KV_ACCESS_TOKEN)."""

    def __init__(self, recorder: RequestRecorder, token: str, *, metadata_ttl_s: float = 3600.0) -> None:
        if not token:
            raise ValueError("a KV Connect server needs a non-empty access token")
        self.recorder = recorder
        self.token = token
        self.metadata_ttl_s = metadata_ttl_s
        self.database_id = str(uuid.uuid4())
        self._data_tokens: dict[str, float] = {}  # token handed out by a metadata exchange -> expiry (unix s)
        self.errors: dict[int, int] = {}  # responses by error status
        self._closing = asyncio.Event()  # set: open watch streams end (the server is stopping)
        self.encoded = wire.EncodedValues()  # values read are serialised once per version
        self.arrivals = recorder.arrivals  # see listener.Handler

    @property
    def closing(self) -> asyncio.Event:
        """Set when the server stops: open watch streams end."""
        return self._closing

    def end_watches(self) -> None:
        """End every open watch stream (and any opened later): a server stops without waiting on them."""
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI face (hypercorn, granian): the request through ``respond``, a watch stream until the client goes."""
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = await _body(receive)
        except HttpError as exc:
            status, response_headers, out = self.refuse(exc.status, str(exc))
        else:
            origin = "{}:{}".format(*scope["server"]) if scope.get("server") else ""
            status, response_headers, out = await self.respond(
                scope["method"], scope["path"], headers, body, scheme=scope.get("scheme", "http"), origin=origin
            )
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        if isinstance(out, WatchStream):
            await _asgi_watch(out, receive, send, self._closing)
            return
        await send({"type": "http.response.body", "body": out})

    def refuse(self, status: int, message: str) -> Response:
        """A plain-text error answer, counted in ``errors``."""
        self.errors[status] = self.errors.get(status, 0) + 1
        return status, _TEXT, message.encode("utf-8")

    async def respond(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, *, scheme: str = "http", origin: str = ""
    ) -> Response:
        """The answer to one request, whatever HTTP server carried it. ``headers``: lower-case names; ``origin``: the
        server's host:port, for a request without a Host header (or ``:authority``)."""
        try:  # one coroutine frame for the whole request: a served get is only a few dozen microseconds
            if method != "POST":
                raise HttpError(405, f"KV Connect takes POST requests, got {method} {path}")
            if path in ("", "/"):
                self._authorize(headers, lambda t: secrets.compare_digest(t, self.token), "access token")
                host = headers.get("host") or headers.get(":authority") or origin
                return 200, _JSON, self._metadata(body, f"{scheme}://{host}{DATA_PATH}")
            # a data-path token as Deno's client sends it ("Bearer <token>") is checked with one look-up
            expiry = self._data_tokens.get(headers.get("authorization", "")[7:], 0.0)
            if not (expiry > time.time() and headers["authorization"].startswith("Bearer ")):
                self._authorize(headers, self._valid_data_token, "data path token (from the metadata exchange)")
            self._check_database(headers)
            site = headers.get("user-agent", "kv-connect client")
            if path == _SNAPSHOT_READ:
                ranges = wire.read_ranges(wire.parse(pb.SnapshotRead, body))
                results = await self.recorder.snapshot_read(ranges, "strong", site)
                return 200, _PROTOBUF, wire.read_output(results, self.encoded)
            if path == _ATOMIC_WRITE:
                checks, mutations = wire.atomic_write(wire.parse(pb.AtomicWrite, body))
                versionstamp = await self.recorder.atomic_write(checks, mutations, site)
                return 200, _PROTOBUF, wire.write_output(versionstamp)
            if path == _WATCH:
                keys = wire.watch_keys(wire.parse(pb.Watch, body))
                return 200, _STREAM, await WatchStream.open(self.recorder, keys)
            raise HttpError(
                404, f"No KV Connect endpoint at {path} (data path: {DATA_PATH}/snapshot_read, atomic_write)"
            )
        except HttpError as exc:
            return self.refuse(exc.status, str(exc))
        except wire.ProtocolError as exc:
            return self.refuse(400, str(exc))
        except KvError as exc:  # the store refused the request (e.g. sum on a non-U64 value): the client's fault
            return self.refuse(400, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a fault of this server: logged; Deno's client retries a 5xx (with backoff)
            _log.exception("KV Connect request %s %s failed", method, path)
            return self.refuse(500, f"internal error: {type(exc).__name__}: {exc}")

    # -- authentication and metadata -----------------------------------------------------------------------

    def _authorize(self, headers: Mapping[str, str], valid: Callable[[str], bool], what: str) -> None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, f"Missing bearer token: send 'Authorization: Bearer <{what}>'")
        if not valid(token.strip()):
            raise HttpError(401, f"Invalid or expired {what}")

    def _valid_data_token(self, token: str) -> bool:
        expiry = self._data_tokens.get(token)
        return expiry is not None and expiry > time.time()

    def _check_database(self, headers: Mapping[str, str]) -> None:
        given = headers.get("x-denokv-database-id") or headers.get("x-transaction-domain-id")
        if given is not None and given != self.database_id:
            raise HttpError(400, f"Unknown database id {given!r}: this server serves {self.database_id}")

    def _metadata(self, body: bytes, endpoint: str) -> bytes:
        version = _negotiate(body)
        now = time.time()
        self._data_tokens = {t: e for t, e in self._data_tokens.items() if e > now}
        token = secrets.token_urlsafe(24)
        expires = now + self.metadata_ttl_s
        self._data_tokens[token] = expires
        metadata = {
            "version": version,
            "databaseId": self.database_id,
            "endpoints": [{"url": endpoint, "consistency": "strong"}],
            "token": token,
            "expiresAt": datetime.fromtimestamp(expires, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return json.dumps(metadata).encode("utf-8")


class WatchStream:
    """A watch's answer: a frame at once, another whenever a watched versionstamp moves, until the client goes."""

    def __init__(self, encoded: list[bytes], entries: AsyncIterator[list[Any]], first: bytes, sent: list[Any]) -> None:
        self._encoded = encoded
        self._entries = entries
        self._first = first
        self._sent = sent

    @classmethod
    async def open(cls, recorder: RequestRecorder, keys: list[tuple[bytes, Any]]) -> WatchStream:
        """Reads the keys before the answer starts, so that a refused watch (too many keys, a key too large) is a
        400 with the store's message. No keys: one frame of no keys, then only pings: Deno's remote client yields
        nothing for it and never ends it (denokv's server ends such a stream, and the client asks again, forever)."""
        encoded = [key for key, _ in keys]
        entries = recorder.watch([key for _, key in keys])
        try:
            first = await anext(entries) if keys else []
        except BaseException:
            await entries.aclose()  # type: ignore[attr-defined]
            raise
        return cls(encoded, entries, wire.watch_frame(encoded, first, None), [e.versionstamp for e in first])

    async def run(
        self, send: Callable[[bytes], Awaitable[None]], gone: asyncio.Future[Any], closing: asyncio.Event
    ) -> bool:
        """Send frames until the client goes (``gone`` done), the server closes, or the store fails (logged; the
        client retries after a dropped stream). True when the client is still there: the caller ends the body."""
        stopping = asyncio.ensure_future(closing.wait())
        following = asyncio.ensure_future(self._next()) if self._encoded else None
        try:
            await send(self._first)
            while True:
                waiting = {gone, stopping} | ({following} if following else set())
                done, _ = await asyncio.wait(waiting, timeout=WATCH_PING_S, return_when=asyncio.FIRST_COMPLETED)
                if following is not None and following in done:
                    frame = following.result()
                    if frame is None:
                        break
                    following = asyncio.ensure_future(self._next())
                elif done:
                    break
                else:
                    frame = wire.WATCH_PING
                await send(frame)
        except Exception:
            _log.exception("KV Connect watch stream failed")
        finally:
            still_there = not gone.done()
            for task in (stopping, following):
                if task is not None:
                    task.cancel()
            await asyncio.gather(stopping, *([following] if following else []), return_exceptions=True)
            await self._entries.aclose()  # type: ignore[attr-defined]
        return still_there

    async def close(self) -> None:
        """Let go of the store's watch without sending anything (the client went before the answer started)."""
        await self._entries.aclose()  # type: ignore[attr-defined]

    async def _next(self) -> bytes | None:
        """The next frame, None once the store's watch ended."""
        entries = await anext(self._entries, None)
        if entries is None:
            return None
        frame = wire.watch_frame(self._encoded, entries, self._sent)
        self._sent = [e.versionstamp for e in entries]
        return frame


async def _asgi_watch(stream: WatchStream, receive: Receive, send: Send, closing: asyncio.Event) -> None:
    async def frame(data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        still_there = await stream.run(frame, gone, closing)
    finally:
        gone.cancel()
        await asyncio.gather(gone, return_exceptions=True)
    if still_there:
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _negotiate(body: bytes) -> int:
    """The highest protocol version both sides support; no body means the client speaks version 1 only."""
    if not body.strip():
        return 1
    try:
        request = json.loads(body)
        versions = request["supportedVersions"]
        if not isinstance(versions, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise HttpError(400, 'Invalid metadata exchange request: expected {"supportedVersions": [1, 2, 3]}') from None
    common = [v for v in PROTOCOL_VERSIONS if v in versions]
    if not common:
        raise HttpError(
            400, f"No common KV Connect protocol version: client {versions}, server {list(PROTOCOL_VERSIONS)}"
        )
    return max(common)


async def _body(receive: Receive) -> bytes:
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HttpError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(413, f"Request body too large (max {MAX_BODY} bytes)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
