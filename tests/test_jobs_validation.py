# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""Bad input is a typed error raised before anything is written, on every layout."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from queue_impls.jobs import (
    Backoff,
    FakeClock,
    InvalidJobOptionError,
    Job,
    JobStatus,
    JobTooLargeError,
    JobValidationError,
    Queue,
    UnknownHandlerError,
    UnknownLayoutError,
    Worker,
    new_job_id,
)
from queue_impls.jobs.model import MAX_ERROR_HISTORY
from queue_impls.jobs.validation import MAX_JOB_VALUE, MAX_WORKER_ID_CHARS
from queue_impls.kv import Kv, encode_value, open_kv
from queue_impls.kv.limits import MAX_VALUE_SIZE, MAX_WRITE_KEY_SIZE

from .jobs_support import clock, kv_factory, layout, queue  # noqa: F401


@pytest.fixture
async def mem_queue(layout: str, clock: FakeClock) -> AsyncIterator[Queue]:
    """Input checks do not depend on the store: most of them run on the memory store only."""
    async with await open_kv("memory:") as kv:
        yield Queue(kv, layout, clock)


async def assert_nothing_written(kv: Kv) -> None:
    assert await kv.list(prefix=()).collect() == []


def test_unknown_layout_names_the_known_ones(clock: FakeClock) -> None:
    with pytest.raises(UnknownLayoutError, match="naive, optimized, batched, indexed"):
        Queue(None, "fastest", clock)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"delay": -1}, "delay must be a number of seconds in 0..3153600000"),
        ({"delay": 1e306}, "delay must be a number of seconds in 0..3153600000"),
        ({"delay": 100 * 365 * 86400 + 1}, "delay must be a number of seconds in 0..3153600000"),
        ({"run_at": 1e306}, "at most 100 years"),
        ({"run_at": -1e306}, "run_at must be a time"),
        ({"max_attempts": 10**5000}, "max_attempts must be an int in 1..10000"),
        ({"backoff": {"base": 1e308, "cap": 1e308}}, "backoff base must be a number in 0.0..2592000"),
        ({"backoff": {"cap": 1e308}}, "backoff cap must be a number in 0.0..2592000"),
        ({"backoff": {"factor": 1e300}}, "backoff factor must be a number in 1.0..1000"),
        ({"delay": float("nan")}, "delay must be"),
        ({"max_attempts": 0}, "max_attempts must be an int in 1..10000"),
        ({"max_attempts": 2.5}, "max_attempts must be an int in 1..10000"),
        ({"priority": 1.5}, "priority must be an int"),
        ({"priority": 2**63}, "priority must be an int"),
        ({"priority": True}, "priority must be an int"),
        ({"run_at": "tomorrow"}, "run_at must be a time in seconds since the epoch"),
        ({"delay": 5, "run_at": 1.0}, "not both"),
        ({"backoff": {"base": -1}}, "backoff base must be"),
        ({"backoff": {"factor": 0.5}}, "backoff factor must be"),
        ({"backoff": {"jitter": "some"}}, "backoff jitter must be one of"),
        ({"backoff": {"speed": 1}}, "backoff must be a Backoff or a dict"),
    ],
)
async def test_bad_job_options_are_rejected_before_writing(
    mem_queue: Queue, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidJobOptionError, match=message):
        await mem_queue.add("a", None, **options)
    await assert_nothing_written(mem_queue.kv)


async def test_bad_names_and_data_are_rejected_before_writing(mem_queue: Queue) -> None:
    with pytest.raises(InvalidJobOptionError, match="non-empty str"):
        await mem_queue.add("", 1)
    with pytest.raises(InvalidJobOptionError, match="non-empty str"):
        await mem_queue.add(7, 1)  # type: ignore[arg-type]
    with pytest.raises(JobTooLargeError, match=f"max {MAX_WRITE_KEY_SIZE} bytes per key"):
        await mem_queue.add("n" * MAX_WRITE_KEY_SIZE, 1)
    with pytest.raises(JobTooLargeError, match=f"max {MAX_JOB_VALUE} bytes"):
        await mem_queue.add("a", "x" * MAX_JOB_VALUE)
    with pytest.raises(InvalidJobOptionError, match="cannot be stored"):
        await mem_queue.add("a", {1, 2})
    await assert_nothing_written(mem_queue.kv)


