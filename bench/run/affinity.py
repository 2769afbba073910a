"""CPU lists in pyperf's ``--affinity`` syntax ("1", "0,2", "0-3"), and pinning a worker before its store opens."""

from __future__ import annotations

import os


def parse_cpus(text: str) -> set[int]:
    """The CPUs of a list such as "1", "0,2" or "0-3"; ValueError names what is wrong."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
    except ValueError:
        raise ValueError(f"not a CPU list: {text!r} (e.g. 1, 0,2 or 0-3)") from None
    if not cpus:
        raise ValueError(f"not a CPU list: {text!r} (e.g. 1, 0,2 or 0-3)")
    allowed = os.sched_getaffinity(0)
    outside = sorted(cpus - allowed)
    if outside:
        raise ValueError(f"CPU {outside[0]} is not available here: choose from {sorted(allowed)}")
    return cpus


def pin(text: str | None) -> None:
    """Pin this process to the CPUs of ``text`` (None: leave it), before it starts any thread or subprocess.

    pyperf applies ``--affinity`` itself only when a worker starts timing, after our worker has opened its store: the
    store's database thread (and a deno subprocess) would keep running anywhere. Threads inherit the affinity of the
    thread that starts them, so the worker pins itself first.
    """
    if text:
        os.sched_setaffinity(0, parse_cpus(text))


def affinity_argument(text: str) -> str:
    """An argparse ``type`` for --affinity: the list unchanged when every CPU in it is one this process may use."""
    import argparse

    try:
        parse_cpus(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text
