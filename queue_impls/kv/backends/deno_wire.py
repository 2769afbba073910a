"""What crosses the pipe to the Deno bridge: frames, tagged-JSON values, and read ranges as Deno selectors.

Keys cross as hex of their tuple encoding; values as JSON with tags for what JSON cannot say (see docs/deno.md).
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

from ..codec import decode_key, encode_key
from ..errors import (
    BackendError,
    CursorOutOfBoundsError,
    InvalidCursorError,
    InvalidKeyError,
    InvalidLimitError,
    InvalidSelectorError,
    InvalidValueError,
    KeyTooLargeError,
    KvError,
    MutationTypeError,
    TooManyChecksError,
    TooManyMutationsError,
    TooManyRangesError,
    TotalKeySizeError,
    TotalMutationSizeError,
    ValueTooLargeError,
)
from ..types import Check, Mutation, ReadRange
from ..u64 import KvU64

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode
# Built once: json.loads(..., parse_int=float) builds a decoder per call (about 5 us of a 200 us get).
_decode_frame = json.JSONDecoder(parse_int=float).raw_decode


def frame(message: Any) -> bytes:
    body = _dumps(message).encode("ascii")
    return _HEADER.pack(len(body)) + body


def parse_frames(buf: bytearray) -> list[Any]:
    """Remove every complete frame from ``buf``; JSON integers come back as float (they are JS numbers)."""
    out = []
    pos = 0
    while len(buf) - pos >= 4:
        (size,) = _HEADER.unpack_from(buf, pos)
        if size > MAX_FRAME:
            raise ValueError(f"frame of {size} bytes announced (max {MAX_FRAME})")
        if len(buf) - pos - 4 < size:
            break
        text = buf[pos + 4 : pos + 4 + size].decode("utf-8")
        message, end = _decode_frame(text)
        if end != len(text):
            raise ValueError(f"frame of {size} bytes holds more than one JSON document")
        out.append(message)
        pos += 4 + size
    del buf[:pos]
    return out


# ------------------------------------------------------------------------------------------- values


def _special_float(x: float) -> list[str]:
    if math.isnan(x):
        return ["f", "NaN"]
    return ["f", "-0" if x == 0 else ("Infinity" if x > 0 else "-Infinity")]


def to_wire(value: Any, nested: bool = False) -> Any:
    """Python value -> tagged JSON: int is a JS bigint, float a JS number, bytes a Uint8Array, KvU64 a Deno.KvU64.

    A KvU64 inside a list or dict is refused: V8 would clone it into a plain ``{value: n}`` object.
    """
    if value is None or value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        return ["n", str(value)]
    if isinstance(value, float):
        return (
            value if math.isfinite(value) and (value != 0 or math.copysign(1.0, value) > 0) else _special_float(value)
        )
    if isinstance(value, dict):
        return {k: to_wire(v, True) for k, v in value.items()}
    if isinstance(value, list):
        return ["l", *(to_wire(v, True) for v in value)]
    if isinstance(value, bytes):
        return ["b", value.hex()]
    if isinstance(value, KvU64):
        if nested:
            raise InvalidValueError(
                f"{value!r} inside a list or dict: Deno KV stores a KvU64 only as a whole value "
                "(V8 turns a nested one into a plain {value} object)"
            )
        return ["u", str(value.value)]
    raise InvalidValueError(f"Unsupported value type {type(value).__name__}")


#: The C scanner behind json.loads, without json.loads' per-call type checks (typeshed does not declare it).
_scan_json: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def plain_value(text: str) -> Any:
    """A plain value the bridge wrote as the codec's JSON text (bigint -> int, number -> float)."""
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        raise ValueError(f"bridge sent a value that is not one JSON document: {text[:80]!r}")
    return value


def from_wire(node: Any) -> Any:
    """Inverse of :func:`to_wire` (JSON numbers arrive as float: a JS number is a Python float)."""
    if isinstance(node, list):
        tag = node[0]
        if tag == "l":
            return [from_wire(v) for v in node[1:]]
        if tag == "n":
            return int(node[1])
        if tag == "f":
            return -0.0 if node[1] == "-0" else float(node[1].replace("Infinity", "inf"))
        if tag == "b":
            return bytes.fromhex(node[1])
        if tag == "u":
            return KvU64(int(node[1]))
        raise ValueError(f"unknown value tag {tag!r}")
    if isinstance(node, dict):
        return {k: from_wire(v) for k, v in node.items()}
    return node


# ------------------------------------------------------------------------------------------- ranges


def _is_key(raw: bytes) -> bool:
    """True when ``raw`` is the canonical tuple encoding of a non-empty key (so Deno can be given that key)."""
    try:
        return bool(raw) and encode_key(decode_key(raw)) == raw
    except (KvError, ValueError, IndexError, struct.error):
        return False


def _prefix_before(raw: bytes, last: int) -> bytes | None:
    """``P`` when ``raw`` is ``P + last`` and P is a key or the empty prefix."""
    if raw and raw[-1] == last and (len(raw) == 1 or _is_key(raw[:-1])):
        return raw[:-1]
    return None


