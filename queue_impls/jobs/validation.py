"""Checks of user input, done before anything is written: each failure is a typed error naming the limit."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any, Final

from ..kv import Key, KvValidationError, encode_key, encode_value
from ..kv.errors import short_repr
from ..kv.limits import MAX_VALUE_SIZE, MAX_WRITE_KEY_SIZE
from .errors import InvalidJobOptionError, JobTooLargeError
from .keys import active_key, limit_key, ready_by_name_key
from .layouts import Layout
from .model import MAX_ERROR_BYTES, MAX_ERROR_HISTORY, Job, JobStatus

#: Worker ids are stored in every job they run; keep them short.
MAX_WORKER_ID_CHARS: Final = 200
#: Room kept in a job's value for what the queue adds later: the error history and latest error (each entry
#: at most MAX_ERROR_BYTES plus its attempt number and time), timestamps and the worker's id (escaped: 6 bytes/char).
VALUE_RESERVE: Final = (MAX_ERROR_HISTORY + 1) * (MAX_ERROR_BYTES + 64) + 6 * MAX_WORKER_ID_CHARS + 256
#: A job's stored value (record, index copies, dead letter) may be at most this many bytes when added.
MAX_JOB_VALUE: Final = MAX_VALUE_SIZE - VALUE_RESERVE
#: Priorities are signed 64-bit integers (a key part: higher runs first).
MAX_PRIORITY: Final = 2**63 - 1
#: The longest a job may wait before its first run (delay, or run_at from now): 100 years. Far beyond any schedule
#: (Deno's own enqueue allows 30 days), and it keeps every due time a small integer of milliseconds.
MAX_DELAY: Final = 100 * 365 * 24 * 3600.0
#: The longest lease a worker may take on a job, and the longest poll interval: one day.
MAX_LEASE: Final = 24 * 3600.0
#: The most attempts a job may be given.
MAX_ATTEMPTS: Final = 10_000
#: The most jobs one page may hold, and the deepest offset (both far beyond any real page).
MAX_PAGE: Final = 1_000_000
MAX_OFFSET: Final = 2**53
#: The most jobs of one name that may run at once (set_concurrency), and the most one claim takes.
MAX_CONCURRENCY: Final = 1_000_000
#: Job ids are the queue's own UUIDs (36 characters); anything much longer is not one of its ids.
MAX_JOB_ID_CHARS: Final = 200


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or a finite float, not a bool (an int of any size: the range checks that follow bound it)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool)


def check_name(name: Any, layout: Layout) -> str:
    """A job name: a non-empty str whose every key (index entries in any status, counters) fits Deno's key limit."""
    if not isinstance(name, str) or not name:
        raise InvalidJobOptionError(f"A job name must be a non-empty str, got {short_repr(name)}")
    probe = Job("00000000-0000-7000-8000-000000000000", name, None, JobStatus.PENDING, 0, 1, 0.0, 0.0)
    keys: list[Key] = [active_key(name), limit_key(name), ready_by_name_key(name, MAX_PRIORITY, probe.id)]
    for status in JobStatus:
        keys += layout.entries(probe.replace(status=status)).keys()
    longest = max(len(encode_key(key)) for key in keys)
    if longest > MAX_WRITE_KEY_SIZE:
        raise JobTooLargeError(
            f"Job name too long: its longest key would be {longest} bytes (max {MAX_WRITE_KEY_SIZE} bytes per key)"
        )
    return name


def check_value(value: dict[str, Any]) -> tuple[bytes, int]:
    """A job's stored value (``job.to_value()``) must leave VALUE_RESERVE bytes under the KV value limit; returns
    it serialised (``encode_value``), so that the commit that writes it need not serialise it again."""
    try:
        encoded = encode_value(value)
    except KvValidationError as exc:
        raise InvalidJobOptionError(f"Job data cannot be stored: {exc}") from exc
    if len(encoded[0]) > MAX_JOB_VALUE:
        raise JobTooLargeError(
            f"Job data too large: the job would be {len(encoded[0])} bytes stored (max {MAX_JOB_VALUE} bytes: "
            f"the KV value limit of {MAX_VALUE_SIZE} minus {VALUE_RESERVE} kept for its error history)"
        )
    return encoded


def check_priority(priority: Any) -> int:
    if not is_int(priority) or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidJobOptionError(f"priority must be an int in -(2**63-1)..2**63-1, got {short_repr(priority)}")
    return int(priority)


