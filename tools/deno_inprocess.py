"""Drives tools/deno_inprocess.ts: the KV micro-benchmark's ops timed inside one Deno process (no bridge).

kv_micro's "deno in-process" column asks it to time ``loops`` calls of one op and reads back the seconds; the
difference from the "deno" column (the same ops through the deno: backend) is the bridge's cost per round trip.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from queue_impls.kv.backends.deno import find_deno
from queue_impls.kv.errors import DenoNotFoundError

SCRIPT = Path(__file__).with_name("deno_inprocess.ts")
OP_NAMES = ("get", "get_many(10)", "list page(50)", "set", "commit(2 sets)")

#: ``run(op, loops)`` -> seconds those loops took inside Deno.
TimeOp = Callable[[str, int], Awaitable[float]]


def deno_unavailable() -> str | None:
    """Why the deno columns cannot run here, or None."""
    try:
        find_deno()
    except DenoNotFoundError as exc:
        return str(exc)
    return None


@contextlib.asynccontextmanager
async def deno_inprocess(path: Path, entries: int) -> AsyncIterator[TimeOp]:
    """Start the timing script on a Deno KV file at ``path`` seeded with ``entries`` records."""
    argv = [find_deno(), "run", "--unstable-kv", "--no-prompt", "--no-config", f"--allow-read={path}"]
    argv += [f"--allow-write={path}", str(SCRIPT), str(path), "--entries", str(entries), "--serve"]
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout
    lock = asyncio.Lock()

    async def run(op: str, loops: int) -> float:
        async with lock:
            stdin.write(f"{op}\t{loops}\n".encode())
            line = await stdout.readline()
        if not line:
            raise RuntimeError(f"deno_inprocess.ts exited (status {await proc.wait()}) while timing {op!r}")
        return float(line)

    try:
        if (await stdout.readline()).strip() != b"ready":
            raise RuntimeError(f"deno_inprocess.ts did not start (status {await proc.wait()})")
        yield run
    finally:
        stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
