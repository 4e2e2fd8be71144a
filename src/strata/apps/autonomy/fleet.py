"""A simulated fleet driving a running autonomy app over HTTP, as the demo and benchmark do.

Every telemetry tick (10 Hz) the whole fleet's events go out as one msgpack batch; every plan
tick the vehicles whose plan is due go out as one fleet call (``POST /v1/autonomy/plans``).
Calls are not awaited by the clock: a slow reply never delays the next tick. Each plan's
latency is what its vehicle sees: from the tick that asked to the reply, split into the stages
the server reports in Server-Timing (feature read, inference, post-process, serialisation) and
the rest ("ingress": the network, HTTP parsing, authentication, queueing on the event loop).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import numpy as np
from numpy.typing import NDArray

from strata.apps.autonomy.simulator import SIM_DT_S, TELEMETRY_EVERY, FleetSimulator
from strata.apps.autonomy.telemetry import encode_events

STAGES = ("ingress", "feature_read", "serialise", "inference", "postprocess")
TELEMETRY_HZ = 1.0 / (SIM_DT_S * TELEMETRY_EVERY)


@dataclass
class FleetRecord:
    started: float = field(default_factory=time.perf_counter)
    plan_latency_s: list[float] = field(default_factory=list)
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
    def __init__(self, client: httpx.AsyncClient, vehicles: int, plan_hz: float, *, seed: int = 7, track: int = 4):
        self.client = client
        self.sim = FleetSimulator(vehicles, seed=seed, t0=1_700_000_000.0)
        self.plan_hz = plan_hz
        rng = np.random.default_rng(seed)
        # Spread each vehicle's plan requests over the period so load is even, not one burst per second.
        self.phase = rng.uniform(0.0, 1.0, vehicles)
        self.record = FleetRecord()
        self.track = {self.sim.ids[i] for i in range(min(track, vehicles))}
        self._tasks: set[asyncio.Task[None]] = set()
        self._truth: dict[str, list[NDArray[np.float64]]] = {}

    async def run(self, duration_s: float, warmup_s: float = 6.0) -> FleetRecord:
        """Stream telemetry for ``warmup_s`` (the 5 s windows fill), then telemetry and plans."""
        tick_s = 1.0 / TELEMETRY_HZ
        ticks = round((warmup_s + duration_s) / tick_s)
        start = time.perf_counter()
        for tick in range(ticks):
            self.sim.advance(tick_s)
            self._spawn(self._telemetry())
            now_s = tick * tick_s
            if now_s >= warmup_s:
                if tick == round(warmup_s / tick_s):
                    self.record.started = time.perf_counter()
                self._spawn(self._plans(self._due(now_s - warmup_s, tick_s)))
            self._note_truth()
            await asyncio.sleep(max(0.0, start + (tick + 1) * tick_s - time.perf_counter()))
        await asyncio.gather(*self._tasks)
        return self.record

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _due(self, now_s: float, tick_s: float) -> list[str]:
        period = 1.0 / self.plan_hz
        position = (now_s / period - self.phase) % 1.0
        due = np.flatnonzero(position < tick_s / period)
        return [self.sim.ids[i] for i in due]

    async def _telemetry(self) -> None:
        tick = self.sim.telemetry()
        body = msgpack.packb({"events": encode_events(tick.ids, tick.t, tick.values)})
        started = time.perf_counter()
        try:
            response = await self.client.post("/v1/telemetry", content=body,
                                              headers={"content-type": "application/msgpack"})  # fmt: skip
        except httpx.HTTPError as error:
            self.record.error(f"telemetry: {type(error).__name__}")
            return
        self.record.ingest_latency_s.append(time.perf_counter() - started)
        if response.status_code != 200:
            self.record.error(f"telemetry: HTTP {response.status_code}")
            return
        self.record.events += int(response.json()["accepted"])

    async def _plans(self, vehicles: list[str]) -> None:
        if not vehicles:
            return
        asked = time.perf_counter()
        body = {"vehicles": [{"vehicle_id": v, "alternatives": 2} for v in vehicles]}
        try:
            response = await self.client.post("/v1/autonomy/plans", json=body)
        except httpx.HTTPError as error:
            self.record.error(f"plans: {type(error).__name__}")
            return
        latency = time.perf_counter() - asked
        if response.status_code != 200:
            self.record.error(f"plans: HTTP {response.status_code}")
            return
        payload = response.json()
        for failed in payload["errors"]:
            self.record.error(f"plan: {failed['error']['code']}")
        self._account(latency, asked, server_timing(response.headers.get("server-timing", "")), payload["plans"])

    def _account(self, latency: float, asked: float, stages: dict[str, float], plans: list[dict[str, object]]) -> None:
        served = sum(stages.values())
        for plan in plans:
            self.record.plans += 1
            self.record.plan_latency_s.append(latency)
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
