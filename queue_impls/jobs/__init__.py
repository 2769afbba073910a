"""A job queue on the KV layer in four storage layouts (naive, optimized, batched, indexed) over one shared engine.

Owns the engine (queue, worker, claims, waits, backoff, clock, validation, integrity, poison), the job model, every
key prefix (``keys.py``) and the layouts with their registry (``layouts/``). See docs/layouts.md.

May import: queue_impls.kv; queue_impls.meter in costs.py only (it measures each operation's KV cost per layout).
Third-party: none.
"""

from .backoff import Backoff
from .clock import Clock, FakeClock, SystemClock
from .errors import (
    ContentionError,
    InvalidJobOptionError,
    JobNotFoundError,
    JobQueueError,
    JobStateError,
    JobTooLargeError,
    JobValidationError,
    LayoutPluginError,
    LeaseLostError,
    UnknownHandlerError,
    UnknownLayoutError,
)
from .integrity import Problem, check_integrity
from .layouts import LAYOUTS, JobPage, Layout, layout_names, make_layout, register_layout
from .model import Job, JobEvent, JobEventType, JobStatus, new_job_id
from .queue import Lease, Queue
from .worker import Worker

__all__ = [
    "LAYOUTS",
    "Backoff",
    "Clock",
    "ContentionError",
    "FakeClock",
    "InvalidJobOptionError",
    "Job",
    "JobEvent",
    "JobEventType",
    "JobNotFoundError",
    "JobPage",
    "JobQueueError",
    "JobStateError",
    "JobStatus",
    "JobTooLargeError",
    "JobValidationError",
    "Layout",
    "LayoutPluginError",
    "Lease",
    "LeaseLostError",
    "Problem",
    "Queue",
    "SystemClock",
    "UnknownHandlerError",
    "UnknownLayoutError",
    "Worker",
    "check_integrity",
    "layout_names",
    "make_layout",
    "new_job_id",
    "register_layout",
]
