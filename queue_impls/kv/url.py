"""``open_kv(url)``: the one way to open a store, whatever the backend."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from .contract import Kv
from .errors import InvalidArgumentError, short_repr

# scheme -> "module:factory"; a factory is an async callable taking the rest of the URL.
_BACKENDS = {
    "memory": "queue_impls.kv.backends.memory:open_memory",
    "sqlite": "queue_impls.kv.backends.sqlite:open_sqlite",
    "deno": "queue_impls.kv.backends.deno:open_deno",
}

URL_FORMS = (
    "memory:",
    "sqlite:/path/to.db",
    "sqlite::memory:",
    "deno:/path/to.sqlite",
    "deno::memory:",
    "deno+https://host/...",
    "a bare path (SQLite)",
)


def _split(url: str) -> tuple[str, str]:
    if url.startswith("deno+"):
        return "deno", url[len("deno+") :]
    scheme, sep, rest = url.partition(":")
    if sep and scheme in _BACKENDS:
        return scheme, rest
    if sep and len(scheme) > 1 and scheme.isalpha():
        raise InvalidArgumentError(
            f"Unknown KV URL scheme {short_repr(scheme)} in {short_repr(url)}; expected one of {URL_FORMS}"
        )
    return "sqlite", url


async def open_kv(url: str = "memory:", **options: Any) -> Kv:
    """Open a store: ``memory:``, ``sqlite:PATH``, ``sqlite::memory:``, ``deno:PATH``, ``deno::memory:``,
    ``deno+https://...`` or a bare path (SQLite)."""
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"A KV URL must be a non-empty string, got {short_repr(url)}; forms: {URL_FORMS}")
    scheme, rest = _split(url)
    module_name, _, factory_name = _BACKENDS[scheme].partition(":")
    factory = getattr(importlib.import_module(module_name), factory_name)
    try:
        inspect.signature(factory).bind(rest, **options)
    except TypeError as exc:
        raise InvalidArgumentError(f"open_kv({short_repr(url)}): {exc}") from None
    kv: Kv = await factory(rest, **options)
    return kv
