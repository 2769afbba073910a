"""The KV layer's exceptions: one root, a short tree, messages that name the limit.

KvError
├── KvValidationError (ValueError)      bad input, raised before anything is written
│   ├── InvalidKeyError                 empty key, unsupported part type, bigint too large
│   ├── KeyTooLargeError                "Key too large for write (max 2048 bytes)" / read (max 2049)
│   ├── InvalidValueError               a value type the codec cannot store
│   ├── ValueTooLargeError              "Value too large (max 65536 bytes)"
│   ├── InvalidSelectorError            list() selector shape or bounds
│   ├── InvalidLimitError               limit / batch_size not a positive integer, or over 1000
│   ├── TooManyRangesError              get_many() with more than 10 keys
│   ├── InvalidCursorError              "invalid cursor"
│   ├── CursorOutOfBoundsError          "cursor out of bounds"
│   ├── InvalidCheckError               a check's versionstamp is not 20 hex characters
│   ├── InvalidMutationError            sum/min/max operand not a u64, bad expire_in
│   ├── InvalidArgumentError            anything else (consistency, unknown URL)
│   └── CommitLimitError                a commit over a size/count limit
│       ├── TooManyChecksError          "Too many checks (max 100)"
│       ├── TooManyMutationsError       "Too many mutations (max 1000)"
│       ├── TotalMutationSizeError      "Total mutation size too large (max 819200 bytes)"
│       └── TotalKeySizeError           "Total key size too large (max 81920 bytes)"
├── MutationTypeError (TypeError)       sum/min/max on a stored value that is not a KvU64
├── KvClosedError                       the store was closed
└── BackendError                        the backend failed (driver error, dead subprocess)
    ├── DenoNotFoundError               no deno executable for a deno: URL (how to install it is in the message)
    └── DenoBridgeError                 the deno subprocess died, exited or answered garbage (with its stderr tail)
        └── DenoTimeoutError            deno did not answer within the request timeout (it was stopped)
"""

from __future__ import annotations

from typing import Any

_REPR_MAX = 80


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to 80 characters, for messages; never raises (an int too long to print is described)."""
    try:
        text = repr(value)
    except Exception:  # an int over sys.get_int_max_str_digits, or a __repr__ that fails
        if isinstance(value, int):
            return f"<int of {value.bit_length()} bits>"
        return f"<{type(value).__name__} object>"
    return text if len(text) <= _REPR_MAX else text[: _REPR_MAX - 3] + "..."


class KvError(Exception):
    """Root of every error the KV layer raises."""


class KvValidationError(KvError, ValueError):
    """Bad input: the call was rejected before anything was read or written."""


class InvalidKeyError(KvValidationError):
    pass


class KeyTooLargeError(KvValidationError):
    pass


class InvalidValueError(KvValidationError):
    pass


class ValueTooLargeError(KvValidationError):
    pass


class InvalidSelectorError(KvValidationError):
    pass


class InvalidLimitError(KvValidationError):
    pass


class TooManyRangesError(KvValidationError):
    pass


class InvalidCursorError(KvValidationError):
    pass


class CursorOutOfBoundsError(KvValidationError):
    pass


class InvalidCheckError(KvValidationError):
    pass


class InvalidMutationError(KvValidationError):
    pass


class InvalidArgumentError(KvValidationError):
    pass


class CommitLimitError(KvValidationError):
    pass


class TooManyChecksError(CommitLimitError):
    pass


class TooManyMutationsError(CommitLimitError):
    pass


class TotalMutationSizeError(CommitLimitError):
    pass


class TotalKeySizeError(CommitLimitError):
    pass


class MutationTypeError(KvError, TypeError):
    """sum/min/max met a stored value that is not a KvU64; the commit wrote nothing."""


class KvClosedError(KvError):
    pass


class BackendError(KvError):
    """The backend itself failed (database driver error, dead subprocess, garbled reply)."""


class DenoNotFoundError(BackendError):
    """No deno executable: set DENO, run `npm ci` in the project (make test does), or put deno on PATH."""


class DenoBridgeError(BackendError):
    """The deno subprocess behind a deno: store died, exited or answered garbage; the message has its stderr tail."""


class DenoTimeoutError(DenoBridgeError):
    """A request to the deno subprocess got no answer within the store's request timeout; the bridge was stopped."""
