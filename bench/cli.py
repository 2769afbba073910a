"""``qbench``: the toolkit's command line (also ``python -m bench``).

Every subcommand is one ``Command`` in COMMANDS: a ``configure`` function that declares its options and a thin
``handler`` that hands off to a library function. Bad input ends with a message and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import BenchError
from .report_cli import COMMANDS as REPORT_COMMANDS
from .scenarios import BACKENDS, LAYOUTS, OPT_IN_SCENARIOS, SCENARIOS, SUITES, parse_list, parse_rtt
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
    from .seeding import default_cache_dir

    parser.add_argument(
        "--suite", choices=SUITES, default="quick", help="quick (< 1 min), full (< 15 min), smoke (tests)"
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default="sqlite", help="store to run on (default: SQLite in a temp dir)"
    )
    parser.add_argument(
        "--layouts", metavar="L1,L2", help=f"comma-separated subset of {','.join(LAYOUTS)} (default: all)"
    )
    parser.add_argument(
        "--scenarios",
        metavar="S1,S2",
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all); opt-in: {','.join(OPT_IN_SCENARIOS)}",
    )
    parser.add_argument("--rtt", metavar="MS,...", help="rtt_sweep's round-trip times in ms (default: 0,1,5,20)")
    parser.add_argument(
        "-o", "--output", type=Path, default=Path("results.json"), help="results file (default: results.json)"
    )
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir(), help="where seeded stores are cached")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar (default: on a terminal)"
    )
    parser.add_argument(
        "--affinity",
        type=parse_affinity,
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


def parse_affinity(text: str) -> str:
    """A CPU list in pyperf's syntax ("1", "0,2", "0-3"), every CPU one this process may run on."""
    from .affinity import parse_cpus

    try:
        parse_cpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _scenarios(value: str | None) -> tuple[str, ...]:
    """--scenarios: by default (or "all") every scenario but the opt-in ones, which run only when named."""
    if value is None or value.strip() == "all":
        return SCENARIOS
    return parse_list(value, known=(*SCENARIOS, *OPT_IN_SCENARIOS), what="scenario")


def handle_run(args: argparse.Namespace) -> int:
    from .files import check_directory
    from .runner import RunOptions, run_suite

    check_directory(args.cache_dir)  # before the first seed is built, not after

    options = RunOptions(
        suite=args.suite,
        backend=args.backend,
        layouts=parse_list(args.layouts, known=LAYOUTS, what="layout"),
        rtt_ms=parse_rtt(args.rtt, suite=args.suite),
        scenarios=_scenarios(args.scenarios),
        output=args.output,
        cache_dir=args.cache_dir,
        progress=args.progress,
        affinity=args.affinity,
        instructions=args.instructions,
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
    *(Command(*spec) for spec in REPORT_COMMANDS),  # report, compare, gate, baseline: bench/report_cli.py
    Command(*SERVE_COMMAND),  # bench/serve_cli.py
)


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qbench", description="Measure, explain and guard the KV cost of job-queue layouts."
    )
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND", required=True)
    for command in commands:
        child = sub.add_parser(command.name, help=command.help, description=command.help)
        command.configure(child)
        child.set_defaults(command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
