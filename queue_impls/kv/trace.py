"""Trace events of a ``CountingKv``: one per call, with a key fingerprint and the caller's code site.

Fingerprint rule (docs/counting.md): a key part is kept verbatim when it reads as a name (a bool, or a str of
at most 40 letters, ``_``, ``-``, ``.``, ``:``); every other part (numbers, bytes, strings with a digit or any other
character, long strings) is a varying value and prints as ``?``. So ``("jobs", "6f1c...")`` -> ``("jobs", ?)``.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .codec import Key, KeyPart, decode_key
from .types import RawEntry

_NAME = re.compile(r"[A-Za-z_.:\-]{0,40}")

#: A function from a key to its fingerprint text; CountingKv(fingerprint=...) takes one.
Fingerprinter = Callable[[Key], str]


def is_varying(part: KeyPart) -> bool:
    """True when a key part is a value (an id, a number, a score) rather than a name."""
    if isinstance(part, bool):
        return False
    if isinstance(part, str):
        return _NAME.fullmatch(part) is None
    return True


def _render(part: KeyPart) -> str:
    if isinstance(part, str):
        return '"' + part + '"'
    return repr(part)


def key_fingerprint(key: Key) -> str:
    """``("jobs", ?)``: the key with its varying parts replaced by ``?``."""
    parts = ["?" if is_varying(p) else _render(p) for p in key]
    if len(parts) == 1:
        return f"({parts[0]},)"
    return "(" + ", ".join(parts) + ")"


def keys_fingerprint(keys: Sequence[Key], fingerprint: Fingerprinter = key_fingerprint) -> str:
    """Distinct key fingerprints in first-seen order, with a count when one repeats: ``("jobs", ?) x10``."""
    counts: dict[str, int] = {}
    for key in keys:
        fp = fingerprint(key)
        counts[fp] = counts.get(fp, 0) + 1
    return ", ".join(fp if n == 1 else f"{fp} x{n}" for fp, n in counts.items())


@dataclass(slots=True)
class TraceEvent:
    """One public call: what was asked, what came back, what it cost, and where in the caller's code."""

    #: Position in the trace, in the order calls started.
    index: int
    op: str
    #: get/set/delete: the key; get_many: the keys; list: the selector keys; commit: check then mutation keys.
    keys: tuple[Key, ...]
    fingerprint: str
    #: ``file:line`` of the first frame outside the KV library.
    site: str
    #: Serial-round-trip clock when the call started (calls in one concurrent wave share it).
    wave: int = 0
    round_trips: int = 0
    entries: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    duration_s: float = 0.0
    #: Name of the exception the call raised, if any.
    error: str | None = None
    #: Entries the store returned, as the backend gave them (encoded keys); see ``results``.
    raw_results: list[RawEntry] = field(default_factory=list, repr=False)

    @property
    def results(self) -> list[tuple[Key, Any]]:
        """Entries the store returned, as (key, value): what the N+1 detector follows (keys decoded on demand)."""
        return [(decode_key(raw.key), raw.value) for raw in self.raw_results]

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def label(self) -> str:
        """``get ("jobs", ?)``: op and fingerprint, the grouping key of reports."""
        return f"{self.op} {self.fingerprint}"


_LIBRARY_DIR = str(Path(__file__).resolve().parent) + os.sep
_SKIPPED = (_LIBRARY_DIR, str(Path(os.__file__).resolve().parent / "asyncio") + os.sep, "<frozen ")


_DISPLAY: dict[tuple[str, str], str] = {}


def _display_path(filename: str) -> str:
    """Relative to the working directory when the file is below it, else as Python knows it (cached)."""
    cwd = os.getcwd()
    shown = _DISPLAY.get((cwd, filename))
    if shown is None:
        try:
            rel = os.path.relpath(filename, cwd)
        except ValueError:  # another drive on Windows
            rel = ".."
        shown = _DISPLAY[cwd, filename] = filename if rel.startswith("..") else rel
    return shown


def caller_site(skip: int = 2) -> str:
    """``file:line`` of the nearest frame outside queue_impls/kv/ and asyncio's internals.

    When the whole stack is library code (a call made from inside queue_impls/kv/), the outermost library frame.
    """
    frame: FrameType | None = sys._getframe(skip)
    outermost: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith(_SKIPPED):
            return f"{_display_path(filename)}:{frame.f_lineno}"
        if filename.startswith(_LIBRARY_DIR):
            outermost = frame
        frame = frame.f_back
    if outermost is None:
        return "<unknown>:0"
    return f"{_display_path(outermost.f_code.co_filename)}:{outermost.f_lineno}"
