"""A key-value layer faithful to Deno KV: same key order, limits, list batching, checks and versionstamps.

Owns the store contract (``contract.py``: ``Kv``, every public call written once on two primitives), the codecs
(keys, values, V8), Deno's limits, selectors and order of checks, the atomic builder, the error tree, ``open_kv`` and
the backends with their registry (``backends/``). See docs/kv.md.

May import: nothing outside queue_impls.kv (the standard library aside).
Third-party: aiosqlite (backends/sqlite.py).
"""

from .atomic import AtomicOperation
from .codec import Key, KeyPart, decode_key, decode_value, encode_key, encode_value
from .contract import Kv, KvListIterator
from .errors import (
    BackendError,
    CommitLimitError,
    CursorOutOfBoundsError,
    DenoBridgeError,
    DenoNotFoundError,
    InvalidArgumentError,
    InvalidCheckError,
    InvalidCursorError,
    InvalidKeyError,
    InvalidLimitError,
    InvalidMutationError,
    InvalidSelectorError,
    InvalidValueError,
    KeyTooLargeError,
    KvClosedError,
    KvError,
    KvValidationError,
    MutationTypeError,
    TooManyChecksError,
    TooManyMutationsError,
    TooManyRangesError,
    TotalKeySizeError,
    TotalMutationSizeError,
    ValueTooLargeError,
)
from .types import CommitResult, KvEntry
from .u64 import KvU64
from .url import open_kv

__all__ = [
    "AtomicOperation",
    "BackendError",
    "CommitLimitError",
    "CommitResult",
    "CursorOutOfBoundsError",
    "DenoBridgeError",
    "DenoNotFoundError",
    "InvalidArgumentError",
    "InvalidCheckError",
    "InvalidCursorError",
    "InvalidKeyError",
    "InvalidLimitError",
    "InvalidMutationError",
    "InvalidSelectorError",
    "InvalidValueError",
    "Key",
    "KeyPart",
    "KeyTooLargeError",
    "Kv",
    "KvClosedError",
    "KvEntry",
    "KvError",
    "KvListIterator",
    "KvU64",
    "KvValidationError",
    "MutationTypeError",
    "TooManyChecksError",
    "TooManyMutationsError",
    "TooManyRangesError",
    "TotalKeySizeError",
    "TotalMutationSizeError",
    "ValueTooLargeError",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "open_kv",
]
