"""The deno: backend itself: finding deno, permissions, the value mapping as JavaScript sees it, faults, all-or-nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import signal
import sqlite3
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from queue_impls.kv import (
    BackendError,
    InvalidValueError,
    KvClosedError,
    KvU64,
    MutationTypeError,
    ValueTooLargeError,
    encode_key,
    encode_value,
    open_kv,
)
from queue_impls.kv.backends.deno import BRIDGE, TOKEN_ENV, DenoKv, deno_argv, find_deno
from queue_impls.kv.backends.deno_wire import frame
from queue_impls.kv.errors import DenoBridgeError, DenoNotFoundError, InvalidArgumentError
from queue_impls.kv.types import ReadRange

pytestmark = pytest.mark.deno


@pytest.fixture
async def dkv(tmp_path: Path) -> AsyncIterator[DenoKv]:
    kv = await open_kv(f"deno:{tmp_path / 'kv.sqlite'}")
    assert isinstance(kv, DenoKv)
    try:
        yield kv
    finally:
        await kv.close()


def run_deno(script: str, *args: str) -> Any:
    """Run a plain Deno script (not the bridge) with every permission and return its JSON output."""
    out = subprocess.run(
        [find_deno(), "run", "--unstable-kv", "-A", "--no-config", "-", *args],
        input=script,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(out.stdout)


# -- finding deno and the command line --------------------------------------------------------------------------


def test_deno_is_found_in_the_projects_node_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DENO", raising=False)
    assert find_deno().endswith(os.path.join("node_modules", ".bin", "deno"))


def test_a_bad_deno_variable_is_a_typed_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DENO", str(tmp_path / "nope"))
    with pytest.raises(DenoNotFoundError, match=r"DENO=.*nope.*npm ci"):
        find_deno()


def test_no_deno_anywhere_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("DENO", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DenoNotFoundError, match=r"npm ci.*make test"):
        find_deno([tmp_path])


async def test_open_kv_without_deno_raises_before_starting_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DENO", "/nonexistent/deno")
    with pytest.raises(DenoNotFoundError):
        await open_kv("deno::memory:")


def test_permissions_are_the_narrowest_that_work(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.sqlite")
    file_argv = deno_argv("deno", path)
    allows = [a for a in file_argv if a.startswith("--allow")]
    assert allows == [f"--allow-read={path}", f"--allow-write={path}"]  # SQLite's -wal/-shm need no grant
    assert "--no-prompt" in file_argv and file_argv[-2:] == [str(BRIDGE), path]
    assert [a for a in deno_argv("deno", ":memory:") if a.startswith("--allow")] == []
    remote = deno_argv("deno", "https://user@kv.example.com:8443/v2/db")
    assert [a for a in remote if a.startswith("--allow")] == [
        "--allow-net=kv.example.com:8443",
        f"--allow-env={TOKEN_ENV}",
    ]


def test_the_bridge_ships_as_package_data() -> None:
    assert BRIDGE.is_file() and BRIDGE.suffix == ".ts"


async def test_remote_url_reaches_the_network_with_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 9: getting as far as "connection refused" shows net + env permissions suffice.
    monkeypatch.setenv(TOKEN_ENV, "test-token")
    with pytest.raises(BackendError, match="Connection refused"):
        await open_kv("deno+http://127.0.0.1:9/kv")
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(BackendError, match=TOKEN_ENV):
        await open_kv("deno+http://127.0.0.1:9/kv")


async def test_unopenable_file_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="Cannot open Deno KV"):
        await open_kv(f"deno:{tmp_path / 'missing-dir' / 'kv.sqlite'}")


# -- types as JavaScript sees them --------------------------------------------------------------------------------

JS_TYPES = """
const kv = await Deno.openKv(Deno.args[0]);
const kind = (v) => v === null ? "null" : v instanceof Deno.KvU64 ? "KvU64" : v instanceof Uint8Array ? "Uint8Array"
  : Array.isArray(v) ? v.map(kind) : typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, kind(x)]))
  : typeof v === "number" && Object.is(v, -0) ? "-0" : typeof v;
