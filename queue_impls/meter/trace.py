"""Trace events of a ``CountingKv``: one per call, with a key fingerprint and the caller's code site.

Fingerprint rule (docs/counting.md): a key part is kept verbatim when it reads as a name (a bool, or a str of
at most 40 letters, ``_``, ``-``, ``.``, ``:``); every other part (numbers, bytes, strings with a digit or any other
character, long strings) is a varying value and prints as ``?``. So ``("jobs", "6f1c...")`` -> ``("jobs", ?)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import sysconfig
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from ..kv.codec import Key, KeyPart, decode_key, decode_value
from ..kv.types import RawEntry, StoredValue

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
    #: ``file:line`` of the first frame outside the KV layer, asyncio and the standard library (docs/counting.md).
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
    #: Entries the store returned, as the backend gave them (encoded keys; a value may be a ``StoredValue``, left
    #: as stored); see ``results``.
    raw_results: list[RawEntry] = field(default_factory=list, repr=False)

    @property
    def results(self) -> list[tuple[Key, Any]]:
        """Entries the store returned, as (key, value): what the N+1 detector follows (keys and values left as stored
        decoded on demand)."""
        return [
            (decode_key(raw.key), decode_value(*raw.value) if type(raw.value) is StoredValue else raw.value)
            for raw in self.raw_results
        ]

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def label(self) -> str:
        """``get ("jobs", ?)``: op and fingerprint, the grouping key of reports."""
        return f"{self.op} {self.fingerprint}"


#: The KV layer and the meter around it: code a call site looks through (the job queue is a caller like any other).
_LIBRARY_DIRS = tuple(str(Path(__file__).resolve().parent.parent / room) + os.sep for room in ("kv", "meter"))


def _dirs(*paths: str) -> tuple[str, ...]:
    """Each directory as given and resolved, with a trailing separator (co_filename may be either)."""
    return tuple(dict.fromkeys(os.path.join(p, "") for path in paths if path for p in (path, os.path.realpath(path))))


_PATHS = sysconfig.get_paths()
_STDLIB = _dirs(_PATHS["stdlib"], _PATHS["platstdlib"], os.path.dirname(os.__file__))
_THIRD_PARTY = (os.sep + "site-packages" + os.sep, os.sep + "dist-packages" + os.sep)
_SKIPPED: dict[str, bool] = {}

#: Where the current task was created, when its coroutine is the KV layer's own (``asyncio.gather(kv.get(k), ...)``):
#: set by the task factory of ``serial_clock.py`` for the new task's context (see ``spawn_site``).
SPAWN_SITE: ContextVar[str | None] = ContextVar("kvq_spawn_site", default=None)


def is_toolkit_frame(filename: str) -> bool:
    """True for code a call site looks through: the KV layer and the meter (queue_impls/kv/, queue_impls/meter/),
    the standard library (asyncio included) and frozen modules. Third-party packages (site-packages) and everything else are callers."""
    skipped = _SKIPPED.get(filename)
    if skipped is None:
        skipped = _SKIPPED[filename] = filename.startswith((*_LIBRARY_DIRS, "<frozen ")) or (
            filename.startswith(_STDLIB) and not any(part in filename for part in _THIRD_PARTY)
        )
    return skipped


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


def _first_caller(frame: FrameType | None) -> tuple[FrameType | None, FrameType | None]:
    """(the first frame outside the toolkit, the outermost KV layer frame) in the current task's stack, from ``frame``
    outward; the walk stops at the task's own coroutine, whose caller is the event loop, not the code that made it."""
    root = None
    with contextlib.suppress(RuntimeError):  # no running loop: the whole stack is the caller's
        task = asyncio.current_task()
        root = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    outermost: FrameType | None = None
    while frame is not None:
        filename = frame.f_code.co_filename
        if not is_toolkit_frame(filename):
            return frame, outermost
        if filename.startswith(_LIBRARY_DIRS):
            outermost = frame
        if frame is root:
            break
        frame = frame.f_back
    return None, outermost


def _site(frame: FrameType) -> str:
    return f"{_display_path(frame.f_code.co_filename)}:{frame.f_lineno}"


def caller_site(skip: int = 2) -> str:
    """``file:line`` of the first frame outside the KV layer, asyncio and the standard library (docs/counting.md).

    Looked for in the current task's stack; when that is all toolkit code (a task running ``kv.get(...)`` itself, made
    by ``gather``, ``create_task`` or a TaskGroup), the site where the task was created. When there is none either (a
    call made from inside queue_impls/kv/ or meter/), the outermost KV layer frame.
    """
    caller, outermost = _first_caller(sys._getframe(skip))
    if caller is not None:
        return _site(caller)
    spawned = SPAWN_SITE.get()
    if spawned is not None:
        return spawned
    return "<unknown>:0" if outermost is None else _site(outermost)


def spawn_site(coro: object, skip: int = 2) -> str | None:
    """For a task about to be created on ``coro``: where it is being created, if ``coro`` is toolkit code (the KV
    layer's, or the standard library's such as ``asyncio.wait_for``); else None, since the task's own stack will hold
    its caller. Called by the task factory, in the creator's stack."""
    code = getattr(coro, "cr_code", None)
    if code is None or not is_toolkit_frame(code.co_filename):
        return None
    caller, _ = _first_caller(sys._getframe(skip))
    return _site(caller) if caller is not None else SPAWN_SITE.get()
