"""The real Deno KV as a backend: a ``deno`` subprocess runs deno_bridge.ts and serves the two primitives.

Requests are length-prefixed JSON frames with ids, pipelined over stdin; a protocol object hands each reply to
the waiting future. If deno dies, exits or answers garbage, every pending and later call raises DenoBridgeError.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..codec import Key, encode_key, encode_value
from ..contract import Kv, WatchEntries
from ..errors import (
    DenoBridgeError,
    DenoNotFoundError,
    DenoTimeoutError,
    InvalidArgumentError,
    KvClosedError,
    short_repr,
)
from ..types import Check, Consistency, KvEntry, Mutation, RawEntry, ReadRange
from .deno_wire import deno_error, frame, from_wire, parse_frames, plain_value, read_spec, write_request

BRIDGE = Path(__file__).with_name("deno_bridge.ts")
TOKEN_ENV = "DENO_KV_ACCESS_TOKEN"
_STDERR_TAIL = 4000
_START_TIMEOUT = 60.0
#: How long a call waits for deno's answer by default (open_kv(..., request_timeout=seconds); None: forever).
DEFAULT_REQUEST_TIMEOUT = 60.0
_INSTALL_HINT = (
    "set DENO=/path/to/deno, or run `npm ci` in the kvq-bench checkout (`make test` does it: package.json pins "
    "deno), or install deno on PATH (https://docs.deno.com/runtime/getting_started/installation/)"
)


def find_deno(search_from: Sequence[Path] | None = None) -> str:
    """``$DENO``, else the project's ``node_modules/.bin/deno`` (in or above the cwd or this package), else PATH."""
    env = os.environ.get("DENO")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise DenoNotFoundError(f"DENO={env!r} is not an executable file; {_INSTALL_HINT}")
        return env
    for base in search_from if search_from is not None else (Path.cwd(), Path(__file__).resolve().parent):
        for directory in (base, *base.parents):
            candidate = directory / "node_modules" / ".bin" / "deno"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("deno")
    if found is None:
        raise DenoNotFoundError(f"No deno executable found for a deno: KV URL; {_INSTALL_HINT}")
    return found


def deno_argv(deno: str, target: str) -> list[str]:
    """The command line, with the narrowest permissions: the one file, or the one host and the token variable."""
    argv = [deno, "run", "--unstable-kv", "--no-prompt", "--no-config", "--no-lock", "--no-remote", "--quiet"]
    if target.startswith(("https://", "http://")):
        host = urlsplit(target).netloc.rpartition("@")[2]
        argv += [f"--allow-net={host}", f"--allow-env={TOKEN_ENV}"]
    elif target != ":memory:":
        argv += [f"--allow-read={target}", f"--allow-write={target}"]
    return [*argv, str(BRIDGE), target]


def _check_timeout(timeout: Any) -> float | None:
    ok = timeout is None or (
        isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 < timeout <= 86400
    )
    if not ok:
        raise InvalidArgumentError(
            f"request_timeout must be a number of seconds in (0, 86400] or None, got {short_repr(timeout)}"
        )
    return None if timeout is None else float(timeout)


def _target(rest: str) -> str:
    if rest == ":memory:" or rest.startswith(("https://", "http://")):
        return rest
    if not rest:
        raise InvalidArgumentError("deno: needs a path, ':memory:' or (as deno+https://...) a KV Connect URL")
    if "://" in rest:
        raise InvalidArgumentError(f"A remote Deno KV is written deno+https://..., got deno:{rest}")
    return os.path.abspath(rest)