const out = [];
for await (const e of kv.list({ prefix: [] })) out.push([e.key.map(kind), kind(e.value)]);
kv.close();
console.log(JSON.stringify(out));
"""


async def test_types_cross_to_javascript_faithfully(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite"
    async with await open_kv(f"deno:{path}") as kv:
        await kv.set((b"\x00", "s", 1, 1.0, True), [1, 1.0, -0.0, "x", b"y", None, True, {"k": 2**70}])
        await kv.set(("u64",), KvU64(2**64 - 1))
    assert run_deno(JS_TYPES, str(path)) == [
        [
            ["Uint8Array", "string", "bigint", "number", "boolean"],
            ["bigint", "number", "-0", "string", "Uint8Array", "null", "boolean", {"k": "bigint"}],
        ],
        [["string"], "KvU64"],
    ]


async def test_values_written_by_javascript_read_back_as_python_types(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite"
    run_deno(
        """const kv = await Deno.openKv(Deno.args[0]);
        await kv.set(["js"], {n: 3, big: 3n, f: 0.5, nan: NaN, inf: -Infinity, b: new Uint8Array([1, 2]), l: [null, false]});
        await kv.set(["u"], new Deno.KvU64(7n));
        kv.close(); console.log("[]");""",
        str(path),
    )
    async with await open_kv(f"deno:{path}") as kv:
        value = (await kv.get(("js",))).value
        assert (await kv.get(("u",))).value == KvU64(7)
    nan = value.pop("nan")
    assert isinstance(nan, float) and math.isnan(nan)
    assert value == {"n": 3.0, "big": 3, "f": 0.5, "inf": -math.inf, "b": b"\x01\x02", "l": [None, False]}
    assert type(value["n"]) is float and type(value["big"]) is int  # a JS number is a Python float


def _random_doubles(n: int) -> list[float]:
    rng = random.Random(3)
    doubles = [struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0] for _ in range(n)]
    return [x for x in doubles if math.isfinite(x)] + [rng.uniform(-1e6, 1e6) for _ in range(n)]


TRICKY_VALUES: list[Any] = [
    [0.1, 1e-4, 9.999e-5, 1e-5, 1e15, 1e16, 9999999999999998.0, 1e21, 1e22, 1.5e300, 5e-324, -2.5, 123456789.123],
    [-0.0, math.nan, math.inf, -math.inf, 0, -1, 2**70, -(2**70), 2.0, True, None],
    ["", 'a"b\\c\n\t\x00\x1f\x7f', "é中😀", "\u2028", {"ключ": {"1": [], "b": {}}}],
    "\ud800",  # a lone surrogate: V8 would escape it, so it crosses tagged
    [b"\x00", 1.5],
    KvU64(1),
    _random_doubles(500),
]


async def test_values_read_back_with_the_codecs_own_size(dkv: DenoKv) -> None:
    """The bridge sends plain values as the codec's JSON text: the value and its size must match the codec's."""
    atomic = dkv.atomic()
    for i, value in enumerate(TRICKY_VALUES):
        atomic.set(("v", i), value)
    assert (await atomic.commit()).ok
    prefix = encode_key(("v",))
    [rows] = await dkv._snapshot_read([ReadRange(prefix + b"\x00", prefix + b"\xff", 100)], "strong")
    assert [json.dumps(row.value, default=repr) for row in rows] == [json.dumps(v, default=repr) for v in TRICKY_VALUES]
    assert [row.size for row in rows] == [len(encode_value(v)[0]) for v in TRICKY_VALUES]
    assert [type(x) for x in rows[1].value] == [type(x) for x in TRICKY_VALUES[1]]


async def test_a_javascript_value_without_a_python_mapping_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "kv.sqlite"
    run_deno(
        'const kv = await Deno.openKv(Deno.args[0]); await kv.set(["d"], new Date(0)); kv.close(); console.log("[]");',
        str(path),
    )
    async with await open_kv(f"deno:{path}") as kv:
        with pytest.raises(InvalidValueError, match="Date"):
            await kv.get(("d",))


async def test_nested_kvu64_is_refused_before_anything_is_written(dkv: DenoKv) -> None:
    assert not dkv.nested_u64_values
    with pytest.raises(InvalidValueError, match="inside a list or dict"):
        await dkv.atomic().set(("a",), 1).set(("b",), [KvU64(1)]).commit()
    assert (await dkv.get(("a",))).versionstamp is None


async def test_deno_value_size_limit_is_a_typed_error(dkv: DenoKv) -> None:
    # 10000 ints: 49 kB in our codec but about 100 kB in V8's serialisation, so Deno's own check fires
    with pytest.raises(ValueTooLargeError, match="reported by Deno"):
        await dkv.atomic().set(("a",), 1).set(("big",), list(range(10000))).commit()
    assert (await dkv.get(("a",))).versionstamp is None


# -- all-or-nothing -------------------------------------------------------------------------------------------------

PARTIAL = """
const kv = await Deno.openKv(":memory:");
await kv.set(["s"], "text");
try { await kv.atomic().set(["c"], 1).sum(["s"], 1n).commit(); } catch { /* expected */ }
console.log(JSON.stringify((await kv.get(["c"])).value));
kv.close();
"""


def test_plain_deno_keeps_the_mutations_before_a_failing_sum() -> None:
    """The referee's own behaviour that the bridge hides (if this ever fails, Deno fixed it)."""
    assert run_deno(PARTIAL) == 1


