"""Value types of the KV API and of the two backend primitives (snapshot read, atomic write)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from .codec import Key

# "set_suffix_versionstamp" (KV Connect's M_SET_SUFFIX_VERSIONSTAMPED_KEY): set key + the commit's versionstamp.
MutationKind = Literal["set", "delete", "sum", "min", "max", "set_suffix_versionstamp"]
Consistency = Literal["strong", "eventual"]


@dataclass(frozen=True, slots=True)
class KvEntry:
    """What a read returns: ``value`` and ``versionstamp`` are None when the key is missing."""

    key: Key
    value: Any
    versionstamp: str | None


# Unpacking fails at import if KvEntry gains a field, so new_entry can never leave one unset.
_set_key, _set_value, _set_versionstamp = (KvEntry.__dict__[name].__set__ for name in KvEntry.__slots__)


def new_entry(key: Key, value: Any, versionstamp: str | None) -> KvEntry:
    """``KvEntry(key, value, versionstamp)`` without the frozen dataclass's __init__ (a list page builds 50)."""
    entry = object.__new__(KvEntry)
    _set_key(entry, key)
    _set_value(entry, value)
    _set_versionstamp(entry, versionstamp)
    return entry


@dataclass(frozen=True, slots=True)
class CommitResult:
    """Outcome of a commit: ``ok=False`` (and no versionstamp) when a check failed."""

    ok: bool
    versionstamp: str | None = None


class ReadRange(NamedTuple):
    """One range of a snapshot read, on encoded keys: ``start`` inclusive, ``end`` exclusive.

    A NamedTuple, like RawEntry: every get builds one, and a frozen dataclass's __init__ costs ~0.7 us more.
    """

    start: bytes
    end: bytes
    limit: int
    reverse: bool = False


class RawEntry(NamedTuple):
    """One entry as a backend returns it: encoded key, decoded value, encoded value size in bytes.

    A NamedTuple rather than a frozen dataclass: a list page builds one per entry, and this is 4x cheaper to build.
    """

    key: bytes
    value: Any
    versionstamp: str
    size: int


class StoredValue(NamedTuple):
    """A value as a store holds it, not decoded: its payload and encoding (``codec.ENC_*``). What
    ``Kv._snapshot_read_stored`` may put in a ``RawEntry`` for a caller that passes values on without looking at
    them (the KV Connect server sends a V8 payload as it came); ``codec.decode_value(*stored)`` is the value."""

    payload: bytes
    encoding: int


class Check(NamedTuple):
    """``versionstamp`` is lowercase hex, or None for "the key must not exist".

    A NamedTuple, like RawEntry: every commit builds several, and a frozen dataclass's fields are set one by one."""

    key: bytes
    versionstamp: str | None


class Mutation(NamedTuple):
    """One mutation of an atomic write (a NamedTuple, as Check: a job's state change commits 6 to 24 of them).

    For ``set``: ``value`` is the Python value, ``payload``/``encoding`` its serialised form.
    For ``sum``/``min``/``max``: ``value`` is the u64 operand (int). For ``delete`` both are unused.
    ``set_suffix_versionstamp`` is a ``set`` of ``key`` + :func:`versionstamp_suffix` of the commit's versionstamp.
    """

    kind: MutationKind
    key: bytes
    value: Any = None
    payload: bytes = b""
    encoding: int = 0
    expire_at_ms: int | None = None


def versionstamp_suffix(versionstamp: str) -> bytes:
    """The key part a versionstamped-key set appends: the versionstamp's 20 hex characters as a string part."""
    return b"\x02" + versionstamp.encode("ascii") + b"\x00"
