"""The KV Connect server: the real Deno client runs unmodified against it; the protocol's rules hold on the wire."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from queue_impls.kv import KvU64, open_kv
from queue_impls.kv.backends.deno import find_deno
from queue_impls.kv.codec import ENC_BYTES, ENC_SERIALIZED, ENC_U64, encode_key
from queue_impls.kv.v8 import v8_dumps, v8_loads
from queue_impls.kvconnect import KvConnectServer
from queue_impls.kvconnect import datapath_pb2 as pb
from queue_impls.kvconnect.generate import OUTPUTS, generate
from queue_impls.meter import LatencyModel

TOKEN = "test-token"

DENO_PROGRAM = """
const kv = await Deno.openKv(Deno.args[0]);
const out: unknown[] = [];
const r = await kv.set(["users", "alice"], {name: "Alice", born: new Date(0), tags: new Set(["a"]), n: 5n});
out.push(r.ok);
out.push((await kv.get(["users", "alice"])).versionstamp === r.versionstamp);
await kv.set(["users", "bob"], new Uint8Array([1, 2]), {expireIn: 60_000});
out.push((await Array.fromAsync(kv.list({prefix: ["users"]}))).map((e) => e.key.join("/")));
out.push((await Array.fromAsync(kv.list({prefix: ["users"]}, {reverse: true, limit: 1}))).map((e) => e.key[1]));
out.push((await kv.getMany([["users", "bob"], ["nobody"]])).map((e) => e.value));
out.push((await kv.atomic().check({key: ["users", "bob"], versionstamp: null}).set(["x"], 1).commit()).ok);
await kv.atomic().sum(["count"], 5n).max(["count"], 2n).min(["low"], 9n).commit();
out.push((await kv.get<Deno.KvU64>(["count"])).value!.value, (await kv.get<Deno.KvU64>(["low"])).value!.value);
await kv.delete(["users", "bob"]);
out.push((await kv.get(["users", "bob"])).value);
out.push((await kv.get(["from python"])).value);
console.log(JSON.stringify(out, (_, v) => v instanceof Uint8Array ? [...v] : typeof v === "bigint" ? `${v}n` : v));
kv.close();
"""


@pytest.fixture(
    params=[
        ("memory:", "builtin"),
        ("sqlite:{dir}/served.db", "builtin"),
        ("sqlite:{dir}/served.db", "hypercorn"),
        ("sqlite:{dir}/served.db", "granian"),
    ],
    ids=["memory", "sqlite", "hypercorn(sqlite)", "granian(sqlite)"],
)
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KvConnectServer]:
    url, http_server = request.param
    async with KvConnectServer.running(url.format(dir=tmp_path), token=TOKEN, http_server=http_server) as running:
        yield running


async def run_deno(script: str, tmp_path: Path, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "program.ts"
    path.write_text(script)
    env = {**os.environ, "DENO_KV_ACCESS_TOKEN": token, "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        find_deno(), "run", "--unstable-kv", "-A", str(path), *args, env=env, stdout=-1, stderr=-1
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return subprocess.CompletedProcess([], proc.returncode or 0, out.decode(), err.decode())


@pytest.mark.deno
async def test_a_deno_program_runs_unmodified_and_every_request_is_counted(
    server: KvConnectServer, tmp_path: Path
) -> None:
    await server.kv.inner.set(("from python",), {"n": 7, "x": 1.5, "b": b"\x00"})
    done = await run_deno(DENO_PROGRAM, tmp_path, server.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        True,
        True,
        ["users/alice", "users/bob"],
        ["bob"],
        [[1, 2], None],
        False,
        "5n",  # sum 5 then max 2
        "9n",
        None,
        {"n": "7n", "x": 1.5, "b": [0]},  # a Python int is a bigint, bytes a Uint8Array
    ], done.stdout
    counts = server.kv.counts
    assert server.recorder.requests == {"snapshot_read": 8, "atomic_write": 5, "watch": 0}
    assert counts.round_trips == 13
    assert counts.calls == {"get": 5, "get_many": 1, "list": 2, "set": 2, "delete": 1, "commit": 2}
    assert (counts.entries_read, counts.mutations, counts.checks) == (8, 7, 1)
    # and Python reads what Deno wrote
    entry = await server.kv.inner.get(("users", "alice"))
    assert entry.value["n"] == 5 and entry.value["tags"] == {"a"} and entry.value["born"].year == 1970
    assert (await server.kv.inner.get(("count",))).value == KvU64(5)


def post(url: str, body: bytes, token: str | None, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def metadata(server: KvConnectServer, versions: Any = (1, 2, 3), token: str | None = TOKEN) -> tuple[int, Any]:
    body = b"" if versions is None else json.dumps({"supportedVersions": list(versions)}).encode()
    status, data = await asyncio.to_thread(post, server.url, body, token)
    return status, json.loads(data) if status == 200 else data.decode()


async def test_metadata_exchange_negotiates_versions_1_to_3_over_http1(server: KvConnectServer) -> None:
    for versions, want in [((1, 2, 3), 3), ((1, 2), 2), (None, 1), ((2, 7), 2)]:
        status, meta = await metadata(server, versions)
        assert status == 200
        assert meta["version"] == want
        assert meta["databaseId"] == server.app.database_id
        assert meta["endpoints"] == [{"url": f"{server.url}/v2", "consistency": "strong"}]
        assert meta["expiresAt"].endswith("Z")
    assert (await metadata(server, (4, 5))) == (
        400,
        "No common KV Connect protocol version: client [4, 5], server [1, 2, 3]",
    )


async def test_a_bad_token_gets_401_in_plain_text(server: KvConnectServer) -> None:
    assert await metadata(server, token="wrong") == (401, "Invalid or expired access token")
    assert (await metadata(server, token=None))[0] == 401
    status, body = await asyncio.to_thread(post, f"{server.url}/v2/snapshot_read", b"", TOKEN)  # not a data token
    assert (status, body) == (401, b"Invalid or expired data path token (from the metadata exchange)")


async def data_token(server: KvConnectServer) -> str:
    _, meta = await metadata(server)
    return str(meta["token"])


async def call(server: KvConnectServer, method: str, message: Any, token: str) -> tuple[int, bytes]:
    return await asyncio.to_thread(post, f"{server.url}/v2/{method}", message.SerializeToString(), token)


async def test_data_tokens_expire_with_their_metadata(tmp_path: Path) -> None:
    async with KvConnectServer.running("memory:", token=TOKEN, metadata_ttl_s=0.5) as server:
        token = await data_token(server)
        read = pb.SnapshotRead(ranges=[pb.ReadRange(start=b"\x02a\x00", end=b"\x02a\x00\x00", limit=1)])
        assert (await call(server, "snapshot_read", read, token))[0] == 200
        await asyncio.sleep(0.7)
        assert (await call(server, "snapshot_read", read, token))[0] == 401


async def test_read_ranges_honour_limit_reverse_and_bounds(server: KvConnectServer) -> None:
    for i in range(5):
        await server.kv.inner.set(("k", i), i)
    token = await data_token(server)
    start, end = encode_key(("k",)) + b"\x00", encode_key(("k",)) + b"\xff"
    read = pb.SnapshotRead(
        ranges=[
            pb.ReadRange(start=start, end=end, limit=2),
            pb.ReadRange(start=start, end=end, limit=2, reverse=True),
            pb.ReadRange(start=encode_key(("k", 1)), end=encode_key(("k", 3)), limit=10),
        ]
    )
    status, body = await call(server, "snapshot_read", read, token)
    assert status == 200
    out = pb.SnapshotReadOutput.FromString(body)
    assert out.status == pb.SR_SUCCESS and out.read_is_strongly_consistent
    got = [[bytes(v.key) for v in r.values] for r in out.ranges]
    assert got == [
        [encode_key(("k", 0)), encode_key(("k", 1))],
        [encode_key(("k", 4)), encode_key(("k", 3))],
        [encode_key(("k", 1)), encode_key(("k", 2))],
    ]
    assert all(len(v.versionstamp) == 10 and v.encoding == pb.VE_V8 for r in out.ranges for v in r.values)


async def test_refused_requests_say_why(server: KvConnectServer) -> None:
    token = await data_token(server)
    key = encode_key(("q",))
    enqueue = pb.AtomicWrite(enqueues=[pb.Enqueue(payload=b"\xff\x10_", deadline_ms=int(time.time() * 1000))])
    status, body = await call(server, "atomic_write", enqueue, token)
    assert status == 400 and "enqueue is not supported" in body.decode()
    eleven = pb.Watch(keys=[pb.WatchKey(key=key)] * 11)
    assert await call(server, "watch", eleven, token) == (
        400,
        b"TooManyRangesError: Too many keys (max 10): got 11 keys",
    )
    status, body = await call(server, "watch", pb.Watch(keys=[pb.WatchKey(key=encode_key(("x" * 2048,)))]), token)
    assert status == 400 and body.startswith(b"KeyTooLargeError: Key too large for read (max 2049 bytes)")
    status, body = await call(server, "watch", pb.Watch(keys=[pb.WatchKey(key=b"\x99")]), token)
    assert status == 400 and body.startswith(b"Invalid key 0 in the Watch request (1 bytes)")
    too_many = pb.SnapshotRead(ranges=[pb.ReadRange(start=key, end=key + b"\x00", limit=1)] * 11)
    assert await call(server, "snapshot_read", too_many, token) == (400, b"Too many ranges (max 10): got 11")
    bad_sum = pb.AtomicWrite(
        mutations=[pb.Mutation(key=key, mutation_type=pb.M_SUM, value=pb.KvValue(data=b"\xff\x10I\x02", encoding=1))]
    )
    status, body = await call(server, "atomic_write", bad_sum, token)
    assert status == 400 and "only on Deno.KvU64" in body.decode()
    assert (await asyncio.to_thread(post, f"{server.url}/v2/snapshot_read", b"\xff\xff", token))[0] == 400
    await server.kv.inner.set(("q",), "text")
    le64 = pb.KvValue(data=(1).to_bytes(8, "little"), encoding=pb.VE_LE64)
    status, body = await call(
        server,
        "atomic_write",
        pb.AtomicWrite(mutations=[pb.Mutation(key=key, mutation_type=pb.M_SUM, value=le64)]),
        token,
    )
    assert status == 400 and body.startswith(b"MutationTypeError: Failed to perform 'sum'")
    assert (await server.kv.inner.get(("q",))).value == "text"


async def test_checks_expiry_and_versionstamped_keys(server: KvConnectServer) -> None:
    token = await data_token(server)
    value = pb.KvValue(data=b"\xff\x10I\x02", encoding=pb.VE_V8)
    soon = int(time.time() * 1000) + 300
    write = pb.AtomicWrite(
        checks=[pb.Check(key=encode_key(("a",)))],
        mutations=[
            pb.Mutation(key=encode_key(("a",)), mutation_type=pb.M_SET, value=value, expire_at_ms=soon),
            pb.Mutation(key=encode_key(("log",)), mutation_type=pb.M_SET_SUFFIX_VERSIONSTAMPED_KEY, value=value),
        ],
    )
    status, body = await call(server, "atomic_write", write, token)
    out = pb.AtomicWriteOutput.FromString(body)
    assert status == 200 and out.status == pb.AW_SUCCESS and len(out.versionstamp) == 10
    stamp = out.versionstamp.hex()
    logged = await server.kv.inner.list(prefix=("log",)).collect()
    assert [(e.key, e.value, e.versionstamp) for e in logged] == [(("log", stamp), 1.0, stamp)]
    status, body = await call(server, "atomic_write", write, token)  # the check (must not exist) now fails
    assert pb.AtomicWriteOutput.FromString(body).status == pb.AW_CHECK_FAILURE
    await asyncio.sleep(0.4)
    assert (await server.kv.inner.get(("a",))).value is None  # expired


COMMIT_VERSIONSTAMP_PROGRAM = """
const kv = await Deno.openKv(Deno.args[0]);
const result = await kv.atomic().set(["log", kv.commitVersionstamp()], "entry").commit();
const listed = [];
for await (const e of kv.list({ prefix: ["log"] })) listed.push([e.key, e.value, e.versionstamp]);
console.log(JSON.stringify([result.versionstamp, listed]));
kv.close();
"""


@pytest.mark.deno
@pytest.mark.parametrize("served", ["memory:", "sqlite:{dir}/served.db", "deno::memory:"])
async def test_a_deno_program_sets_a_key_ending_in_its_commit_versionstamp(served: str, tmp_path: Path) -> None:
    # kv.commitVersionstamp() as a key's last part: Deno's client sends M_SET_SUFFIX_VERSIONSTAMPED_KEY
    async with KvConnectServer.running(served.format(dir=tmp_path), token=TOKEN) as server:
        done = await run_deno(COMMIT_VERSIONSTAMP_PROGRAM, tmp_path, server.url)
        assert done.returncode == 0, done.stderr
        stamp, listed = json.loads(done.stdout)
        assert listed == [[["log", stamp], "entry", stamp]]
        [entry] = await server.kv.inner.list(prefix=("log",)).collect()
        assert (entry.key, entry.value, entry.versionstamp) == (("log", stamp), "entry", stamp)


async def test_an_n_plus_one_in_a_deno_program_is_found(tmp_path: Path) -> None:
    script = """
