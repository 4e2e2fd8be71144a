"""The Drive stream's loop without a server: order, refusals for load, and backpressure.

The gateway here is a small ASGI app that answers the two routes the stream calls; the real
gateway, access and planner are driven end to end in tests/e2e/test_autonomy_grpc.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn, cast

import grpc
import orjson
import pytest

from strata.apps.autonomy import drive_pb2 as pb
from strata.apps.autonomy.drive import DriveService
from strata.gateway.asgi import Gateway


class PlanGateway:
    """Answers ``/v1/telemetry`` at once and ``/v1/autonomy/plan`` after ``delay_s[vehicle]``;
    a vehicle in ``shed`` gets 503 as admission would send it."""

    def __init__(self, delay_s: dict[str, float] | None = None, shed: frozenset[str] = frozenset()) -> None:
        self.delay_s = delay_s or {}
        self.shed = shed
        self.plans_started = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = orjson.loads((await receive())["body"]) if scope["path"] != "/v1/telemetry" else {}
        if scope["path"] == "/v1/telemetry":
            status, answer = 200, {"accepted": 1, "late": 0, "duplicate": 0, "rejected": []}
        elif body["vehicle_id"] in self.shed:
            status, answer = 503, {"error": {"message": "planner: queue full", "param": None}}
        else:
            self.plans_started += 1
            await asyncio.sleep(self.delay_s.get(body["vehicle_id"], 0.0))
            status, answer = 200, _plan_json(body["vehicle_id"])
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-strata-version", b"v1")]})
        await send({"type": "http.response.body", "body": orjson.dumps(answer)})


def _plan_json(vehicle: str) -> dict[str, Any]:
    candidate = {"index": 0, "kind": "sampled", "cost": 1.0, "clearance_m": 9.0, "progress_m": 5.0, "comfort": 0.1,
                 "waypoints": [[1.0, 2.0]], "waypoints_local": [[1.0, 0.0]]}  # fmt: skip
    return {"vehicle_id": vehicle, "collision_free": True, "plan": candidate, "alternatives": [],
            "waypoint_dt_s": 0.25, "window_end": 7.0}  # fmt: skip


class Context:
    """What the service reads of a grpc.aio.ServicerContext."""

    def invocation_metadata(self) -> list[tuple[str, str]]:
        return [("authorization", "Bearer sk-test")]

    def time_remaining(self) -> float | None:
        return None

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5555"

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise AssertionError(f"aborted: {code} {details}")


def _drive(gateway: PlanGateway, requests: AsyncIterator[pb.DriveRequest], max_in_flight: int = 64) -> Any:
    service = DriveService(cast(Gateway, gateway), max_in_flight)
    return service.Drive(requests, cast(grpc.aio.ServicerContext, Context()))


async def _each(requests: list[pb.DriveRequest]) -> AsyncIterator[pb.DriveRequest]:
    for request in requests:
        yield request


async def test_answers_keep_the_order_of_requests_when_plans_finish_out_of_order() -> None:
    gateway = PlanGateway(delay_s={"slow": 0.05, "fast": 0.0})
    requests = [
        pb.DriveRequest(id="1", plan=pb.PlanAsk(vehicle_id="slow")),
        pb.DriveRequest(id="2", events=[pb.Telemetry(vehicle_id="fast", timestamp=1.0)]),
        pb.DriveRequest(id="3", plan=pb.PlanAsk(vehicle_id="fast")),
    ]
    answers = [answer async for answer in _drive(gateway, _each(requests))]
    assert [a.id for a in answers] == ["1", "2", "3"]
    assert [a.HasField("plan") for a in answers] == [True, False, True]
    assert answers[0].plan.model_version == "v1"
    assert answers[1].ingested.accepted == 1


async def test_a_plan_refused_for_load_is_answered_and_the_stream_goes_on() -> None:
    gateway = PlanGateway(shed=frozenset({"busy"}))
    requests = [pb.DriveRequest(id=str(i), plan=pb.PlanAsk(vehicle_id=v)) for i, v in enumerate(["busy", "ok"])]
    answers = [answer async for answer in _drive(gateway, _each(requests))]
    assert answers[0].refused.code == "UNAVAILABLE"
    assert "queue full" in answers[0].refused.message
    assert not answers[0].HasField("plan")
    assert answers[1].plan.vehicle_id == "ok"


async def test_a_client_that_does_not_read_stops_the_server_reading() -> None:
    """With max_in_flight answers unsent, the stream takes no more requests (HTTP/2 flow control
    then holds the client back): memory is bounded however many requests the client has."""
    pulled = 0

    async def endless() -> AsyncIterator[pb.DriveRequest]:
        nonlocal pulled
        while True:
            pulled += 1
            yield pb.DriveRequest(id=str(pulled), plan=pb.PlanAsk(vehicle_id="v"))

    gateway = PlanGateway()
    stream = _drive(gateway, endless(), max_in_flight=8)
    first = await anext(stream)  # the client reads one answer, then stops reading
    assert first.id == "1"
    await asyncio.sleep(0.1)  # time enough to read thousands of requests were the buffer unbounded
    assert pulled <= 8 + 3  # the bound, the answer taken, the one waiting to enter, the one the generator holds
    assert gateway.plans_started <= pulled
    await stream.aclose()  # the client goes away: the reader and the unsent plans are cancelled


@pytest.mark.parametrize("max_in_flight", [1, 4])
async def test_every_request_is_answered_through_a_small_buffer(max_in_flight: int) -> None:
    requests = [pb.DriveRequest(id=str(i), plan=pb.PlanAsk(vehicle_id=f"v{i % 3}")) for i in range(20)]
    answers = [answer async for answer in _drive(PlanGateway(), _each(requests), max_in_flight)]
    assert [a.id for a in answers] == [str(i) for i in range(20)]