class _BridgeProtocol(asyncio.SubprocessProtocol):
    """Reads reply frames from deno's stdout and its stderr tail; fails everything pending when deno goes away."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.SubprocessTransport | None = None
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.sent_at: dict[int, float] = {}  # loop time each pending request was written (for the request timeout)
        self.timeout: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.streams: dict[int, asyncio.Queue[Any]] = {}  # watch id -> its replies (a DenoBridgeError ends it)
        # Watches ended here whose unwatch the bridge has not answered yet: a yield it sent before it read the unwatch
        # (a change in flight as the watch ended) may still come, and is dropped.
        self.ending: set[int] = set()
        self.failure: DenoBridgeError | None = None
        self.stderr: collections.deque[bytes] = collections.deque(maxlen=64)
        self.done = loop.create_future()
        self._buf = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if fd == 2:
            self.stderr.append(data)
            return
        self._buf += data
        try:
            messages = parse_frames(self._buf)
            for message in messages:
                request_id = int(message[0])
                self.sent_at.pop(request_id, None)  # a watch's first reply ends its request's timeout too
                stream = self.streams.get(request_id)
                if stream is not None:
                    stream.put_nowait(message)
                elif request_id not in self.ending:
                    self.pending.pop(request_id).set_result(message)
        except Exception as exc:  # garbage on stdout: nothing more from this process can be trusted
            self.fail(f"deno answered garbage ({type(exc).__name__}: {exc})")
            self.kill()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:  # no more replies can come; give the exit status and stderr a moment to arrive
            self.loop.call_later(1.0, self.fail, "deno closed its stdout")

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail("deno exited")
        if not self.done.done():
            self.done.set_result(None)

    def stderr_tail(self) -> str:
        text = b"".join(self.stderr).decode("utf-8", "replace").strip()
        return text[-_STDERR_TAIL:] or "(empty)"

    def fail(self, cause: str) -> None:
        if self.failure is None:
            code = None if self.transport is None else self.transport.get_returncode()
            status = "" if code is None else f" (exit status {code}{_signal_name(code)})"
            self.failure = DenoBridgeError(f"{cause}{status}; deno stderr tail: {self.stderr_tail()}")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(self.failure)
        self.pending.clear()
        for stream in self.streams.values():
            stream.put_nowait(self.failure)
        self.sent_at.clear()

    def sent(self, request_id: int) -> None:
        """Note when a request went out; arm the watchdog that fails the bridge if it is not answered in time."""
        if self.timeout is None:
            return
        self.sent_at[request_id] = self.loop.time()
        if self._watchdog is None:
            self._watchdog = self.loop.call_later(self.timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self.sent_at or self.timeout is None or self.failure is not None:
            return
        oldest = next(iter(self.sent_at.values()))  # requests are sent in order: the first is the oldest
        waited = self.loop.time() - oldest
        if waited < self.timeout:
            self._watchdog = self.loop.call_later(self.timeout - waited, self._check_timeout)
            return
        # A stopped or wedged deno: nothing it might still answer can be matched up safely; stop it.
        self.failure = DenoTimeoutError(
            f"deno did not answer within {self.timeout:g} s (request_timeout; pid "
            f"{None if self.transport is None else self.transport.get_pid()}); the bridge was stopped and this "
            f"store is unusable: open it again. deno stderr tail: {self.stderr_tail()}"
        )
        self.fail("timeout")
        self.kill()

    def kill(self) -> None:
        if self.transport is not None and self.transport.get_returncode() is None:
            with contextlib.suppress(ProcessLookupError):
                self.transport.kill()


def _signal_name(code: int) -> str:
    try:
        return f", {signal.Signals(-code).name}" if code < 0 else ""
    except ValueError:
        return ""


class DenoKv(Kv):
    """Deno KV on a local SQLite file, through a ``deno`` subprocess."""

    name = "deno"
    multi_process = True
    persistent = True
    exact_expiry = False  # Deno's local backend purges expired entries late; reads return them until then
    nested_u64_values = False  # V8 clones a KvU64 inside a list/dict into a plain {value} object

    def __init__(self, protocol: _BridgeProtocol, transport: asyncio.SubprocessTransport, target: str) -> None:
        super().__init__()
        self._protocol = protocol
        self._transport = transport
        self._next_id = 0
        self.target = target
        self.deno_version = ""

    @property
    def pid(self) -> int:
        return self._transport.get_pid()

    async def _call(self, request: list[Any]) -> Any:
        protocol = self._protocol
        if protocol.failure is not None:
            raise protocol.failure
        self._next_id += 1
        future: asyncio.Future[Any] = protocol.loop.create_future()
        protocol.pending[self._next_id] = future
        stdin = self._transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(frame([self._next_id, *request]))
        protocol.sent(self._next_id)
        reply = await future
        if reply[1]:
            raise deno_error(*reply[2])
        return reply[2]

    async def _watch(self, keys: Sequence[Key]) -> AsyncIterator[WatchEntries]:
        """Deno's own kv.watch, run in the bridge: each of its yields comes back as one reply frame."""
        if not keys:
            return
        encoded = [encode_key(key) for key in keys]
        self._check_open()
        protocol = self._protocol
        if protocol.failure is not None:
            raise protocol.failure
        self._next_id += 1
        watch_id = self._next_id
        replies: asyncio.Queue[Any] = asyncio.Queue()
        protocol.streams[watch_id] = replies
        self._send([watch_id, "watch", [raw.hex() for raw in encoded]])
        try:
            while True:
                reply = await replies.get()
                if isinstance(reply, BaseException):
                    raise reply
                if reply[1]:
                    raise deno_error(*reply[2])
                yield [_watched(key, row) for key, row in zip(keys, reply[2], strict=True)]
        finally:
            protocol.streams.pop(watch_id, None)
            if protocol.failure is None and not self._closed:
                self._next_id += 1
                unwatched = protocol.pending[self._next_id] = protocol.loop.create_future()  # its reply, not awaited
                protocol.ending.add(watch_id)  # the bridge sends nothing more for the watch once it has answered
                unwatched.add_done_callback(lambda _: protocol.ending.discard(watch_id))
                self._send([self._next_id, "unwatch", watch_id])

    def _send(self, request: list[Any]) -> None:
        stdin = self._transport.get_pipe_transport(0)
        assert isinstance(stdin, asyncio.WriteTransport)
        stdin.write(frame(request))

    async def ping(self) -> None:
        """One round trip through the bridge that touches no store: what the transport alone costs (not counted
        as a KV round trip; tools/kv_bounds.py times it)."""
        self._check_open()
        await self._call(["ping"])

    async def _snapshot_read(self, ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        spec = read_spec(ranges)
        if spec is None:
            return [[]]
        results = await self._call(["read", consistency, spec])
        return [[_entry(*row) for row in rows] for rows in results]

    async def _atomic_write(self, checks: Sequence[Check], mutations: Sequence[Mutation]) -> str | None:
        versionstamp: str | None = await self._call(write_request(checks, mutations, int(time.time() * 1000)))
        return versionstamp

    async def _close(self) -> None:
        stdin = self._transport.get_pipe_transport(0)
        if stdin is not None:
            stdin.close()  # the bridge closes the store and exits on EOF
        try:
            await asyncio.wait_for(asyncio.shield(self._protocol.done), 10.0)
        except TimeoutError:
            self._protocol.kill()
            await self._protocol.done
        for future in self._protocol.pending.values():
            if not future.done():
                future.set_exception(KvClosedError("The deno store was closed while this call was pending"))
        self._transport.close()

    def __del__(self) -> None:
        if not self._closed and self._transport.get_returncode() is None:
            warnings.warn(f"unclosed {type(self).__name__} on {self.target!r}: deno pid {self.pid}", ResourceWarning, 2)
            with contextlib.suppress(Exception):  # the event loop may be gone already
                self._transport.close()  # kills deno and closes the pipes


class DenoMemoryKv(DenoKv):
    """Deno's own in-memory KV (``deno::memory:``): gone when the subprocess ends."""

    multi_process = False
    persistent = False


class DenoRemoteKv(DenoKv):
    """A remote KV over KV Connect (Deno Deploy or a self-hosted denokv), token from DENO_KV_ACCESS_TOKEN."""


def _watched(key: Key, row: list[Any] | None) -> KvEntry:
    if row is None:
        return KvEntry(key, None, None)
    raw = _entry(*row)
    return KvEntry(key, raw.value, raw.versionstamp)


def _entry(key_hex: str, versionstamp: str, text: str | None, wire: Any = None) -> RawEntry:
    """A row of a read reply: a plain value as the codec's own JSON text (its size is the text's), else tagged JSON."""
    if text is not None:
        size = 1 + (len(text) if text.isascii() else len(text.encode("utf-8")))  # b"J" + the text
        return RawEntry(bytes.fromhex(key_hex), plain_value(text), versionstamp, size)
    decoded = from_wire(wire)
    # size is this project's encoded size (not V8's), so byte counts agree across backends
    return RawEntry(bytes.fromhex(key_hex), decoded, versionstamp, len(encode_value(decoded)[0]))


async def open_deno(
    rest: str, *, deno: str | None = None, request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT
) -> DenoKv:
    """Start the bridge on ``rest`` (a path, ``:memory:`` or an https URL) and wait for its greeting.

    A call that deno does not answer within ``request_timeout`` seconds (None: no limit) raises DenoTimeoutError,
    and so does every call after it: the subprocess is killed, as nothing it sends later can be trusted.
    """
    timeout = _check_timeout(request_timeout)
    target = _target(rest)
    argv = deno_argv(deno or find_deno(), target)
    loop = asyncio.get_running_loop()
    protocol = _BridgeProtocol(loop)
    protocol.timeout = timeout
    greeting: asyncio.Future[Any] = loop.create_future()
    protocol.pending[0] = greeting
    try:
        transport, _ = await loop.subprocess_exec(lambda: protocol, *argv, stdin=-1, stdout=-1, stderr=-1)
    except OSError as exc:
        raise DenoNotFoundError(f"Cannot start {argv[0]!r}: {exc}; {_INSTALL_HINT}") from exc
    cls = DenoMemoryKv if target == ":memory:" else DenoRemoteKv if "://" in target else DenoKv
    kv = cls(protocol, transport, target)
    try:
        reply = await asyncio.wait_for(greeting, _START_TIMEOUT)
        if reply[1]:
            raise deno_error(*reply[2])
    except BaseException:
        kv._closed = True
        protocol.kill()
        await protocol.done
        transport.close()
        raise
    kv.deno_version = reply[2][1]
    return kv


def engine_version() -> str:
    """``deno --version``'s first line (``deno 2.9.6 (...)``), or ``deno (version unknown)`` when it cannot be run."""
    try:
        done = subprocess.run([find_deno(), "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError, DenoNotFoundError):
        return "deno (version unknown)"
    out = done.stdout
    return out.splitlines()[0].strip() if out.strip() else "deno (version unknown)"
