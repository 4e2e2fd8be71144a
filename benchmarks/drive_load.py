"""A closed-loop load generator for autonomy plans (its own process): REST or the gRPC Drive stream.

    python -m benchmarks.drive_load --mode grpc --port P --key K --vehicles 16 --duration 5 --cpu 1

Each of ``--vehicles`` vehicles first streams 2 s of telemetry (10 Hz, not timed), then loops for
``--duration`` seconds, one request outstanding at a time, back to back or (``--hz``) at most
``hz`` a second (a refused request waits for the next period, as a vehicle would):
* ``--tick`` off: asks for a plan (REST: ``POST /v1/autonomy/plan`` on its own keep-alive
  connection; gRPC: a ``DriveRequest`` with a plan on its own stream);
* ``--tick`` on: sends its next event and asks for a plan (REST: ``POST /v1/telemetry`` then
  ``POST /v1/autonomy/plan``; gRPC: one ``DriveRequest`` carrying both).
A latency is from the send to the plan received. Prints one JSON object: plans, errors, elapsed_s,
p50_ms, p99_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import orjson

from strata.apps.autonomy import drive_pb2 as pb
from strata.apps.autonomy import drive_pb2_grpc as pb_grpc
from strata.apps.autonomy.wire import LeanClient

T0 = 1_900_000_000.0
WARM_EVENTS = 20


class Vehicle:
    """A vehicle driving straight along its own lane of the world at 12 m/s."""

    def __init__(self, index: int, run: str) -> None:
        self.id = f"{run}-v{index}"
        self.y = 10.0 * index
        self.step = 0

    def next_event(self) -> dict[str, Any]:
        self.step += 1
        return {"vehicle_id": self.id, "timestamp": T0 + 0.1 * self.step, "x": 1.2 * self.step, "y": self.y,
                "speed": 12.0, "heading": 0.0, "accel": 0.0, "lane": 1}  # fmt: skip


class Clock:
    """Every vehicle warms up, then all start the timed phase together."""

    def __init__(self, vehicles: int, duration_s: float, hz: float) -> None:
        self.barrier = asyncio.Barrier(vehicles + 1)
        self.duration_s = duration_s
        self.period_s = 1.0 / hz if hz > 0 else 0.0

    async def pace(self, sent: float) -> None:
        """At ``hz``, the next request goes out one period after this one (at once when it is late)."""
        if self.period_s:
            await asyncio.sleep(max(0.0, sent + self.period_s - time.perf_counter()))

    async def start(self) -> float:
        await self.barrier.wait()
        return time.perf_counter() + self.duration_s


async def _rest_vehicle(client: LeanClient, vehicle: Vehicle, tick: bool, clock: Clock, out: list[float]) -> int:
    for _ in range(WARM_EVENTS):
        await client.post("/v1/telemetry", orjson.dumps({"events": [vehicle.next_event()]}))
    stop_at = await clock.start()
    plan = orjson.dumps({"vehicle_id": vehicle.id})
    errors = 0
    while time.perf_counter() < stop_at:
        sent = time.perf_counter()
        if tick:
            await client.post("/v1/telemetry", orjson.dumps({"events": [vehicle.next_event()]}))
        reply = await client.post("/v1/autonomy/plan", plan)
        if reply.status == 200:
            out.append(time.perf_counter() - sent)
        else:
            errors += 1
        await clock.pace(sent)
    return errors


async def _grpc_vehicle(stub: Any, key: str, vehicle: Vehicle, tick: bool, clock: Clock, out: list[float]) -> int:
    """One stream; each request is sent when the previous answer came back (a queue in between)."""
    outbox: asyncio.Queue[pb.DriveRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[pb.DriveRequest]:
        while (request := await outbox.get()) is not None:
            yield request

    def event() -> pb.Telemetry:
        return pb.Telemetry(**vehicle.next_event())

    call = stub.Drive(requests(), metadata=(("authorization", f"Bearer {key}"),))
    for _ in range(WARM_EVENTS):
        outbox.put_nowait(pb.DriveRequest(events=[event()]))
        await call.read()
    stop_at = await clock.start()
    errors = 0
    ask = pb.PlanAsk(vehicle_id=vehicle.id)
    while time.perf_counter() < stop_at:
        sent = time.perf_counter()
        outbox.put_nowait(pb.DriveRequest(events=[event()], plan=ask) if tick else pb.DriveRequest(plan=ask))
        answer = await call.read()
        if answer.HasField("plan"):
            out.append(time.perf_counter() - sent)
        else:
            errors += 1
        await clock.pace(sent)
    outbox.put_nowait(None)
    while await call.read() is not grpc.aio.EOF:  # the stream ends cleanly once everything is answered
        pass
    return errors


async def _run(
    mode: str, port: int, key: str, vehicles: int, tick: bool, hz: float, duration_s: float
) -> dict[str, float]:
    run = f"{mode}-{'tick' if tick else 'plan'}-{os.getpid()}"
    fleet = [Vehicle(i, run) for i in range(vehicles)]
    latencies: list[float] = []
    clock = Clock(vehicles, duration_s, hz)

    async def timed(drivers: list[Awaitable[int]]) -> tuple[int, float]:
        everyone = asyncio.gather(*drivers)
        await clock.start()  # the warm-up telemetry is not timed
        started = time.perf_counter()
        errors = sum(await everyone)
        return errors, time.perf_counter() - started

    if mode == "rest":
        client = LeanClient(f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {key}"}, connections=vehicles)
        errors, elapsed = await timed([_rest_vehicle(client, v, tick, clock, latencies) for v in fleet])
        await client.close()
    else:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AutonomyStub(channel)
            errors, elapsed = await timed([_grpc_vehicle(stub, key, v, tick, clock, latencies) for v in fleet])
    latencies.sort()

    def percentile_ms(q: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] if latencies else 0.0

    return {"plans": len(latencies), "errors": errors, "elapsed_s": elapsed, "p50_ms": percentile_ms(50),
            "p99_ms": percentile_ms(99)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("rest", "grpc"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--vehicles", type=int, default=1)
    parser.add_argument("--tick", action="store_true")
    parser.add_argument("--hz", type=float, default=0.0, help="requests per second per vehicle; 0: closed loop")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--cpu", type=int, default=None)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    result = asyncio.run(_run(args.mode, args.port, args.key, args.vehicles, args.tick, args.hz, args.duration))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
