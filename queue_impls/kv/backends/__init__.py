"""The backends of the KV layer: one module each, and this registry, which ``open_kv``, the tests and qbench all read.

A backend is one module (a ``Kv`` subclass implementing the two primitives, an ``open_<name>(rest, **options)``
coroutine and an ``engine_version()`` function) plus one ``Backend(...)`` line in ``BACKENDS`` below. Nothing here
imports a backend module: that happens when a store of its kind is opened or its version asked for, so reading the
registry never imports aiosqlite or starts deno.

May import: the rest of ``queue_impls.kv`` (the contract, codec, types, errors) and the standard library; a backend
module may also import its driver (aiosqlite). Never ``queue_impls.meter``, ``queue_impls.jobs`` or ``bench``.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..contract import Kv


@dataclass(frozen=True, slots=True)
class UrlForm:
    """One way to write a URL of a backend."""

    #: As shown to users (in errors and docs): ``sqlite:/path/to.db``.
    form: str
    #: An openable URL of this form, ``{dir}`` standing for a fresh directory; None when the form needs something
    #: outside this process (a KV Connect server). The behaviour suites run on every example (tests/backends.py).
    example: str | None = None
    #: The example's name in test ids: ``sqlite-mem``.
    label: str = ""


@dataclass(frozen=True, slots=True)
class Backend:
    """A URL scheme and what implements it. Capabilities are data, read by whoever must decide something before a
    store is open (the ``Kv`` class flags, such as ``persistent``, describe an open store)."""

    #: The URL scheme and the name on the command line (``qbench run --backend``).
    name: str
    #: The module holding the backend, imported on first use.
    module: str
    #: The coroutine in ``module`` that opens a store from the rest of the URL (and keyword options).
    opener: str
    url_forms: tuple[UrlForm, ...]
    #: The store's work runs in this Python process (so callgrind counts it: CPU instructions per operation).
    in_process: bool
    #: The suffix of the file a store of this kind keeps on disk; None: it lives in memory only.
    file_suffix: str | None
    #: The backend runs the store's own watch (else ``Kv._watch`` re-reads on change signals or every 50 ms).
    native_watch: bool = False
    #: ``NAME+https://...`` opens a remote store over KV Connect.
    remote: bool = False
    #: Needs the ``deno`` executable (``find_deno``).
    needs_deno: bool = False

    def opener_function(self) -> Callable[..., Awaitable[Kv]]:
        """The coroutine function that opens a store from the rest of a URL (imports the module)."""
        opener: Callable[..., Awaitable[Kv]] = getattr(importlib.import_module(self.module), self.opener)
        return opener

    def version(self) -> str:
        """The engine behind the backend, for results metadata: ``SQLite 3.45.1``, ``deno 2.9.6 (...)``."""
        version: Callable[[], str] = importlib.import_module(self.module).engine_version
        return version()

    def check_available(self) -> None:
        """Raise (``DenoNotFoundError``) when this machine cannot open a store of this kind."""
        if self.needs_deno:
            from .deno import find_deno

            find_deno()


_PATH = UrlForm("a bare path (SQLite)")

#: Every backend, the default (a bare path opens SQLite) first. Adding a backend: its module, and one line here.
BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend(
            "sqlite",
            "queue_impls.kv.backends.sqlite",
            "open_sqlite",
            (
                UrlForm("sqlite:/path/to.db", "sqlite:{dir}/kv.db", "sqlite"),
                UrlForm("sqlite::memory:", "sqlite::memory:", "sqlite-mem"),
                _PATH,
            ),
            in_process=True,
            file_suffix=".db",
        ),
        Backend(
            "memory",
            "queue_impls.kv.backends.memory",
            "open_memory",
            (UrlForm("memory:", "memory:", "memory"),),
            in_process=True,
            file_suffix=None,
        ),
        Backend(
            "deno",
            "queue_impls.kv.backends.deno",
            "open_deno",
            (
                UrlForm("deno:/path/to.sqlite", "deno:{dir}/kv.sqlite", "deno-file"),
                UrlForm("deno::memory:", "deno::memory:", "deno-mem"),
                UrlForm("deno+https://host/..."),
            ),
            in_process=False,
            file_suffix=".sqlite",
            native_watch=True,
            remote=True,
            needs_deno=True,
        ),
    )
}

#: The backend a URL without a scheme (a bare path) opens.
DEFAULT_BACKEND = "sqlite"


def backend_names() -> tuple[str, ...]:
    """Every registered scheme, the default first."""
    return tuple(BACKENDS)


def url_forms() -> tuple[str, ...]:
    """Every URL form, as shown to users (a bare path last)."""
    forms = [form for backend in BACKENDS.values() for form in backend.url_forms]
    return tuple(form.form for form in sorted(forms, key=lambda form: form is _PATH))


def get_backend(name: str) -> Backend:
    """The registered backend ``name``; raises InvalidArgumentError naming the known ones."""
    backend = BACKENDS.get(name)
    if backend is None:
        from ..errors import InvalidArgumentError, short_repr

        raise InvalidArgumentError(f"Unknown KV backend {short_repr(name)}; expected one of {backend_names()}")
    return backend


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "Backend", "UrlForm", "backend_names", "get_backend", "url_forms"]
