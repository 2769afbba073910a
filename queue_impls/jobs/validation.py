"""Checks of user input, done before anything is written: each failure is a typed error naming the limit."""

from __future__ import annotations

import math
from typing import Any, Final

from ..kv import Key, KvValidationError, encode_key, encode_value
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


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_name(name: Any, layout: Layout) -> str:
    """A job name: a non-empty str whose every key (index entries in any status, counters) fits Deno's key limit."""
    if not isinstance(name, str) or not name:
        raise InvalidJobOptionError(f"A job name must be a non-empty str, got {name!r}")
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


def check_value(job: Job) -> None:
    """The job's stored value must leave VALUE_RESERVE bytes under the KV value limit."""
    try:
        payload, _ = encode_value(job.to_value())
    except KvValidationError as exc:
        raise InvalidJobOptionError(f"Job data cannot be stored: {exc}") from exc
    if len(payload) > MAX_JOB_VALUE:
        raise JobTooLargeError(
            f"Job data too large: the job would be {len(payload)} bytes stored (max {MAX_JOB_VALUE} bytes: "
            f"the KV value limit of {MAX_VALUE_SIZE} minus {VALUE_RESERVE} kept for its error history)"
        )


def check_priority(priority: Any) -> int:
    if not is_int(priority) or not -MAX_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidJobOptionError(f"priority must be an int in -(2**63-1)..2**63-1, got {priority!r}")
    return int(priority)


def check_max_attempts(max_attempts: Any) -> int:
    if not is_int(max_attempts) or max_attempts < 1:
        raise InvalidJobOptionError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    return int(max_attempts)


def check_run_at(now: float, delay: Any, run_at: Any) -> float:
    """When the job may first run: ``run_at`` (an absolute time) or ``now + delay``, never both."""
    if not is_number(delay) or delay < 0:
        raise InvalidJobOptionError(f"delay must be a finite number of seconds >= 0, got {delay!r}")
    if run_at is None:
        return now + float(delay)
    if delay:
        raise InvalidJobOptionError("give delay or run_at, not both")
    if not is_number(run_at):
        raise InvalidJobOptionError(f"run_at must be a finite number of seconds since the epoch, got {run_at!r}")
    return float(run_at)


def check_status(status: Any) -> JobStatus | None:
    if status is None or isinstance(status, JobStatus):
        return status
    try:
        return JobStatus(status)
    except ValueError:
        raise InvalidJobOptionError(
            f"Unknown status {status!r}: expected one of {', '.join(s.value for s in JobStatus)}"
        ) from None


def check_page(limit: Any, offset: Any) -> tuple[int, int]:
    if not is_int(limit) or limit < 1:
        raise InvalidJobOptionError(f"limit must be an int >= 1, got {limit!r}")
    if not is_int(offset) or offset < 0:
        raise InvalidJobOptionError(f"offset must be an int >= 0, got {offset!r}")
    return int(limit), int(offset)


def check_positive(value: Any, what: str) -> float:
    if not is_number(value) or value <= 0:
        raise InvalidJobOptionError(f"{what} must be a finite number > 0, got {value!r}")
    return float(value)
