"""``function_scenario``: benchmark any async function over a store (a user's own data-access code) like a built-in
scenario: exact counts, N+1 findings, pyperf timings and CPU instructions.

    async def seed(kv, N):                      # optional: untimed, once per process, on a fresh store
        ...
    async def recent_orders(kv, N):             # the timed call; its parameters are the point's
        ...
    register_scenario(function_scenario(recent_orders, seed=seed, points=[{"N": 10}, {"N": 100}]))

The function gets the store (a ``queue_impls.kv.Kv``) and the point's parameters as keyword arguments; with
``layouts`` it runs once per layout and also gets ``layout=`` (a name ``queue_impls.jobs.Queue`` accepts).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from queue_impls.kv import Kv

from ..errors import UsageError
from .base import NO_LAYOUT, Case, Operation, Param, Scenario

UserFunction = Callable[..., Awaitable[Any]]


def function_scenario(
    fn: UserFunction,
    *,
    name: str | None = None,
    seed: UserFunction | None = None,
    points: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]] = ({},),
    layouts: Sequence[str] | None = (NO_LAYOUT,),
    per: Literal["call", "job"] = "call",
    summary: str | None = None,
) -> Scenario:
    """A ``Scenario`` whose timed execution is ``await fn(kv, **point)``; register it with ``register_scenario``.

    - ``name``: the scenario's name (default: the function's), the first part of every benchmark name.
    - ``seed``: ``await seed(kv, **point)`` once per process before anything is measured (its calls are not counted).
    - ``points``: the parameter points, the same for every suite, or per suite ({"smoke": [...], "quick": [...]}).
      Every point names the same parameters; numbers and strings only.
    - ``layouts``: the default runs once on a plain store; None runs once per layout chosen with --layouts (a tuple:
      those layouts only), passing ``layout=`` to ``fn`` and ``seed``.
    - ``per="job"``: one execution handles the point's N jobs; counts and instructions are divided by N.
    """
    if not inspect.iscoroutinefunction(fn):
        raise UsageError(f"function_scenario takes an async function (async def f(kv, ...)), got {fn!r:.80}")
    if seed is not None and not inspect.iscoroutinefunction(seed):
        raise UsageError(f"function_scenario's seed must be an async function, got {seed!r:.80}")
    by_suite = _points_by_suite(points)
    params = _params(by_suite)
    if per == "job" and "N" not in {p.name for p in params}:
        raise UsageError("function_scenario(per='job') needs a parameter N (the jobs one execution handles)")
    layout_free = layouts is not None and tuple(layouts) == (NO_LAYOUT,)

    def make(case: Case, kv: Kv) -> Operation:
        return _FunctionOperation(case, kv, fn, seed, layout_free)

    def suite_points(suite: str) -> Sequence[Mapping[str, Any]]:
        return by_suite.get(suite, by_suite.get("*", ()))

    doc = (inspect.getdoc(fn) or "").strip().splitlines()
    return Scenario(
        name=name or fn.__name__,
        summary=summary or (doc[0] if doc else f"{fn.__module__}.{fn.__qualname__}(kv, ...)"),
        params=params,
        points=suite_points,
        operation=make,
        # A fresh store per process, seeded in it, and the function may write: each process has its own.
        mutates=True,
        per=per,
        layouts=None if layouts is None else tuple(layouts),
    )


def _points_by_suite(
    points: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, list[dict[str, Any]]]:
    if isinstance(points, Mapping):
        by_suite = {str(suite): [dict(p) for p in pts] for suite, pts in points.items()}
    else:
        by_suite = {"*": [dict(p) for p in points]}
    for suite, pts in by_suite.items():
        if not pts:
            raise UsageError(f"function_scenario: no points for suite {suite!r}")
    return by_suite


def _params(by_suite: Mapping[str, list[dict[str, Any]]]) -> tuple[Param, ...]:
    all_points = [p for pts in by_suite.values() for p in pts]
    names = list(all_points[0])
    for point in all_points:
        if list(point) != names:
            raise UsageError(f"function_scenario: every point must name the same parameters {names}, got {list(point)}")
        for key, value in point.items():
            if not key.isidentifier() or key == "layout":
                raise UsageError(f"function_scenario: parameter name {key!r} must be an identifier other than layout")
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise UsageError(f"function_scenario: parameter {key}={value!r} must be a number or a string")
    return tuple(Param(key, text=isinstance(all_points[0][key], str)) for key in names)


class _FunctionOperation(Operation):
    def __init__(self, case: Case, kv: Kv, fn: UserFunction, seed: UserFunction | None, layout_free: bool) -> None:
        super().__init__(case, kv)
        self.fn, self.seed = fn, seed
        self.kwargs = dict(self.params) if layout_free else {**self.params, "layout": case.layout}

    async def setup(self) -> None:
        if self.seed is not None:
            await self.seed(self.kv, **self.kwargs)

    async def execute(self) -> None:
        await self.fn(self.kv, **self.kwargs)
