"""KV Connect data-path messages <-> the store primitives' types (ReadRange, Check, Mutation, RawEntry).

Everything a client sends is checked against Deno's limits here, before the store sees it; a violation raises
``ProtocolError`` (answered 400 with its message, which the Deno client shows as the error).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queue_impls.kv.atomic import check_totals
from queue_impls.kv.codec import ENC_BYTES, ENC_SERIALIZED, ENC_U64, Key, decode_key, decode_value
from queue_impls.kv.errors import InvalidValueError, KvError
from queue_impls.kv.limits import (
    MAX_CHECKS,
    MAX_MUTATIONS,
    MAX_READ_ENTRIES,
    MAX_READ_KEY_SIZE,
    MAX_READ_RANGES,
    MAX_VALUE_SIZE,
    MAX_WRITE_KEY_SIZE,
)
from queue_impls.kv.types import Check, KvEntry, Mutation, MutationKind, RawEntry, ReadRange, StoredValue
from queue_impls.kv.u64 import KvU64
from queue_impls.kv.v8 import v8_dumps, v8_loads

from . import datapath_pb2 as pb

_KINDS: dict[int, MutationKind] = {
    pb.M_SET: "set",
    pb.M_DELETE: "delete",
    pb.M_SUM: "sum",
    pb.M_MIN: "min",
    pb.M_MAX: "max",
    pb.M_SET_SUFFIX_VERSIONSTAMPED_KEY: "set_suffix_versionstamp",
}

#: The wire's encoding of a payload sent as it is stored.
_WIRE_ENCODING: dict[int, int] = {ENC_SERIALIZED: pb.VE_V8, ENC_BYTES: pb.VE_BYTES, ENC_U64: pb.VE_LE64}
_V8 = b"\xff"  # the first byte of V8's serialisation (this project's own starts with J or T)


class ProtocolError(KvError):
    """A request this server refuses: malformed, over a limit, or asking for something it does not support."""


def parse(message_type: Any, body: bytes) -> Any:
    message = message_type()
    try:
        message.ParseFromString(body)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ProtocolError(f"Invalid {message_type.__name__} protobuf message ({len(body)} bytes): {exc}") from None
    return message


def read_ranges(request: pb.SnapshotRead) -> list[ReadRange]:
    """The ranges of a SnapshotRead, checked: at most 10, limits positive and 1000 in total, keys <= 2049 bytes."""
    given = request.ranges
    if len(given) > MAX_READ_RANGES:
        raise ProtocolError(f"Too many ranges (max {MAX_READ_RANGES}): got {len(given)}")
    ranges = []
    total = 0
    new = tuple.__new__  # ReadRange without its Python-level __new__
    # by index: iterating a protobuf repeated field ends on an IndexError, raised and caught (~2,000 instructions)
    for i in range(len(given)):
        r = given[i]
        start, end, limit = r.start, r.end, r.limit
        if limit <= 0:
            raise ProtocolError(f"Invalid read range limit {limit}: must be a positive integer")
        if len(start) > MAX_READ_KEY_SIZE or len(end) > MAX_READ_KEY_SIZE:
            name, key = ("start", start) if len(start) > MAX_READ_KEY_SIZE else ("end", end)
            raise ProtocolError(
                f"Key too large for read (max {MAX_READ_KEY_SIZE} bytes): range {name} of {len(key)} bytes"
            )
        total += limit
        ranges.append(new(ReadRange, (start, end, limit, r.reverse)))
    if total > MAX_READ_ENTRIES:
        raise ProtocolError(f"Too many entries (max {MAX_READ_ENTRIES}): the ranges ask for {total}")
    return ranges


class EncodedValues:
    """The wire form of stored values by (key, versionstamp), for one store: a versionstamp names one commit, so a
    key's value at it never changes, and a value read again (the common case of a served get or list page) is not
    serialised again (V8's serialisation of a small object costs several microseconds). Bounded by bytes: full, it
    starts over."""

    def __init__(self, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._encoded: dict[tuple[bytes, str], tuple[bytes, int]] = {}
        self._bytes = 0

    def get(self, key: bytes, versionstamp: str, value: Any) -> tuple[bytes, int]:
        found = self._encoded.get((key, versionstamp))
        if found is not None:
            return found
        encoded = wire_value(value)
        if encoded[1] == pb.VE_V8:  # bytes and u64 cost next to nothing to convert
            size = len(encoded[0]) + len(key) + 100
            if self._bytes + size > self.max_bytes:
                self._encoded.clear()
                self._bytes = 0
            self._encoded[(key, versionstamp)] = encoded
            self._bytes += size
        return encoded


def read_output(results: Sequence[Sequence[RawEntry]], values: EncodedValues | None = None) -> bytes:
    """A SnapshotReadOutput of the entries read, encoded here: the bytes protobuf's serialiser writes for it, at a
    third of the cost for a get (no message objects). A value left as stored (``StoredValue``) whose payload is already
    the wire's (bytes, a u64, or a V8 serialisation: what a Deno client wrote) goes out as it is, never decoded."""
    out = []
    for rows in results:
        entries = []
        for raw in rows:
            value = raw.value
            if _as_stored(value):
                data, encoding = value.payload, _WIRE_ENCODING[value.encoding]
            elif values is None:
                data, encoding = wire_value(value)
            else:
                data, encoding = values.get(raw.key, raw.versionstamp, value)
            key = raw.key
            # KvEntry: key = 1, value = 2 (proto3 leaves an empty one out), encoding = 3, versionstamp = 4 (10 bytes)
            entry = b"".join(
                (
                    b"\x0a" + _varint(len(key)) + key if key else b"",
                    b"\x12" + _varint(len(data)) + data if data else b"",
                    _ENCODING_FIELD[encoding],
                    _VERSIONSTAMP_FIELD,
                    bytes.fromhex(raw.versionstamp),
                )
            )
            entries.append(b"\x0a" + _varint(len(entry)) + entry)  # ReadRangeOutput: values = 1
        body = b"".join(entries)
        out.append(b"\x0a" + _varint(len(body)) + body)  # SnapshotReadOutput: ranges = 1
    out.append(_READ_OUTPUT_TAIL)
    return b"".join(out)


def _varint(n: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    if n < 0x80:
        return _ONE_BYTE[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_ONE_BYTE = [bytes((n,)) for n in range(0x80)]
_ENCODING_FIELD: dict[int, bytes] = {
    encoding: b"\x18" + _varint(encoding) for encoding in (pb.VE_V8, pb.VE_LE64, pb.VE_BYTES)
}
_VERSIONSTAMP_FIELD = b"\x22\x0a"  # field 4, 10 bytes follow
#: read_is_strongly_consistent = 4 (true), status = 8 (SR_SUCCESS)
_READ_OUTPUT_TAIL = b"\x20\x01\x40" + _varint(pb.SR_SUCCESS)


def _as_stored(value: Any) -> bool:
    """A value left as stored whose payload is already the wire's: bytes, a u64, or a V8 serialisation (what a Deno
    client wrote). This project's own serialisation is not: V8's is made of the decoded value."""
    return type(value) is StoredValue and (value.encoding != ENC_SERIALIZED or value.payload[:1] == _V8)


def wire_value(value: Any) -> tuple[bytes, int]:
    """A value as the wire carries it: raw bytes, a little-endian u64, or V8's serialisation."""
    if type(value) is StoredValue:
        if _as_stored(value):
            return value.payload, _WIRE_ENCODING[value.encoding]
        value = decode_value(*value)  # this project's own serialisation: V8's is made of the value
    if type(value) is bytes:
        return value, pb.VE_BYTES
    if isinstance(value, KvU64):
        return value.value.to_bytes(8, "little"), pb.VE_LE64
    return v8_dumps(value), pb.VE_V8


def _value(kv_value: pb.KvValue, what: str) -> tuple[Any, bytes, int]:
    """(Python value, payload, store encoding) of a mutation's value; V8 payloads are stored as they came."""
    data = kv_value.data
    if len(data) > MAX_VALUE_SIZE:
        raise ProtocolError(f"Value too large (max {MAX_VALUE_SIZE} bytes): got {len(data)} bytes for {what}")
    if kv_value.encoding == pb.VE_V8:
        try:
            return v8_loads(data), data, ENC_SERIALIZED
        except InvalidValueError as exc:
            raise ProtocolError(f"{exc} (value of {what})") from None
    if kv_value.encoding == pb.VE_BYTES:
        return data, data, ENC_BYTES
    if kv_value.encoding == pb.VE_LE64:
        if len(data) != 8:
            raise ProtocolError(f"A VE_LE64 value is 8 bytes, got {len(data)} for {what}")
        return KvU64(int.from_bytes(data, "little")), data, ENC_U64
    raise ProtocolError(f"Unknown value encoding {kv_value.encoding} for {what}")


def _check(index: int, c: pb.Check) -> Check:
    if len(c.key) > MAX_WRITE_KEY_SIZE:
        raise ProtocolError(f"Key too large for write (max {MAX_WRITE_KEY_SIZE} bytes): check {index}")
    if len(c.versionstamp) not in (0, 10):
        raise ProtocolError(f"Invalid check {index}: a versionstamp is 10 bytes, got {len(c.versionstamp)}")
    return Check(c.key, c.versionstamp.hex() if c.versionstamp else None)


def _expiry(index: int, expire_at_ms: int) -> int | None:
    if expire_at_ms in (0, -1):
        return None
    if expire_at_ms < 0:
        raise ProtocolError(f"Invalid expire_at_ms {expire_at_ms} in mutation {index}")
    return expire_at_ms


def _mutation(index: int, m: pb.Mutation) -> Mutation:
    kind = _KINDS.get(m.mutation_type)
    what = f"mutation {index}"
    if kind is None:
        raise ProtocolError(f"Unknown mutation type {m.mutation_type} in {what}")
    if not m.key:
        raise ProtocolError(f"key cannot be empty ({what})")
    if len(m.key) > MAX_WRITE_KEY_SIZE:
        raise ProtocolError(f"Key too large for write (max {MAX_WRITE_KEY_SIZE} bytes): {len(m.key)} bytes in {what}")
    if kind == "delete":
        return Mutation("delete", m.key)
    if not m.HasField("value"):
        raise ProtocolError(f"A {kind} mutation needs a value ({what})")
    value, payload, encoding = _value(m.value, what)
    if kind in ("set", "set_suffix_versionstamp"):
        return Mutation(kind, m.key, value, payload, encoding, _expiry(index, m.expire_at_ms))
    if encoding != ENC_U64:
        raise ProtocolError(
            f"This server supports {kind} only on Deno.KvU64 (VE_LE64) operands; {what} sent encoding "
            f"{pb.ValueEncoding.Name(m.value.encoding)}"
        )
    return Mutation(kind, m.key, value.value, payload, ENC_U64)


def atomic_write(request: pb.AtomicWrite) -> tuple[list[Check], list[Mutation]]:
    """Checks and mutations of an AtomicWrite, checked against Deno's commit limits. Enqueues are refused."""
    if request.enqueues:
        raise ProtocolError(
            f"enqueue is not supported by this KV Connect server (qbench serve): the commit carries "
            f"{len(request.enqueues)} enqueue(s); nothing was written"
        )
    if len(request.checks) > MAX_CHECKS:
        raise ProtocolError(f"Too many checks (max {MAX_CHECKS}): got {len(request.checks)}")
    if len(request.mutations) > MAX_MUTATIONS:
        raise ProtocolError(f"Too many mutations (max {MAX_MUTATIONS}): got {len(request.mutations)}")
    checks = [_check(i, c) for i, c in enumerate(request.checks)]
    mutations = [_mutation(i, m) for i, m in enumerate(request.mutations)]
    try:
        check_totals(checks, mutations)  # the same size rules as a commit made through the library
    except KvError as exc:
        raise ProtocolError(str(exc)) from None
    return checks, mutations


def write_output(versionstamp: str | None) -> bytes:
    if versionstamp is None:
        out = pb.AtomicWriteOutput(status=pb.AW_CHECK_FAILURE)
    else:
        out = pb.AtomicWriteOutput(status=pb.AW_SUCCESS, versionstamp=bytes.fromhex(versionstamp))
    return out.SerializeToString()


def watch_keys(request: pb.Watch) -> list[tuple[bytes, Key]]:
    """(encoded, decoded) of each watched key; the store's ``watch`` checks the count and the sizes as Deno does."""
    keys = []
    for index, watched in enumerate(request.keys):
        try:
            keys.append((watched.key, decode_key(watched.key)))
        except KvError as exc:
            raise ProtocolError(f"Invalid key {index} in the Watch request ({len(watched.key)} bytes): {exc}") from None
    return keys


def watch_frame(encoded_keys: Sequence[bytes], entries: Sequence[KvEntry], sent: Sequence[str | None] | None) -> bytes:
    """One frame of a watch stream: a WatchOutput after its length (4 bytes, little endian). A key is ``changed``
    when its versionstamp differs from the one ``sent`` last (every key in the first frame, ``sent`` None); a changed
    key that does not exist has no entry."""
    out = pb.WatchOutput(status=pb.SR_SUCCESS)
    for index, (key, entry) in enumerate(zip(encoded_keys, entries, strict=True)):
        changed = sent is None or sent[index] != entry.versionstamp
        output = out.keys.add(changed=changed)
        if changed and entry.versionstamp is not None:
            data, encoding = wire_value(entry.value)
            changed_entry = output.entry_if_changed
            changed_entry.key, changed_entry.value, changed_entry.encoding = key, data, encoding  # type: ignore[assignment]
            changed_entry.versionstamp = bytes.fromhex(entry.versionstamp)
    payload = out.SerializeToString()
    return len(payload).to_bytes(4, "little") + payload


#: A frame of no message: the server is still there (Deno's client skips it).
WATCH_PING = bytes(4)