const kv = await Deno.openKv(Deno.args[0]);
for (let i = 0; i < 5; i++) {
  await kv.set(["jobs", `job-${i}`], {id: `job-${i}`});
  await kv.set(["jobs_by_name", "email", `job-${i}`], `job-${i}`);
}
for await (const e of kv.list({prefix: ["jobs_by_name", "email"]})) await kv.get(["jobs", e.value]);
kv.close();
"""
    async with KvConnectServer.running("memory:", token=TOKEN) as server:
        done = await run_deno(script, tmp_path, server.url)
        assert done.returncode == 0, done.stderr
        [finding] = server.findings()
        assert (finding.count, finding.fingerprint) == (5, 'get ("jobs", ?)')
        assert finding.source.label == 'list ("jobs_by_name", "email", *)'
        summary = server.summary()
        assert 'N+1: 5 x get ("jobs", ?)' in summary
        assert '        5 x get ("jobs", ?) (5 round trips)' in summary
        assert '        1 x list ("jobs_by_name", "email", *) (1 round trips)' in summary


@pytest.mark.deno
def test_qbench_serve_prints_counts_and_writes_the_trace_on_sigterm(tmp_path: Path) -> None:
    trace = tmp_path / "trace.json"
    cmd = [sys.executable, "-m", "bench", "serve", f"sqlite:{tmp_path / 'kv.db'}", "--port", "0", "--token", TOKEN]
    proc = subprocess.Popen([*cmd, "--trace", str(trace)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = first.split(" on ")[1].split(" ")[0]
        assert url.startswith("http://127.0.0.1:")
        done = asyncio.run(
            run_deno('const kv = await Deno.openKv(Deno.args[0]); await kv.get(["a"]); kv.close();', tmp_path, url)
        )
        assert done.returncode == 0, done.stderr
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "requests: snapshot_read 1, atomic_write 0, watch 0" in out
    assert "calls 1 (get 1)" in out
    assert json.loads(trace.read_text())["events"][0]["fingerprint"] == '("a",)'


def test_the_committed_protobuf_module_is_what_protoc_generates(tmp_path: Path) -> None:
    here = Path(pb.__file__).parent
    for path in generate(tmp_path):
        assert path.read_bytes() == (here / path.name).read_bytes(), "run python -m queue_impls.kvconnect.generate"
    assert len(OUTPUTS) == 2


async def test_python_reads_values_deno_wrote_through_the_sqlite_file(tmp_path: Path) -> None:
    """The served file is an ordinary SQLite store: open it later from Python and the Deno values read back."""
    url = f"sqlite:{tmp_path / 'kv.db'}"
    async with KvConnectServer.running(url, token=TOKEN) as server:
        token = await data_token(server)
        value = pb.KvValue(data=v8_dumps({"x": b"\x01\x02\x03"}), encoding=pb.VE_V8)
        write = pb.AtomicWrite(mutations=[pb.Mutation(key=encode_key(("v",)), mutation_type=pb.M_SET, value=value)])
        assert (await call(server, "atomic_write", write, token))[0] == 200
    kv = await open_kv(url)
    try:
        assert (await kv.get(("v",))).value == {"x": b"\x01\x02\x03"}
    finally:
        await kv.close()


@pytest.mark.deno
async def test_one_connection_serves_more_than_a_thousand_requests(tmp_path: Path) -> None:
    """hypercorn closes a connection after 1,000 requests unless told otherwise, and Deno's client then stalls."""
    script = (
        'const kv = await Deno.openKv(Deno.args[0]); for (let i = 0; i < 1100; i++) await kv.get(["k"]); kv.close();'
    )
    async with KvConnectServer.running("memory:", token=TOKEN, trace=False) as server:
        done = await run_deno(script, tmp_path, server.url)
        assert done.returncode == 0, done.stderr
        assert server.kv.counts.round_trips == 1100


