"""``open_kv(url)``: the one way to open a store, whatever the backend (the schemes are the backends registry's)."""

from __future__ import annotations

import inspect
from typing import Any

from .backends import BACKENDS, DEFAULT_BACKEND, url_forms
from .contract import Kv
from .errors import InvalidArgumentError, short_repr


def split_url(url: str) -> tuple[str, str]:
    """(backend name, the rest of the URL): ``sqlite:/a.db`` -> ("sqlite", "/a.db"); ``deno+https://h`` -> ("deno",
    "https://h"); a bare path -> the default backend. Raises InvalidArgumentError for an unknown scheme."""
    for name, backend in BACKENDS.items():
        if backend.remote and url.startswith(name + "+"):
            return name, url[len(name) + 1 :]
    scheme, sep, rest = url.partition(":")
    if sep and scheme in BACKENDS:
        return scheme, rest
    if sep and len(scheme) > 1 and scheme.isalpha():
        raise InvalidArgumentError(
            f"Unknown KV URL scheme {short_repr(scheme)} in {short_repr(url)}; expected one of {url_forms()}"
        )
    return DEFAULT_BACKEND, url


async def open_kv(url: str = "memory:", **options: Any) -> Kv:
    """Open a store from a URL of a registered backend (``queue_impls.kv.backends.url_forms()``), such as
    ``memory:``, ``sqlite:PATH``, ``sqlite::memory:``, ``deno:PATH``, ``deno::memory:``, ``deno+https://...`` or a
    bare path (SQLite). Keyword options go to the backend's opener; an unknown one is an InvalidArgumentError."""
    if not isinstance(url, str) or not url:
        raise InvalidArgumentError(f"A KV URL must be a non-empty string, got {short_repr(url)}; forms: {url_forms()}")
    name, rest = split_url(url)
    factory = BACKENDS[name].opener_function()
    try:
        inspect.signature(factory).bind(rest, **options)
    except TypeError as exc:
        raise InvalidArgumentError(f"open_kv({short_repr(url)}): {exc}") from None
    kv: Kv = await factory(rest, **options)
    return kv
