"""(e) The autonomy app: plan latency with 2,000 vehicles in flight, and telemetry ingest.

Placement as everywhere (harness): the server on core 0 with one torch thread, the fleet (load
generator) on core 1. What is measured, precisely:

* fleet: 2,000 simulated vehicles, each reporting telemetry at 10 Hz (a quarter of the fleet per
  25 ms, msgpack batches: 1.2 M events/min) and each asking for a plan once a second, phases
  spread over the second. A fleet coordinator ticks every 12.5 ms and sends the vehicles whose plan
  fell due as one `POST /v1/autonomy/plans` (about 25 vehicles, 8 sampled paths + braking each).
  A plan's latency is from the tick that asked to the reply, as its vehicle sees it; the row
  "incl. wait for the tick" adds the time since the plan fell due (vehicles not aligned to ticks).
  Every vehicle has a plan request outstanding once per second; requests in flight at any moment
  are about throughput x latency (Little's law), not 2,000: 2,000 outstanding at once at a 10 ms
  p50 would need 200,000 plans/s.
* ingest: as fast as the server takes it, msgpack batches of 2,000 events (one per vehicle,
  increasing timestamps) from two connections; afterwards the features of sampled vehicles must
  show the last event sent (features up to date when the POST returns: ingest is synchronous).
* planner ceiling: the planner model alone, in process, on core 0 (plans/s for batches of 50).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import yaml

from benchmarks.harness import LOADGEN_CPU, Row, cpu_count, percentile, pinned_here, served
from strata.apps.autonomy.conditioning import COND_DIM, HORIZON
from strata.apps.autonomy.demo import PUBLISHED, autonomy_spec_path, drive
from strata.apps.autonomy.fleet import FleetRecord
from strata.apps.autonomy.planner import PlanItem, TrajectoryPlanner
from strata.apps.autonomy.simulator import FleetSimulator
from strata.apps.autonomy.telemetry import encode_events

VEHICLES = 2_000
SMALLER_FLEETS = (500, 1_000)
PLAN_HZ = 1.0
TARGET_P50_MS = 10.0
TARGET_P99_MS = 50.0
TARGET_EVENTS_PER_MIN = 1_000_000.0
INGEST_BATCH = 2_000


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(autonomy_spec_path().read_text())
    spec["extensions"][0]["options"]["max_vehicles"] = 8192
    return spec


def _on_loadgen_core() -> set[int]:
    affinity = os.sched_getaffinity(0)
    if cpu_count() > 1:
        os.sched_setaffinity(0, {LOADGEN_CPU})
    return affinity


def _ingest_bodies(batches: int) -> tuple[list[bytes], list[str], float]:
    sim = FleetSimulator(VEHICLES, seed=9, t0=1_800_000_000.0)
    bodies = []
    for _ in range(batches):
        sim.advance(0.1)
        tick = sim.telemetry()
        bodies.append(msgpack.packb({"events": encode_events(tick.ids, tick.t, tick.values)}))
    return bodies, sim.ids, sim.t


async def _ingest(url: str, headers: dict[str, str], bodies: list[bytes]) -> tuple[float, int, int]:
    """Events/min through POST /v1/telemetry from two connections, accepted count, error count."""
    queue = list(reversed(bodies))
    accepted, errors = 0, 0
    headers = {**headers, "content-type": "application/msgpack"}

    async def sender(client: httpx.AsyncClient) -> None:
        nonlocal accepted, errors
        while queue:
            response = await client.post("/v1/telemetry", content=queue.pop(), headers=headers)
            if response.status_code == 200:
                accepted += int(response.json()["accepted"])
            else:
                errors += 1

    async with (
        httpx.AsyncClient(base_url=url, timeout=60.0) as first,
        httpx.AsyncClient(base_url=url, timeout=60.0) as second,
    ):
        started = time.perf_counter()
        # Batches must arrive in time order per vehicle: two senders interleave neighbouring ticks,
        # which the watermark (1 s) absorbs as out-of-order arrivals.
        await asyncio.gather(sender(first), sender(second))
        elapsed = time.perf_counter() - started
    return accepted / elapsed * 60.0, accepted, errors


def _up_to_date(client: httpx.Client, ids: list[str], t_last: float) -> bool:
    rng = np.random.default_rng(0)
    for vehicle in rng.choice(ids, 20, replace=False):
        features = client.get(f"/v1/autonomy/vehicles/{vehicle}/features").json()
        if abs(features["t_last"] - t_last) > 1e-6:
            return False
    return True


def _cpu_sample(pid: int | None) -> tuple[float, float, float, float]:
    """(wall s, process CPU s, core 0 busy ticks, core 0 all ticks): was the server starved or busy?"""
    process = 0.0
    if pid is not None:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        process = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    core = [int(x) for x in Path("/proc/stat").read_text().splitlines()[1].split()[1:]]
    idle = core[3] + core[4]
    return time.perf_counter(), process, float(sum(core) - idle), float(sum(core))


def _cpu_share(before: tuple[float, ...], after: tuple[float, ...]) -> tuple[float, float]:
    wall = after[0] - before[0]
    return 100 * (after[1] - before[1]) / wall, 100 * (after[2] - before[2]) / max(after[3] - before[3], 1.0)


def _planner_ceiling(batch: int = 50, rounds: int = 40) -> float:
    with pinned_here():
        planner = TrajectoryPlanner()
        rng = np.random.default_rng(0)
        items = [
            PlanItem(f"v{i}", rng.normal(0, 0.3, COND_DIM), np.zeros(3), 12.0, rng.normal(0, 20, (4, HORIZON, 2)),
                     np.zeros((0, 3)))
            for i in range(batch)
        ]  # fmt: skip
        planner.plan(items)
        started = time.perf_counter()
        for _ in range(rounds):
            planner.plan(items)
        return batch * rounds / (time.perf_counter() - started)


def _fleet_rows(record: FleetRecord, duration_s: float, vehicles: int) -> list[Row]:
    p50 = percentile(record.plan_latency_s, 50) * 1000
    p99 = percentile(record.plan_latency_s, 99) * 1000
    errors = sum(record.errors.values())
    stages = {name: percentile(values, 50) * 1000 for name, values in record.stages_s.items()}
    return [
        Row("autonomy", f"plan p50, {vehicles:,} vehicles (1 plan/s + 10 Hz telemetry each)", p50, "ms",
            f"<= {TARGET_P50_MS:g} ms (published 45 ms)", p50 <= TARGET_P50_MS and errors == 0),
        Row("autonomy", "plan p95", percentile(record.plan_latency_s, 95) * 1000, "ms"),
        Row("autonomy", "plan p99", p99, "ms", f"<= {TARGET_P99_MS:g} ms", p99 <= TARGET_P99_MS and errors == 0),
        Row("autonomy", "plan p50 incl. wait for the coordinator tick",
            percentile(record.unaligned_latency_s, 50) * 1000, "ms"),
        Row("autonomy", "plan p99 incl. wait for the coordinator tick",
            percentile(record.unaligned_latency_s, 99) * 1000, "ms"),
        Row("autonomy", "plans served", record.plans / duration_s, "plans/s"),
        Row("autonomy", "telemetry accepted during the fleet run", record.events / duration_s * 60, "events/min"),
        Row("autonomy", "errors during the fleet run", float(errors), "count", "0", errors == 0),
        *(Row("autonomy", f"plan stage p50: {name}", value, "ms") for name, value in stages.items()),
    ]  # fmt: skip


def run(duration_s: float) -> list[Row]:
    ceiling = _planner_ceiling()
    bodies, ids, t_last = _ingest_bodies(max(20, round(duration_s * 150)))
    rows: list[Row] = []
    with served(_spec()) as server:
        pid = server.process.pid if server.process else None
        affinity = _on_loadgen_core()
        try:
            # Smaller fleets first: where the targets hold on this machine, then the 2,000 of the target.
            for vehicles in (*SMALLER_FLEETS, VEHICLES):
                before = _cpu_sample(pid)
                record = asyncio.run(drive(server.url, server.headers, vehicles, PLAN_HZ, duration_s, seed=vehicles))
                share = _cpu_share(before, _cpu_sample(pid))
                rows += _fleet_rows(record, duration_s, vehicles) if vehicles == VEHICLES else _brief(record, vehicles)
            rows += [
                Row("autonomy", "server process CPU during the 2,000-vehicle run (share of one core)", share[0], "%"),
                Row("autonomy", "core 0 busy during that run (the server + anything else scheduled there)", share[1],
                    "%"),
            ]  # fmt: skip
            events_per_min, accepted, ingest_errors = asyncio.run(_ingest(server.url, server.headers, bodies))
            with server.http() as client:
                fresh = _up_to_date(client, ids, t_last)
        finally:
            os.sched_setaffinity(0, affinity)
    ingest_ok = fresh and ingest_errors == 0 and accepted == len(bodies) * VEHICLES
    return [
        *rows,
        Row("autonomy", "ingest, msgpack batches of 2,000 (features up to date after)", events_per_min, "events/min",
            f">= {TARGET_EVENTS_PER_MIN:,.0f} (published 160,000)",
            ingest_ok and events_per_min >= TARGET_EVENTS_PER_MIN),
        Row("autonomy", "planner model ceiling in process (batches of 50, one core)", ceiling, "plans/s"),
        Row("autonomy", "published prototype: median inference latency", PUBLISHED["median_ms"], "ms"),
        Row("autonomy", "published prototype: telemetry rate", PUBLISHED["events_per_min"], "events/min"),
    ]  # fmt: skip


def _brief(record: FleetRecord, vehicles: int) -> list[Row]:
    errors = sum(record.errors.values())
    return [
        Row("autonomy", f"plan p50, {vehicles:,} vehicles", percentile(record.plan_latency_s, 50) * 1000, "ms"),
        Row("autonomy", f"plan p99, {vehicles:,} vehicles ({errors} errors)",
            percentile(record.plan_latency_s, 99) * 1000, "ms"),
    ]  # fmt: skip