def open_watch(url: str, token: str, keys: list[bytes]) -> Any:
    """A watch request over HTTP/1.1; the response's body is the stream, read with ``next_frame``."""
    body = pb.Watch(keys=[pb.WatchKey(key=key) for key in keys]).SerializeToString()
    request = urllib.request.Request(f"{url}/v2/watch", data=body, method="POST")
    request.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(request, timeout=30)


def next_frame(response: Any) -> Any:
    """The next WatchOutput of a watch stream (skipping pings, frames of length 0); None at the end of the body."""
    while True:
        prefix = response.read(4)
        if not prefix:
            return None
        size = int.from_bytes(prefix, "little")
        if size:
            return pb.WatchOutput.FromString(response.read(size))


async def test_watch_streams_a_frame_at_once_then_one_per_change_each_counted_as_a_read(
    server: KvConnectServer,
) -> None:
    await server.kv.inner.set(("a",), "x")
    token = await data_token(server)
    keys = [encode_key(("a",)), encode_key(("b",))]
    response = await asyncio.to_thread(open_watch, server.url, token, keys)
    try:
        assert response.status == 200 and response.headers["content-type"] == "application/octet-stream"
        first = await asyncio.to_thread(next_frame, response)
        assert first.status == pb.SR_SUCCESS and [k.changed for k in first.keys] == [True, True]
        a = first.keys[0].entry_if_changed
        assert (a.key, a.encoding, v8_loads(a.value)) == (keys[0], pb.VE_V8, "x")
        assert not first.keys[1].HasField("entry_if_changed")  # missing: changed, no entry
        written = await server.kv.inner.set(("b",), KvU64(7))
        second = await asyncio.to_thread(next_frame, response)
        assert [k.changed for k in second.keys] == [False, True]
        b = second.keys[1].entry_if_changed
        assert (b.key, b.encoding, b.value, b.versionstamp.hex()) == (
            keys[1],
            pb.VE_LE64,
            (7).to_bytes(8, "little"),
            written.versionstamp,
        )
        counts = server.kv.counts
        assert (counts.round_trips, counts.entries_read, server.recorder.requests["watch"]) == (2, 3, 1)
    finally:
        response.close()
    nothing = await asyncio.to_thread(open_watch, server.url, token, [])
    try:  # no keys: one message of no keys (Deno's remote client never ends such a watch; see docs/kvconnect.md)
        empty = await asyncio.to_thread(next_frame, nothing)
        assert empty.status == pb.SR_SUCCESS and len(empty.keys) == 0
    finally:
        nothing.close()


