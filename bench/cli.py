"""``qbench``: the toolkit's command line (also ``python -m bench``).

Every subcommand is one ``Command`` in COMMANDS: a ``configure`` function that declares its options and a thin
``handler`` that hands off to a library function. Bad input ends with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import difflib
import os
import platform
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from .errors import BenchError
from .gate.cli import COMMANDS as GATE_COMMANDS
from .report.cli import COMMAND as REPORT_COMMAND
from .run.affinity import affinity_argument
from .run.stores import BACKENDS
from .scenarios import SUITES, parse_list, parse_rtt, scenario_names
from .serve_cli import COMMAND as SERVE_COMMAND

#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit status when standard output's reader has gone (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]


# -- qbench run -------------------------------------------------------------------------------------------------


def configure_run(parser: argparse.ArgumentParser) -> None:
    from .run.seeding import default_cache_dir

    parser.add_argument(
        "--suite", choices=SUITES, default="quick", help="quick (< 1 min), full (< 15 min), smoke (tests)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="sqlite", help="store to run on (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--layouts", metavar="L1,L2", help="comma-separated subset of the registered layouts (default: all)"
    )
    parser.add_argument(
        "--scenarios",
        metavar="S1,S2",
        help=f"comma-separated subset of {','.join(scenario_names(opt_in=False))} and plug-ins' (default: all); "
        f"opt-in: {','.join(n for n in scenario_names() if n not in scenario_names(opt_in=False))}",
    )
    parser.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        metavar="PATTERN",
        help="run only benchmarks whose name contains PATTERN (or matches it, with * ? [ ]); repeatable: any of them",
    )
    parser.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE",
        help="import this module first (it registers scenarios or layouts), here and in every worker; repeatable",
    )
    parser.add_argument(
        "--rtt",
        metavar="MS,...",
        help="round-trip times in ms of rtt_sweep (default: 0,1,5,20) and worker_path (default: 0)",
    )
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("results.json"), help="results file (default: results.json)"
    )
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where seeded stores are cached")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument(
        "--affinity",
        type=affinity_argument,
        metavar="CPUS",
        help="pin the timing workers, their store threads and subprocesses to these CPUs (pyperf's --affinity, e.g."
        " 1 or 0-1; default: not pinned); `make report` pins to the last CPU, see docs/bench.md",
    )
    parser.add_argument(
        "--instructions",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="count each operation's CPU instructions under valgrind's callgrind (default: on; without valgrind the"
        " run says so and records none)",
    )
    timing = parser.add_argument_group("timing (pyperf's options, applied to the suite's plan; docs/bench.md)")
    speed = timing.add_mutually_exclusive_group()
    speed.add_argument("--fast", action="store_true", help="half the processes, 2/3 of the values: rough, quick")
    speed.add_argument("--rigorous", action="store_true", help="twice the processes: slower, more accurate")
    timing.add_argument(
        "-p", "--processes", type=_positive, metavar="N", help="exactly N worker processes per benchmark"
    )
    timing.add_argument("--values", type=_positive, metavar="N", help="exactly N values per worker process")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be 1..1000, got {value}")
    return value


def _scenarios(value: str | None) -> tuple[str, ...]:
    """--scenarios: by default (or "all") every scenario but the opt-in ones, which run only when named."""
    return parse_list(value, known=scenario_names(), what="scenario", default=scenario_names(opt_in=False))


def handle_run(args: argparse.Namespace) -> int:
    from queue_impls.jobs.layouts import layout_names

    from .files import check_directory
    from .run.plugins import import_plugins, plugin_search_path
    from .run.runner import RunOptions, TimingFlags, run_suite

    check_directory(args.cache_dir)  # before the first seed is built, not after
    import_plugins(
        args.plugins, search=plugin_search_path()
    )  # before --layouts and --scenarios are checked: plug-ins add to both

    options = RunOptions(
        suite=args.suite,
        backend=args.backend,
        layouts=parse_list(args.layouts, known=layout_names(), what="layout"),
        rtt_ms=None if args.rtt is None else parse_rtt(args.rtt, suite=args.suite),
        scenarios=_scenarios(args.scenarios),
        output=args.output,
        cache_dir=args.cache_dir,
        progress=args.progress,
        affinity=args.affinity,
        instructions=args.instructions,
        patterns=tuple(args.patterns),
        plugins=tuple(args.plugins),
        timing=TimingFlags(fast=args.fast, rigorous=args.rigorous, processes=args.processes, values=args.values),
    )
    summary = run_suite(options)
    what = f"{summary.written} of {summary.planned} benchmarks"
    if summary.interrupted:
        where = f"written to {summary.output}" if summary.written else "nothing written"
        print(f"interrupted after {summary.seconds:.1f} s: {what} {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"wrote {what} to {summary.output} in {summary.seconds:.1f} s")
    return 0


# -- qbench export ----------------------------------------------------------------------------------------------


def configure_export(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="a results file written by qbench run")
    parser.add_argument("-o", "--output", type=Path, help="CSV file to write (default: standard output)")


def handle_export(args: argparse.Namespace) -> int:
    from .results import export_csv

    rows = export_csv(args.results, args.output)
    if args.output is not None:
        print(f"wrote {rows} rows to {args.output}")
    return 0


# -- the command table and the entry point ---------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command("run", "run a benchmark suite and write a results file", configure_run, handle_run),
    Command(
        "export", "write a results file as a tidy CSV (one row per benchmark x metric)", configure_export, handle_export
    ),
    Command(*REPORT_COMMAND),  # bench/report/cli.py
    *(Command(*spec) for spec in GATE_COMMANDS),  # compare, gate, baseline: bench/gate/cli.py
    Command(*SERVE_COMMAND),  # bench/serve_cli.py
)


class Parser(argparse.ArgumentParser):
    """argparse with suggestions: a mistyped option or choice is answered with this (sub)command's usage and the
    closest name ("did you mean --suite?"), exit status 2."""

    def error(self, message: str) -> NoReturn:
        hint = _suggestion(self, message)
        super().error(f"{message}{hint}")

    def unknown(self, extras: Sequence[str]) -> NoReturn:
        """Unrecognised arguments, reported by the subcommand they were given to (its usage, not qbench's)."""
        words = [w for w in extras if w.startswith("-")] or list(extras)
        hints = [h for w in words if (h := _closest(w.split("=")[0], _options(self)))]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        super().error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [option for action in parser._actions for option in action.option_strings]


def _closest(word: str, known: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return close[0] if close else None


def _suggestion(parser: argparse.ArgumentParser, message: str) -> str:
    """ " (did you mean X?)" for argparse's "invalid choice: 'x' (choose from ...)" and unknown options."""
    choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
    if choice:
        known = re.findall(r"'([^']*)'", choice.group(2))
        best = _closest(choice.group(1), known)
        return f" (did you mean {best!r}?)" if best else ""
    option = re.search(r"unrecognized arguments: (\S+)", message)
    if option:
        best = _closest(option.group(1).split("=")[0], _options(parser))
        return f" (did you mean {best}?)" if best else ""
    return ""


def version_text() -> str:
    """``qbench --version``: the package's version and the Python it runs on."""
    from importlib import metadata

    try:
        version = metadata.version("kvq-bench")
    except metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return f"qbench (kvq-bench) {version}, Python {platform.python_version()} ({sys.executable})"


def build_parser(commands: Sequence[Command] = COMMANDS) -> Parser:
    parser = Parser(prog="qbench", description="Measure, explain and guard the KV cost of job-queue layouts.")
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True, parser_class=Parser)
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(command=command, parser=child)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, extras = build_parser().parse_known_args(argv)
    if extras:
        args.parser.unknown(extras)
    command: Command = args.command
    try:
        status = command.handler(args)
        sys.stdout.flush()  # here, so that a full disk or a closed pipe on standard output is caught below
        return status
    except BenchError as exc:
        print(f"qbench {command.name}: error: {exc}", file=sys.stderr)
        return exc.exit_status
    except KeyboardInterrupt:
        print(f"qbench {command.name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`qbench export r.json | head`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except OSError as exc:  # the machine, not the code: a full disk, an unreadable cache, a vanished file
        print(f"qbench {command.name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
