"""The submitting client of the workflows benchmark, in a process of its own (as an API gateway or
another service would be): ``python -m benchmarks.workflow_client URL PIPELINE JOBS RATE``.

It submits ``JOBS`` jobs of ``PIPELINE`` straight through the job store (what POST /v1/jobs does
after access control), all at once when ``RATE`` is 0, else at ``RATE`` jobs/s, and prints the
submit rate as JSON on its last line.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from strata.store import Database
from strata.workflows.records import NewJob
from strata.workflows.store import JobStore

STEPS = {"noop3": ["a", "b", "c"], "noop1": ["a"]}


async def submit(url: str, pipeline: str, jobs: int, rate: float) -> float:
    database = Database(url)
    await database.migrate()
    store = JobStore(database)
    started = time.perf_counter()
    try:
        for n in range(jobs):
            if rate > 0:  # an open loop: job n is due at n / rate, whatever the previous ones cost
                await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            await store.submit(NewJob("bench", None, pipeline, {"n": n}, STEPS[pipeline]))
        return jobs / (time.perf_counter() - started)
    finally:
        await database.close()


if __name__ == "__main__":
    url, pipeline, count, per_second = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    print(json.dumps({"submitted_per_s": asyncio.run(submit(url, pipeline, count, per_second))}))
