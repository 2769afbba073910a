"""Key and value encodings, byte for byte where Deno defines them.

Keys use Deno's (FoundationDB's) tuple encoding, so sorting encoded keys as bytes gives Deno's order.
Values use Deno's three value encodings: raw bytes and KvU64 exactly as Deno stores them, everything
else in this project's own serialisation (Deno uses V8's; see docs/kv.md for the format and its sizes).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, Final

from .errors import InvalidKeyError, InvalidValueError, short_repr
from .u64 import KvU64

KeyPart = bytes | str | int | float | bool
Key = tuple[KeyPart, ...]

# Deno's value encodings (denokv proto): V8-serialised, raw bytes, little-endian u64.
ENC_SERIALIZED: Final = 1
ENC_BYTES: Final = 2
ENC_U64: Final = 3

# ---------------------------------------------------------------------------------------------- keys

_BYTES, _STRING, _INT_ZERO, _INT_LARGE_POS, _INT_LARGE_NEG = 0x01, 0x02, 0x14, 0x1D, 0x0B
_FLOAT, _FALSE, _TRUE = 0x21, 0x26, 0x27
_NAN_POS: Final = 0x7FF8000000000000
_NAN_NEG: Final = 0xFFF8000000000000


def _escape(raw: bytes) -> bytes:
    return raw.replace(b"\x00", b"\x00\xff")


def _encode_int(n: int, out: bytearray) -> None:
    if n == 0:
        out.append(_INT_ZERO)
        return
    magnitude = abs(n)
    size = (magnitude.bit_length() + 7) // 8
    if size > 255:
        raise InvalidKeyError(
            "Invalid mutation: BigUint requires more than 255 bytes to be represented "
            f"(an int key part of {size} bytes)"
        )
    body = magnitude.to_bytes(size, "big")
    if n < 0:
        body = bytes(b ^ 0xFF for b in body)
        if size <= 8:
            out.append(_INT_ZERO - size)
        else:
            out += bytes((_INT_LARGE_NEG, size ^ 0xFF))
    elif size <= 8:
        out.append(_INT_ZERO + size)
    else:
        out += bytes((_INT_LARGE_POS, size))
    out += body


def _encode_float(x: float, out: bytearray) -> None:
    if math.isnan(x):
        bits = _NAN_NEG if math.copysign(1.0, x) < 0 else _NAN_POS
    else:
        (bits,) = struct.unpack(">Q", struct.pack(">d", x))
    bits = bits ^ 0xFFFFFFFFFFFFFFFF if bits >> 63 else bits ^ (1 << 63)
    out.append(_FLOAT)
    out += bits.to_bytes(8, "big")


def _utf8_key_part(part: str) -> bytes:
    try:
        return part.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: Deno would store U+FFFD, so the key would not round-trip
        raise InvalidKeyError(
            f"Invalid key part {part!r}: a str key part must be valid Unicode (no lone surrogates)"
        ) from None


#: Ints of at most 8 magnitude bytes, the ones encoded by a tag and their big-endian bytes.
_SMALL_INT: Final = 1 << 64


def _int_text(n: int) -> str:
    """The encoding of an int part of at most 8 magnitude bytes, as latin-1 text (one char per byte)."""
    if n == 0:
        return "\x14"
    size = (n.bit_length() + 7) >> 3  # the magnitude's bytes (bit_length ignores the sign)
    if n > 0:
        return chr(_INT_ZERO + size) + n.to_bytes(size, "big").decode("latin-1")
    return chr(_INT_ZERO - size) + (n + (1 << (8 * size)) - 1).to_bytes(size, "big").decode("latin-1")  # ~magnitude


def encode_key(key: Key) -> bytes:
    """Encode a key tuple exactly as Deno does; byte order of the result is Deno's key order.

    The usual keys (ASCII text without NUL, ints of at most 8 bytes) are built as latin-1 text and encoded in one
    call: all text parts by one ``str.join``; anything else takes the general encoder, part by part."""
    if type(key) is tuple:
        if int not in map(type, key):
            try:
                text = "\x00\x02".join(key)  # type: ignore[arg-type]  # TypeError unless every part is a str
            except TypeError:  # a part that is not text
                return _encode_key(key)
            if text.isascii() and text.count("\x00") == len(key) - 1 and key:  # no NUL inside a part
                return f"\x02{text}\x00".encode("ascii")
            return _encode_key(key)
        pieces = []
        for part in key:
            if type(part) is str and part.isascii() and "\x00" not in part:
                pieces.append(f"\x02{part}\x00")
            elif type(part) is int and -_SMALL_INT < part < _SMALL_INT:
                pieces.append(_int_text(part))
            else:
                return _encode_key(key)
        return "".join(pieces).encode("latin-1")
    return _encode_key(key)


def _encode_key(key: Key) -> bytes:
    if not isinstance(key, tuple):
        raise InvalidKeyError(f"A key must be a tuple of parts, got {type(key).__name__}")
    out = bytearray()
    for part in key:
        if type(part) is str and part.isascii():  # the usual part: ASCII text, encoded inline (no call, no copy)
            out.append(_STRING)
            out += part.encode("ascii").replace(b"\x00", b"\x00\xff")
            out.append(0)
        elif isinstance(part, bool):  # before int: bool is an int subclass
            out.append(_TRUE if part else _FALSE)
        elif isinstance(part, str):
            out.append(_STRING)
            out += _escape(_utf8_key_part(part))
            out.append(0)
        elif isinstance(part, int):
            _encode_int(part, out)
        elif isinstance(part, float):
            _encode_float(part, out)
        elif isinstance(part, bytes | bytearray | memoryview):
            out.append(_BYTES)
            out += _escape(bytes(part))
            out.append(0)
        else:
            raise InvalidKeyError(
                f"Invalid key part {short_repr(part)}: expected bytes, str, int, float or bool, got {type(part).__name__}"
            )
    return bytes(out)


def _read_escaped(buf: bytes, pos: int) -> tuple[bytes, int]:
    nul = buf.find(b"\x00", pos)
    if nul >= 0 and buf[nul + 1 : nul + 2] != b"\xff":  # no escaped NUL inside: one slice (the common case)
        return bytes(buf[pos:nul]), nul + 1
    out = bytearray()
    n = len(buf)
    while True:
        nul = buf.find(b"\x00", pos)
        if nul < 0:
            raise InvalidKeyError("Invalid encoded key: unterminated bytes or string part")
        out += buf[pos:nul]
        if nul + 1 < n and buf[nul + 1] == 0xFF:
            out.append(0)
            pos = nul + 2
        else:
            return bytes(out), nul + 1


def _decode_int(tag: int, buf: bytes, pos: int) -> tuple[int, int]:
    if tag == _INT_ZERO:
        return 0, pos
    if tag == _INT_LARGE_POS:
        size, pos, negative = buf[pos], pos + 1, False
    elif tag == _INT_LARGE_NEG:
        size, pos, negative = buf[pos] ^ 0xFF, pos + 1, True
    elif tag > _INT_ZERO:
        size, negative = tag - _INT_ZERO, False
    else:
        size, negative = _INT_ZERO - tag, True
    body = buf[pos : pos + size]
    if len(body) != size:
        raise InvalidKeyError("Invalid encoded key: truncated integer part")
    if negative:
        return -int.from_bytes(bytes(b ^ 0xFF for b in body), "big"), pos + size
    return int.from_bytes(body, "big"), pos + size


def decode_key(buf: bytes) -> Key:
    """Inverse of :func:`encode_key`; InvalidKeyError for bytes that are not an encoded key."""
    try:  # free unless raised: no extra call on the list path, which decodes every key
        if (
            buf[:1] == b"\x02" and buf.find(0) == len(buf) - 1
        ):  # one str part, no NUL inside: a list suffix's usual shape
            return (buf[1:-1].decode("utf-8"),)
        parts: list[KeyPart] = []
        pos, n = 0, len(buf)
        while pos < n:
            tag = buf[pos]
            pos += 1
            if tag in (_STRING, _BYTES):
                nul = buf.find(b"\x00", pos)
                if nul >= 0 and (nul + 1 == n or buf[nul + 1] != 0xFF):  # no escaped NUL inside: one slice, no call
                    raw, pos = bytes(buf[pos:nul]), nul + 1
                else:
                    raw, pos = _read_escaped(buf, pos)
                parts.append(raw.decode("utf-8") if tag == _STRING else raw)
            elif _INT_LARGE_NEG <= tag <= _INT_LARGE_POS:
                value, pos = _decode_int(tag, buf, pos)
                parts.append(value)
            elif tag == _FLOAT:
                if pos + 8 > n:
                    raise InvalidKeyError("Invalid encoded key: truncated float part")
                bits = int.from_bytes(buf[pos : pos + 8], "big")
                bits = bits ^ (1 << 63) if bits >> 63 else bits ^ 0xFFFFFFFFFFFFFFFF
                parts.append(struct.unpack(">d", bits.to_bytes(8, "big"))[0])
                pos += 8
            elif tag in (_FALSE, _TRUE):
                parts.append(tag == _TRUE)
            else:
                raise InvalidKeyError(f"Invalid encoded key: unknown type tag 0x{tag:02x} at byte {pos - 1}")
        return tuple(parts)
    except (IndexError, UnicodeDecodeError, TypeError, struct.error) as exc:
        raise InvalidKeyError(f"Invalid encoded key: {type(exc).__name__}: {exc}") from None


# -------------------------------------------------------------------------------------------- values
#
# ENC_SERIALIZED payloads start with one format byte:
#   b"J" + compact JSON          the value holds only None/bool/int/float/str/list/dict-with-str-keys
#   b"T" + compact JSON, tagged  the value holds bytes or KvU64 somewhere inside: every list, dict,
#                                bytes and KvU64 node becomes a two-element list [tag, payload]
#                                ("l" list, "d" dict, "b" base64 bytes, "u" decimal string)
# JSON keeps int and float apart (1 vs 1.0) and writes NaN/Infinity, so every scalar round-trips.


#: The deepest nesting of lists and dicts a value may have (the value itself is depth 0). Fixed, so that what one
#: process accepts every process can read back: decoding is recursive, and a tagged value is twice as deep in JSON.
MAX_VALUE_DEPTH: Final = 100
_SUPPORTED = "None, bool, int, float, str, bytes, list, dict with str keys, KvU64"


# Tuples built once: ``bool | int | float | str`` in an isinstance() builds a union object on every call.
_SCALARS: Final = (bool, int, float, str)
_TAGGED: Final = (bytes, KvU64)
#: The scalar types themselves (not subclasses), for a set lookup instead of a call per field.
_EXACT_SCALARS: Final = frozenset(_SCALARS)


class _NeedsTags(Exception):
    pass


class _Refused(Exception):
    """Raised inside the walk; encode_value finds the offending node's path (errors only, off the hot path)."""