async def test_a_failing_sum_writes_nothing_through_the_bridge(dkv: DenoKv) -> None:
    await dkv.set(("s",), "text")
    for kind in ("sum", "min", "max"):
        op = dkv.atomic().set(("c",), 1).sum(("n",), 1)
        getattr(op, kind)(("s",), 1)
        with pytest.raises(MutationTypeError, match=f"'{kind}' mutation on a non-U64"):
            await op.commit()
        assert (await dkv.get(("c",))).versionstamp is None and (await dkv.get(("n",))).versionstamp is None


async def test_sum_type_is_replayed_through_the_commit(dkv: DenoKv) -> None:
    await dkv.set(("s",), "text")
    ok = await dkv.atomic().set(("s",), KvU64(1)).sum(("s",), 2).delete(("t",)).sum(("t",), 5).commit()
    assert ok.ok and (await dkv.get(("s",))).value == KvU64(3) and (await dkv.get(("t",))).value == KvU64(5)
    with pytest.raises(MutationTypeError):
        await dkv.atomic().set(("s",), "again").max(("s",), 1).commit()
    assert (await dkv.get(("s",))).value == KvU64(3)


async def test_a_failed_check_wins_over_a_sum_type_error(dkv: DenoKv) -> None:
    await dkv.set(("s",), "text")
    result = await dkv.atomic().check(("s",), None).sum(("s",), 1).commit()
    assert not result.ok


async def test_concurrent_sums_lose_nothing(dkv: DenoKv) -> None:
    async def bump(i: int) -> None:
        assert (await dkv.atomic().sum(("n",), 1).set(("w", i), i).commit()).ok

    async def churn() -> None:
        for i in range(20):
            await dkv.atomic().sum(("n",), 0).commit()
            await dkv.set(("other", i), i)

    await asyncio.gather(churn(), *(bump(i) for i in range(50)))
    assert (await dkv.get(("n",))).value == KvU64(50)


async def test_sum_with_100_checks_commits_without_pins(dkv: DenoKv) -> None:
    op = dkv.atomic()
    for i in range(100):
        op.check(("c", i), None)
    assert (await op.sum(("n",), 7).commit()).ok
    assert (await dkv.get(("n",))).value == KvU64(7)


