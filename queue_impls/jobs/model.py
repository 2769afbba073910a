"""What a job is: its statuses, its record as stored in the KV, its time-ordered id, the events it emits."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final

#: Error messages kept in a job are cut to at most this many bytes once JSON-encoded ...
MAX_ERROR_BYTES: Final = 512
#: ... and only the latest this many attempts are kept, so a job's record stays far below the KV value limit.
MAX_ERROR_HISTORY: Final = 10


class JobStatus(enum.StrEnum):
    PENDING = "pending"  # waiting to run: ready now, or delayed until run_at (also after a retryable failure)
    RUNNING = "running"  # claimed by a worker that holds a lease on it
    COMPLETED = "completed"  # the handler returned
    FAILED = "failed"  # attempts exhausted: the job is in the dead-letter queue until retry() or delete()


#: JobStatus by value.
_STATUSES: Final = {status.value: status for status in JobStatus}


@dataclass(slots=True)
class Job:
    """A job's record. Times are seconds since the epoch, as given by the queue's clock."""

    id: str
    name: str
    data: Any
    status: JobStatus
    priority: int
    max_attempts: int
    created_at: float
    run_at: float
    attempts: int = 0
    started_at: float | None = None
    completed_at: float | None = None
    failed_at: float | None = None
    error: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    backoff: dict[str, Any] | None = None
    worker: str | None = None

    def to_value(self) -> dict[str, Any]:
        """The dict stored in the KV (the job record and every full-job index copy)."""
        return {
            "id": self.id,
            "name": self.name,
            "data": self.data,
            "status": self.status._value_,  # .value, without the enum property's Python-level call
            "priority": self.priority,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at,
            "run_at": self.run_at,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "error": self.error,
            "errors": [dict(e) for e in self.errors] if self.errors else [],  # most jobs have none: no comprehension
            "backoff": None if self.backoff is None else dict(self.backoff),
            "worker": self.worker,
        }

    @classmethod
    def from_value(cls, value: Any) -> Job | None:
        """The job a stored value holds, or None if the value is not a well-formed job (a malformed entry)."""
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            return None
        try:
            if value.keys() == _FIELD_NAMES:  # a record as to_value() writes it: every field, by position
                v = value
                return cls(
                    v["id"], v["name"], v["data"], _STATUSES[v["status"]], v["priority"], v["max_attempts"],
                    v["created_at"], v["run_at"], v["attempts"], v["started_at"], v["completed_at"], v["failed_at"],
                    v["error"], v["errors"], v["backoff"], v["worker"],
                )  # fmt: skip
            return cls(**{**value, "status": _STATUSES[value["status"]]})  # JobStatus(...), by one dict look-up
        except (TypeError, ValueError, KeyError):
            return None

    def running(self, worker: str, now: float) -> Job:
        """``replace(status=RUNNING, attempts=attempts + 1, started_at=now, worker=worker)``: a claim's new state,
        without replace's keyword checks (every claim makes one)."""
        new = self._copy()
        new.status, new.attempts, new.started_at, new.worker = JobStatus.RUNNING, self.attempts + 1, now, worker
        return new

    def completed(self, now: float) -> Job:
        """``replace(status=COMPLETED, completed_at=now)``, without replace's keyword checks (every completed job
        makes one)."""
        new = self._copy()
        new.status, new.completed_at = JobStatus.COMPLETED, now
        return new

    def replace(self, **changes: Any) -> Job:
        """A copy with ``changes`` (field name -> value); the error history is copied unless changed. A copy field by
        field and a setattr per change, not ``dataclasses.replace`` (about 4x the instructions: a job's run makes two)."""
        unknown = changes.keys() - _FIELD_NAMES
        if unknown:
            raise TypeError(f"Job has no field {sorted(unknown)[0]!r}")
        new = self._copy()
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def _copy(self) -> Job:
        """A copy, field by field by position, its error history a list of its own (never shared by two states)."""
        return Job(
            self.id, self.name, self.data, self.status, self.priority, self.max_attempts, self.created_at,
            self.run_at, self.attempts, self.started_at, self.completed_at, self.failed_at, self.error,
            list(self.errors), self.backoff, self.worker,
        )  # fmt: skip


#: Job's fields (Job._copy copies each of them by position: a field added to Job must be added there too).
_FIELD_NAMES: Final = frozenset(f.name for f in dataclasses.fields(Job))


def cut_error(error: str) -> str:
    """The error message cut to MAX_ERROR_BYTES of stored JSON (escapes and UTF-8 included)."""
    error = error[:MAX_ERROR_BYTES]
    while len(json.dumps(error, ensure_ascii=False).encode()) > MAX_ERROR_BYTES:
        error = error[: len(error) * 3 // 4]
    return error


def error_entry(attempt: int, error: str, at: float) -> dict[str, Any]:
    return {"attempt": attempt, "error": cut_error(error), "at": at}


def with_error(job: Job, error: str, at: float) -> list[dict[str, Any]]:
    """The job's error history with one more entry, trimmed to MAX_ERROR_HISTORY."""
    return [*job.errors, error_entry(job.attempts, error, at)][-MAX_ERROR_HISTORY:]


class JobEventType(enum.StrEnum):
    ADDED = "added"  # add() committed the job
    STARTED = "started"  # a worker claimed it and is running its handler
    COMPLETED = "completed"  # the handler returned and completion was committed
    RETRYING = "retrying"  # an attempt failed (or its lease expired); the job is pending again, after a backoff
    FAILED = "failed"  # the last attempt failed: the job is in the dead-letter queue


@dataclass(frozen=True, slots=True)
class JobEvent:
    """What the event hook receives, where the seed broadcast over a WebSocket."""

    type: JobEventType
    job: Job
    error: str | None = None


# ------------------------------------------------------------------------------------------------- ids
#
# UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 12 bits used as a counter (method 1 of section 6.2, so ids
# made in one process are strictly increasing even within a millisecond or when the wall clock steps back),
# then 62 random bits, so ids made by different processes do not collide. Their text form sorts as they were made.

_id_lock = threading.Lock()
_last_ms = 0
_counter = 0


def _next_stamp() -> tuple[int, int]:
    global _last_ms, _counter
    with _id_lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms, _counter = now_ms, int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        else:
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one millisecond: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
        return _last_ms, _counter


def new_job_id() -> str:
    """A UUIDv7-style id: time-ordered, strictly increasing within a process, unique across processes."""
    ms, counter = _next_stamp()
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
