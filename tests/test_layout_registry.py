"""The layouts registry: built-ins in order, a user's layout registered by class or entry point, clear refusals."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import pytest

from queue_impls.jobs import LAYOUTS, Layout, LayoutPluginError, Queue, UnknownLayoutError, layout_names, make_layout
from queue_impls.jobs import layouts as registry
from queue_impls.jobs.layouts import OptimizedLayout, register_layout
from queue_impls.kv import open_kv


@pytest.fixture
def clean_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from the built-ins alone (another test may have loaded a plug-in) and registers into a copy."""
    builtins = {name: cls for name, cls in registry._REGISTRY.items() if name in LAYOUTS}
    monkeypatch.setattr(registry, "_REGISTRY", builtins)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)


def test_builtins_come_first_in_their_order() -> None:
    assert layout_names()[:4] == LAYOUTS == ("naive", "optimized", "batched", "indexed")
    assert [type(make_layout(name)).name for name in LAYOUTS] == list(LAYOUTS)


async def test_a_registered_layout_runs_the_queue(clean_registry: None) -> None:
    @register_layout
    class Fifth(OptimizedLayout):
        name = "fifth"

    assert layout_names()[-1] == "fifth"
    kv = await open_kv("memory:")
    try:
        queue = Queue(kv, layout="fifth")
        job_id = await queue.add("email", {"to": "a@example.com"})
        assert [job.id for job in await queue.list_jobs()] == [job_id]
    finally:
        await kv.close()


def test_registering_the_same_class_twice_is_a_no_op(clean_registry: None) -> None:
    class Again(OptimizedLayout):
        name = "again"

    assert register_layout(Again) is register_layout(Again)
    assert layout_names().count("again") == 1


@pytest.mark.parametrize(
    ("candidate", "message"),
    [
        (object, "takes a Layout subclass"),
        ("naive", "takes a Layout subclass"),
        (type("Nameless", (OptimizedLayout,), {"name": "has space"}), "needs a class attribute `name`"),
        (type("Clash", (OptimizedLayout,), {"name": "naive"}), "'naive' is taken by queue_impls.jobs.layouts.naive"),
    ],
)
def test_refusals_name_what_was_wrong(clean_registry: None, candidate: Any, message: str) -> None:
    with pytest.raises(LayoutPluginError, match=message):
        register_layout(candidate)
    assert layout_names() == LAYOUTS


def test_unknown_names_list_the_registered_ones(clean_registry: None) -> None:
    class Sixth(OptimizedLayout):
        name = "sixth"

    register_layout(Sixth)
    with pytest.raises(UnknownLayoutError, match="expected one of naive, optimized, batched, indexed, sixth"):
        make_layout("seventh")


class _Point:
    def __init__(self, name: str, value: str, target: Any) -> None:
        self.name, self.value, self._target = name, value, target

    def load(self) -> Any:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_entry_points_are_loaded_once_on_first_lookup(clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    class FromPackage(OptimizedLayout):
        name = "from_package"

    calls: list[str] = []

    def entry_points(group: str) -> list[_Point]:
        calls.append(group)
        return [_Point("from_package", "pkg:FromPackage", FromPackage)]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert type(make_layout("from_package")) is FromPackage
    assert layout_names()[-1] == "from_package"
    assert calls == ["kvq_bench.layouts"]


def test_a_broken_entry_point_names_itself(clean_registry: None, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _Point("broken", "pkg.missing:Layout", ModuleNotFoundError("No module named 'pkg'"))
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    with pytest.raises(LayoutPluginError, match=r"broken = 'pkg.missing:Layout' \(kvq_bench.layouts\) failed to load"):
        layout_names()


def test_layout_is_the_base_every_plug_in_extends() -> None:
    assert all(issubclass(type(make_layout(name)), Layout) for name in LAYOUTS)
