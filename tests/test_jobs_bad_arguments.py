# ruff: noqa: F811  (pytest fixtures imported from tests/jobs_support.py are parameters of the tests)
"""Bad arguments to every public entry point of the job queue: a typed error, one line, and nothing written.

Each table maps a public function to the bad calls it is given; every layout on every store runs them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from queue_impls.jobs import (
    Backoff,
    InvalidJobOptionError,
    JobNotFoundError,
    JobQueueError,
    JobTooLargeError,
    Queue,
    UnknownHandlerError,
    UnknownLayoutError,
    Worker,
    make_layout,
)
from queue_impls.kv import Kv

from .jobs_support import clock, kv_factory, layout, queue  # noqa: F401

HUGE_INT = 10**5000
Call = Callable[[Queue], Any]


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


async def ok(job: Any) -> None:
    return None


BAD_IDS: list[tuple[str, Any]] = [
    ("an int", 123),
    ("None", None),
    ("empty", ""),
    ("300 chars", "x" * 300),
    ("bytes", b"id"),
]
BAD_ADD: list[tuple[str, dict[str, Any], type[Exception]]] = [
    ("name empty", {"name": ""}, InvalidJobOptionError),
    ("name an int", {"name": 7}, InvalidJobOptionError),
    ("name None", {"name": None}, InvalidJobOptionError),
    ("name too long for a key", {"name": "n" * 3000}, JobTooLargeError),
    ("data a set", {"data": {1, 2}}, InvalidJobOptionError),
    ("data a tuple beside bytes", {"data": {"blob": b"\x00", "pair": (3,)}}, InvalidJobOptionError),
    ("data nested 979 deep", {"data": deep(979)}, InvalidJobOptionError),
    ("data an int over 4300 digits", {"data": HUGE_INT}, InvalidJobOptionError),
    ("data an object", {"data": object()}, InvalidJobOptionError),
    ("data too large", {"data": "x" * 70_000}, JobTooLargeError),
    ("priority float", {"priority": 1.5}, InvalidJobOptionError),
    ("priority 2**63", {"priority": 2**63}, InvalidJobOptionError),
    ("priority bool", {"priority": True}, InvalidJobOptionError),
    ("priority huge", {"priority": -HUGE_INT}, InvalidJobOptionError),
    ("delay negative", {"delay": -1}, InvalidJobOptionError),
    ("delay NaN", {"delay": float("nan")}, InvalidJobOptionError),
    ("delay 1e306", {"delay": 1e306}, InvalidJobOptionError),
    ("delay huge int", {"delay": HUGE_INT}, InvalidJobOptionError),
    ("delay a str", {"delay": "5"}, InvalidJobOptionError),
    ("run_at 1e306", {"run_at": 1e306}, InvalidJobOptionError),
    ("run_at -1e306", {"run_at": -1e306}, InvalidJobOptionError),
    ("run_at inf", {"run_at": float("inf")}, InvalidJobOptionError),
    ("run_at a str", {"run_at": "tomorrow"}, InvalidJobOptionError),
    ("delay and run_at", {"delay": 5, "run_at": 1.0}, InvalidJobOptionError),
    ("max_attempts 0", {"max_attempts": 0}, InvalidJobOptionError),
    ("max_attempts float", {"max_attempts": 2.5}, InvalidJobOptionError),
    ("max_attempts huge", {"max_attempts": HUGE_INT}, InvalidJobOptionError),
    ("max_attempts None", {"max_attempts": None}, InvalidJobOptionError),
    (
        "backoff 1e308",
        {"backoff": {"base": 1e308, "cap": 1e308, "factor": 2.0, "jitter": "none"}},
        InvalidJobOptionError,
    ),
    ("backoff factor < 1", {"backoff": {"factor": 0.5}}, InvalidJobOptionError),
    ("backoff factor 1e300", {"backoff": {"factor": 1e300}}, InvalidJobOptionError),
    ("backoff jitter", {"backoff": {"jitter": "some"}}, InvalidJobOptionError),
    ("backoff unknown field", {"backoff": {"speed": 1}}, InvalidJobOptionError),
    ("backoff a str", {"backoff": "fast"}, InvalidJobOptionError),
    ("backoff base a str", {"backoff": {"base": "1"}}, InvalidJobOptionError),
]


def add(**options: Any) -> Call:
    options = {"name": "a", "data": None, **options}
    return lambda q: q.add(**options)


async def a_lease(q: Queue) -> Any:
    """A real lease to pass with other bad arguments (claimed from a job added for it; the caller restores the store)."""
    await q.add("lease-me", None)
    [held] = await q.claim("w", ["lease-me"])
    return held


JOB_CASES: dict[str, list[tuple[str, Call, type[Exception]]]] = {
    "Queue()": [
        ("kv None", lambda q: Queue(None), InvalidJobOptionError),  # type: ignore[arg-type]
        ("kv a str", lambda q: Queue("memory:"), InvalidJobOptionError),  # type: ignore[arg-type]
        ("layout unknown", lambda q: Queue(q.kv, "fastest"), UnknownLayoutError),
        ("layout an int", lambda q: Queue(q.kv, 3), UnknownLayoutError),  # type: ignore[arg-type]
        ("clock an object", lambda q: Queue(q.kv, clock=object()), InvalidJobOptionError),  # type: ignore[arg-type]
        ("rng a str", lambda q: Queue(q.kv, rng="x"), InvalidJobOptionError),  # type: ignore[arg-type]
        ("on_event an int", lambda q: Queue(q.kv, on_event=5), InvalidJobOptionError),  # type: ignore[arg-type]
        ("backoff bad", lambda q: Queue(q.kv, backoff={"base": -1}), InvalidJobOptionError),  # type: ignore[arg-type]
    ],
    "add": [(name, add(**options), err) for name, options, err in BAD_ADD],
    "get_job": [(f"job_id {name}", lambda q, v=v: q.get_job(v), InvalidJobOptionError) for name, v in BAD_IDS],
    "list_jobs": [
        *(
            (f"limit {name}", lambda q, v=v: q.list_jobs(limit=v), InvalidJobOptionError)
            for name, v in (("0", 0), ("-1", -1), ("True", True), ("1.5", 1.5), ("a str", "5"), ("huge", HUGE_INT))
        ),
        *(
            (f"offset {name}", lambda q, v=v: q.list_jobs(offset=v), InvalidJobOptionError)
            for name, v in (("-1", -1), ("1.5", 1.5), ("None", None), ("huge", HUGE_INT))
        ),
        *(
            (f"status {name}", lambda q, v=v: q.list_jobs(status=v), InvalidJobOptionError)
            for name, v in (("lost", "lost"), ("an int", 5), ("a list", ["pending"]))
        ),
        ("name an int", lambda q: q.list_jobs(name=3), InvalidJobOptionError),
    ],
    "list_jobs_page": [
        ("cursor an int", lambda q: q.list_jobs_page(cursor=123), InvalidJobOptionError),
        ("cursor bytes", lambda q: q.list_jobs_page(cursor=b"x"), InvalidJobOptionError),
        ("cursor garbage", lambda q: q.list_jobs_page(cursor="not a cursor!"), InvalidJobOptionError),
        ("cursor a huge offset", lambda q: q.list_jobs_page(cursor="offset:" + "9" * 5000), InvalidJobOptionError),
        ("cursor 10,000 chars", lambda q: q.list_jobs_page(cursor="A" * 10_000), InvalidJobOptionError),
        ("limit 0", lambda q: q.list_jobs_page(limit=0), InvalidJobOptionError),
        ("status bad", lambda q: q.list_jobs_page(status="lost"), InvalidJobOptionError),
    ],
    "list_dead_letters": [
        (f"limit {name}", lambda q, v=v: q.list_dead_letters(limit=v), InvalidJobOptionError)
        for name, v in (("0", 0), ("a str", "5"), ("None", None), ("huge", HUGE_INT))
    ],
    "retry": [
        *((f"job_id {name}", lambda q, v=v: q.retry(v), InvalidJobOptionError) for name, v in BAD_IDS),
        ("no such job", lambda q: q.retry("0190aaaa-0000-7000-8000-000000000000"), JobNotFoundError),
    ],
    "delete": [(f"job_id {name}", lambda q, v=v: q.delete(v), InvalidJobOptionError) for name, v in BAD_IDS],
    "set_concurrency": [
        ("name empty", lambda q: q.set_concurrency("", 1), InvalidJobOptionError),
        ("name an int", lambda q: q.set_concurrency(5, 1), InvalidJobOptionError),  # type: ignore[arg-type]
        *(
            (f"limit {name}", lambda q, v=v: q.set_concurrency("a", v), InvalidJobOptionError)
            for name, v in (("0", 0), ("-1", -1), ("1.5", 1.5), ("a str", "2"), ("huge", HUGE_INT))
        ),
    ],
    "claim": [
        *(
            (f"worker {name}", lambda q, v=v: q.claim(v), InvalidJobOptionError)
            for name, v in (("None", None), ("empty", ""), ("300 chars", "w" * 300), ("an int", 5))
        ),
        *(
            (f"names {name}", lambda q, v=v: q.claim("w", v), InvalidJobOptionError)
            for name, v in (("a str", "x"), ("an int", 5), ("ints", [5]), ("bytes", b"x"))
        ),
        *(
            (f"lease {name}", lambda q, v=v: q.claim("w", lease=v), InvalidJobOptionError)
            for name, v in (("0", 0), ("-1", -1), ("1e306", 1e306), ("NaN", float("nan")), ("a str", "5"))
        ),
        *(
            (f"max_jobs {name}", lambda q, v=v: q.claim("w", max_jobs=v), InvalidJobOptionError)
            for name, v in (("0", 0), ("1.5", 1.5), ("huge", HUGE_INT))
        ),
    ],
    "renew": [
        *(
            (f"lease {name}", lambda q, v=v: q.renew(v), InvalidJobOptionError)
            for name, v in (("None", None), ("a str", "lease"), ("a dict", {"job": 1}))
        ),
        *(
            (f"seconds {name}", lambda q, v=v: _with_lease(q, lambda held: q.renew(held, v)), InvalidJobOptionError)
            for name, v in (("1e306", 1e306), ("0", 0), ("NaN", float("nan")))
        ),
    ],
    "complete": [
        (f"lease {name}", lambda q, v=v: q.complete(v), InvalidJobOptionError)
        for name, v in (("None", None), ("a str", "lease"), ("an int", 5))
    ],
    "fail": [
        *(
            (f"lease {name}", lambda q, v=v: q.fail(v, "boom"), InvalidJobOptionError)
            for name, v in (("None", None), ("a str", "lease"))
        ),
        *(
            (f"error {name}", lambda q, v=v: _with_lease(q, lambda held: q.fail(held, v)), InvalidJobOptionError)
            for name, v in (("None", None), ("an int", 5), ("an exception", ValueError("x")))
        ),
    ],
    "Worker()": [
        ("handlers empty", lambda q: Worker(q, {}), UnknownHandlerError),
        ("handlers a list", lambda q: Worker(q, [ok]), UnknownHandlerError),  # type: ignore[arg-type]
        ("handler not callable", lambda q: Worker(q, {"a": "x"}), UnknownHandlerError),  # type: ignore[dict-item]
        ("handler name empty", lambda q: Worker(q, {"": ok}), UnknownHandlerError),
        ("handler name an int", lambda q: Worker(q, {5: ok}), UnknownHandlerError),  # type: ignore[dict-item]
        *(
            (f"{option} {name}", lambda q, o=option, v=v: Worker(q, {"a": ok}, **{o: v}), InvalidJobOptionError)
            for option, cases in (
                ("concurrency", (("0", 0), ("1.5", 1.5), ("huge", HUGE_INT))),
                ("poll_interval", (("0", 0), ("1e306", 1e306), ("NaN", float("nan")))),
                ("lease", (("-5", -5), ("1e306", 1e306), ("a str", "5"))),
                ("worker_id", (("an int", 5), ("empty", ""), ("300 chars", "w" * 300))),
            )
            for name, v in cases
        ),
    ],
    "Backoff()": [
        (name, lambda q, kw=kw: Backoff(**kw), InvalidJobOptionError)
        for name, kw in (
            ("base -1", {"base": -1}),
            ("base 1e308", {"base": 1e308}),
            ("base a str", {"base": "1"}),
            ("factor 0.5", {"factor": 0.5}),
            ("factor inf", {"factor": float("inf")}),
            ("cap 1e308", {"cap": 1e308}),
            ("jitter unknown", {"jitter": "x"}),
            ("jitter an int", {"jitter": 5}),
        )
    ],
    "make_layout": [
        (name, lambda q, v=v: make_layout(v), UnknownLayoutError)
        for name, v in (("unknown", "fastest"), ("None", None), ("an int", 1), ("empty", ""))
    ],
}


async def _with_lease(q: Queue, use: Callable[[Any], Any]) -> Any:
    held = await a_lease(q)
    try:
        return await use(held)
    finally:
        await q.delete(held.job.id)


def case_counts() -> dict[str, int]:
    return {name: len(cases) for name, cases in JOB_CASES.items()}


async def snapshot(kv: Kv) -> list[Any]:
    # The counters (and the queue-version key idle workers watch) are left out: the cases that need a real lease
    # add, claim and delete a job of their own first.
    counters = (("queue", "count"), ("queue", "active"), ("queue", "version"))
    return [(e.key, e.value) for e in await kv.list(prefix=()).collect() if e.key[:2] not in counters]


@pytest.mark.parametrize("function", sorted(JOB_CASES))
async def test_bad_arguments_are_typed_errors_and_write_nothing(queue: Queue, function: str) -> None:
    await queue.add("kept", {"x": [b"1", 2]})
    before = await snapshot(queue.kv)
    for name, call, expected in JOB_CASES[function]:
        where = f"{function}({name})"
        try:
            result = call(queue)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            assert isinstance(exc, expected) and isinstance(exc, JobQueueError), f"{where}: {type(exc).__name__}: {exc}"
            message = str(exc)
            assert message and "\n" not in message and len(message) < 600, f"{where}: {message!r}"
        else:
            pytest.fail(f"{where}: accepted")
    assert await snapshot(queue.kv) == before


def test_every_public_function_has_bad_arguments() -> None:
    counts = case_counts()
    assert all(n >= 3 for n in counts.values()), counts
