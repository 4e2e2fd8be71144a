"""A simulated fleet driving a running autonomy app over HTTP, as the demo and benchmark do.

Every 25 ms a quarter of the fleet's telemetry goes out as one msgpack batch (each vehicle
reports at 10 Hz); every 12.5 ms the vehicles whose plan fell due go out as one fleet call
(``POST /v1/autonomy/plans``).
Calls are not awaited by the clock: a slow reply never delays the next tick. Each plan's
latency is what its vehicle sees: from the tick that asked to the reply, split into the stages
the server reports in Server-Timing (feature read, inference, post-process, serialisation) and
the rest ("ingress": the network, HTTP parsing, authentication, queueing on the event loop).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import orjson
from numpy.typing import NDArray

from strata.apps.autonomy.simulator import SIM_DT_S, TELEMETRY_EVERY, FleetSimulator
from strata.apps.autonomy.telemetry import encode_events
from strata.apps.autonomy.wire import LeanClient, WireError

STAGES = ("ingress", "feature_read", "serialise", "inference", "postprocess")
TICK_S = SIM_DT_S / 4  # 12.5 ms: the fleet coordinator's tick
STEP_EVERY = round(SIM_DT_S / TICK_S)  # ticks per simulator step
TELEMETRY_EVERY_TICKS = 2  # telemetry goes out every other tick (25 ms), plan calls every tick
GROUPS = round(SIM_DT_S * TELEMETRY_EVERY / (TICK_S * TELEMETRY_EVERY_TICKS))  # each vehicle at 10 Hz


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """The driver is the load generator: a full collection over its growing record (and the torch
    objects imported with the simulator) stalled its loop for up to 460 ms every ~6 s, and every
    plan in flight counted that stall as server latency. Young generations are still collected;
    what the run allocates is bounded by its duration."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], 1 << 30)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


@dataclass
class FleetRecord:
    started: float = field(default_factory=time.perf_counter)
    plan_latency_s: list[float] = field(default_factory=list)
    # The same plus the time since the plan fell due, had vehicles not been aligned to the ticks.
    unaligned_latency_s: list[float] = field(default_factory=list)
    plan_at_s: list[float] = field(default_factory=list)  # when each plan was asked, since the start
    stages_s: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})
    ingest_latency_s: list[float] = field(default_factory=list)
    events: int = 0
    plans: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    tracked: dict[str, dict[str, object]] = field(default_factory=dict)  # vehicle -> a plan and its truth

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def server_timing(header: str) -> dict[str, float]:
    stages = {}
    for part in header.split(","):
        name, _, duration = part.strip().partition(";dur=")
        if duration:
            stages[name] = float(duration) / 1000.0
    return stages


