"""Test vectors for the KV conformance suite, taken from the semantics document and from the real Deno.

Every cursor string and key order below was produced by Deno 2.9.6 (`deno run --unstable-kv`, `Deno.openKv(":memory:")`),
listing one entry per call with `limit: 1` and resuming from the returned cursor. Python `float` is JS number, `int` is bigint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from queue_impls.kv import Key, Kv
from queue_impls.kv.types import Consistency, RawEntry, ReadRange
from queue_impls.meter import CountingKv

# Encoded keys (hex). The first six are the semantics document's examples; all but -NaN were checked on Deno 2.9.6
# (listing under prefix () returns the whole encoded key as the cursor). V8 turns a negative NaN into a positive one
# before it reaches the codec, so the -NaN vector comes from the Rust codec's rule (semantics doc), not from a run.
ENCODING_VECTORS: list[tuple[Key, str]] = [
    ((-1,), "13fe"),
    ((256,), "160100"),
    ((0.0,), "218000000000000000"),
    ((-0.0,), "217fffffffffffffff"),
    ((1.0,), "21bff0000000000000"),
    (("a\0b",), "026100ff6200"),
    ((0,), "14"),
    ((1,), "1501"),
    ((-255,), "1300"),
    ((-256,), "12feff"),
    ((2**64 - 1,), "1cffffffffffffffff"),
    ((2**64,), "1d09010000000000000000"),
    ((-(2**64),), "0bf6feffffffffffffffff"),
    ((b"\x00\x01",), "0100ff0100"),
    ((False,), "26"),
    ((True,), "27"),
    ((float("inf"),), "21fff0000000000000"),
    ((float("-inf"),), "21000fffffffffffff"),
    ((float("nan"),), "21fff8000000000000"),
    ((-float("nan"),), "210007ffffffffffff"),
    (("u", "bb"), "02750002626200"),
    ((), ""),
]

# Keys written under the prefix ("u",) (plus ("v", 1) and ("w", False) outside it), in Deno's order under ("u",).
U_KEYS_IN_DENO_ORDER: list[Key] = [
    ("u", b"\x00\x01"),
    ("u", "a"),
    ("u", "a\0b"),
    ("u", "bb"),
    ("u", "c", 1),
    ("u", -(2**70)),
    ("u", -1),
    ("u", 256),
    ("u", 2**70),
    ("u", -0.0),
    ("u", 0.0),
    ("u", 2.5),
    ("u", True),
]
OTHER_KEYS: list[Key] = [("v", 1), ("w", False)]

# Cursor after each entry of list(prefix=("u",)), forward: one per key of U_KEYS_IN_DENO_ORDER.
CURSORS_PREFIX_U = [
    "AQD_AQA=",
    "AmEA",
    "AmEA_2IA",
    "AmJiAA==",
    "AmMAFQE=",
    "C_a___________8=",
    "E_4=",
    "FgEA",
    "HQlAAAAAAAAAAAA=",
    "IX__________",
    "IYAAAAAAAAAA",
    "IcAEAAAAAAAA",
    "Jw==",
]
# list(start=("u", "a"), end=("u", "c")): common prefix of the two encoded bounds is 02 75 00 02.
CURSORS_START_END_U_A_C = ["YQA=", "YQD_YgA=", "YmIA"]
# list(start=("u",), end=("w",)): common prefix is the single byte 02; covers every key but ("w", False).
CURSORS_START_END_U_W = [
    "dQABAP8BAA==",
    "dQACYQA=",
    "dQACYQD_YgA=",
    "dQACYmIA",
    "dQACYwAVAQ==",
    "dQAL9r___________w==",
    "dQAT_g==",
    "dQAWAQA=",
    "dQAdCUAAAAAAAAAAAA==",
    "dQAhf_________8=",
    "dQAhgAAAAAAAAAA=",
    "dQAhwAQAAAAAAAA=",
    "dQAn",
    "dgAVAQ==",
]
# list(prefix=("u",), start=("u", 0.0)): the last three keys.
CURSORS_PREFIX_START = ["IYAAAAAAAAAA", "IcAEAAAAAAAA", "Jw=="]
# list(prefix=()): the full encoded key of every entry.
CURSORS_EMPTY_PREFIX = [
    "AnUAAQD_AQA=",
    "AnUAAmEA",
    "AnUAAmEA_2IA",
    "AnUAAmJiAA==",
    "AnUAAmMAFQE=",
    "AnUAC_a___________8=",
    "AnUAE_4=",
    "AnUAFgEA",
    "AnUAHQlAAAAAAAAAAAA=",
    "AnUAIX__________",
    "AnUAIYAAAAAAAAAA",
    "AnUAIcAEAAAAAAAA",
    "AnUAJw==",
    "AnYAFQE=",
    "AncAJg==",
]


def spy_reads(kv: Kv, monkeypatch: pytest.MonkeyPatch) -> list[list[ReadRange]]:
    """Count the store's snapshot reads (one per round trip) by wrapping the instance's primitive.

    On a CountingKv, the innermost store's: the wrapper's untraced get reads through it without its own primitive.
    """
    while isinstance(kv, CountingKv):
        kv = kv.inner
    calls: list[list[ReadRange]] = []
    real = kv._snapshot_read

    async def counting(ranges: Sequence[ReadRange], consistency: Consistency) -> list[list[RawEntry]]:
        calls.append(list(ranges))
        return await real(ranges, consistency)

    monkeypatch.setattr(kv, "_snapshot_read", counting)
    return calls


async def fill(kv: Kv, keys: Sequence[Key], value: Any = 1) -> None:
    """Write keys in commits of at most 1000 mutations."""
    for i in range(0, len(keys), 1000):
        op = kv.atomic()
        for key in keys[i : i + 1000]:
            op.set(key, value)
        assert (await op.commit()).ok


async def expect_error(case: str, error: type[Exception], message: str, call: Callable[[], Any]) -> None:
    """``call()`` (awaited if it returns an awaitable) raises ``error`` whose text contains ``message``.

    Used to run a table of error cases in one test (one store per table, not per case) with the case in every failure.
    """
    try:
        result = call()
        if inspect.isawaitable(result):
            await result
    except error as exc:
        assert message in str(exc), f"{case}: {type(exc).__name__}({exc}) lacks {message!r}"
        return
    except Exception as exc:
        raise AssertionError(f"{case}: expected {error.__name__}({message!r}), got {exc!r}") from exc
    raise AssertionError(f"{case}: did not raise {error.__name__}({message!r})")
