"""The command-line side of the report: `qbench report`, registered by bench/cli.py.

The handler imports the report lazily so that `qbench run` does not pay for matplotlib.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", type=Path, help="a results file written by qbench run")
    parser.add_argument("-o", "--output", type=Path, default=Path("reports/latest"), help="directory to write")


def handle_report(args: argparse.Namespace) -> int:
    from .report import report

    report(results=args.results, out=args.output)
    print(f"wrote {args.output / 'index.html'} and {args.output / 'README.md'}")
    return 0


COMMAND = ("report", "write index.html, README.md and plots for a results file", configure_report, handle_report)