def check_max_attempts(max_attempts: Any) -> int:
    if not is_int(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS:
        raise InvalidJobOptionError(f"max_attempts must be an int in 1..{MAX_ATTEMPTS}, got {short_repr(max_attempts)}")
    return int(max_attempts)


def check_run_at(now: float, delay: Any, run_at: Any) -> float:
    """When the job may first run: ``run_at`` (an absolute time) or ``now + delay``, never both."""
    if not is_number(delay) or not 0 <= delay <= MAX_DELAY:
        raise InvalidJobOptionError(
            f"delay must be a number of seconds in 0..{MAX_DELAY:.0f} (100 years), got {short_repr(delay)}"
        )
    if run_at is None:
        return now + float(delay)
    if delay:
        raise InvalidJobOptionError("give delay or run_at, not both")
    if not is_number(run_at) or not 0 <= run_at <= now + MAX_DELAY:
        raise InvalidJobOptionError(
            f"run_at must be a time in seconds since the epoch, at most 100 years ({MAX_DELAY:.0f} s) from now, "
            f"got {short_repr(run_at)}"
        )
    return float(run_at)


def check_lease(lease: Any, what: str = "lease") -> float:
    if not is_number(lease) or not 0 < lease <= MAX_LEASE:
        raise InvalidJobOptionError(
            f"{what} must be a number of seconds > 0 and at most {MAX_LEASE:.0f} (one day), got {short_repr(lease)}"
        )
    return float(lease)


def check_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not 0 < len(job_id) <= MAX_JOB_ID_CHARS:
        raise InvalidJobOptionError(
            f"job_id must be a non-empty str of at most {MAX_JOB_ID_CHARS} characters, got {short_repr(job_id)}"
        )
    return job_id


def check_worker_id(worker: Any, what: str = "worker_id") -> str:
    if not isinstance(worker, str) or not 0 < len(worker) <= MAX_WORKER_ID_CHARS:
        raise InvalidJobOptionError(
            f"{what} must be a non-empty str of at most {MAX_WORKER_ID_CHARS} characters, got {short_repr(worker)}"
        )
    return worker


def check_names(names: Any) -> frozenset[str] | None:
    """claim()'s job names: None (every name) or a collection of str; a bare str is refused, not split."""
    if names is None:
        return None
    if isinstance(names, str | bytes) or not isinstance(names, Iterable):
        raise InvalidJobOptionError(
            f"names must be a collection of job names (or None for all), got {short_repr(names)}"
        )
    chosen = frozenset(names) if not isinstance(names, Mapping) else frozenset(names.keys())
    for name in chosen:
        if not isinstance(name, str):
            raise InvalidJobOptionError(f"names must hold only str job names, got {short_repr(name)}")
    return chosen


def check_error(error: Any) -> str:
    if not isinstance(error, str):
        raise InvalidJobOptionError(f"error must be a str (the failure's message), got {type(error).__name__}")
    return error


def check_cursor(cursor: Any) -> str | None:
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 4 * MAX_WRITE_KEY_SIZE):
        raise InvalidJobOptionError(
            f"cursor must be None or a str returned by list_jobs_page (at most {4 * MAX_WRITE_KEY_SIZE} characters), "
            f"got {short_repr(cursor)}"
        )
    return cursor


def check_status(status: Any) -> JobStatus | None:
    if status is None or isinstance(status, JobStatus):
        return status
    try:
        return JobStatus(status)
    except (ValueError, TypeError):
        raise InvalidJobOptionError(
            f"Unknown status {short_repr(status)}: expected one of {', '.join(s.value for s in JobStatus)}"
        ) from None


def check_page(limit: Any, offset: Any) -> tuple[int, int]:
    if not is_int(limit) or not 1 <= limit <= MAX_PAGE:
        raise InvalidJobOptionError(f"limit must be an int in 1..{MAX_PAGE}, got {short_repr(limit)}")
    if not is_int(offset) or not 0 <= offset <= MAX_OFFSET:
        raise InvalidJobOptionError(f"offset must be an int in 0..{MAX_OFFSET}, got {short_repr(offset)}")
    return int(limit), int(offset)


def check_queue_parts(kv: Any, clock: Any, rng: Any, on_event: Any) -> None:
    """Queue()'s collaborators: a KV store, and optionally a clock, a random.Random and a callable event hook."""
    from ..kv import Kv  # the KV layer's base class (imported here: the layouts import this module)

    if not isinstance(kv, Kv):
        raise InvalidJobOptionError(f"kv must be a KV store (from open_kv), got {short_repr(kv)}")
    if clock is not None and not (callable(getattr(clock, "now", None)) and callable(getattr(clock, "sleep", None))):
        raise InvalidJobOptionError(f"clock must have now() and sleep() (a Clock), got {short_repr(clock)}")
    if rng is not None and not isinstance(rng, random.Random):
        raise InvalidJobOptionError(f"rng must be a random.Random, got {short_repr(rng)}")
    if on_event is not None and not callable(on_event):
        raise InvalidJobOptionError(f"on_event must be callable or None, got {short_repr(on_event)}")