# -- pipelining, faults, lifecycle -----------------------------------------------------------------------------------


async def test_many_requests_in_flight_get_their_own_replies(dkv: DenoKv) -> None:
    await asyncio.gather(*(dkv.set(("k", i), {"i": i}) for i in range(200)))
    entries = await asyncio.gather(*(dkv.get(("k", i)) for i in range(200)))
    assert [e.value for e in entries] == [{"i": i} for i in range(200)]


async def test_killing_deno_mid_request_fails_every_pending_and_later_call(dkv: DenoKv) -> None:
    await dkv.set(("a",), 1)
    os.kill(dkv.pid, signal.SIGSTOP)  # requests now wait in the pipe, unanswered
    pending = [asyncio.ensure_future(dkv.get(("a",))) for _ in range(5)]
    pending.append(asyncio.ensure_future(dkv.set(("b",), 2)))
    await asyncio.sleep(0.05)
    assert not any(task.done() for task in pending)
    os.kill(dkv.pid, signal.SIGKILL)
    results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), 10)
    assert all(isinstance(r, DenoBridgeError) for r in results), results
    assert "SIGKILL" in str(results[0]) and "stderr tail" in str(results[0])
    with pytest.raises(DenoBridgeError, match="deno exited"):
        await dkv.get(("a",))


async def test_garbage_from_deno_fails_pending_calls_and_kills_it(dkv: DenoKv) -> None:
    os.kill(dkv.pid, signal.SIGSTOP)
    task = asyncio.ensure_future(dkv.get(("a",)))
    await asyncio.sleep(0.01)
    dkv._protocol.pipe_data_received(1, b"\x00\x00\x00\x05hello")
    with pytest.raises(DenoBridgeError, match="garbage"):
        await asyncio.wait_for(task, 10)
    await asyncio.wait_for(dkv._protocol.done, 10)
    with pytest.raises(DenoBridgeError, match="garbage"):
        await dkv.set(("a",), 1)


async def test_a_yield_sent_as_its_watch_ended_is_dropped_not_taken_for_garbage(dkv: DenoKv) -> None:
    """A change just before a watch ends can make the bridge send one more yield before it reads the unwatch: that
    frame, for a watch no longer open here, is dropped and the store goes on."""
    stream = dkv.watch([("a",)])
    assert [e.value for e in await anext(stream)] == [None]
    watch_id = dkv._next_id
    await stream.aclose()  # type: ignore[attr-defined]
    dkv._protocol.pipe_data_received(1, frame([watch_id, 0, [None]]))  # before the unwatch's reply can come
    assert (await dkv.set(("a",), 1)).ok
    assert (await dkv.get(("a",))).value == 1


async def test_deno_exiting_reports_its_stderr(dkv: DenoKv) -> None:
    os.kill(dkv.pid, signal.SIGSTOP)
    stdin = dkv._transport.get_pipe_transport(0)
    assert isinstance(stdin, asyncio.WriteTransport)
    # A garbled request ahead of a get: the bridge logs it and exits 2 before it reads the get, which therefore
    # fails with the exit. (With the get first, a loaded machine sometimes let Deno answer it before exiting.)
    stdin.write(b"\x00\x00\x00\x03abc")
    task = asyncio.ensure_future(dkv.get(("a",)))
    await asyncio.sleep(0.01)
    os.kill(dkv.pid, signal.SIGCONT)
    with pytest.raises(DenoBridgeError, match=r"exit status 2.*garbled request frame"):
        await asyncio.wait_for(task, 10)


async def test_close_ends_the_process_and_later_calls_raise(tmp_path: Path) -> None:
    kv = await open_kv("deno::memory:")
    assert isinstance(kv, DenoKv)
    pid = kv.pid
    pending = asyncio.ensure_future(kv.set(("a",), 1))
    await asyncio.sleep(0)
    await kv.close()
    assert (await pending).ok  # what was asked before close is answered
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(KvClosedError):
        await kv.get(("a",))


