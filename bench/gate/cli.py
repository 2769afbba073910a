"""The command-line side of the gate: `qbench compare|gate|baseline`, registered by bench/cli.py.

Each entry is (name, help, configure, handler) for cli.Command; handlers import their module lazily so that
`qbench run` does not pay for pandas.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import UsageError
from ..run.affinity import affinity_argument
from .defaults import DEFAULT_BASELINE, TIME_MODES


def configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("base", type=Path, help="results file to compare against")
    parser.add_argument("new", type=Path, help="results file to compare")
    parser.add_argument("--all-counts", action="store_true", help="list unchanged counts too")


def handle_compare(args: argparse.Namespace) -> int:
    from .compare import compare

    sys.stdout.write(compare(base=args.base, new=args.new, all_counts=args.all_counts))
    return 0


def configure_gate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, nargs="?", help="results file to judge (not with --against)")
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help=f"default {DEFAULT_BASELINE}")
    parser.add_argument("--config", type=Path, help="TOML settings (default: bench/gate/gate.toml)")
    parser.add_argument("--times", choices=TIME_MODES, help="whether time slowdowns fail (default: config)")
    parser.add_argument(
        "--allow-missing",
        action="append",
        default=[],
        metavar="PATTERN",
        help="baseline benchmarks (shell-style pattern) that may be missing from the results; repeatable",
    )
    against = parser.add_argument_group("against a git ref (docs/ci.md)")
    against.add_argument(
        "--against",
        metavar="REF",
        help="run REF (in a temporary worktree) and this checkout in one job, time interleaved on one CPU",
    )
    against.add_argument("--suite", default="quick", help="suite to run with --against (default: quick)")
    against.add_argument("--backend", default="sqlite", help="backend to run with --against (default: sqlite)")
    against.add_argument(
        "--affinity", type=affinity_argument, metavar="CPUS", help="pin both trees' runs to these CPUs (e.g. 1)"
    )
    against.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count both trees' CPU instructions under callgrind (default: on)",
    )
    against.add_argument(
        "--keep", type=Path, metavar="DIR", help="write the two trees' results files (base.json, new.json) here"
    )


def handle_gate(args: argparse.Namespace) -> int:
    from .gate import gate

    against = None
    if args.against is not None:
        from ..run.stores import BACKENDS
        from ..scenarios import SUITES, parse_choice
        from .against import AgainstOptions, judge_against

        if args.results is not None:
            raise UsageError("--against runs both trees itself: give no results file")
        options = AgainstOptions(
            ref=args.against,
            suite=parse_choice(args.suite, known=SUITES, what="suite"),
            backend=parse_choice(args.backend, known=BACKENDS, what="backend"),
            affinity=args.affinity,
            instructions=args.instructions,
            keep=args.keep,
        )
        against = functools.partial(judge_against, options)
    return gate(
        baseline=args.baseline,
        results=args.results,
        config=args.config,
        times=args.times,
        allow_missing=tuple(args.allow_missing),
        against=against,
    )


def configure_baseline(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="baseline_action", metavar="ACTION", required=True)
    update = actions.add_parser("update", help="make a results file the gate's baseline")
    update.add_argument("results", type=Path, help="results file to record")
    update.add_argument("-o", "--output", type=Path, default=DEFAULT_BASELINE, help=f"default {DEFAULT_BASELINE}")


def handle_baseline(args: argparse.Namespace) -> int:
    from .gate import update_baseline

    print(f"baseline written: {update_baseline(results=args.results, out=args.output)}")
    return 0


Handler = Callable[[argparse.Namespace], int]
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], Handler], ...] = (
    ("compare", "markdown table of what changed between two results files", configure_compare, handle_compare),
    ("gate", "exit 1 when results cost more than the baseline (2: unusable input)", configure_gate, handle_gate),
    ("baseline", "manage the gate's baseline: `baseline update RESULTS`", configure_baseline, handle_baseline),
)
