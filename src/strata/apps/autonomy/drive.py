"""The autonomy app's gRPC stream: ``strata.autonomy.v1.Autonomy/Drive``, telemetry in, plans out.

A vehicle (or a fleet gateway) keeps one stream open. Each ``DriveRequest`` is answered by the
gateway on the REST routes that mean the same thing, in process: its events are one
``POST /v1/telemetry`` batch and its plan, if it asks for one, one ``POST /v1/autonomy/plan``. So the
stream has REST's credentials (metadata ``authorization``, checked per request, so a revoked key
stops a stream at its next message), access checks, admission, dynamic batching and one request
record per plan (usage, audit, metrics, trace), with no second copy of ingest or planning.

The loop, per stream:
1. the reader takes the next request off the stream and ingests its events (awaited, so a plan
   asked later on the stream sees them);
2. a plan request starts at once, so a fleet gateway's plans share model calls with each other
   and with every other caller's;
3. the request's answer (a running plan, or the ingest counts) joins a bounded queue; when
   ``max_in_flight`` answers wait there, the reader stops taking requests and HTTP/2 flow control
   holds the client back: a client that does not read its plans cannot grow the server's memory;
4. the writer sends the answers in the order the requests came, so plans come back in order
   per vehicle, and ends the stream with the gRPC status of the first request that failed.

A request the gateway refuses for load (429, 503, 504: shed by admission, over a rate limit, past
its deadline) fails alone: its answer says ``refused`` and the stream goes on, because one plan
shed at a busy moment must not cut a whole fleet's stream. Any other failure ends the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import msgpack
import orjson

from strata.apps.autonomy import drive_pb2 as pb
from strata.apps.autonomy import drive_pb2_grpc as pb_grpc
from strata.gateway.asgi import Gateway
from strata.gateway.grpc.inprocess import Reply, call_gateway, forwarded_headers
from strata.gateway.grpc.server import GrpcService

log = logging.getLogger(__name__)
MSGPACK = (b"content-type", b"application/msgpack")
REFUSED_FOR_LOAD = frozenset({429, 503, 504})
# One reply per request, in order; a request that failed ends the stream with this status.
Answer = asyncio.Future[pb.DriveResponse]


class StreamFailed(Exception):
    """A request on the stream failed: the stream ends with ``code`` after the answers before it."""

    def __init__(self, code: grpc.StatusCode, message: str, *, for_load: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.for_load = for_load

    def refused(self) -> pb.Refused:
        return pb.Refused(code=self.code.name, message=self.message)


class DriveService(pb_grpc.AutonomyServicer):
    def __init__(self, gateway: Gateway, max_in_flight: int) -> None:
        self._gateway = gateway
        self._max_in_flight = max_in_flight

    async def Drive(
        self, request_iterator: AsyncIterator[pb.DriveRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DriveResponse]:
        # The stream's deadline is the whole stream's, not each plan's: it is not passed on.
        stream = _Stream(self._gateway, forwarded_headers(context, deadline=False), context.peer())
        answers: asyncio.Queue[Answer | None] = asyncio.Queue(maxsize=self._max_in_flight)
        reader = asyncio.create_task(stream.read(request_iterator, answers), name="drive-reader")
        try:
            while (answer := await answers.get()) is not None:
                try:
                    yield await answer
                except StreamFailed as failed:
                    await context.abort(failed.code, failed.message)
        finally:
            reader.cancel()
            while not answers.empty():  # plans the client will not read: their model work is dropped
                left = answers.get_nowait()
                if left is not None and left.done() and not left.cancelled():
                    left.exception()  # a failure no one will read: retrieved, so asyncio does not log it
                elif left is not None:
                    left.cancel()
            [outcome] = await asyncio.gather(reader, return_exceptions=True)
            if isinstance(outcome, Exception):  # not a request's failure (those are answers): say what broke
                log.warning("Drive stream from %s: the reader failed", context.peer(), exc_info=outcome)


class _Stream:
    """One stream's requests, read in order (steps 1-3 of the module's loop)."""

    def __init__(self, gateway: Gateway, headers: list[tuple[bytes, bytes]], peer: str) -> None:
        self._gateway = gateway
        self._json_headers = headers
        self._msgpack_headers = [MSGPACK if key == b"content-type" else (key, value) for key, value in headers]
        self._peer = peer

    async def read(self, requests: AsyncIterator[pb.DriveRequest], answers: asyncio.Queue[Answer | None]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for request in requests:
                started = time.perf_counter()
                answer: Answer = loop.create_future()
                try:
                    ingested = await self._ingest(request)
                except StreamFailed as failed:
                    if not failed.for_load:
                        answer.set_exception(failed)
                        await answers.put(answer)
                        return  # nothing after a failed request is read: the stream ends with its status
                    answer.set_result(pb.DriveResponse(id=request.id, refused=failed.refused()))
                    await answers.put(answer)
                    continue
                if request.HasField("plan"):
                    answer = asyncio.ensure_future(self._plan(request, ingested, started))
                else:
                    answer.set_result(pb.DriveResponse(id=request.id, ingested=ingested))
                await answers.put(answer)  # waits while max_in_flight answers are unsent: backpressure
        finally:
            await answers.put(None)

    async def _ingest(self, request: pb.DriveRequest) -> pb.Ingested:
        if not request.events:
            if not request.HasField("plan"):
                raise StreamFailed(grpc.StatusCode.INVALID_ARGUMENT, "A DriveRequest needs events, a plan, or both.")
            return pb.Ingested()
        # msgpack, not JSON: it keeps NaN and infinities, which the ingest checks then name.
        body = msgpack.packb({"events": [_event(event) for event in request.events]})
        reply = await self._call("/v1/telemetry", body, self._msgpack_headers)
        counts = reply.json()
        if counts["rejected"]:
            first = counts["rejected"][0]
            raise StreamFailed(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"{first['param']}: {first['message']} ({len(counts['rejected'])} of {len(request.events)} events "
                "rejected; the others were ingested)",
            )
        return pb.Ingested(accepted=counts["accepted"], late=counts["late"], duplicate=counts["duplicate"])

    async def _plan(self, request: pb.DriveRequest, ingested: pb.Ingested, started: float) -> pb.DriveResponse:
        ask = request.plan
        wanted: dict[str, Any] = {
            "vehicle_id": ask.vehicle_id,
            "obstacles": [{"x": o.x, "y": o.y, "radius": o.radius} for o in ask.obstacles],
        }
        if ask.HasField("alternatives"):
            wanted["alternatives"] = ask.alternatives
        try:
            reply = await self._call("/v1/autonomy/plan", orjson.dumps(wanted), self._json_headers)
        except StreamFailed as failed:
            if not failed.for_load:
                raise
            return pb.DriveResponse(id=request.id, ingested=ingested, refused=failed.refused())
        plan = _plan_message(reply)
        plan.latency_ms = (time.perf_counter() - started) * 1000.0
        return pb.DriveResponse(id=request.id, ingested=ingested, plan=plan)

    async def _call(self, path: str, body: bytes, headers: Sequence[tuple[bytes, bytes]]) -> Reply:
        reply = await call_gateway(self._gateway, headers, self._peer, "POST", path, body)
        if reply.status != 200:
            raise StreamFailed(reply.status_code, reply.error_message, for_load=reply.status in REFUSED_FOR_LOAD)
        return reply


def _event(event: pb.Telemetry) -> dict[str, Any]:
    return {"vehicle_id": event.vehicle_id, "timestamp": event.timestamp, "x": event.x, "y": event.y,
            "speed": event.speed, "heading": event.heading, "accel": event.accel, "lane": event.lane}  # fmt: skip


def _plan_message(reply: Reply) -> pb.Plan:
    body = reply.json()
    return pb.Plan(
        vehicle_id=body["vehicle_id"],
        collision_free=body["collision_free"],
        chosen=_candidate(body["plan"]),
        alternatives=[_candidate(candidate) for candidate in body["alternatives"]],
        waypoint_dt_s=body["waypoint_dt_s"],
        route=reply.header(b"x-strata-route") or "",
        model_version=reply.header(b"x-strata-version") or "",
        window_end=body["window_end"],
    )


def _candidate(candidate: dict[str, Any]) -> pb.Candidate:
    return pb.Candidate(
        index=candidate["index"],
        kind=candidate["kind"],
        cost=candidate["cost"],
        clearance_m=candidate["clearance_m"],
        progress_m=candidate["progress_m"],
        comfort=candidate["comfort"],
        waypoints=[pb.Point(x=x, y=y) for x, y in candidate["waypoints"]],
        waypoints_local=[pb.Point(x=x, y=y) for x, y in candidate["waypoints_local"]],
    )


def drive_service(max_in_flight: int) -> GrpcService:
    """The extension's ``grpc_services`` entry: adds the Drive service to the gateway's gRPC server."""

    def add(server: grpc.aio.Server, gateway: Gateway) -> None:
        pb_grpc.add_AutonomyServicer_to_server(DriveService(gateway, max_in_flight), server)  # type: ignore[no-untyped-call]

    return add
