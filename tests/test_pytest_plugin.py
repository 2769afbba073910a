"""The kvq_bench pytest plugin (pytest11 entry point) and kv_budget, Django assertNumQueries style."""

from __future__ import annotations

import re

import pytest

from queue_impls.kv.backends.memory import MemoryKv
from queue_impls.meter import CountingKv, KvBudgetExceeded, kv_budget

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

BUDGET_TESTS = """
import asyncio

async def seed(kv, n):
    for i in range(n):
        await kv.atomic().set(("jobs", f"id{i}"), {"n": i}).set(("jobs_by_name", "email", f"id{i}"), f"id{i}").commit()

async def naive(kv):
    async for entry in kv.list(prefix=("jobs_by_name", "email")):
        await kv.get(("jobs", entry.value))  # N+1 HERE

def test_within_budget(counting_kv, kv_budget):
    async def body():
        await seed(counting_kv, 3)
        with kv_budget(counting_kv, max_round_trips=1, max_calls=1):
            await counting_kv.get_many([("jobs", "id0"), ("jobs", "id1")])
    asyncio.run(body())

def test_over_budget(counting_kv, kv_budget):
    async def body():
        await seed(counting_kv, 30)
        async with kv_budget(counting_kv, max_round_trips=2):
            await naive(counting_kv)
    asyncio.run(body())

def test_exact(counting_kv, kv_budget):
    async def body():
        with kv_budget(counting_kv, max_calls=2, exact=True):
            await counting_kv.get(("jobs", "id0"))
    asyncio.run(body())

def test_no_n_plus_one(counting_kv, kv_budget):
    async def body():
        await seed(counting_kv, 5)
        with kv_budget(counting_kv, no_n_plus_one=True):
            await naive(counting_kv)
    asyncio.run(body())
"""


def test_plugin_fixtures_pass_and_fail_with_grouped_calls(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_budget=BUDGET_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    line = next(i for i, text in enumerate(BUDGET_TESTS.strip().splitlines(), 1) if "# N+1 HERE" in text)
    result.stdout.fnmatch_lines(
        [
            "*KvBudgetExceeded: expected at most 2 round trips, got 31:",
            f'*30 x get ("jobs", ?) at test_budget.py:{line}',
            '*1 x list ("jobs_by_name", "email", [*]) at test_budget.py:*',
        ]
    )
    result.stdout.fnmatch_lines(["*expected exactly 2 calls, got 1:", '*1 x get ("jobs", ?) at test_budget.py:*'])
    result.stdout.fnmatch_lines([f'*expected no N+1 pattern, found N+1: 5 x get ("jobs", ?) at test_budget.py:{line}*'])


def test_the_plugin_is_registered_through_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_x="def test_x(kv_budget, counting_kv):\n    assert counting_kv.tracing\n")
    result = pytester.runpytest("-p", "no:cacheprovider", "--trace-config")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*queue_impls/pytest_plugin.py*"])


async def test_message_for_a_thousand_gets_uses_thousands_separators() -> None:
    ckv = CountingKv(MemoryKv())  # tracing off: the budget turns it on for its block, then back off
    await ckv.set(("jobs", "only"), 1)
    with pytest.raises(KvBudgetExceeded) as info, kv_budget(ckv, max_round_trips=2):
        for i in range(1000):
            await ckv.get(("jobs", f"id{i}"))
        await ckv.get(("config",))
    message = str(info.value)
    assert message.startswith("expected at most 2 round trips, got 1,001:\n")
    assert re.search(r'1,000 x get \("jobs", \?\) at tests/test_pytest_plugin.py:\d+\n  1 x get \("config",\)', message)
    assert not ckv.tracing and ckv.trace[0].op == "get" and len(ckv.trace) == 1001


async def test_a_budget_within_limits_passes_and_exposes_its_counts() -> None:
    ckv = CountingKv(MemoryKv())
    async with kv_budget(ckv, max_calls=2, max_serial_round_trips=1, max_entries_read=0, max_bytes_read=0) as budget:
        await ckv.get(("a",))
    assert budget.counts.total_calls == 1


async def test_a_block_that_raises_is_not_masked_by_the_budget() -> None:
    ckv = CountingKv(MemoryKv())
    with pytest.raises(ZeroDivisionError), kv_budget(ckv, max_calls=0):
        await ckv.get(("a",))
        _ = 1 / 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [({}, TypeError), ({"max_calls": -1}, ValueError), ({"max_round_trips": 1.5}, ValueError)],
)
def test_a_bad_budget_is_rejected(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match="kv_budget"):
        kv_budget(CountingKv(MemoryKv()), **kwargs)  # type: ignore[arg-type]