def _check_plain(value: Any, depth: int) -> None:
    """Raise _NeedsTags if the value holds bytes/KvU64, _Refused if it holds anything the codec cannot store."""
    if value is None or isinstance(value, _SCALARS):
        return
    if isinstance(value, list):
        if depth >= MAX_VALUE_DEPTH:
            raise _Refused
        for item in value:
            _check_plain(item, depth + 1)
        return
    if isinstance(value, dict):
        if depth >= MAX_VALUE_DEPTH:
            raise _Refused
        for k, item in value.items():
            if not isinstance(k, str):
                raise _Refused
            if item is None or type(item) in _EXACT_SCALARS:  # a flat record's fields: no call per field
                continue
            _check_plain(item, depth + 1)
        return
    if isinstance(value, _TAGGED):
        raise _NeedsTags
    raise _Refused


def _tag(value: Any, depth: int) -> Any:
    """The tagged form of a value holding bytes/KvU64; validates the whole value as it goes (_Refused)."""
    if value is None or isinstance(value, _SCALARS):
        return value
    if isinstance(value, list):
        if depth >= MAX_VALUE_DEPTH:
            raise _Refused
        return ["l", [_tag(v, depth + 1) for v in value]]
    if isinstance(value, dict):
        if depth >= MAX_VALUE_DEPTH:
            raise _Refused
        tagged = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise _Refused
            tagged[k] = _tag(v, depth + 1)
        return ["d", tagged]
    if isinstance(value, bytes):
        return ["b", base64.b64encode(value).decode("ascii")]
    if isinstance(value, KvU64):
        return ["u", str(value.value)]
    raise _Refused


