"""Bad arguments to every public entry point of the KV layer: a typed error, one line, and nothing written.

Each table maps a public function to the bad calls it is given; every store in tests/backends.py runs them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from queue_impls.kv import (
    BackendError,
    CursorOutOfBoundsError,
    InvalidArgumentError,
    InvalidCheckError,
    InvalidCursorError,
    InvalidKeyError,
    InvalidLimitError,
    InvalidMutationError,
    InvalidSelectorError,
    InvalidValueError,
    KeyTooLargeError,
    Kv,
    KvError,
    KvU64,
    MutationTypeError,
    TooManyChecksError,
    TooManyMutationsError,
    TooManyRangesError,
    TotalKeySizeError,
    TotalMutationSizeError,
    ValueTooLargeError,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
    open_kv,
)
from queue_impls.kv.errors import short_repr

Call = Callable[[Kv], Any]
Case = tuple[str, Call, type[Exception]]

BIG_KEY = ("x" * 2100,)
HUGE_INT = 10**5000


def deep(levels: int) -> Any:
    value: Any = 0
    for _ in range(levels):
        value = [value]
    return value


BAD_KEYS: list[tuple[str, Any, type[Exception]]] = [
    ("None", None, InvalidKeyError),
    ("a str", "abc", InvalidKeyError),
    ("an int", 1, InvalidKeyError),
    ("bytes", b"ab", InvalidKeyError),
    ("a dict", {"a": 1}, InvalidKeyError),
    ("part None", ("a", None), InvalidKeyError),
    ("part object", ("a", object()), InvalidKeyError),
    ("part complex", ("a", 1j), InvalidKeyError),
    ("part list", ("a", [1]), InvalidKeyError),
    ("part tuple", ("a", (1,)), InvalidKeyError),
    ("bigint part over 255 bytes", ("a", 2**2100), InvalidKeyError),
    ("huge int part", ("a", -HUGE_INT), InvalidKeyError),
    ("lone surrogate", ("\ud800",), InvalidKeyError),
    ("too large", BIG_KEY, KeyTooLargeError),
]
BAD_WRITE_KEYS = [*BAD_KEYS, ("empty", (), InvalidKeyError)]
BAD_CONSISTENCY: list[tuple[str, Any]] = [("bogus", "bogus"), ("empty", ""), ("an int", 1), ("upper", "STRONG")]
BAD_VALUES: list[tuple[str, Any, type[Exception]]] = [
    ("object", object(), InvalidValueError),
    ("set", {1, 2}, InvalidValueError),
    ("tuple", (1, 2), InvalidValueError),
    ("int dict key", {1: 2}, InvalidValueError),
    ("tuple after bytes", [b"x", (7, 8)], InvalidValueError),
    ("pair after bytes", [b"x", ("b", "AAAA")], InvalidValueError),
    ("tuple beside bytes in a dict", {"blob": b"\x00", "pair": (3,)}, InvalidValueError),
    ("int over 4300 digits", HUGE_INT, InvalidValueError),
    ("int over 4300 digits after bytes", [b"", HUGE_INT], InvalidValueError),
    ("nested 979 deep", deep(979), InvalidValueError),
    ("bytearray", bytearray(b"x"), InvalidValueError),
    ("function", len, InvalidValueError),
    ("too large", "x" * 70_000, ValueTooLargeError),
]
BAD_EXPIRE_IN: list[tuple[str, Any, type[Exception]]] = [
    ("negative", -1, InvalidMutationError),
    ("fraction", 1.5, InvalidMutationError),
    ("bool", True, InvalidMutationError),
    ("str", "5", InvalidMutationError),
    ("NaN", float("nan"), InvalidMutationError),
    ("inf", float("inf"), InvalidMutationError),
    ("2**53 (Deno: too large)", 2**53, InvalidMutationError),
    ("2**63", 2**63, InvalidMutationError),
    ("1e306", 1e306, InvalidMutationError),
    ("int over 4300 digits", HUGE_INT, InvalidMutationError),
]
BAD_U64: list[tuple[str, Any]] = [
    ("negative", -1),
    ("2**64", 2**64),
    ("float", 1.5),
    ("str", "1"),
    ("bool", True),
    ("None", None),
    ("huge", HUGE_INT),
]


def listing(**options: Any) -> Call:
    return lambda kv: kv.list(**options).collect()


def many_sets(count: int, key: Callable[[int], Any], value: Any) -> Call:
    def call(kv: Kv) -> Any:
        op = kv.atomic()
        for i in range(count):
            op.set(key(i), value)
        return op.commit()

    return call


def many_checks(count: int) -> Call:
    def call(kv: Kv) -> Any:
        op = kv.atomic()
        for i in range(count):
            op.check(("c", i), None)
        return op.commit()

    return call


def many_deletes(count: int) -> Call:
    def call(kv: Kv) -> Any:
        op = kv.atomic()
        for i in range(count):
            op.delete(("d", i))
        return op.commit()

    return call


def _generator_of_keys() -> Any:
    return (k for k in [("a",)])


KV_CASES: dict[str, list[Case]] = {
    "get": [
        *((f"key {name}", lambda kv, k=k: kv.get(k), err) for name, k, err in BAD_KEYS),
        *(
            (f"consistency {name}", lambda kv, c=c: kv.get(("a",), consistency=c), InvalidArgumentError)
            for name, c in BAD_CONSISTENCY
        ),
    ],
    "get_many": [
        ("None", lambda kv: kv.get_many(None), InvalidArgumentError),
        ("a str", lambda kv: kv.get_many("abc"), InvalidArgumentError),
        ("an int", lambda kv: kv.get_many(5), InvalidArgumentError),
        ("a generator", lambda kv: kv.get_many(_generator_of_keys()), InvalidArgumentError),
        ("a dict", lambda kv: kv.get_many({("a",): 1}), InvalidArgumentError),
        ("11 keys", lambda kv: kv.get_many([("a",)] * 11), TooManyRangesError),
        *((f"key {name}", lambda kv, k=k: kv.get_many([("a",), k]), err) for name, k, err in BAD_KEYS),
        *(
            (f"consistency {name}", lambda kv, c=c: kv.get_many([("a",)], consistency=c), InvalidArgumentError)
            for name, c in BAD_CONSISTENCY
        ),
    ],
    "list": [
        ("prefix an int", listing(prefix=1), InvalidKeyError),
        ("prefix a str", listing(prefix="abc"), InvalidKeyError),
        ("prefix bytes", listing(prefix=b"abc"), InvalidKeyError),
        ("prefix part object", listing(prefix=("a", object())), InvalidKeyError),
        ("prefix too large", listing(prefix=BIG_KEY), KeyTooLargeError),
        ("start/end ints", listing(start=1, end=2), InvalidKeyError),
        ("no selector", listing(), InvalidSelectorError),
        ("start only", listing(start=("a",)), InvalidSelectorError),
        ("end only", listing(end=("a",)), InvalidSelectorError),
        ("prefix, start and end", listing(prefix=("a",), start=("a", 1), end=("a", 2)), InvalidSelectorError),
        ("start outside the prefix", listing(prefix=("a",), start=("b",)), InvalidSelectorError),
        ("start equal to the prefix", listing(prefix=("a",), start=("a",)), InvalidSelectorError),
        ("end outside the prefix", listing(prefix=("a",), end=("b",)), InvalidSelectorError),
        ("start after end", listing(start=("b",), end=("a",)), InvalidSelectorError),
        *(
            (f"limit {short_repr(v)}", listing(prefix=(), limit=v), InvalidLimitError)
            for v in (0, -1, 1.5, True, "3", -HUGE_INT, float("nan"), float("inf"))
        ),
        *(
            (f"batch_size {short_repr(v)}", listing(prefix=(), batch_size=v), InvalidLimitError)
            for v in (0, -2, 1.5, False, "x", 1001, 2**70)
        ),
        ("cursor an int", listing(prefix=(), cursor=123), InvalidCursorError),
        ("cursor bytes", listing(prefix=(), cursor=b"AA=="), InvalidCursorError),
        ("cursor not base64", listing(prefix=(), cursor="!!"), InvalidCursorError),
        ("cursor unpadded", listing(prefix=(), cursor="AA"), InvalidCursorError),
        ("cursor non-canonical", listing(prefix=(), cursor="AB=="), InvalidCursorError),
        ("cursor below start", listing(prefix=("a",), start=("a", 3), cursor="FAA="), CursorOutOfBoundsError),
        *(
            (f"consistency {name}", listing(prefix=(), consistency=c), InvalidArgumentError)
            for name, c in BAD_CONSISTENCY
        ),
        ("cursor before iteration", lambda kv: kv.list(prefix=()).cursor, InvalidCursorError),
    ],
    "set": [
        *((f"key {name}", lambda kv, k=k: kv.set(k, 1), err) for name, k, err in BAD_WRITE_KEYS),
        *((f"value {name}", lambda kv, v=v: kv.set(("a",), v), err) for name, v, err in BAD_VALUES),
        *((f"expire_in {name}", lambda kv, e=e: kv.set(("a",), 1, expire_in=e), err) for name, e, err in BAD_EXPIRE_IN),
    ],
    "delete": [(f"key {name}", lambda kv, k=k: kv.delete(k), err) for name, k, err in BAD_WRITE_KEYS],
    "atomic().check": [
        *(
            (f"key {name}", lambda kv, k=k: kv.atomic().check(k, None).commit(), err)
            for name, k, err in BAD_WRITE_KEYS
            if name not in ("bigint part over 255 bytes", "huge int part")
        ),
        # Deno: a check key that cannot be encoded is an "Invalid check"
        (
            "bigint key part over 255 bytes",
            lambda kv: kv.atomic().check(("a", 2**2100), None).commit(),
            InvalidCheckError,
        ),
        ("huge int key part", lambda kv: kv.atomic().check(("a", HUGE_INT), None).commit(), InvalidCheckError),
        ("versionstamp not hex", lambda kv: kv.atomic().check(("a",), "zz").commit(), InvalidCheckError),
        ("versionstamp 19 hex", lambda kv: kv.atomic().check(("a",), "0" * 19).commit(), InvalidCheckError),
        ("versionstamp an int", lambda kv: kv.atomic().check(("a",), 5).commit(), InvalidCheckError),
        ("versionstamp bytes", lambda kv: kv.atomic().check(("a",), b"0" * 20).commit(), InvalidCheckError),
        ("no versionstamp", lambda kv: kv.atomic().check(("a",)), InvalidCheckError),
        ("101 checks", many_checks(101), TooManyChecksError),
    ],
    "atomic().set": [
        *((f"key {name}", lambda kv, k=k: kv.atomic().set(k, 1).commit(), err) for name, k, err in BAD_WRITE_KEYS),
        *((f"value {name}", lambda kv, v=v: kv.atomic().set(("a",), v).commit(), err) for name, v, err in BAD_VALUES),
        *(
            (f"expire_in {name}", lambda kv, e=e: kv.atomic().set(("a",), 1, expire_in=e).commit(), err)
            for name, e, err in BAD_EXPIRE_IN
        ),
        ("1001 mutations", many_sets(1001, lambda i: ("m", i), 1), TooManyMutationsError),
        ("total mutation size", many_sets(13, lambda i: ("m", i), "y" * 65_000), TotalMutationSizeError),
        ("total key size", many_sets(41, lambda i: ("k" * 2000, i), 1), TotalKeySizeError),
    ],
    "atomic().delete": [
        *((f"key {name}", lambda kv, k=k: kv.atomic().delete(k).commit(), err) for name, k, err in BAD_WRITE_KEYS),
        ("1001 mutations", many_deletes(1001), TooManyMutationsError),
    ],
    "atomic().sum/min/max": [
        *(
            (
                f"{kind} operand {name}",
                lambda kv, kind=kind, v=v: getattr(kv.atomic(), kind)(("n",), v),
                InvalidMutationError,
            )
            for kind in ("sum", "min", "max")
            for name, v in BAD_U64
        ),
        *((f"sum key {name}", lambda kv, k=k: kv.atomic().sum(k, 1).commit(), err) for name, k, err in BAD_WRITE_KEYS),
        ("sum on a stored str", lambda kv: kv.atomic().sum(("kept",), 1).commit(), MutationTypeError),
    ],
}

SYNC_CASES: dict[str, list[tuple[str, Callable[[], Any], type[Exception]]]] = {
    "KvU64": [(f"{name}", lambda v=v: KvU64(v), InvalidValueError) for name, v in BAD_U64 if name != "None"]
    + [("None", lambda: KvU64(None), InvalidValueError)],  # type: ignore[arg-type]
    "encode_key": [
        (f"{name}", lambda k=k: encode_key(k), InvalidKeyError)
        for name, k, err in BAD_KEYS
        if (err is InvalidKeyError and not isinstance(k, tuple))
        or name in ("part None", "part object", "part complex", "bigint part over 255 bytes")
    ],
    "decode_key": [
        ("truncated bigint", lambda: decode_key(b"\x1d"), InvalidKeyError),
        ("truncated int", lambda: decode_key(b"\x16\x01"), InvalidKeyError),
        ("truncated float", lambda: decode_key(b"\x21\x00"), InvalidKeyError),
        ("unterminated str", lambda: decode_key(b"\x02abc"), InvalidKeyError),
        ("bad UTF-8", lambda: decode_key(b"\x02\xff\x00"), InvalidKeyError),
        ("unknown tag", lambda: decode_key(b"\x99"), InvalidKeyError),
        ("a str", lambda: decode_key("abc"), InvalidKeyError),  # type: ignore[arg-type]
        ("None", lambda: decode_key(None), InvalidKeyError),  # type: ignore[arg-type]
    ],
    "encode_value": [
        (name, lambda v=v: encode_value(v), InvalidValueError)
        for name, v, err in BAD_VALUES
        if err is InvalidValueError
    ],
    "decode_value": [
        ("bad JSON", lambda: decode_value(b"J{", 1), InvalidValueError),
        ("bad tagged JSON", lambda: decode_value(b"T{", 1), InvalidValueError),
        ("bad tag", lambda: decode_value(b'T["q",1]', 1), InvalidValueError),
        ("bad tag shape", lambda: decode_value(b"T[1]", 1), InvalidValueError),
        ("bad base64", lambda: decode_value(b'T["b","!"]', 1), InvalidValueError),
        ("bad u64", lambda: decode_value(b'T["u","-5"]', 1), InvalidValueError),
        ("unknown format", lambda: decode_value(b"Z", 1), InvalidValueError),
    ],
}

OPEN_CASES: list[tuple[str, Any, dict[str, Any], type[Exception]]] = [
    ("not a str", 123, {}, InvalidArgumentError),
    ("empty", "", {}, InvalidArgumentError),
    ("unknown scheme", "ftp:x", {}, InvalidArgumentError),
    ("memory with a path", "memory:x", {}, InvalidArgumentError),
    ("unknown option", "memory:", {"timeout": 1}, InvalidArgumentError),
    ("sqlite unknown option", "sqlite::memory:", {"request_timeout": 1}, InvalidArgumentError),
    ("sqlite in a missing directory", "sqlite:/nonexistent-dir/sub/kv.db", {}, BackendError),
    ("deno without a path", "deno:", {}, InvalidArgumentError),
    ("deno with a URL", "deno:ftp://x", {}, InvalidArgumentError),
    ("deno request_timeout 0", "deno::memory:", {"request_timeout": 0}, InvalidArgumentError),
    ("deno request_timeout str", "deno::memory:", {"request_timeout": "5"}, InvalidArgumentError),
]


def case_counts() -> dict[str, int]:
    """How many bad calls each public function is given (printed into the docs' table by hand, checked here)."""
    counts = {name: len(cases) for name, cases in KV_CASES.items()}
    counts.update({name: len(cases) for name, cases in SYNC_CASES.items()})
    counts["open_kv"] = len(OPEN_CASES)
    return counts


async def raised(call: Callable[[], Any]) -> BaseException | None:
    try:
        result = call()
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        return exc
    return None


def check_raised(where: str, exc: BaseException | None, expected: type[Exception]) -> None:
    assert exc is not None, f"{where}: accepted"
    assert isinstance(exc, expected) and isinstance(exc, KvError), f"{where}: {type(exc).__name__}: {exc}"
    message = str(exc)
    assert message and "\n" not in message and len(message) < 600, f"{where}: {message!r}"


async def snapshot(kv: Kv) -> list[Any]:
    return [(e.key, e.value, e.versionstamp) for e in await kv.list(prefix=()).collect()]


@pytest.mark.parametrize("function", sorted(KV_CASES))
async def test_bad_arguments_are_typed_errors_and_write_nothing(kv: Kv, function: str) -> None:
    await kv.set(("kept",), "a str")
    await kv.set(("a", 1), [b"x", 1])
    before = await snapshot(kv)
    for name, call, expected in KV_CASES[function]:
        check_raised(f"{function}({name}) on {kv.name}", await raised(lambda call=call: call(kv)), expected)
    assert await snapshot(kv) == before


@pytest.mark.parametrize("function", sorted(SYNC_CASES))
def test_bad_arguments_to_the_codec_are_typed_errors(function: str) -> None:
    for name, call, expected in SYNC_CASES[function]:
        try:
            call()
        except Exception as exc:
            check_raised(f"{function}({name})", exc, expected)
        else:
            pytest.fail(f"{function}({name}): accepted")


@pytest.mark.deno
async def test_bad_arguments_to_open_kv_are_typed_errors() -> None:
    for name, url, options, expected in OPEN_CASES:
        check_raised(
            f"open_kv({name})", await raised(lambda url=url, options=options: open_kv(url, **options)), expected
        )


def test_every_public_function_has_bad_arguments() -> None:
    counts = case_counts()
    assert all(n >= 4 for n in counts.values()), counts
