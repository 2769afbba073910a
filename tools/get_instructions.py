"""Instructions per get, counted by valgrind: deterministic, whatever else the machine is doing.

``python -m tools.get_instructions [--store memory|sqlite] [--variant raw|pass-through|CountingKv|...]``
runs the variant's get 200 and 4,200 times under ``valgrind --tool=callgrind`` (one process each) and prints the
difference divided by 4,000: the instructions of one get, startup and warm-up cancelled out. The variants are
``tools.counting_variants``'s, over a store seeded with 200 entries. Needs valgrind on PATH.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from queue_impls.kv import open_kv
from tools.counting_variants import VARIANTS
from tools.kv_stores import Workload, seed

WARM = 200
COUNTED = (200, 4_200)


async def _gets(store: str, variant: str, n: int) -> None:
    with tempfile.TemporaryDirectory(prefix="get_instructions-") as tmp:
        url = f"sqlite:{tmp}/kv.db" if store == "sqlite" else "memory:"
        async with await open_kv(url) as kv:
            workload = Workload(entries=200)
            await seed(kv, workload)
            target = kv if variant == "raw" else VARIANTS[variant](kv)
            for _ in range(WARM + n):
                await target.get(workload.hot_key)


def _instructions(store: str, variant: str, n: int) -> int:
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m", __spec__.name]
    done = subprocess.run(
        [*command, "--store", store, "--variant", variant, "--gets", str(n)], capture_output=True, text=True
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind failed ({done.returncode}): {done.stderr[-2000:]}")
    return int(found.group(1))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.get_instructions", description=__doc__.split("\n")[0])
    parser.add_argument("--store", default="memory", choices=("memory", "sqlite"))
    parser.add_argument("--variant", default="CountingKv", choices=("raw", *VARIANTS))
    parser.add_argument("--gets", type=int, default=None, help=argparse.SUPPRESS)  # inside valgrind: just run
    args = parser.parse_args(list(argv))
    if args.gets is not None:
        asyncio.run(_gets(args.store, args.variant, args.gets))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH")
    few, many = (_instructions(args.store, args.variant, n) for n in COUNTED)
    print(f"{args.store} get, {args.variant}: {(many - few) / (COUNTED[1] - COUNTED[0]):,.0f} instructions")


if __name__ == "__main__":
    main(sys.argv[1:])