class FleetDriver:
    def __init__(self, client: LeanClient, vehicles: int, plan_hz: float, *, seed: int = 7, track: int = 4):
        self.client = client
        self.sim = FleetSimulator(vehicles, seed=seed, t0=1_700_000_000.0)
        self.plan_hz = plan_hz
        rng = np.random.default_rng(seed)
        # Spread each vehicle's plan requests over the period so load is even, not one burst per second.
        self.phase = rng.uniform(0.0, 1.0, vehicles)
        self.record = FleetRecord()
        self.track = {self.sim.ids[i] for i in range(min(track, vehicles))}
        self.measuring = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._truth: dict[str, list[NDArray[np.float64]]] = {}

    async def run(self, duration_s: float, warmup_s: float = 6.0) -> FleetRecord:
        """Stream telemetry for ``warmup_s`` (the 5 s windows fill), then telemetry and plans.

        The loop ticks every ``TICK_S``: the simulator steps every ``STEP_EVERY`` ticks, a quarter of
        the fleet reports every other tick (so every vehicle reports at 10 Hz, not all at once), and the vehicles
        whose plan fell due since the last tick go out in one fleet call."""
        with _young_collections_only():
            return await self._drive(duration_s, warmup_s)

    async def _drive(self, duration_s: float, warmup_s: float) -> FleetRecord:
        ticks = round((warmup_s + duration_s) / TICK_S)
        first_plan_tick = round(warmup_s / TICK_S)
        start = time.perf_counter()
        for tick in range(ticks):
            if tick % STEP_EVERY == 0:
                self.sim.step()
            if tick % TELEMETRY_EVERY_TICKS == 0:
                self._spawn(self._telemetry((tick // TELEMETRY_EVERY_TICKS) % GROUPS))
            if tick >= first_plan_tick:
                if tick == first_plan_tick:
                    self.record.started = time.perf_counter()
                    self.measuring = True
                self._spawn(self._plans(*self._due((tick - first_plan_tick) * TICK_S)))
            if tick % (GROUPS * TELEMETRY_EVERY_TICKS) == 0:  # 10 Hz
                self._note_truth()
            await asyncio.sleep(max(0.0, start + (tick + 1) * TICK_S - time.perf_counter()))
        await asyncio.gather(*self._tasks)
        return self.record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _due(self, now_s: float) -> tuple[list[str], NDArray[np.float64]]:
        """Vehicles whose plan fell due in the last tick, and how long ago it did (seconds)."""
        period = 1.0 / self.plan_hz
        since = ((now_s / period - self.phase) % 1.0) * period
        due = np.flatnonzero(since < TICK_S)
        return [self.sim.ids[i] for i in due], since[due]

    async def _telemetry(self, group: int) -> None:
        tick = self.sim.telemetry()
        rows = np.arange(group, self.sim.n, GROUPS)
        ids = [tick.ids[i] for i in rows]
        body = msgpack.packb({"events": encode_events(ids, tick.t[rows], tick.values[rows])})
        counted = self.measuring
        started = time.perf_counter()
        try:
            response = await self.client.post("/v1/telemetry", body, "application/msgpack")
        except WireError as error:
            self.record.error(f"telemetry: {error}")
            return
        self.record.ingest_latency_s.append(time.perf_counter() - started)
        if response.status != 200:
            self.record.error(f"telemetry: HTTP {response.status}")
            return
        if counted:  # events of the warm-up do not count toward the rate
            self.record.events += int(orjson.loads(response.body)["accepted"])

    async def _plans(self, vehicles: list[str], waited_s: NDArray[np.float64]) -> None:
        if not vehicles:
            return
        asked = time.perf_counter()
        body = orjson.dumps({"vehicles": [{"vehicle_id": v, "alternatives": 2} for v in vehicles]})
        try:
            response = await self.client.post("/v1/autonomy/plans", body)
        except WireError as error:
            self.record.error(f"plans: {error}")
            return
        latency = time.perf_counter() - asked
        if response.status != 200:
            self.record.error(f"plans: HTTP {response.status}")
            return
        payload = orjson.loads(response.body)
        for failed in payload["errors"]:
            self.record.error(f"plan: {failed['error']['code']}")
        waited = dict(zip(vehicles, waited_s.tolist(), strict=True))
        self._account(
            latency, asked, server_timing(response.headers.get("server-timing", "")), payload["plans"], waited
        )

    def _account(
        self, latency: float, asked: float, stages: dict[str, float], plans: list[dict[str, Any]],
        waited: dict[str, float],
    ) -> None:  # fmt: skip
        served = sum(stages.values())
        for plan in plans:
            self.record.plans += 1
            self.record.plan_latency_s.append(latency)
            self.record.unaligned_latency_s.append(latency + waited[plan["vehicle_id"]])
            self.record.plan_at_s.append(asked - self.record.started)
            for stage in STAGES[1:]:
                self.record.stages_s[stage].append(stages.get(stage, 0.0))
            self.record.stages_s["ingress"].append(max(0.0, latency - served))
            vehicle = str(plan["vehicle_id"])
            if vehicle in self.track and vehicle not in self.record.tracked:
                self.record.tracked[vehicle] = {"plan": plan, "truth": []}
                self._truth[vehicle] = []

    def _note_truth(self) -> None:
        for vehicle, points in self._truth.items():
            if len(points) < 30:  # 3 s at 10 Hz after the plan
                index = self.sim.ids.index(vehicle)
                points.append(self.sim.xy[index].copy())
                self.record.tracked[vehicle]["truth"] = np.array(points)