async def test_a_leaked_store_warns_and_its_process_ends() -> None:
    kv = await open_kv("deno::memory:")
    assert isinstance(kv, DenoKv)
    pid = kv.pid
    with pytest.warns(ResourceWarning, match="unclosed DenoMemoryKv"):
        del kv
        gc.collect()
    for _ in range(100):
        await asyncio.sleep(0.02)
        try:
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            return
    pytest.fail("deno outlived its leaked store")


def test_deno_expiry_is_late_as_the_flag_says(tmp_path: Path) -> None:
    """Canary for exact_expiry = False: if Deno starts hiding expired entries, flip the flag."""
    script = """const kv = await Deno.openKv(":memory:"); await kv.set(["e"], 1, { expireIn: 1 });
    await new Promise((r) => setTimeout(r, 50)); console.log(JSON.stringify((await kv.get(["e"])).value)); kv.close();"""
    assert run_deno(script) == 1
    assert not DenoKv.exact_expiry


def test_deno_sum_min_and_max_remove_the_deadline(tmp_path: Path) -> None:
    """What the local backends' sum/min/max do with an entry's expiry (tests/test_kv_expiry.py), read in Deno's own
    file: its backend writes them with no expiry (-1), even one that leaves the value as it was."""
    path = tmp_path / "kv.sqlite"
    script = """const kv = await Deno.openKv(Deno.args[0]);
    for (const k of ["sum", "min", "max", "set"]) await kv.set([k], new Deno.KvU64(5n), { expireIn: 3600000 });
    await kv.atomic().sum(["sum"], 1n).min(["min"], 9n).max(["max"], 0n).commit(); kv.close(); console.log(1);"""
    run_deno(script, str(path))
    with contextlib.closing(sqlite3.connect(path)) as db:
        expiry = dict(db.execute("SELECT k, expiration_ms FROM kv"))
    assert {key: ms < 0 for key, ms in expiry.items()} == {
        encode_key((k,)): k != "set" for k in ("sum", "min", "max", "set")
    }


async def test_ping_is_a_round_trip_that_touches_no_store(dkv: DenoKv) -> None:
    await dkv.set(("k",), 1)
    assert await dkv.ping() is None
    assert await asyncio.gather(*(dkv.ping() for _ in range(5))) == [None] * 5  # pipelined like any request
    assert (await dkv.get(("k",))).value == 1
    await dkv.close()
    with pytest.raises(KvClosedError):
        await dkv.ping()


async def test_a_stopped_deno_times_out_instead_of_hanging_its_callers() -> None:
    from queue_impls.kv.errors import DenoTimeoutError

    kv = await open_kv("deno::memory:", request_timeout=0.5)
    try:
        assert isinstance(kv, DenoKv)
        await kv.set(("k",), 1)
        os.kill(kv.pid, signal.SIGSTOP)  # alive but silent, as a wedged or paused process
        loop = asyncio.get_running_loop()
        started = loop.time()
        pending = [asyncio.create_task(kv.get(("k",))), asyncio.create_task(kv.set(("j",), 2))]
        for task in pending:
            with pytest.raises(DenoTimeoutError, match=r"did not answer within 0.5 s \(request_timeout"):
                await asyncio.wait_for(task, 30)
        assert loop.time() - started < 10
        with pytest.raises(DenoTimeoutError):  # the bridge is stopped: later calls fail at once
            await kv.get(("k",))
    finally:
        await asyncio.wait_for(kv.close(), 30)


@pytest.mark.parametrize("bad", [0, -1, "5", True, float("nan"), 1e9])
async def test_a_bad_request_timeout_is_a_typed_error(bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="request_timeout must be"):
        await open_kv("deno::memory:", request_timeout=bad)
