"""The autonomy app's HTTP API, installed as a gateway extension.

POST /v1/telemetry                         batches of events (JSON or msgpack) into the feature store
GET  /v1/autonomy/vehicles/{id}/features   one vehicle's window features (an O(1) read)
POST /v1/autonomy/plan                     one vehicle's plan and alternatives
POST /v1/autonomy/plans                    plans for many vehicles in one call (a fleet coordinator)
GET  /v1/autonomy/stats                    what the store holds and has dropped
gRPC strata.autonomy.v1.Autonomy/Drive     telemetry in, plans out on one stream (drive.py; gateway.grpc_port)

Plans go through the planner route's deployment (dynamic batching), so plan requests from many
vehicles and many connections share model calls. Every plan response carries a Server-Timing
header with its stages: feature read, inference, post-process and serialisation.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import orjson
import redis.asyncio as redis
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from strata.apps.autonomy.conditioning import telemetry_windows
from strata.apps.autonomy.drive import drive_service
from strata.apps.autonomy.planner import Plan, PlanGroup, PlanItem
from strata.apps.autonomy.scene import SceneSettings, build_items
from strata.apps.autonomy.stream import StreamConsumer, run_forever
from strata.apps.autonomy.telemetry import EventBatch, decode, events_of, parse_events
from strata.data.features import FeatureStore
from strata.errors import SpecError, StrataError
from strata.gateway.call import Call
from strata.gateway.extensions import Extension
from strata.gateway.request_context import request_context
from strata.gateway.routing import Endpoint, Scope
from strata.lifetimes import task_running
from strata.serving.deployment import Deployment
from strata.serving.route import Served
from strata.serving.server import ModelServer


class VehicleNotFound(StrataError):
    status = 404
    error_type = "invalid_request_error"
    code = "vehicle_not_found"

    def __init__(self, vehicle_id: str) -> None:
        super().__init__(f"No telemetry is held for vehicle '{vehicle_id}' (never seen, or idle and evicted).",
                         param="vehicle_id")  # fmt: skip


class AutonomyOptions(BaseModel):
    """The extension's options in the app spec."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    planner_route: str = Field(default="autonomy-planner", description="Route of the planner deployment.")
    max_vehicles: int = Field(default=4096, ge=1, le=1_000_000, description="Vehicles the store holds at most.")
    idle_ttl_s: float = Field(default=30.0, gt=0, description="A vehicle silent this long is evicted.")
    neighbour_radius_m: float = Field(default=60.0, gt=0, description="Vehicles nearer than this are scored.")
    max_neighbours: int = Field(default=8, ge=0, le=64, description="At most this many nearby vehicles per plan.")
    redis_stream: str | None = Field(default=None, description="Also consume telemetry from this Redis stream.")
    redis_url: str | None = Field(default=None, description="Redis for the stream; default: the spec's store.")
    redis_group: str = Field(default="strata-features", description="Consumer group of the gateways.")
    stream_max_in_flight: int = Field(
        default=64, ge=1, le=4096,
        description="gRPC Drive stream: answers a stream may have unsent before it stops reading requests.",
    )  # fmt: skip