def _refusal(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    """(path, why) of the first node the codec cannot store; None when there is none."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            str(value)
        except ValueError:
            return path, f"is an int of more than {sys.get_int_max_str_digits()} digits (sys.get_int_max_str_digits())"
        return None
    if value is None or isinstance(value, bool | float | str | bytes | KvU64):
        return None
    if isinstance(value, list | dict) and depth >= MAX_VALUE_DEPTH:
        return path, f"is nested {depth + 1} levels deep (max {MAX_VALUE_DEPTH} levels of lists and dicts)"
    if isinstance(value, list):
        return next(filter(None, (_refusal(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))), None)
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                return path, f"has a dict key of type {type(k).__name__} ({short_repr(k)}): dict keys must be str"
            found = _refusal(item, f"{path}[{short_repr(k)}]", depth + 1)
            if found is not None:
                return found
        return None
    hint = " (use a list: a tuple would read back as a list)" if isinstance(value, tuple) else ""
    return path, f"is of type {type(value).__name__}{hint}; supported: {_SUPPORTED}"


def _refuse(value: Any) -> InvalidValueError:
    path, why = _refusal(value, "value", 0) or ("value", "cannot be serialised")
    if len(path) > 100:
        path = f"{path[:60]}...{path[-30:]}"
    return InvalidValueError(f"Unsupported value: {path} {why}")


def _untag(node: Any) -> Any:
    if not isinstance(node, list):
        return node
    tag, payload = node
    if tag == "l":
        return [_untag(v) for v in payload]
    if tag == "d":
        return {k: _untag(v) for k, v in payload.items()}
    if tag == "b":
        return base64.b64decode(payload, validate=True)
    if tag == "u":
        return KvU64(int(payload))
    raise InvalidValueError(f"Invalid tagged value: unknown tag {short_repr(tag)}")


_json_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True)
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def _dumps_via_c(value: Any) -> str:
    return "".join(_c_encode(value, 0))


_dumps: Callable[[Any], str]
if _c_make_encoder is not None:
    # JSONEncoder.encode builds this C encoder (and a closure) for every value: build it once. No circular-reference
    # check (markers None): a value reaches it only after _check_plain or _tag, which refuse anything nested deeper
    # than MAX_VALUE_DEPTH, as any cycle is.
    _c_encode = _c_make_encoder(
        None, _json_encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    _dumps = _dumps_via_c
else:  # a Python without the C accelerator
    _dumps = _json_encoder.encode
_loads = json.loads
# The C scanner behind json.loads (typeshed does not declare it), minus json.loads' per-call encoding sniffing.
_scan_json: Any = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _loads_after_format_byte(payload: bytes) -> Any:
    """``json.loads(payload[1:])``, faster; anything unusual (or invalid) takes json.loads itself, for its errors."""
    try:
        text = payload.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
        value, end = _scan_json(text, 1)
    except (ValueError, StopIteration):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return _loads_or_refuse(payload)
    return value if end == len(text) else _loads_or_refuse(payload)


def _loads_or_refuse(payload: bytes) -> Any:
    try:
        return _loads(payload[1:])
    except (ValueError, RecursionError) as exc:  # not a payload this codec wrote
        raise InvalidValueError(f"Invalid encoded value: {type(exc).__name__}: {str(exc)[:200]}") from None


def encode_value(value: Any) -> tuple[bytes, int]:
    """Serialise a value; returns (payload, encoding).

    Raises InvalidValueError, naming the path inside the value and the type, for anything it could not read back
    unchanged: types other than None, bool, int, float, str, bytes, list, dict with str keys and KvU64 (a tuple too:
    it would come back as a list), dict keys that are not str, ints over sys.get_int_max_str_digits() digits, and
    nesting deeper than MAX_VALUE_DEPTH.
    """
    if isinstance(value, bytes):
        return value, ENC_BYTES
    if isinstance(value, KvU64):
        return value.value.to_bytes(8, "little"), ENC_U64
    try:
        try:
            _check_plain(value, 0)
        except _NeedsTags:
            return b"T" + _dumps(_tag(value, 0)).encode("utf-8", "surrogatepass"), ENC_SERIALIZED
        # surrogatepass: a lone surrogate round-trips, as in V8's serialisation (json.loads of bytes undoes it)
        return b"J" + _dumps(value).encode("utf-8", "surrogatepass"), ENC_SERIALIZED
    except (_Refused, ValueError, RecursionError):  # ValueError: an int over the str conversion limit
        raise _refuse(value) from None


def decode_values(rows: Sequence[tuple[bytes, int]]) -> list[Any]:
    """``[decode_value(payload, encoding) for payload, encoding in rows]``, for a list batch.

    When every row is plain JSON (format byte J, the common case), the batch is parsed as one JSON array by one call
    of the C scanner: about 0.4 us less per entry than one call per value (docs/performance.md). Anything else, or
    a batch that does not parse to exactly one value per row, is decoded row by row (so a bad row raises its error).
    Limit: only payloads this codec did not write can be bad, and two such rows that happen to pair up into two valid
    JSON values (``J[1`` and ``J2],3``) would be read as those; a per-row parse would have raised.
    """
    if len(rows) > 1 and all(encoding == ENC_SERIALIZED and payload[:1] == b"J" for payload, encoding in rows):
        try:
            text = (b"[" + b",".join([payload[1:] for payload, _ in rows]) + b"]").decode("utf-8", "surrogatepass")
            values, end = _scan_json(text, 0)
        except (UnicodeDecodeError, StopIteration, ValueError):
            pass
        else:
            if end == len(text) and len(values) == len(rows):
                result: list[Any] = values
                return result
    return [decode_value(payload, encoding) for payload, encoding in rows]


def decode_value(payload: bytes, encoding: int) -> Any:
    """Inverse of :func:`encode_value`."""
    if encoding == ENC_BYTES:
        return bytes(payload)
    if encoding == ENC_U64:
        return KvU64(int.from_bytes(payload, "little"))
    if payload[:1] == b"J":
        return _loads_after_format_byte(payload)
    if payload[:1] == b"T":
        try:
            return _untag(_loads_after_format_byte(payload))
        except (ValueError, TypeError, AttributeError, RecursionError) as exc:  # not a payload this codec wrote
            if isinstance(exc, InvalidValueError):
                raise
            raise InvalidValueError(f"Invalid tagged value: {type(exc).__name__}: {str(exc)[:200]}") from None
    if payload[:1] == b"\xff":  # V8's serialisation: written by a Deno program through the KV Connect server
        from .v8 import v8_loads

        return v8_loads(payload)
    raise InvalidValueError(f"Unknown value format byte {short_repr(payload[:1])}")
