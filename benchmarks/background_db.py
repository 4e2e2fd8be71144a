"""What the gateway's database thread does while it serves: CPU per kind of background work.

The request loop hands its bookkeeping to a database thread (usage and audit batches, the key
version poll, a worker's idle check, budget refreshes). On a one-core gateway that thread's CPU
is taken from requests and contends for the GIL, so it is measured here per kind of work: the
gateway of the request_path benchmark (no-op model, access on with a tenant key, usage and audit)
is driven in process for ``--duration`` seconds, and each piece of work the database thread runs
is timed with its thread's CPU clock. Run it against an older checkout to compare revisions:

    PYTHONPATH=/tmp/before/src:. .venv/bin/python -m benchmarks.background_db --output before.json

Thread CPU, not wall time, so a busy machine shifts the figures less than a served benchmark's
(it still inflates them: caches and the scheduler are shared). Approximate where work awaits
SQLAlchemy's async layer: another piece of work interleaved on the thread's loop meanwhile is
counted in both, and aiosqlite's own connection thread is counted in neither.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import strata.store.background as background
from benchmarks.harness import pinned_here
from benchmarks.tracing_cost import _BODY, ADMIN_KEY, PATH, running
from strata.access.control import ADMIN_KEY_ENV

Work = Callable[[Any], Awaitable[Any]]


def _name(work: Work) -> str:
    target = getattr(work, "func", work)  # functools.partial
    return str(getattr(target, "__qualname__", repr(target)))


async def measure(duration_s: float) -> dict[str, Any]:
    spent: dict[str, list[float]] = defaultdict(list)
    original = background._call

    async def timed(work: Work, database: Any) -> Any:
        started = time.thread_time()  # the database thread's own clock (the work runs there)
        try:
            return await original(work, database)
        finally:
            spent[_name(work)].append(time.thread_time() - started)

    background._call = timed  # type: ignore[assignment]
    os.environ[ADMIN_KEY_ENV] = ADMIN_KEY
    try:
        with tempfile.TemporaryDirectory() as folder:
            async with running(False, Path(folder)) as client:
                spent.clear()  # start-up reads are not what a serving gateway spends
                requests, ends = 0, time.perf_counter() + duration_s
                while time.perf_counter() < ends:
                    status, body = await client.call("POST", PATH, _BODY)
                    if status != 200:
                        raise AssertionError(f"{status}: {body!r}")
                    requests += 1
                    await asyncio.sleep(0)  # let the background tasks run as they would between requests
    finally:
        background._call = original  # type: ignore[assignment]
    kinds = {
        name: {"calls": len(times), "cpu_ms": sum(times) * 1000, "cpu_ms_per_call": sum(times) * 1000 / len(times)}
        for name, times in sorted(spent.items(), key=lambda item: -sum(item[1]))
    }
    return {"duration_s": duration_s, "requests": requests, "kinds": kinds}


def main() -> None:
    parser = argparse.ArgumentParser(description="CPU of the gateway's database thread, per kind of work.")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    with pinned_here():
        result = asyncio.run(measure(args.duration))
    print(json.dumps(result, indent=1))
    if args.output:
        Path(args.output).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