class Obstacle(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    x: float = Field(allow_inf_nan=False, description="World frame, metres.")
    y: float = Field(allow_inf_nan=False)
    radius: float = Field(gt=0, le=100, allow_inf_nan=False)


class PlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vehicle_id: str = Field(min_length=1, max_length=128)
    obstacles: list[Obstacle] = Field(default_factory=list, max_length=256)
    alternatives: int = Field(default=3, ge=0, le=16, description="Other candidates returned, best first.")


class FleetPlanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    vehicles: list[PlanRequest] = Field(min_length=1, max_length=4096)


class AutonomyService:
    def __init__(self, server: ModelServer, options: AutonomyOptions) -> None:
        self.server = server
        self.options = options
        self.store = FeatureStore(telemetry_windows(options.max_vehicles, options.idle_ttl_s))
        self.scene = SceneSettings(options.neighbour_radius_m, options.max_neighbours)
        self.consumer: StreamConsumer | None = None

    # -- ingest ------------------------------------------------------------------------------------

    def ingest(self, events: list[Any]) -> tuple[EventBatch, dict[str, int]]:
        batch = parse_events(events)
        result = self.store.ingest(batch.ids, batch.t, batch.values)
        counts = {"accepted": result.accepted, "late": result.late, "duplicate": result.duplicate}
        return batch, counts

    async def telemetry(self, call: Call) -> Response:
        events = events_of(decode(call.body, call.headers.get("content-type")))
        batch, counts = self.ingest(events)
        body = {**counts, "rejected": [r.as_json() for r in batch.rejected]}
        return Response(orjson.dumps(body), media_type="application/json")

    async def features(self, call: Call) -> Response:
        vehicle_id = call.params["vehicle_id"]
        found = self.store.get(vehicle_id)
        if found is None:
            raise VehicleNotFound(vehicle_id)
        names = self.store.spec.feature_names
        body = {
            "vehicle_id": vehicle_id,
            "t_last": found.t_last,
            "features": dict(zip(names, found.values.tolist(), strict=True)),
            "history": {"t": found.history_t, "columns": self.store.spec.columns, "values": found.history},
        }
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    async def stats(self, call: Call) -> Response:
        stats = self.store.stats
        body = {
            "vehicles": len(self.store), "max_vehicles": self.store.spec.max_keys, "memory_bytes": self.store.nbytes(),
            "accepted": stats.accepted, "late": stats.late, "duplicate": stats.duplicate, "evicted": stats.evicted,
            "stream_batches": self.consumer.batches if self.consumer else 0,
        }  # fmt: skip
        return Response(orjson.dumps(body), media_type="application/json")

    # -- plans -------------------------------------------------------------------------------------

    async def plan(self, call: Call) -> Response:
        body = call.parse(PlanRequest)
        (results, served), missing, timings = await self._plans(call, [body])
        if missing:
            raise VehicleNotFound(body.vehicle_id)
        started = time.perf_counter()
        payload = results[0].as_json(body.alternatives)
        timings["postprocess"] += time.perf_counter() - started
        return self._respond(payload, timings, served)

    async def plans(self, call: Call) -> Response:
        body = call.parse(FleetPlanRequest)
        (results, served), missing, timings = await self._plans(call, body.vehicles)
        errors = [
            {"index": i, "vehicle_id": body.vehicles[i].vehicle_id,
             "error": {"message": VehicleNotFound(body.vehicles[i].vehicle_id).message, "code": "vehicle_not_found",
                       "param": f"vehicles[{i}].vehicle_id"}}
            for i in missing
        ]  # fmt: skip
        started = time.perf_counter()
        absent = set(missing)
        held = [i for i in range(len(body.vehicles)) if i not in absent]
        answers = [plan.as_json(body.vehicles[i].alternatives) for plan, i in zip(results, held, strict=True)]
        payload = {"plans": answers, "errors": errors}
        timings["postprocess"] += time.perf_counter() - started
        return self._respond(payload, timings, served)

    async def _plans(
        self, call: Call, wanted: list[PlanRequest]
    ) -> tuple[tuple[list[Plan], Served | None], list[int], dict[str, float]]:
        route = self.server.resolve(self.options.planner_route)
        call.use_model(route.name)
        started = time.perf_counter()
        obstacles = [np.array([[o.x, o.y, o.radius] for o in w.obstacles]).reshape(-1, 3) for w in wanted]
        items, missing = build_items(self.store, [w.vehicle_id for w in wanted], obstacles, self.scene)
        read = call.record.features_read = time.perf_counter()  # a stage of its own in the request's trace
        served: Served | None = None
        plans: list[Plan] = []
        if items:
            plans, _, served = await route.serve(request_context(call), lambda d: _infer(d, items))
        inferred = time.perf_counter()
        timings = {"feature_read": read - started, "inference": inferred - read, "postprocess": 0.0}
        return (plans, served), missing, timings

    def _respond(self, payload: Any, timings: dict[str, float], served: Served | None) -> Response:
        started = time.perf_counter()
        content = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
        timings["serialise"] = time.perf_counter() - started
        headers = served.headers() if served is not None else {}
        headers["server-timing"] = ", ".join(f"{name};dur={seconds * 1000:.3f}" for name, seconds in timings.items())
        return Response(content, media_type="application/json", headers=headers)

    # -- lifetime ----------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifetime(self, redis_url: str | None) -> AsyncIterator[None]:
        freezer = asyncio.create_task(self._freeze_when_ready(), name="gc-freeze")
        try:
            async with self._stream(redis_url):
                yield
        finally:
            freezer.cancel()
            await asyncio.gather(freezer, return_exceptions=True)

    async def _freeze_when_ready(self) -> None:
        """Once the models are loaded, move every object alive to the collector's permanent
        generation. Ingest allocates a dict per event; each full collection it triggers would
        otherwise walk the whole heap of torch and FastAPI objects (tens of ms, on the event loop)."""
        while not self.server.ready:  # noqa: ASYNC110 - the server exposes readiness as a property, not an event
            await asyncio.sleep(0.1)
        gc.collect()
        gc.freeze()

    @asynccontextmanager
    async def _stream(self, redis_url: str | None) -> AsyncIterator[None]:
        if self.options.redis_stream is None:
            yield
            return
        if redis_url is None:
            raise SpecError("autonomy: redis_stream needs redis_url or the spec's store.redis_url", param="redis_url")
        client = redis.Redis.from_url(redis_url)
        name = f"{socket.gethostname()}-{os.getpid()}"
        self.consumer = StreamConsumer(client, self.options.redis_stream, self.options.redis_group, name,
                                       lambda events: self.ingest(events))  # fmt: skip
        consumer = self.consumer
        async with task_running(lambda: run_forever(consumer), "telemetry-stream"):
            yield
            await client.aclose()


async def _infer(deployment: Deployment, items: list[PlanItem]) -> list[Plan]:
    """A request's vehicles are one batch item; the batcher groups it with other requests' items."""
    plans: list[Plan] = await deployment.infer(PlanGroup(items))
    return plans


def install(server: ModelServer, options: dict[str, Any]) -> Extension:
    """The gateway extension entrypoint (``strata.apps.autonomy.api:install``)."""
    try:
        parsed = AutonomyOptions.model_validate(options)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise SpecError(f"options.{field}: {problem['msg']}", param=f"options.{field}") from None
    if parsed.planner_route not in server.routes:
        raise SpecError(f"options.planner_route: no route '{parsed.planner_route}'", param="options.planner_route")
    service = AutonomyService(server, parsed)
    endpoints = [
        Endpoint("POST", "/v1/telemetry", service.telemetry, Scope.INFER, "Ingest a batch of telemetry events",
                 TAG),
        Endpoint("GET", "/v1/autonomy/vehicles/{vehicle_id}/features", service.features, Scope.INFER,
                 "One vehicle's window features", TAG),
        Endpoint("POST", "/v1/autonomy/plan", service.plan, Scope.INFER, "Plan one vehicle's path", TAG,
                 request=PlanRequest, metered=True),
        Endpoint("POST", "/v1/autonomy/plans", service.plans, Scope.INFER, "Plan many vehicles' paths", TAG,
                 request=FleetPlanRequest, metered=True),
        Endpoint("GET", "/v1/autonomy/stats", service.stats, Scope.INFER, "What the feature store holds", TAG),
    ]  # fmt: skip
    lifetime = service.lifetime(parsed.redis_url or server.spec.store.redis_url)
    return Extension(endpoints, lifetime, {"autonomy": service}, [drive_service(parsed.stream_max_in_flight)])


TAG = "autonomy"
