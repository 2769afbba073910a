"""The worker-path scripts, smoke-tested cheaply: an idle worker's reads per minute (exact, on a fake clock) and
the huey comparison's own timing loop (tiny sizes; huey's side only when the bench-only extra is installed), and
its lower bound: the captured commits replayed as raw rows write exactly what the store wrote."""

from __future__ import annotations

import dataclasses
import importlib.util
import sqlite3
import time
from pathlib import Path

import pytest

from queue_impls.jobs import LAYOUTS
from queue_impls.jobs.keys import JOBS, READY_BY_NAME
from queue_impls.kv.codec import decode_key, decode_value, encode_key, encode_value
from queue_impls.kv.types import Mutation
from tools.huey_vs import (
    MINIMAL_RECORDS,
    KvCommit,
    KvRead,
    ReplayError,
    capture_layout,
    capture_minimal_worker,
    codec_work,
    goals,
    kv_calls,
    minimal_commits,
    replay,
    replay_kv,
    report,
    split,
    time_codec,
    time_floor,
    time_huey,
    time_minimal_worker,
    time_ours,
    to_rows,
)
from tools.worker_idle import add_to_handler_ms, idle_reads_per_minute


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_an_idle_worker_reads_twice_a_minute(backend: str, tmp_path: Path) -> None:
    reads, entries = await idle_reads_per_minute(backend, 3, tmp_path)
    assert (reads, entries) == (2.0, 0.0)  # the safety re-check: reap_expired + the claim's list, nothing found


async def test_add_to_handler_is_timed_for_every_job(tmp_path: Path) -> None:
    latencies = await add_to_handler_ms("memory", 5, tmp_path)
    assert len(latencies) == 5 and all(ms > 0 for ms in latencies)


async def test_our_side_of_the_huey_comparison_runs_every_job(tmp_path: Path) -> None:
    add_s, run_s = await time_ours(tmp_path / "q.db", "indexed", 8, 20)
    assert add_s > 0 and run_s > 0


async def test_the_floor_writes_each_job_once_per_phase(tmp_path: Path) -> None:
    add_s, run_s = await time_floor(tmp_path / "f.db", 20)
    assert add_s > 0 and run_s > 0


@pytest.mark.skipif(importlib.util.find_spec("huey") is None, reason="huey (the bench-only extra) is not installed")
def test_huey_side_and_the_report(tmp_path: Path) -> None:
    huey = time_huey(tmp_path / "h.db", 20)
    # its connection closed before it returns (untimed), not left to close in the next contender's timing
    assert (tmp_path / "h.db").exists() and not (tmp_path / "h.db-wal").exists()
    text = report({"huey": [huey], "indexed/c1": [(huey[0] * 2, huey[1] * 3)]}, 20, 1)
    row = next(line for line in text.splitlines() if line.startswith("indexed/c1 "))
    assert "2.00x [2.00, 2.00]" in row and "3.00x [3.00, 3.00]" in row


def test_the_goals_are_judged_on_paired_ratios() -> None:
    huey = [(1.0, 1.0), (2.0, 2.0), (1.0, 1.0)]
    times = {
        "huey": huey,
        "floor": [(0.5, 0.5)] * 3,
        "naive/c1": [(0.9, 1.0), (1.8, 2.0), (0.9, 1.0)],
        "naive/c8": [(0.9, 1.1), (1.8, 2.2), (0.9, 1.1)],  # 10% slower to run than c1 in every round
        "batched/c1": [(3.0, 1.0), (6.0, 2.0), (3.0, 1.0)],
        "batched/c8": [(3.0, 0.9), (6.0, 1.8), (3.0, 0.9)],
    }
    lines = goals(times)
    assert "[   met] naive/c1 add at most 1.0x huey: 0.90x [0.90, 0.90]" in lines
    assert "[MISSED] naive/c8 run at most 1.0x huey: 1.10x [1.10, 1.10]" in lines
    assert "[MISSED] batched/c1 add at most 1.0x huey: 3.00x [3.00, 3.00]" in lines
    assert "[MISSED] naive run at concurrency 8 not slower than at 1: c8 / c1 1.10x [1.10, 1.10]" in lines
    assert "[   met] batched run at concurrency 8 not slower than at 1: c8 / c1 0.90x [0.90, 0.90]" in lines
    assert not any("floor" in line for line in lines)  # the floor is a bound, not a contender with goals


