"""V8's value serialisation (what Deno KV stores for every value that is not raw bytes or a KvU64), both ways.

``v8_loads`` reads what a Deno program wrote, ``v8_dumps`` writes what Deno reads back. The mapping is this
project's (docs/kv.md, "Values written by Deno"): a JS number is a ``float``, a bigint an ``int``, a Uint8Array
``bytes``; JS types with no Python counterpart have small types here. What cannot be represented raises
``InvalidValueError`` naming the type.
"""

from __future__ import annotations

import array
import math
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from .errors import InvalidValueError
from .u64 import KvU64

__all__ = ["UNDEFINED", "JsMap", "JsRegExp", "JsUndefined", "Uint8ClampedArray", "v8_dumps", "v8_loads"]

#: The version byte Deno 2.x writes (V8's serializer format version).
FORMAT_VERSION: Final = 16
HEADER: Final = bytes((0xFF, FORMAT_VERSION))


class JsUndefined:
    """JavaScript's ``undefined`` (a value Deno KV stores, distinct from ``null``/None). Use ``UNDEFINED``."""

    __slots__ = ()
    _instance: JsUndefined | None = None

    def __new__(cls) -> JsUndefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Final = JsUndefined()


@dataclass(frozen=True, slots=True)
class JsRegExp:
    """A JavaScript RegExp: its source text and flags (``"gi"``), kept as JavaScript wrote them."""

    source: str
    flags: str = ""


class JsMap(dict[Any, Any]):
    """A JavaScript Map (a plain ``dict`` is a JavaScript object). Keys must be hashable here."""

    def __repr__(self) -> str:
        return f"JsMap({dict.__repr__(self)})"


class Uint8ClampedArray(bytes):
    """A JavaScript Uint8ClampedArray (a Uint8Array is ``bytes``)."""


# Tags of V8's ValueSerializer.
_PADDING, _VERIFY_COUNT, _HOLE, _UNDEFINED, _NULL = 0x00, ord("?"), ord("-"), ord("_"), ord("0")
_TRUE, _FALSE, _INT32, _UINT32, _DOUBLE, _BIGINT = ord("T"), ord("F"), ord("I"), ord("U"), ord("N"), ord("Z")
_UTF8, _ONE_BYTE, _TWO_BYTE, _REF = ord("S"), ord('"'), ord("c"), ord("^")
_OBJECT, _END_OBJECT, _SPARSE, _END_SPARSE, _DENSE, _END_DENSE = (ord(c) for c in "o{a@A$")
_DATE, _REGEXP, _MAP, _END_MAP, _SET, _END_SET = (ord(c) for c in "DR;:',")
_ARRAY_BUFFER, _VIEW = ord("B"), ord("V")
_BOXED = {ord("y"): "Boolean object", ord("x"): "Boolean object", ord("n"): "Number object"}
_BOXED |= {ord("z"): "BigInt object", ord("s"): "String object", ord("r"): "Error", ord("\\"): "host object"}
_BOXED |= {ord("u"): "SharedArrayBuffer", ord("~"): "resizable ArrayBuffer", ord("m"): "WebAssembly.Memory"}

# RegExp flag -> V8's bit, in the order JavaScript's ``flags`` getter lists them.
_REGEXP_FLAGS: Final = (("d", 128), ("g", 1), ("i", 2), ("l", 64), ("m", 4), ("s", 32), ("u", 16), ("v", 256), ("y", 8))

# Typed-array subtag -> (JavaScript name, array.array typecode; None: bytes-like).
_VIEWS: Final[dict[int, tuple[str, str | None]]] = {
    ord("b"): ("Int8Array", "b"),
    ord("B"): ("Uint8Array", None),
    ord("C"): ("Uint8ClampedArray", None),
    ord("w"): ("Int16Array", "h"),
    ord("W"): ("Uint16Array", "H"),
    ord("d"): ("Int32Array", "i"),
    ord("D"): ("Uint32Array", "I"),
    ord("f"): ("Float32Array", "f"),
    ord("F"): ("Float64Array", "d"),
    ord("q"): ("BigInt64Array", "q"),
    ord("Q"): ("BigUint64Array", "Q"),
    ord("h"): ("Float16Array", None),
    ord("?"): ("DataView", None),
}
_TYPECODE_SUBTAG: Final = {code: tag for tag, (_, code) in _VIEWS.items() if code is not None}
_TYPECODE_SUBTAG["B"] = ord("B")
_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
_MAX_INDEX: Final = 2**32 - 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_MAX_DEPTH: Final = 500


