"""The four storage layouts of the job queue; the engine above them (queue.py) is shared."""

from __future__ import annotations

from typing import Final

from ...kv.errors import short_repr
from ..errors import UnknownLayoutError
from .base import JobPage, Layout
from .batched import BatchedLayout
from .indexed import IndexedLayout
from .naive import NaiveLayout
from .optimized import OptimizedLayout

_BY_NAME: Final[dict[str, type[Layout]]] = {
    cls.name: cls for cls in (NaiveLayout, OptimizedLayout, BatchedLayout, IndexedLayout)
}
LAYOUTS: Final = ("naive", "optimized", "batched", "indexed")


def make_layout(name: str) -> Layout:
    """The layout called ``name``; UnknownLayoutError names the known ones."""
    cls = _BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UnknownLayoutError(f"Unknown layout {short_repr(name)}: expected one of {', '.join(LAYOUTS)}")
    return cls()


__all__ = [
    "LAYOUTS",
    "BatchedLayout",
    "IndexedLayout",
    "JobPage",
    "Layout",
    "NaiveLayout",
    "OptimizedLayout",
    "make_layout",
]
