"""Every key prefix of the job queue, by its shape: the engine's (job records, queue entries, leases, dead letters,
counters), the same for every layout, and the layouts' index keys (each layout lists those it keeps in
``Layout.index_prefixes``)."""

from __future__ import annotations

import math
from typing import Final

from ..kv import Key

#: ("jobs", id) -> the job record (a dict, see Job.to_value). Every layout keeps it.
JOBS: Final[Key] = ("jobs",)
#: ("queue", "ready", -priority, id) -> the job: pending jobs that may start now, best first (then oldest first).
#: The value is the job record itself (rewritten with it), so a claim commits without reading the record.
READY: Final[Key] = ("queue", "ready")
#: ("queue", "ready_by_name", name, -priority, id) -> the job: the same entries per name, so a worker finds the
#: jobs of its names without stepping over other names' jobs.
READY_BY_NAME: Final[Key] = ("queue", "ready_by_name")
#: ("queue", "delayed", run_at_ms, id) -> the job: pending jobs waiting for their time.
DELAYED: Final[Key] = ("queue", "delayed")
#: ("queue", "lease", id) -> {"worker", "until_ms", "name"}: who runs a running job, until when. Fencing token.
LEASE: Final[Key] = ("queue", "lease")
#: ("queue", "expiry", until_ms, id) -> name: running jobs by lease end, so expired leases are one range read.
EXPIRY: Final[Key] = ("queue", "expiry")
#: ("queue", "dead", id) -> the failed job: the dead-letter queue (a copy, frozen while the job is failed).
DEAD: Final[Key] = ("queue", "dead")
#: ("queue", "count", status) -> KvU64: how many jobs have that status (stats() is one read).
COUNT: Final[Key] = ("queue", "count")
#: ("queue", "active", name) -> KvU64: running jobs of that name, across all workers and processes.
ACTIVE: Final[Key] = ("queue", "active")
#: ("queue", "limit", name) -> int: the most jobs of that name that may run at once (set_concurrency).
LIMIT: Final[Key] = ("queue", "limit")

#: ("queue", "version") -> KvU64: + 1 in every commit after which a job may have become claimable (a job added,
#: promoted, retried or freed from its name's limit; a limit changed). Idle workers watch it instead of polling.
VERSION: Final[Key] = ("queue", "version")

# -- the layouts' index keys ------------------------------------------------------------------------------------

#: ("jobs_by_name", name, id) -> the id (naive, batched) or the whole job (optimized, indexed): a name's jobs.
BY_NAME: Final[Key] = ("jobs_by_name",)
#: ("jobs_by_status", status, id) -> the job (indexed).
BY_STATUS: Final[Key] = ("jobs_by_status",)
#: ("jobs_by_status_name", status, name, id) -> the job (indexed).
BY_STATUS_NAME: Final[Key] = ("jobs_by_status_name",)

#: Adding this to a KvU64 with sum() subtracts one (sum wraps modulo 2**64).
MINUS_ONE: Final = 2**64 - 1


# The helpers below spell their prefixes out: a tuple display builds the key in one step, ``(*PREFIX, ...)`` in four
# (a job's run builds about 11 keys). tests/test_jobs_keys.py checks each against its prefix constant.


def record_key(job_id: str) -> Key:
    return ("jobs", job_id)


def ready_key(priority: int, job_id: str) -> Key:
    return ("queue", "ready", -priority, job_id)


def ready_by_name_key(name: str, priority: int, job_id: str) -> Key:
    return ("queue", "ready_by_name", name, -priority, job_id)


def delayed_key(run_at_ms: int, job_id: str) -> Key:
    return (*DELAYED, run_at_ms, job_id)


def lease_key(job_id: str) -> Key:
    return ("queue", "lease", job_id)


def expiry_key(until_ms: int, job_id: str) -> Key:
    return ("queue", "expiry", until_ms, job_id)


def dead_key(job_id: str) -> Key:
    return (*DEAD, job_id)


def count_key(status: str) -> Key:
    return (*COUNT, status)


def active_key(name: str) -> Key:
    return ("queue", "active", name)


def limit_key(name: str) -> Key:
    return (*LIMIT, name)


def ms_ceil(seconds: float) -> int:
    """A due time in ms, rounded up: a job is never promoted before its time."""
    return math.ceil(seconds * 1000)


def ms_floor(seconds: float) -> int:
    """The current time in ms, rounded down (the other half of never-early)."""
    return math.floor(seconds * 1000)
