"""Trace events: one per call, with keys, a fingerprint, entries, bytes, duration, errors and the caller's site."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from queue_impls.kv import InvalidKeyError, InvalidSelectorError, Kv
from queue_impls.meter import CountingKv, is_varying, key_fingerprint, keys_fingerprint

from .test_counting import entry_bytes, fill

HERE = "tests/test_counting_trace.py"


@pytest.fixture
async def ckv(kv: Kv) -> CountingKv:
    return CountingKv(kv, trace=True, owns_inner=False)


@pytest.mark.parametrize(
    ("key", "fingerprint"),
    [
        (("jobs", str(uuid.uuid4())), '("jobs", ?)'),
        (("jobs_by_name", "send-email", uuid.uuid4().hex), '("jobs_by_name", "send-email", ?)'),
        (("queue", "pending", 1.5e12, "01HZX3"), '("queue", "pending", ?, ?)'),
        (("n", 42, b"\x00", True), '("n", ?, ?, True)'),
        (("user42",), "(?,)"),
        (("a b", "x" * 41, "a@b.c", ""), '(?, ?, ?, "")'),
        ((), "()"),
    ],
)
def test_fingerprint_keeps_names_and_hides_values(key: tuple, fingerprint: str) -> None:  # type: ignore[type-arg]
    assert key_fingerprint(key) == fingerprint


def test_what_counts_as_varying() -> None:
    assert [is_varying(p) for p in ("jobs", "v2", 7, 7.0, b"", False)] == [False, True, True, True, True, False]
    assert keys_fingerprint([("j", "1"), ("j", "2"), ("k",)]) == '("j", ?) x2, ("k",)'


async def test_one_event_per_call_with_what_it_cost_and_where(ckv: CountingKv) -> None:
    await fill(ckv.inner, 250)
    ckv.trace.clear()
    await ckv.get(("idx", 3))  # line A
    line_a = _line_of('await ckv.get(("idx", 3))  # line A')
    entries = await ckv.list(prefix=("idx",)).collect()
    await ckv.get_many([("idx", 1), ("idx", 2)])
    await ckv.set(("idx", 1), "new")
    await ckv.delete(("idx", 2))
    await ckv.atomic().check(("idx", 9), None).set(("j", "x1"), 1).commit()
    get, lst, many, st, dl, commit = ckv.trace
    assert [e.op for e in ckv.trace] == ["get", "list", "get_many", "set", "delete", "commit"]
    assert [e.index for e in ckv.trace] == list(range(6))
    assert get.site == f"{HERE}:{line_a}" and get.keys == (("idx", 3),) and get.fingerprint == '("idx", ?)'
    assert (get.round_trips, get.entries, get.bytes_read) == (1, 1, entry_bytes(("idx", 3), "v3"))
    assert get.results == [(("idx", 3), "v3")] and get.duration_s > 0 and get.error is None
    assert (lst.round_trips, lst.entries, len(entries), lst.fingerprint) == (3, 250, 250, '("idx", *)')
    assert lst.label == 'list ("idx", *)' and lst.site.startswith(HERE)
    assert many.fingerprint == '("idx", ?) x2' and many.entries == 2
    assert st.label == 'set ("idx", ?)' and st.bytes_written == entry_bytes(("idx", 1), "new")
    assert dl.label == 'delete ("idx", ?)' and dl.round_trips == 1
    assert commit.fingerprint == 'check ("idx", ?), set ("j", ?)' and commit.keys == (("idx", 9), ("j", "x1"))
    assert sum(e.round_trips for e in ckv.trace) == ckv.counts.round_trips == 8


async def test_a_failed_call_records_its_error(ckv: CountingKv) -> None:
    with pytest.raises(InvalidKeyError):
        await ckv.set((), 1)
    with pytest.raises(InvalidSelectorError):
        ckv.list(prefix=("u",), start=("u", "a"), end=("u", "b"))
    assert [(e.op, e.error, e.round_trips) for e in ckv.trace] == [
        ("set", "InvalidKeyError", 0),
        ("list", "InvalidSelectorError", 0),
    ]


async def test_list_selectors_have_fingerprints(ckv: CountingKv) -> None:
    await ckv.list(prefix=("u",), start=("u", "a1")).collect()
    await ckv.list(start=("u", 1), end=("u", 9)).collect()
    await ckv.list(prefix=()).collect()
    assert [e.fingerprint for e in ckv.trace] == ['("u", *) start ("u", ?)', 'start ("u", ?) end ("u", ?)', "(*)"]


async def test_tracing_off_records_nothing_and_a_custom_fingerprint_is_used(kv: Kv) -> None:
    quiet = CountingKv(kv, owns_inner=False)
    await quiet.get(("a",))
    assert quiet.trace == []
    custom = CountingKv(kv, trace=True, owns_inner=False, fingerprint=lambda key: f"<{len(key)} parts>")
    await custom.get(("a", "b"))
    assert custom.trace[0].fingerprint == "<2 parts>"


def _line_of(text: str) -> int:
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


async def test_concurrent_lists_keep_their_own_batches(ckv: CountingKv) -> None:
    await fill(ckv.inner, 20, "a")
    await fill(ckv.inner, 20, "b")
    ckv.trace.clear()

    async def walk(prefix: str) -> None:
        async for entry in ckv.list(prefix=(prefix,), batch_size=5):
            await ckv.get(entry.key)

    await asyncio.gather(walk("a"), walk("b"))
    lists = [e for e in ckv.trace if e.op == "list"]
    gets = [e for e in ckv.trace if e.op == "get"]
    assert [(e.fingerprint, e.round_trips, e.entries) for e in lists] == [('("a", *)', 5, 20), ('("b", *)', 5, 20)]
    assert len(gets) == 40 and all((e.round_trips, e.entries) == (1, 1) for e in gets)
    assert [{k[0] for k, _ in e.results} for e in lists] == [{"a"}, {"b"}]


def test_the_traced_list_proxy_covers_the_whole_iterator_api() -> None:
    from queue_impls.kv import KvListIterator
    from queue_impls.meter.counting import _TracedList

    public = {n for n in vars(KvListIterator) if not n.startswith("_")} | {"__aiter__", "__anext__"}
    assert public <= set(vars(_TracedList)), "a new KvListIterator method must be delegated by _TracedList"
