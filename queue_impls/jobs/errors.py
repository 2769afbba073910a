"""The job queue's exceptions: one root, a short tree, messages that name what was wrong and the limit.

JobQueueError
├── JobValidationError (ValueError)   bad input, raised before anything is written
│   ├── UnknownLayoutError            a layout name that is not registered
│   ├── LayoutPluginError             a layout that cannot be registered (not a Layout, name taken, fails to load)
│   ├── InvalidJobOptionError         negative delay, max_attempts < 1, bad priority/backoff/limit/cursor
│   ├── JobTooLargeError              a name or payload that would break a KV key or value limit
│   └── UnknownHandlerError           a handler that is missing or not callable
├── JobNotFoundError (LookupError)    no job with that id
├── JobStateError                     the job is not in a state that allows the operation (retry of a non-failed job)
├── LeaseLostError                    fenced: the worker's lease expired or the job changed under it
└── ContentionError                   an operation lost its compare-and-set race too many times in a row
"""

from __future__ import annotations


class JobQueueError(Exception):
    """Root of every error the job queue raises (KV errors keep their own root, KvError)."""


class JobValidationError(JobQueueError, ValueError):
    """Bad input: rejected before anything was read or written."""


class UnknownLayoutError(JobValidationError):
    pass


class LayoutPluginError(JobValidationError):
    pass


class InvalidJobOptionError(JobValidationError):
    pass


class JobTooLargeError(JobValidationError):
    pass


class UnknownHandlerError(JobValidationError):
    pass


class JobNotFoundError(JobQueueError, LookupError):
    pass


class JobStateError(JobQueueError):
    pass


class LeaseLostError(JobQueueError):
    pass


class ContentionError(JobQueueError):
    pass
