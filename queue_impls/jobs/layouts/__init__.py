"""The storage layouts of the job queue, registered by name; the engine above them (queue.py) is shared.

The four built-in layouts are registered here. A user's own layout is a ``Layout`` subclass registered with
``register_layout`` (as a decorator, or from a module ``qbench run --plugin`` imports), or named by an entry point in
the ``kvq_bench.layouts`` group of an installed package (loaded the first time a name is looked up). A layout's
index key prefixes are defined, with their shapes, in ``jobs/keys.py``; the layouts are part of the jobs room and
follow its import rules (``queue_impls/jobs/__init__.py``).
"""

from __future__ import annotations

import importlib.metadata
from typing import Final

from ...kv.errors import short_repr
from ..errors import LayoutPluginError, UnknownLayoutError
from .base import JobPage, Layout
from .batched import BatchedLayout
from .indexed import IndexedLayout
from .naive import NaiveLayout
from .optimized import OptimizedLayout

_BUILT_IN: Final = (NaiveLayout, OptimizedLayout, BatchedLayout, IndexedLayout)
#: The built-in layouts, in the order suites and reports show them.
LAYOUTS: Final = tuple(cls.name for cls in _BUILT_IN)
#: Installed packages name their layouts under this entry-point group (``name = "module:LayoutClass"``).
ENTRY_POINT_GROUP: Final = "kvq_bench.layouts"

_REGISTRY: dict[str, type[Layout]] = {cls.name: cls for cls in _BUILT_IN}
_entry_points_loaded = False


def register_layout(cls: type[Layout]) -> type[Layout]:
    """Register a ``Layout`` subclass under its ``name``; returns it, so it works as a class decorator.

    Registering the same class twice is a no-op; another class under a taken name is a LayoutPluginError.
    """
    if not (isinstance(cls, type) and issubclass(cls, Layout)):
        raise LayoutPluginError(f"register_layout takes a Layout subclass, got {short_repr(cls)}")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise LayoutPluginError(f"Layout {cls.__qualname__} needs a class attribute `name` that is an identifier, "
                                f"got {short_repr(name)}")  # fmt: skip
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls:
        raise LayoutPluginError(f"Layout name {name!r} is taken by {taken.__module__}.{taken.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = point.load()
        except Exception as exc:
            raise LayoutPluginError(f"Entry point {point.name} = {point.value!r} ({ENTRY_POINT_GROUP}) failed to "
                                    f"load: {type(exc).__name__}: {exc}") from exc  # fmt: skip
        register_layout(cls)


def layout_names() -> tuple[str, ...]:
    """Every registered layout: the built-ins in their order, then plug-ins in the order they were registered."""
    _load_entry_points()
    return tuple(_REGISTRY)


def layout_class(name: str) -> type[Layout]:
    """The class registered as ``name``; UnknownLayoutError names the known ones."""
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        _load_entry_points()
        cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise UnknownLayoutError(f"Unknown layout {short_repr(name)}: expected one of {', '.join(layout_names())}")
    return cls


def make_layout(name: str) -> Layout:
    """A fresh instance of the layout called ``name``; UnknownLayoutError names the known ones."""
    return layout_class(name)()


__all__ = [
    "ENTRY_POINT_GROUP",
    "LAYOUTS",
    "BatchedLayout",
    "IndexedLayout",
    "JobPage",
    "Layout",
    "NaiveLayout",
    "OptimizedLayout",
    "layout_class",
    "layout_names",
    "make_layout",
    "register_layout",
]