def _cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def list_spec(r: ReadRange) -> list[Any]:
    """One byte range as a Deno list selector (+ cursor) that Deno turns back into exactly ``[start, end)``.

    Every range the shared base produces is a selector's own range, or one resumed after a key or a cursor;
    Deno's selector + cursor forms express all of them (an empty prefix gives a cursor free rein).
    """
    lo, hi = r.start, r.end
    lo_key, hi_key = _is_key(lo), _is_key(hi)
    lo_p, hi_p = _prefix_before(lo, 0x00), _prefix_before(hi, 0xFF)
    sel: tuple[bytes | None, bytes | None, bytes | None, bytes | None] | None = None
    if (lo_key or lo == b"") and hi_key:  # start=() is the empty key, which Deno accepts as a start
        sel = (None, lo, hi, None)
    elif lo_p is not None and lo_p == hi_p:
        sel = (lo_p, None, None, None)
    elif lo_key and hi_p is not None and lo.startswith(hi_p) and lo != hi_p:
        sel = (hi_p, lo, None, None)
    elif hi_key and lo_p is not None and hi.startswith(lo_p) and hi != lo_p:
        sel = (lo_p, None, hi, None)
    elif not r.reverse and lo[-1:] == b"\x00" and hi_key:
        sel = (b"", None, hi, lo[:-1])
    elif not r.reverse and lo[-1:] == b"\x00" and hi_p is not None and lo.startswith(hi_p):
        sel = (hi_p, None, None, lo[len(hi_p) : -1])
    elif r.reverse and lo_key:
        sel = (b"", lo, None, hi)
    elif r.reverse and lo_p is not None and hi.startswith(lo_p):
        sel = (lo_p, None, None, hi[len(lo_p) :])
    if sel is None or sel[3] == b"":
        raise BackendError(f"Range [{lo.hex()}, {hi.hex()}) has no Deno selector form")
    prefix, start, end, cursor = sel
    return [
        "list",
        None if prefix is None else prefix.hex(),
        None if start is None else start.hex(),
        None if end is None else end.hex(),
        r.limit,
        r.reverse,
        None if cursor is None else _cursor(cursor),
    ]


def read_spec(ranges: Sequence[ReadRange]) -> list[Any] | None:
    """The bridge request for one snapshot read, or None when every range is empty (nothing to ask)."""
    if all(r.end == r.start + b"\x00" for r in ranges):
        return ["many", [r.start.hex() for r in ranges]]
    if len(ranges) != 1:
        raise BackendError("Deno KV reads several ranges in one snapshot only as point reads (getMany)")
    if ranges[0].start >= ranges[0].end:
        return None
    return list_spec(ranges[0])


def write_request(checks: Sequence[Check], mutations: Sequence[Mutation], now_ms: int) -> list[Any]:
    wire_checks = [[c.key.hex(), c.versionstamp] for c in checks]
    wire_mutations: list[Any] = []
    size = sum(len(c.key) for c in checks)
    for m in mutations:
        size += len(m.key) if m.kind == "delete" else 2 * len(m.key) + len(m.payload)
        if m.kind in ("set", "set_suffix_versionstamp"):  # the latter: kv.commitVersionstamp() as the key's last part
            expire = None if m.expire_at_ms is None else max(0, m.expire_at_ms - now_ms)
            wire_mutations.append(["set" if m.kind == "set" else "set_vs", m.key.hex(), to_wire(m.value), expire])
        else:
            wire_mutations.append([m.kind, m.key.hex(), None if m.kind == "delete" else str(m.value), None])
    return ["write", wire_checks, wire_mutations, size]


# ------------------------------------------------------------------------------------------- errors

# Deno's error messages (ext/kv) -> the project's typed errors; first matching prefix wins.
_DENO_ERRORS: list[tuple[str, type[KvError]]] = [
    ("Value too large", ValueTooLargeError),
    ("Key too large", KeyTooLargeError),
    ("Too many checks", TooManyChecksError),
    ("Too many mutations", TooManyMutationsError),
    ("Total mutation size too large", TotalMutationSizeError),
    ("Total key size too large", TotalKeySizeError),
    ("Too many ranges", TooManyRangesError),
    ("Too many entries", InvalidLimitError),
    ("Failed to perform", MutationTypeError),
    ("invalid cursor", InvalidCursorError),
    ("cursor out of bounds", CursorOutOfBoundsError),
    ("Start key is", InvalidSelectorError),
    ("End key is", InvalidSelectorError),
    ("Invalid key", InvalidKeyError),
    ("Unsupported value type", InvalidValueError),
]


def deno_error(name: str, message: str) -> KvError:
    """The typed error for an error the bridge reported (Deno's own message kept)."""
    for prefix, cls in _DENO_ERRORS:
        if message.startswith(prefix):
            return cls(f"{message} (reported by Deno)")
    return BackendError(f"Deno KV raised {name}: {message}")