def test_a_missed_goal_names_its_bound_and_calls_it_impossible_only_when_the_bound_is_over() -> None:
    huey = [(1.0, 1.0)] * 6
    times = {
        "huey": huey,
        "naive/c1": [(3.0, 4.0)] * 6,
        "naive/c1/raw": [(1.5, 1.2), (1.6, 1.3), (1.5, 0.9), (1.5, 1.3), (1.7, 1.3), (1.5, 1.4)],
        "batched/c1": [(0.9, 2.0)] * 6,
        "batched/c1/raw": [(0.5, 0.8)] * 6,
        "minimal/raw": [(0.7, 1.1)] * 6,
    }
    lines = goals(times)
    assert (
        "[MISSED] naive/c1 add at most 1.0x huey: 3.00x [3.00, 3.00]; its rows alone on raw SQLite: "
        "1.50x [1.50, 1.70] (lower bound; impossible on SQLite for what this layout writes)"
    ) in lines
    # the median is over 1.0x but its 95% interval is not (0.90x in one round of 6): not called impossible
    assert "[MISSED] naive/c1 run at most 1.0x huey: 4.00x [4.00, 4.00]; its rows alone on raw SQLite: " in lines[1]
    assert lines[1].endswith("1.30x [0.90, 1.40] (lower bound)")
    assert "[   met] batched/c1 add at most 1.0x huey: 0.90x [0.90, 0.90]" in lines  # met: no bound named
    assert lines[3].endswith("its rows alone on raw SQLite: 0.80x [0.80, 0.80] (lower bound)")
    assert lines[-1] == (
        "[ bound] a minimal queue's rows alone on raw SQLite: add 0.70x [0.70, 0.70], run 1.10x [1.10, 1.10] "
        "(over 1.0x huey to run for any queue writing these rows)"
    )
    assert not any(line.startswith("[MISSED] naive/c1/raw") for line in lines)  # a bound has no goal of its own


def test_the_codec_bound_is_added_to_the_rows_round_by_round() -> None:
    huey = [(1.0, 1.0), (2.0, 2.0)] * 3
    times = {
        "huey": huey,
        "naive/c8": [(3.0, 2.0), (6.0, 4.0)] * 3,
        "naive/c8/raw": [(1.5, 0.6), (3.0, 1.2)] * 3,  # add: over 1.0x already; run: 0.6x
        "naive/c8/codec": [(0.2, 0.5), (0.4, 1.0)] * 3,  # run: 0.6x + 0.5x = 1.1x in every round
        "batched/c8": [(3.0, 2.0), (6.0, 4.0)] * 3,
        "batched/c8/raw": [(0.5, 0.5), (1.0, 1.0)] * 3,
        "batched/c8/codec": [(0.2, 0.3), (0.4, 0.6)] * 3,
        "minimal/raw": [(0.7, 0.5), (1.4, 1.0)] * 3,
        "minimal/codec": [(0.1, 0.6), (0.2, 1.2)] * 3,
    }
    lines = goals(times)
    assert lines[0].endswith(
        "its rows alone on raw SQLite: 1.50x [1.50, 1.50] (lower bound; impossible on SQLite for what this layout "
        "writes); with our codec's work for them: 1.70x [1.70, 1.70] (lower bound)"
    )
    assert lines[1].endswith(
        "its rows alone on raw SQLite: 0.60x [0.60, 0.60] (lower bound); with our codec's work for them: "
        "1.10x [1.10, 1.10] (lower bound; impossible on this KV layer for what this layout writes)"
    )
    assert lines[3].endswith("with our codec's work for them: 0.80x [0.80, 0.80] (lower bound)")
    assert lines[-2:] == [
        "[ bound] a minimal queue's rows alone on raw SQLite: add 0.70x [0.70, 0.70], run 0.50x [0.50, 0.50]",
        "[ bound] a minimal queue's rows + our codec's work for them: add 0.80x [0.80, 0.80], "
        "run 1.10x [1.10, 1.10] (over 1.0x huey to run for any queue on this KV layer writing these rows)",
    ]
    assert not any(line.startswith("[MISSED] naive/c8/codec") for line in lines)  # a bound has no goal of its own


