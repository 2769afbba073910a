"""tools/kv_bounds.py and tools/counting_variants.py: the diagnostics behind the missed speed targets."""

from __future__ import annotations

import asyncio

import pytest

from tools import counting_variants, kv_bounds
from tools.deno_inprocess import deno_unavailable


def test_list_page_budget_is_the_slack_the_target_leaves() -> None:
    us = {
        "floor list page(50)": 50.0,
        "sqlite list page(50)": 150.0,
        "values: one JSON scan (this codec)": 30.0,
        "values: marshal.loads each": 20.0,
        "keys + entry objects": 10.0,
    }
    text = "\n".join(kv_bounds.list_page_lines(us))
    assert "floor 50.0 us, SQLite backend 150.0 us (3.00x)" in text
    assert "leaves 15.0 us" in text  # (1.3 - 1) x 50
    assert "30.0 us =  2.00x the budget" in text
    assert "20.0 us =  1.33x the budget" in text
    assert "10.0 us =  0.67x the budget" in text


def test_bridge_floor_is_ping_plus_the_idle_wake_up() -> None:
    us = {
        "bridge get": 200.0,
        "bridge ping": 30.0,
        "in-process get (hot)": 40.0,
        "in-process get from idle 200 us": 280.0,
        "in-process idle 200 us": 205.0,
    }
    text = "\n".join(kv_bounds.bridge_lines(us))
    assert "overhead +160.0 us" in text
    assert "costs +35.0 us more than hot" in text  # 280 - 205 - 40
    assert "ping + idle wake-up = 65.0 us" in text
    assert "the rest (+95.0 us)" in text


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(SystemExit):
        kv_bounds.parse(["--blocks", "0"])
    with pytest.raises(SystemExit):
        kv_bounds.parse(["--entries", "10"])


async def test_a_tiny_run_measures_every_figure() -> None:
    settings = kv_bounds.Settings(blocks=2, block_seconds=0.002, entries=100, cpu_calls=50)
    lines = await kv_bounds.run(settings, bridge=deno_unavailable() is None)
    text = "\n".join(lines)
    assert text.startswith("List page: floor ")
    assert text.count("x the budget") == 3
    if deno_unavailable() is None:
        assert "Unavoidable for any request/reply client" in text
        assert "    bridge get: python " in text and "    bridge ping: python " in text


def test_cpu_lines_show_every_thread_that_used_cpu() -> None:
    cpu = {"bridge get": {"python": 90.2, "deno deno": 66.0, "deno sw-0": 44.0, "deno idle": 0.0}}
    assert kv_bounds.cpu_lines(cpu, 100)[1] == "    bridge get: python 90 us, deno deno 66 us, deno sw-0 44 us"


async def test_counting_variants_measure_every_variant_on_a_real_store() -> None:
    wall, cpu = await counting_variants.measure("memory:", rounds=1, calls=5)
    for result in (wall, cpu):
        assert set(result) == {"raw", *counting_variants.VARIANTS}
        assert result["raw"].median > 0 and result["raw"].n == 1


async def test_counting_variants_time_task_creation_and_leave_the_forking_factory_in_place() -> None:
    from queue_impls.meter import serial_clock

    default, forking = await counting_variants.task_creation(rounds=2, calls=10)
    assert default > 0 and forking > 0
    assert isinstance(asyncio.get_running_loop().get_task_factory(), serial_clock._ForkingTaskFactory)


def test_get_instructions_runs_each_variant_inside_valgrind_s_process() -> None:
    from tools import get_instructions

    for variant in ("raw", *counting_variants.VARIANTS):
        get_instructions.main(["--variant", variant, "--gets", "3"])  # what valgrind runs: the gets, nothing printed


def test_get_instructions_says_when_valgrind_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from tools import get_instructions

    monkeypatch.setattr(get_instructions.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="valgrind is not on PATH"):
        get_instructions.main([])