async def test_the_largest_payload_that_fits_survives_a_full_error_history(queue: Queue, clock: FakeClock) -> None:
    attempts = MAX_ERROR_HISTORY + 2
    backoff = Backoff(base=0.0).to_value()
    job = Job(new_job_id(), "a", "", JobStatus.PENDING, 0, attempts, clock.now(), clock.now(), backoff=backoff)
    overhead = len(encode_value(job.to_value())[0])
    job_id = await queue.add("a", "x" * (MAX_JOB_VALUE - overhead), max_attempts=attempts, backoff={"base": 0.0})
    worker = "w" * MAX_WORKER_ID_CHARS
    for _ in range(attempts):  # the worst error messages: escaped control characters and 4-byte characters
        [lease] = await queue.claim(worker)
        failed = await queue.fail(lease, "\x01\U0001f600" * 10_000)
    assert failed.status == JobStatus.FAILED and len(failed.errors) == MAX_ERROR_HISTORY
    assert len(encode_value(failed.to_value())[0]) <= MAX_VALUE_SIZE
    with pytest.raises(JobTooLargeError):
        await queue.add("a", "x" * (MAX_JOB_VALUE - overhead + 1), max_attempts=attempts, backoff=backoff)
    assert [j.id for j in await queue.list_dead_letters()] == [job_id]


async def test_the_longest_name_that_fits_is_accepted(queue: Queue) -> None:
    longest = next(n for n in range(MAX_WRITE_KEY_SIZE, 0, -1) if _fits(queue, "n" * n))
    assert longest > 1900
    job_id = await queue.add("n" * longest, 1)
    assert [j.id for j in await queue.list_jobs(name="n" * longest)] == [job_id]
    with pytest.raises(JobTooLargeError):
        await queue.add("n" * (longest + 1), 1)


def _fits(queue: Queue, name: str) -> bool:
    from queue_impls.jobs.validation import check_name

    try:
        check_name(name, queue.layout)
    except JobTooLargeError:
        return False
    return True


async def test_bad_listing_arguments_are_typed_errors(mem_queue: Queue) -> None:
    for kwargs in ({"limit": 0}, {"offset": -1}, {"status": "lost"}, {"name": 3}, {"limit": True}):
        with pytest.raises(InvalidJobOptionError):
            await mem_queue.list_jobs(**kwargs)
    with pytest.raises(InvalidJobOptionError, match="invalid cursor"):
        await mem_queue.list_jobs_page(cursor="not a cursor!")


async def test_bad_concurrency_limits_are_typed_errors(mem_queue: Queue) -> None:
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(InvalidJobOptionError, match="concurrency limit"):
            await mem_queue.set_concurrency("a", bad)  # type: ignore[arg-type]
    await assert_nothing_written(mem_queue.kv)


def test_bad_workers_are_typed_errors(mem_queue: Queue) -> None:
    q = mem_queue
    with pytest.raises(UnknownHandlerError, match="non-empty mapping"):
        Worker(q, {})
    with pytest.raises(UnknownHandlerError, match="not callable"):
        Worker(q, {"a": "send_email"})  # type: ignore[dict-item]
    for kwargs in ({"concurrency": 0}, {"poll_interval": 0}, {"lease": -5}):
        with pytest.raises(JobValidationError):
            Worker(q, {"a": print}, **kwargs)  # type: ignore[arg-type]


def test_backoff_ceiling_is_capped_exponential() -> None:
    b = Backoff(base=0.5, factor=2.0, cap=3.0, jitter="none")
    assert [b.ceiling(n) for n in (1, 2, 3, 4, 5, 10_000)] == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


async def test_the_deepest_data_allowed_runs_and_one_level_more_is_refused(mem_queue: Queue) -> None:
    def deep(levels: int) -> Any:
        value: Any = "leaf"
        for _ in range(levels):
            value = [value]
        return value

    with pytest.raises(InvalidJobOptionError, match="levels deep"):
        await mem_queue.add("a", deep(100))  # the record is one level more
    await assert_nothing_written(mem_queue.kv)
    job_id = await mem_queue.add("a", deep(99), max_attempts=1)

    async def fail(job: Job) -> None:
        raise RuntimeError("to the dead-letter queue")

    await Worker(mem_queue, {"a": fail}).run_until_idle()
    [dead] = await mem_queue.list_dead_letters()
    assert dead.id == job_id and dead.data == deep(99)