def _unsupported(what: str) -> InvalidValueError:
    return InvalidValueError(f"Cannot represent a JavaScript {what} as a Python value (V8 value codec)")


# --------------------------------------------------------------------------------------------- reading


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.objects: list[Any] = []  # by V8 object id, in the order the serializer assigned them
        self.depth = 0

    def fail(self, why: str) -> InvalidValueError:
        return InvalidValueError(f"Invalid V8-serialised value: {why} at byte {self.pos}")

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("unexpected end")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise self.fail(f"{n} bytes announced, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def varint(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise self.fail("varint too long")

    def tag(self) -> int:
        while True:
            t = self.byte()
            if t == _VERIFY_COUNT:
                self.varint()
            elif t != _PADDING:
                return t

    def peek_tag(self) -> int | None:
        pos = self.pos
        try:
            return self.tag()
        except InvalidValueError:
            return None
        finally:
            self.pos = pos

    def register(self, obj: Any) -> Any:
        self.objects.append(obj)
        return obj

    def value(self) -> Any:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self.fail(f"nested deeper than {_MAX_DEPTH}")
        try:
            return self._value(self.tag())
        finally:
            self.depth -= 1

    def _value(self, t: int) -> Any:
        if t == _NULL:
            return None
        if t == _UNDEFINED:
            return UNDEFINED
        if t in (_TRUE, _FALSE):
            return t == _TRUE
        if t == _INT32:
            n = self.varint()
            return float((n >> 1) ^ -(n & 1))
        if t == _UINT32:
            return float(self.varint())
        if t == _DOUBLE:
            return self.double()
        if t == _BIGINT:
            return self.bigint()
        if t in (_ONE_BYTE, _TWO_BYTE, _UTF8):
            return self.string(t)
        if t == _REF:
            ref = self.varint()
            if ref >= len(self.objects):
                raise self.fail(f"reference to object {ref}, only {len(self.objects)} read")
            return self.objects[ref]
        if t == _OBJECT:
            return self.object()
        if t == _DENSE:
            return self.dense_array()
        if t == _SPARSE:
            return self.sparse_array()
        if t == _DATE:
            return self.register(self.date(self.double()))
        if t == _REGEXP:
            return self.regexp()
        if t == _MAP:
            return self.map()
        if t == _SET:
            return self.set()
        if t == _ARRAY_BUFFER:
            return self.array_buffer()
        if t in _BOXED:
            raise _unsupported(_BOXED[t])
        raise self.fail(f"unknown tag 0x{t:02x}")

    def double(self) -> float:
        (x,) = struct.unpack("<d", self.take(8))
        return float(x)

    def bigint(self) -> int:
        bitfield = self.varint()
        magnitude = int.from_bytes(self.take(bitfield >> 1), "little")
        return -magnitude if bitfield & 1 else magnitude

    def string(self, t: int) -> str:
        raw = self.take(self.varint())
        if t == _ONE_BYTE:
            return raw.decode("latin-1")
        if t == _TWO_BYTE:
            return raw.decode("utf-16-le", "surrogatepass")
        return raw.decode("utf-8", "replace")

    def key(self) -> str:
        t = self.tag()
        if t in (_ONE_BYTE, _TWO_BYTE, _UTF8):
            return self.string(t)
        if t in (_INT32, _UINT32, _DOUBLE):
            return _js_number_text(self._value(t))
        raise self.fail(f"object key of tag 0x{t:02x}")

    def properties(self, end: int, into: dict[str, Any]) -> int:
        count = 0
        while self.peek_tag() != end:
            k = self.key()
            into[k] = self.value()
            count += 1
        self.tag()
        return count

    def object(self) -> dict[str, Any]:
        obj: dict[str, Any] = self.register({})
        count = self.properties(_END_OBJECT, obj)
        if self.varint() != count:
            raise self.fail("object property count mismatch")
        return obj

    def dense_array(self) -> list[Any]:
        items: list[Any] = self.register([])
        for _ in range(self.varint()):
            if self.peek_tag() == _HOLE:
                self.tag()
                items.append(UNDEFINED)
            else:
                items.append(self.value())
        extra: dict[str, Any] = {}
        self.properties(_END_DENSE, extra)
        self.varint(), self.varint()
        self.array_extras(items, extra)
        return items

    def sparse_array(self) -> list[Any]:
        length = self.varint()
        items: list[Any] = self.register([])
        if length > 1_000_000:
            raise _unsupported(f"sparse array of length {length}")
        items.extend([UNDEFINED] * length)
        extra: dict[str, Any] = {}
        self.properties(_END_SPARSE, extra)
        self.varint(), self.varint()
        self.array_extras(items, extra)
        return items

    def array_extras(self, items: list[Any], extra: dict[str, Any]) -> None:
        for k, v in extra.items():
            if not (_INDEX.fullmatch(k) and int(k) < len(items)):
                raise _unsupported(f"array with a non-index property {k!r}")
            items[int(k)] = v

    def date(self, ms: float) -> datetime:
        if math.isnan(ms):
            raise _unsupported("Invalid Date")
        try:
            return _EPOCH + timedelta(milliseconds=ms)
        except OverflowError:
            raise _unsupported(f"Date outside Python's years 1-9999 ({ms} ms since 1970)") from None

    def regexp(self) -> JsRegExp:
        source = self.string(self.tag())
        bits = self.varint()
        flags = "".join(letter for letter, bit in _REGEXP_FLAGS if bits & bit)
        return self.register(JsRegExp(source, flags))  # type: ignore[no-any-return]

    def map(self) -> JsMap:
        result: JsMap = self.register(JsMap())
        count = 0
        while self.peek_tag() != _END_MAP:
            k, v = self.value(), self.value()
            _hashable(k, "Map key")
            result[k] = v
            count += 2
        self.tag()
        if self.varint() != count or len(result) * 2 != count:
            raise _unsupported("Map whose keys are equal in Python (1 and 1n, or true and 1n)")
        return result

    def set(self) -> set[Any]:
        result: set[Any] = self.register(set())
        count = 0
        while self.peek_tag() != _END_SET:
            item = self.value()
            _hashable(item, "Set member")
            result.add(item)
            count += 1
        self.tag()
        if self.varint() != count or len(result) != count:
            raise _unsupported("Set whose members are equal in Python (1 and 1n, or true and 1n)")
        return result

    def array_buffer(self) -> Any:
        data = self.take(self.varint())
        index = len(self.objects)
        self.register(bytearray(data))
        if self.peek_tag() != _VIEW:
            return self.objects[index]
        self.tag()
        subtag = self.byte()
        offset, length = self.varint(), self.varint()
        self.varint()  # flags (format 14+)
        if subtag not in _VIEWS:
            raise self.fail(f"unknown typed-array subtag 0x{subtag:02x}")
        name, code = _VIEWS[subtag]
        chunk = bytes(data[offset : offset + length])
        if len(chunk) != length:
            raise self.fail(f"{name} outside its buffer")
        if subtag == ord("B"):
            view: Any = chunk
        elif subtag == ord("C"):
            view = Uint8ClampedArray(chunk)
        elif code is None:
            raise _unsupported(name)
        else:
            view = array.array(code)
            view.frombytes(chunk)
        return self.register(view)


def _hashable(value: Any, what: str) -> None:
    try:
        hash(value)
    except TypeError:
        raise _unsupported(f"{what} of type {type(value).__name__} (not hashable in Python)") from None


def _js_number_text(x: float) -> str:
    """A number property key as JavaScript writes it (V8 writes array-index keys as numbers)."""
    if x.is_integer() and abs(x) < 1e21:
        return str(int(x))
    return repr(x)


def v8_loads(data: bytes) -> Any:
    """Decode one V8-serialised value (as Deno KV stores it)."""
    if data[:1] != b"\xff":
        raise InvalidValueError(f"Invalid V8-serialised value: starts with {data[:1]!r}, not the version tag 0xFF")
    reader = _Reader(bytes(data))
    reader.pos = 1
    version = reader.varint()
    if version < 13 or version > FORMAT_VERSION:
        raise reader.fail(f"format version {version} (this codec reads 13 to {FORMAT_VERSION})")
    value = reader.value()
    if reader.pos != len(reader.data):
        raise reader.fail(f"{len(reader.data) - reader.pos} bytes after the value")
    return value


# --------------------------------------------------------------------------------------------- writing


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray(HEADER)
        self.ids: dict[int, int] = {}  # id(python object) -> V8 object id, for shared and cyclic containers
        self.next_id = 0
        self.keep: list[Any] = []  # keeps the objects of self.ids alive while writing
        self.depth = 0

    def varint(self, n: int) -> None:
        while n >= 0x80:
            self.out.append((n & 0x7F) | 0x80)
            n >>= 7
        self.out.append(n)

    def new_id(self, obj: Any | None = None) -> None:
        if obj is not None:
            self.ids[id(obj)] = self.next_id
            self.keep.append(obj)
        self.next_id += 1

    def value(self, v: Any) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise InvalidValueError(f"Value is nested deeper than {_MAX_DEPTH} (or contains itself)")
        try:
            self._value(v)
        finally:
            self.depth -= 1

    def _value(self, v: Any) -> None:
        out = self.out
        if v is None:
            out.append(_NULL)
        elif v is UNDEFINED:
            out.append(_UNDEFINED)
        elif isinstance(v, bool):
            out.append(_TRUE if v else _FALSE)
        elif isinstance(v, int):
            self.bigint(v)
        elif isinstance(v, float):
            self.number(v)
        elif isinstance(v, str):
            self.string(v)
        elif id(v) in self.ids:
            out.append(_REF)
            self.varint(self.ids[id(v)])
        elif isinstance(v, Uint8ClampedArray):
            self.view(ord("C"), bytes(v), len(v))
        elif isinstance(v, bytes):
            self.view(ord("B"), v, len(v))
        elif isinstance(v, array.array):
            self.view(_TYPECODE_SUBTAG.get(v.typecode) or self.bad_typecode(v), v.tobytes(), len(v) * v.itemsize)
        elif isinstance(v, bytearray):
            self.new_id(v)
            out.append(_ARRAY_BUFFER)
            self.varint(len(v))
            out += v
        elif isinstance(v, list):
            self.list(v)
        elif isinstance(v, JsMap):
            self.map(v)
        elif isinstance(v, dict):
            self.object(v)
        elif isinstance(v, set | frozenset):
            self.set(v)
        elif isinstance(v, datetime):
            self.date(v)
        elif isinstance(v, JsRegExp):
            self.regexp(v)
        elif isinstance(v, KvU64):
            raise InvalidValueError("A KvU64 can only be a whole value, not inside a list, dict, Map or Set")
        else:
            raise InvalidValueError(
                f"Unsupported value type {type(v).__name__} for a V8-serialised value: expected None, UNDEFINED, "
                "bool, int, float, str, bytes, bytearray, array.array, list, dict, JsMap, set, datetime or JsRegExp"
            )

    def bad_typecode(self, v: array.array[Any]) -> int:
        raise InvalidValueError(f"array.array of typecode {v.typecode!r} has no JavaScript typed array")

    def number(self, x: float) -> None:
        if x.is_integer() and -(2**31) <= x < 2**31 and not (x == 0 and math.copysign(1.0, x) < 0):
            n = int(x)
            self.out.append(_INT32)
            self.varint(n << 1 if n >= 0 else ((-n) << 1) - 1)  # zigzag
        else:
            self.out.append(_DOUBLE)
            self.out += struct.pack("<d", x)

    def bigint(self, n: int) -> None:
        magnitude = abs(n)
        size = (magnitude.bit_length() + 63) // 64 * 8
        self.out.append(_BIGINT)
        self.varint(size << 1 | (n < 0))
        self.out += magnitude.to_bytes(size, "little")

    def string(self, s: str) -> None:
        try:
            raw = s.encode("latin-1")
        except UnicodeEncodeError:
            raw = s.encode("utf-16-le", "surrogatepass")
            # V8 aligns two-byte string data to an even offset with a padding tag before the string's tag
            if (len(self.out) + 1 + _varint_size(len(raw))) & 1:
                self.out.append(_PADDING)
            self.out.append(_TWO_BYTE)
        else:
            self.out.append(_ONE_BYTE)
        self.varint(len(raw))
        self.out += raw

    def key(self, k: Any) -> None:
        if not isinstance(k, str):
            raise InvalidValueError(f"Dict keys in values must be str, got {type(k).__name__} ({k!r}); use JsMap")
        if _INDEX.fullmatch(k) and int(k) <= _MAX_INDEX:
            self.number(float(int(k)))  # V8 writes array-index keys as numbers
        else:
            self.string(k)

    def object(self, obj: dict[Any, Any]) -> None:
        self.new_id(obj)
        self.out.append(_OBJECT)
        for k, v in obj.items():
            self.key(k)
            self.value(v)
        self.out.append(_END_OBJECT)
        self.varint(len(obj))

    def list(self, items: list[Any]) -> None:
        self.new_id(items)
        self.out.append(_DENSE)
        self.varint(len(items))
        for item in items:
            self.value(item)
        self.out.append(_END_DENSE)
        self.varint(0)
        self.varint(len(items))

    def map(self, m: JsMap) -> None:
        self.new_id(m)
        self.out.append(_MAP)
        for k, v in m.items():
            self.value(k)
            self.value(v)
        self.out.append(_END_MAP)
        self.varint(2 * len(m))

    def set(self, s: set[Any] | frozenset[Any]) -> None:
        self.new_id(s)
        self.out.append(_SET)
        for item in s:
            self.value(item)
        self.out.append(_END_SET)
        self.varint(len(s))

    def date(self, d: datetime) -> None:
        if d.tzinfo is None:
            raise InvalidValueError(f"A datetime must be timezone-aware to become a JavaScript Date, got {d!r}")
        delta = d - _EPOCH
        if delta % _MS:
            raise InvalidValueError(f"A JavaScript Date holds whole milliseconds, got {d.isoformat()}")
        self.new_id()
        self.out.append(_DATE)
        self.out += struct.pack("<d", float(delta // _MS))

    def regexp(self, r: JsRegExp) -> None:
        bits = 0
        for letter in r.flags:
            bit = dict(_REGEXP_FLAGS).get(letter)
            if bit is None or bits & bit:
                raise InvalidValueError(f"Invalid RegExp flags {r.flags!r}")
            bits |= bit
        self.new_id()
        self.out.append(_REGEXP)
        self.string(r.source)
        self.varint(bits)

    def view(self, subtag: int, data: bytes, length: int) -> None:
        self.new_id()  # the buffer is written (and numbered) before the view
        self.out.append(_ARRAY_BUFFER)
        self.varint(len(data))
        self.out += data
        self.new_id()
        self.out.append(_VIEW)
        self.out.append(subtag)
        self.varint(0)
        self.varint(length)
        self.varint(0)


def _varint_size(n: int) -> int:
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def v8_dumps(value: Any) -> bytes:
    """Encode a value as V8 serialises it for Deno KV (format version 16, as Deno 2.x writes)."""
    writer = _Writer()
    try:
        writer.value(value)
    except RecursionError:
        raise InvalidValueError("Value is nested too deeply (or contains itself)") from None
    return bytes(writer.out)