@pytest.mark.parametrize("layout", LAYOUTS)
async def test_the_codec_work_is_each_key_and_value_the_layout_gave_once_and_each_job_read_once(
    layout: str, tmp_path: Path
) -> None:
    capture = await capture_layout(tmp_path / "store.db", layout, 8, 10)
    phases = [capture.commits["add"], capture.commits["run"]]
    add, run = codec_work(phases, encode_key(JOBS))
    for work, commits in zip((add, run), phases, strict=True):
        written = [m for _, mutations, _ in commits for m in mutations]
        keys = {c.key for checks, _, _ in commits for c in checks} | {m.key for m in written}
        assert sorted(encode_key(key) for key in work.keys) == sorted(keys)  # each once, encoded as the store did
        sets = {id(m.value): m for m in written if m.kind == "set"}
        assert sorted(id(value) for value in work.values) == sorted(sets)
        assert {encode_value(value) for value in work.values} == {(m.payload, m.encoding) for m in sets.values()}
    assert add.reads == ()
    assert sorted(decode_value(*read)["data"] for read in run.reads) == list(range(10))  # each job, as added
    assert {decode_value(*read)["status"] for read in run.reads} == {"pending"}
    assert all(seconds > 0 for seconds in time_codec([add, run], 10))


def test_the_minimal_queue_reads_each_of_its_records_once() -> None:
    commits = minimal_commits(4)
    _, run = codec_work([commits["add"], commits["run"]], MINIMAL_RECORDS)
    assert len(run.reads) == 4 and {decode_value(*read)["status"] for read in run.reads} == {"pending"}


