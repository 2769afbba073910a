"""Errors of the benchmark toolkit: bad input the CLI turns into a message and exit status 2.

BenchError
├── UsageError        an unknown suite, layout, backend or a malformed option value
├── ResultsError      an unreadable results file, or one that is not a kvq results file
├── OutputError       an output path qbench cannot write (unwritable, immutable, wrong kind, full disk)
└── BenchmarkFailed   a benchmark could not run (exit status 1, not 2: the input was fine)
"""

from __future__ import annotations


class BenchError(Exception):
    """Root of the toolkit's errors; the message says what was wrong and what was expected."""

    #: The CLI's exit status for this error: 2 for bad input.
    exit_status = 2


class UsageError(BenchError):
    """A command-line value outside what the toolkit knows (suite, layout, backend, RTT list...)."""


class ResultsError(BenchError):
    """A results file that cannot be read, or that was not written by ``qbench run``."""


class OutputError(BenchError):
    """An output file or directory that cannot be written whole; the old one, if any, is left as it was."""


class BenchmarkFailed(BenchError):
    """A benchmark could not run (a worker crashed, the store failed); the results file keeps what finished."""

    exit_status = 1