@pytest.mark.parametrize("http_server", ["builtin", "hypercorn", "granian"])
async def test_a_server_stops_at_once_with_a_watch_open_and_ends_the_stream_cleanly(http_server: str) -> None:
    """Without ending its watches, hypercorn cuts the stream after its graceful timeout and granian waits on it."""
    stack = contextlib.AsyncExitStack()
    try:
        server = await stack.enter_async_context(
            KvConnectServer.running("memory:", token=TOKEN, http_server=http_server)
        )
        token = await data_token(server)
        response = await asyncio.to_thread(open_watch, server.url, token, [encode_key(("a",))])
        assert (await asyncio.to_thread(next_frame, response)).keys[0].changed
    finally:
        await asyncio.wait_for(stack.aclose(), 5.0)
    try:
        assert await asyncio.to_thread(next_frame, response) is None  # a complete body: no IncompleteRead
    finally:
        response.close()


WATCHING_PROGRAM = """
const kv = await Deno.openKv(Deno.args[0]);
for await (const [entry] of kv.watch([["job", "j1"]])) {
  console.log(JSON.stringify({value: entry.value, versionstamp: entry.versionstamp}));
  if (entry.value === "done") break;
}
kv.close();
"""


@pytest.mark.deno
async def test_a_deno_program_watches_a_key_while_python_writes_it(server: KvConnectServer, tmp_path: Path) -> None:
    path = tmp_path / "watch.ts"
    path.write_text(WATCHING_PROGRAM)
    env = {**os.environ, "DENO_KV_ACCESS_TOKEN": TOKEN, "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        find_deno(), "run", "--unstable-kv", "-A", str(path), server.url, env=env, stdout=-1, stderr=-1
    )
    assert proc.stdout is not None and proc.stderr is not None
    try:

        async def seen() -> Any:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)  # type: ignore[union-attr]
            assert line, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            return json.loads(line)

        assert await seen() == {"value": None, "versionstamp": None}
        stamps = []
        for value in ({"state": "queued"}, {"state": "queued"}, "done"):  # the same value again: a new versionstamp
            stamps.append((await server.kv.inner.set(("job", "j1"), value)).versionstamp)
            assert await seen() == {"value": value, "versionstamp": stamps[-1]}
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    counts = server.kv.counts
    assert (counts.round_trips, counts.entries_read, server.recorder.requests["watch"]) == (4, 3, 1)
    assert server.app.errors == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["memory:", "--port", "70000"], "--port must be 0..65535, got 70000"),
        (["bogus:x", "--port", "0"], "cannot serve bogus:x: Unknown KV URL scheme 'bogus'"),
        (["memory:", "--latency", "-1"], "--latency must be a non-negative number of milliseconds"),
    ],
)
def test_qbench_serve_refuses_bad_input_in_one_line(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "serve", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith(f"qbench serve: error: {message}")
    assert len(done.stderr.strip().splitlines()) == 1


def test_encoded_values_are_kept_per_version_and_bounded() -> None:
    from queue_impls.kvconnect.wire import EncodedValues

    values = EncodedValues(max_bytes=400)
    first = values.get(b"k", "00" * 10, {"a": 1.0})
    assert first == (v8_dumps({"a": 1.0}), pb.VE_V8)
    assert values.get(b"k", "00" * 10, {"ignored": True}) is first  # the same version: the same bytes, not re-encoded
    assert values.get(b"k", "01" + "00" * 9, {"a": 2.0}) == (v8_dumps({"a": 2.0}), pb.VE_V8)  # a new version
    assert values.get(b"b", "02" + "00" * 9, b"raw") == (b"raw", pb.VE_BYTES)
    for i in range(20):  # over the bound: it starts over, and every answer stays right
        assert values.get(b"x", f"{i:020x}", "v" * 50) == (v8_dumps("v" * 50), pb.VE_V8)
    assert values._bytes <= 400


def test_values_left_as_stored_go_out_as_stored_and_are_decoded_only_where_looked_at(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A V8 payload (what Deno wrote), raw bytes and a u64 leave as they are stored, with no decoding; this project's
    own serialisation is made V8; the trace's ``results`` (what the N+1 detector reads) decode on demand."""
    from queue_impls.kv import codec, v8
    from queue_impls.kv.codec import ENC_BYTES, ENC_SERIALIZED, ENC_U64, encode_value
    from queue_impls.kv.types import RawEntry, StoredValue
    from queue_impls.kvconnect import wire
    from queue_impls.meter.trace import TraceEvent

    deno_wrote = v8_dumps({"id": "j1", "n": 1.0})
    rows = [
        RawEntry(b"\x02a\x00", StoredValue(deno_wrote, ENC_SERIALIZED), "01" * 10, len(deno_wrote)),
        RawEntry(b"\x02b\x00", StoredValue(b"\x00\xff", ENC_BYTES), "02" * 10, 2),
        RawEntry(b"\x02c\x00", StoredValue((7).to_bytes(8, "little"), ENC_U64), "03" * 10, 8),
    ]
    python_wrote = RawEntry(b"\x02d\x00", StoredValue(*encode_value({"k": [1]})), "04" * 10, 0)

    def no_decoding(*args: Any) -> Any:
        raise AssertionError("a value passed on as stored was decoded")

    with monkeypatch.context() as patched:
        patched.setattr(v8, "v8_loads", no_decoding)
        patched.setattr(codec, "decode_value", no_decoding)
        patched.setattr(wire, "decode_value", no_decoding)
        out = pb.SnapshotReadOutput.FromString(wire.read_output([rows], wire.EncodedValues()))
    sent = [(e.key, e.value, e.encoding, e.versionstamp.hex()) for e in out.ranges[0].values]
    assert sent == [
        (b"\x02a\x00", deno_wrote, pb.VE_V8, "01" * 10),
        (b"\x02b\x00", b"\x00\xff", pb.VE_BYTES, "02" * 10),
        (b"\x02c\x00", (7).to_bytes(8, "little"), pb.VE_LE64, "03" * 10),
    ]
    out = pb.SnapshotReadOutput.FromString(wire.read_output([[python_wrote]], wire.EncodedValues()))
    assert (out.ranges[0].values[0].value, out.ranges[0].values[0].encoding) == (v8_dumps({"k": [1]}), pb.VE_V8)
    event = TraceEvent(0, "list", (), "", "", raw_results=[*rows, python_wrote])
    assert [value for _, value in event.results] == [{"id": "j1", "n": 1.0}, b"\x00\xff", KvU64(7), {"k": [1]}]


_ENTRY = st.tuples(
    st.binary(max_size=300),  # key (empty and multi-byte lengths included)
    st.binary(max_size=20000),  # value (varint lengths of 1, 2 and 3 bytes)
    st.sampled_from([pb.VE_V8, pb.VE_LE64, pb.VE_BYTES]),
    st.binary(min_size=10, max_size=10),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(_ENTRY, max_size=5), max_size=4))
def test_a_read_output_is_the_bytes_protobuf_writes(results: list[list[tuple[bytes, bytes, int, bytes]]]) -> None:
    """The server encodes SnapshotReadOutput itself: byte for byte what protobuf's serialiser writes."""
    from queue_impls.kv.types import RawEntry, StoredValue
    from queue_impls.kvconnect import wire

    stored = {pb.VE_V8: ENC_SERIALIZED, pb.VE_LE64: ENC_U64, pb.VE_BYTES: ENC_BYTES}
    expected = pb.SnapshotReadOutput(read_is_strongly_consistent=True, status=pb.SR_SUCCESS)
    rows = []
    for entries in results:
        added = expected.ranges.add().values
        rows.append([])
        for key, value, encoding, versionstamp in entries:
            payload = b"\xff" + value if encoding == pb.VE_V8 else value  # a V8 serialisation starts with 0xFF
            added.add(key=key, value=payload, encoding=encoding, versionstamp=versionstamp)  # type: ignore[arg-type]
            rows[-1].append(RawEntry(key, StoredValue(payload, stored[encoding]), versionstamp.hex(), len(payload)))
    assert wire.read_output(rows) == expected.SerializeToString()


STRESS_PROGRAM = """
const kv = await Deno.openKv(Deno.args[0]);
const big = "x".repeat(60000);
for (let i = 0; i < 200; i += 10) {
  const op = kv.atomic();
  for (let j = i; j < i + 10; j++) op.set(["big", j], big + j);
  await op.commit();
}
for (let i = 0; i < 300; i++) await kv.set(["p", i], { i });
const got = await Promise.all(Array.from({ length: 300 }, (_, i) => kv.get(["p", i])));
const lists = await Promise.all(Array.from({ length: 8 }, () => Array.fromAsync(kv.list({ prefix: ["big"] }))));
console.log(JSON.stringify({
  gets: got.every((e, i) => (e.value as { i: number }).i === i),
  lists: lists.map((l) => l.length),
  bytes: lists[0].reduce((n, e) => n + (e.value as string).length, 0),
}));
kv.close();
"""


@pytest.mark.deno
async def test_deno_reads_concurrently_through_the_clients_flow_control_windows(tmp_path: Path) -> None:
    """300 gets at once, then 8 lists of 12 MB at once: far more than the windows Deno's client grants at a time."""
    async with KvConnectServer.running("memory:", token=TOKEN, trace=False) as server:
        done = await run_deno(STRESS_PROGRAM, tmp_path, server.url)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"gets": True, "lists": [200] * 8, "bytes": 200 * 60000 + 490}


@pytest.mark.deno
@pytest.mark.parametrize("http_server", ["builtin", "hypercorn"])
async def test_concurrent_requests_share_a_serial_wave(http_server: str, tmp_path: Path) -> None:
    """Ten gets at once between two single gets: three serial round trips (the latency model keeps each request in
    flight long enough that the ten overlap however Deno's writes are split)."""
    script = (
        'const kv = await Deno.openKv(Deno.args[0]); await kv.get(["a"]);'
        ' await Promise.all(Array.from({length: 10}, (_, i) => kv.get(["k", i]))); await kv.get(["z"]); kv.close();'
    )
    latency = LatencyModel(rtt_ms=20.0)
    async with KvConnectServer.running("memory:", token=TOKEN, latency=latency, http_server=http_server) as server:
        done = await run_deno(script, tmp_path, server.url)
        assert done.returncode == 0, done.stderr
        assert (server.kv.counts.round_trips, server.kv.counts.serial_round_trips) == (12, 3)