def _kv_rows(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT k, v, enc, vs, exp FROM kv ORDER BY k").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize(("layout", "concurrency"), [*((layout, 1) for layout in LAYOUTS), ("naive", 8)])
async def test_the_replay_writes_exactly_the_rows_the_store_wrote(
    layout: str, concurrency: int, tmp_path: Path
) -> None:
    capture = await capture_layout(tmp_path / "store.db", layout, concurrency, 12)
    assert capture.commits["add"] and capture.commits["run"]
    assert any(m.kind == "sum" for _, mutations, _ in capture.commits["run"] for m in mutations)  # counters
    phases = to_rows([capture.commits["add"], capture.commits["run"]], int(time.time() * 1000))
    add_s, run_s = replay(tmp_path / "replay.db", phases, 12)
    assert add_s > 0 and run_s > 0
    # every key, value, encoding, versionstamp and expiry the store left, and nothing else (the store's version
    # counter lives in kv_meta, which the replay leaves alone)
    stored = _kv_rows(tmp_path / "store.db")
    assert len(stored) > 12 and _kv_rows(tmp_path / "replay.db") == stored


async def test_a_replayed_check_that_does_not_hold_stops_the_replay(tmp_path: Path) -> None:
    capture = await capture_layout(tmp_path / "store.db", "optimized", 1, 3)
    add, run = to_rows([capture.commits["add"], capture.commits["run"]], int(time.time() * 1000))
    i = next(i for i, commit in enumerate(run) if commit.checks)
    (params, expected), *rest = run[i].checks
    wrong = bytes(10) if expected != bytes(10) else b"\x01" * 10  # differs from what the check will find
    run[i] = dataclasses.replace(run[i], checks=((params, wrong), *rest))
    with pytest.raises(ReplayError, match="check on"):
        replay(tmp_path / "replay.db", [add, run], 3)
    with pytest.raises(FileExistsError, match="fresh file"):  # its checks would meet the rows of the last replay
        replay(tmp_path / "replay.db", [add], 3)


def test_the_minimal_queue_writes_two_rows_to_add_and_four_to_run_a_job(tmp_path: Path) -> None:
    commits = minimal_commits(5)
    add, run = to_rows([commits["add"], commits["run"]], int(time.time() * 1000))
    assert [sum(len(rows) for _, rows in c.writes) for c in add] == [2] * 5
    assert [len(c.checks) for c in add] == [0] * 5
    assert [sum(len(rows) for _, rows in c.writes) for c in run] == [2, 4, 4, 4, 4, 2]  # claim, 4 x (outcome+claim)
    assert [len(c.checks) for c in run] == [1, 2, 2, 2, 2, 1]
    assert all(len(c.writes) <= 2 for c in run)  # the deletes, then the sets: one statement each
    replay(tmp_path / "m.db", [add, run], 5)
    left = _kv_rows(tmp_path / "m.db")
    assert [decode_key(bytes(row[0]))[:2] for row in left] == [("minimal", "job")] * 5  # no ready entry, no lease
    assert {decode_value(bytes(row[1]), int(row[2]))["status"] for row in left} == {"completed"}


def test_the_kv_bound_follows_the_codec_bound_and_is_over_only_with_its_whole_interval() -> None:
    huey = [(1.0, 1.0)] * 6
    times = {
        "huey": huey,
        "naive/c8": [(3.0, 2.0)] * 6,
        "naive/c8/raw": [(0.5, 0.5)] * 6,
        "naive/c8/codec": [(0.2, 0.2)] * 6,
        "naive/c8/kv": [(1.2, 1.1), (1.3, 1.2), (1.2, 1.1), (1.2, 0.9), (1.2, 1.2), (1.2, 1.2)],
        "minimal/kv": [(1.2, 0.7)] * 6,
    }
    lines = goals(times)
    assert lines[0].endswith(
        "with our codec's work for them: 0.70x [0.70, 0.70] (lower bound); its reads and commits through our KV API "
        "alone: 1.20x [1.20, 1.30] (over 1.0x before any queue logic)"
    )
    # run: the median is 1.15x, but one round of six is 0.9x: not called over
    assert lines[1].endswith("its reads and commits through our KV API alone: 1.15x [0.90, 1.20]")
    assert lines[-1] == (
        "[ bound] a minimal queue's commits through our KV API alone: add 1.20x [1.20, 1.20], run 0.70x [0.70, 0.70] "
        "(over 1.0x huey to add for this KV layer as built, before any queue logic)"
    )
    assert not any(line.startswith("[MISSED] naive/c8/kv") for line in lines)  # a bound has no goal of its own


@pytest.mark.parametrize(("layout", "concurrency"), [*((layout, 1) for layout in LAYOUTS), ("batched", 8)])
async def test_the_kv_replay_makes_the_queues_reads_and_commits_again_and_leaves_the_same_rows(
    layout: str, concurrency: int, tmp_path: Path
) -> None:
    capture = await capture_layout(tmp_path / "store.db", layout, concurrency, 12)
    run = capture.calls["run"]
    reads = [call for call in run if isinstance(call, KvRead)]
    # a one-name worker's claims list its name's ready index, and find the jobs there
    assert any(call.method == "list" and call.kwargs.get("prefix") == (*READY_BY_NAME, "noop") for call in reads)
    assert capture.entries_read["run"] >= 12
    assert [call for call in run if not isinstance(call, KvRead)] == capture.commits["run"]  # every commit, in order
    phases = [kv_calls(capture.calls["add"]), kv_calls(capture.calls["run"])]
    entries = [capture.entries_read["add"], capture.entries_read["run"]]
    add_s, run_s = await replay_kv(tmp_path / "replay.db", phases, 12, entries)
    assert add_s > 0 and run_s > 0
    # through the same KV layer, from the same calls: the same keys, values, encodings, versionstamps, expiries
    stored = _kv_rows(tmp_path / "store.db")
    assert len(stored) > 12 and _kv_rows(tmp_path / "replay.db") == stored


async def test_a_kv_replay_that_reads_otherwise_or_whose_checks_fail_stops(tmp_path: Path) -> None:
    capture = await capture_layout(tmp_path / "store.db", "naive", 8, 4)
    add, run = kv_calls(capture.calls["add"]), kv_calls(capture.calls["run"])
    entries = [capture.entries_read["add"], capture.entries_read["run"]]
    with pytest.raises(ReplayError, match=r"found \d+ entries"):
        await replay_kv(tmp_path / "a.db", [add, run], 4, [entries[0], entries[1] + 1])
    i = next(i for i, call in enumerate(run) if isinstance(call, KvCommit) and call.checks)
    commit = run[i]
    assert isinstance(commit, KvCommit)
    (key, _), *rest = commit.checks
    run[i] = KvCommit(((key, "f" * 20), *rest), commit.mutations)  # a versionstamp no commit of 4 jobs reaches
    with pytest.raises(ReplayError, match="did not hold"):
        await replay_kv(tmp_path / "b.db", [add, run], 4)
    with pytest.raises(FileExistsError, match="fresh file"):
        await replay_kv(tmp_path / "b.db", [add], 4)


def test_the_kv_replay_refuses_what_it_cannot_make_as_the_queue_made_it() -> None:
    expiring = Mutation("set", encode_key(("a",)), 1, *encode_value(1), expire_at_ms=1)
    with pytest.raises(ValueError, match="without expiry"):
        kv_calls([((), (expiring,), "0" * 20)])
    stamped = Mutation("set_suffix_versionstamp", encode_key(("a",)), 1, *encode_value(1))
    with pytest.raises(ValueError, match="without expiry"):
        kv_calls([((), (stamped,), "0" * 20)])


async def test_the_minimal_queue_replays_through_the_kv_api(tmp_path: Path) -> None:
    commits = minimal_commits(5)
    add, run = kv_calls(commits["add"]), kv_calls(commits["run"])
    assert [len(call.mutations) for call in run] == [2, 4, 4, 4, 4, 2]  # type: ignore[union-attr]
    assert all(seconds > 0 for seconds in await replay_kv(tmp_path / "m.db", [add, run], 5, [0, 0]))


def test_the_split_is_the_bound_the_kv_layer_above_it_and_the_rest_round_by_round() -> None:
    times = {
        "huey": [(1e-6, 1e-6)] * 3,
        "naive/c8": [(50e-6, 90e-6), (60e-6, 100e-6), (55e-6, 80e-6)],
        "naive/c8/raw": [(20e-6, 10e-6), (25e-6, 12e-6), (21e-6, 11e-6)],
        "naive/c8/codec": [(5e-6, 9e-6)] * 3,
        "naive/c8/kv": [(40e-6, 50e-6), (45e-6, 70e-6), (44e-6, 45e-6)],
        "minimal/kv": [(1e-6, 1e-6)] * 3,  # no bounds of its own in this table: not a row
        "minimal/worker": [(9e-6, 9e-6)] * 3,
        "minimal/worker/inline": [(8e-6, 7e-6)] * 3,
        "minimal/worker/raw": [(2e-6, 2e-6)] * 3,
        "minimal/worker/codec": [(1e-6, 1e-6)] * 3,
        "minimal/worker/kv": [(5e-6, 6e-6)] * 3,
    }
    title, header, _, *rows = split(times)
    assert title.startswith("each one's time in three parts")
    expected = "per job add: rows+codec add: KV above add: rest run: rows+codec run: KV above run: rest"
    assert header.split() == expected.split()
    # naive add: bound 25, 30, 26 -> 26; above it 15, 15, 18 -> 15; the rest 10, 15, 11 -> 11
    # naive run: bound 19, 21, 20 -> 20; above it 31, 49, 25 -> 31; the rest 40, 30, 35 -> 35
    assert [[row.split()[0], *row.split()[1::2]] for row in rows] == [
        ["naive/c8", "26", "15", "11", "20", "31", "35"],
        ["minimal/worker", "3", "2", "4", "3", "3", "3"],
        ["minimal/worker/inline", "3", "2", "3", "3", "3", "1"],  # its bounds are minimal/worker's
    ]
    assert split({"huey": [(1.0, 1.0)], "naive/c8": [(1.0, 1.0)], "naive/c8/kv": [(1.0, 1.0)]}) == []  # no bound


async def test_the_kv_replay_serialises_a_value_once_per_commit_as_the_queue_does(tmp_path: Path) -> None:
    capture = await capture_layout(tmp_path / "store.db", "naive", 8, 4)
    first_add = kv_calls(capture.calls["add"])[0]
    assert isinstance(first_add, KvCommit)
    sets = [(key, again) for kind, key, _, again in first_add.mutations if kind == "set"]
    # the record, then its by-name entry (a value of its own), then the record's two ready copies: the record's value
    assert [again for _, again in sets] == [None, None, 0, 0]
    assert [key[0] if key[0] != "queue" else key[:2] for key, _ in sets] == [
        "jobs",
        "jobs_by_name",
        ("queue", "ready"),
        ("queue", "ready_by_name"),
    ]


@pytest.mark.parametrize(("concurrency", "inline"), [(1, False), (3, False), (8, False), (8, True)])
async def test_the_minimal_worker_runs_every_job_once_and_leaves_only_completed_records(
    concurrency: int, inline: bool, tmp_path: Path
) -> None:
    add_s, run_s = await time_minimal_worker(tmp_path / "w.db", 10, concurrency, inline=inline)
    assert add_s > 0 and run_s > 0
    left = _kv_rows(tmp_path / "w.db")
    assert [decode_key(bytes(row[0]))[:2] for row in left] == [("minimal", "job")] * 10  # no ready entry, no lease
    records = [decode_value(bytes(row[1]), int(row[2])) for row in left]
    assert {(r["status"], r["attempts"]) for r in records} == {("completed", 1)}
    assert sorted(r["data"] for r in records) == list(range(10))


def test_the_minimal_workers_ratios_close_the_goals_as_references() -> None:
    times = {
        "huey": [(1.0, 2.0)] * 6,
        "minimal/worker": [(1.3, 2.0), (1.2, 2.2), (1.3, 1.8)] * 2,
        "minimal/worker/inline": [(1.3, 1.4)] * 6,
    }
    assert goals(times)[-2:] == [
        "[   ref] the leanest crash-safe worker on our KV API, concurrency 8, a task per handler (a reference, not a "
        "bound): add 1.30x [1.20, 1.30], run 1.00x [0.90, 1.10]",
        "[   ref] the leanest crash-safe worker on our KV API, its handlers awaited one by one (a reference, not a "
        "bound): add 1.30x [1.30, 1.30], run 0.70x [0.70, 0.70]",
    ]


async def test_the_minimal_workers_capture_replays_to_the_same_rows_both_ways(tmp_path: Path) -> None:
    capture = await capture_minimal_worker(tmp_path / "store.db", 20)
    reads = [call for call in capture.calls["run"] if isinstance(call, KvRead)]
    # 8 + 8 + 4 jobs, then an empty list before the last outcomes' commit and one that ends the run
    assert [call.method for call in reads] == ["list"] * 5
    assert capture.entries_read == {"add": 0, "run": 20}
    assert len(capture.commits["add"]) == 20 and len(capture.commits["run"]) == 4  # 3 claims, the last outcomes
    stored = _kv_rows(tmp_path / "store.db")
    assert len(stored) == 20
    rows = to_rows([capture.commits["add"], capture.commits["run"]], int(time.time() * 1000))
    replay(tmp_path / "raw.db", rows, 20)
    assert _kv_rows(tmp_path / "raw.db") == stored
    calls = [kv_calls(capture.calls["add"]), kv_calls(capture.calls["run"])]
    await replay_kv(tmp_path / "kv.db", calls, 20, [0, 20])
    assert _kv_rows(tmp_path / "kv.db") == stored
    work = codec_work([capture.commits["add"], capture.commits["run"]], MINIMAL_RECORDS)
    assert len(work[1].reads) == 20  # each job's record decoded once to run it
