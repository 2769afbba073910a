"""``qbench run --plugin module.path``: import a user's modules, which register scenarios and layouts, before any
case is built; the plan file names them so that every pyperf worker and the callgrind pass imports them too."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from ..errors import UsageError


def import_plugins(modules: Iterable[str], *, search: Iterable[str] = ()) -> None:
    """Import each module by its dotted path, looking in ``search`` (the directory ``qbench run`` ran in, recorded
    in the plan) and then sys.path; a module that cannot be imported is a UsageError naming it and why."""
    names = list(modules)
    for directory in search if names else ():
        if directory not in sys.path:
            sys.path.insert(0, directory)
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise UsageError(f"--plugin {name!r}: expected a dotted module path such as examples.plugin")
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except UsageError:
            raise
        except Exception as exc:
            raise UsageError(f"--plugin {name}: the module failed to import: {type(exc).__name__}: {exc}") from exc


def plugin_search_path() -> list[str]:
    """Where a plug-in named on the command line is found: the current directory (python -m's first entry)."""
    return [os.getcwd()]
