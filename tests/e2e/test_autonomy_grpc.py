"""The autonomy app's gRPC stream (Autonomy/Drive) with a grpcio client against a real `strata serve`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
import yaml

from strata.apps.autonomy import drive_pb2 as pb
from strata.apps.autonomy import drive_pb2_grpc as pb_grpc
from strata.apps.autonomy.demo import autonomy_spec_path
from strata.apps.autonomy.simulator import FleetSimulator
from strata.testing import ServerProcess
from strata.testing.server import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PLAN_ROUTE = 'route="/v1/autonomy/plan",status="200"'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, int]]:
    spec = yaml.safe_load(autonomy_spec_path().read_text())
    port = free_port()
    spec["gateway"]["grpc_port"] = port
    spec["extensions"][0]["options"].update({"max_vehicles": 64})
    # No latency target: admission would shed plans on a busy test machine (refusals have their own test).
    spec["deployments"][0].pop("targets", None)
    path = Path(tmp_path_factory.mktemp("autonomy-grpc")) / "autonomy.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path) as process:
        yield process, port


@pytest.fixture(scope="module")
def stub(served: tuple[ServerProcess, int]) -> Iterator[pb_grpc.AutonomyStub]:
    with grpc.insecure_channel(f"127.0.0.1:{served[1]}") as channel:
        yield pb_grpc.AutonomyStub(channel)


def _auth(server: ServerProcess) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {server.api_key}")]


def _events(sim: FleetSimulator) -> list[pb.Telemetry]:
    tick = sim.telemetry()
    return [
        pb.Telemetry(vehicle_id=vehicle, timestamp=float(tick.t[i]), x=row[0], y=row[1], speed=row[2],
                     heading=row[3], accel=row[4], lane=int(row[5]))
        for i, (vehicle, row) in enumerate(zip(tick.ids, tick.values.tolist(), strict=True))
    ]  # fmt: skip


def _plans_served(server: ServerProcess) -> float:
    lines = httpx.get(f"{server.url}/metrics", headers=server.headers).text.splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("strata_requests") and PLAN_ROUTE in line
    )


def test_two_vehicles_stream_telemetry_and_get_their_plans_in_order(
    served: tuple[ServerProcess, int], stub: pb_grpc.AutonomyStub
) -> None:
    server, _ = served
    sim = FleetSimulator(2, seed=31, t0=1.75e9)
    requests = []
    for tick in range(30):  # 3 s of telemetry at 10 Hz, both vehicles per message
        sim.advance(0.1)
        requests.append(pb.DriveRequest(id=f"t{tick}", events=_events(sim)))
        if tick >= 20:  # then a plan per vehicle per tick, each from the features held after that tick
            for vehicle in sim.ids:
                requests.append(pb.DriveRequest(id=f"p{tick}-{vehicle}", plan=pb.PlanAsk(vehicle_id=vehicle)))
    before = _plans_served(server)
    replies = list(stub.Drive(iter(requests), metadata=_auth(server)))

    assert [reply.id for reply in replies] == [request.id for request in requests]  # one answer each, in order
    for request, reply in zip(requests, replies, strict=True):
        if request.events:
            assert (reply.ingested.accepted, reply.ingested.late, reply.ingested.duplicate) == (2, 0, 0)
        assert reply.HasField("plan") == request.HasField("plan")
        if request.HasField("plan"):
            plan = reply.plan
            tick = int(request.id[1:].split("-")[0])
            assert plan.vehicle_id == request.plan.vehicle_id
            # The plan used exactly the telemetry streamed before it: the window ends at that tick's event.
            assert plan.window_end == pytest.approx(1.75e9 + 0.1 * (tick + 1))
            assert len(plan.chosen.waypoints) == 12
            assert len(plan.alternatives) == 3
            assert plan.route == "autonomy-planner"
            assert plan.model_version
            assert plan.latency_ms > 0
    assert _plans_served(server) - before == 20  # each plan a request record on the REST plan route


def test_a_streamed_plan_matches_the_rest_plan_for_the_same_features(
    served: tuple[ServerProcess, int], stub: pb_grpc.AutonomyStub
) -> None:
    """The planner samples from a seeded generator whose state moves on with every call, so two plans
    of the same features differ in their sampled paths; the braking candidate is a function of the
    features alone (pose and speed), so it must be the same to the millimetre."""
    server, _ = served
    sim = FleetSimulator(2, seed=32, t0=1.76e9)
    requests = []
    for _ in range(20):
        sim.advance(0.1)
        requests.append(pb.DriveRequest(events=_events(sim)))
    vehicle = sim.ids[1]
    requests.append(pb.DriveRequest(plan=pb.PlanAsk(vehicle_id=vehicle, alternatives=16)))
    streamed = list(stub.Drive(iter(requests), metadata=_auth(server)))[-1].plan
    with server.http() as client:
        features = client.get(f"/v1/autonomy/vehicles/{vehicle}/features").json()
        rest = client.post("/v1/autonomy/plan", json={"vehicle_id": vehicle, "alternatives": 16}).json()
    assert streamed.window_end == features["t_last"] == rest["window_end"]
    candidates = [streamed.chosen, *streamed.alternatives]
    assert len(candidates) == 1 + len(rest["alternatives"]) == 9  # k = 8 sampled and the braking path
    [brake] = [c for c in candidates if c.kind == "brake"]
    [rest_brake] = [c for c in [rest["plan"], *rest["alternatives"]] if c["kind"] == "brake"]
    assert [[p.x, p.y] for p in brake.waypoints] == rest_brake["waypoints"]
    assert [[p.x, p.y] for p in brake.waypoints_local] == rest_brake["waypoints_local"]


@pytest.mark.parametrize("metadata", [[], [("authorization", "Bearer sk-strata-wrong")]], ids=["no-key", "wrong-key"])
def test_bad_credentials_end_the_stream_unauthenticated(
    served: tuple[ServerProcess, int], stub: pb_grpc.AutonomyStub, metadata: list[tuple[str, str]]
) -> None:
    sim = FleetSimulator(1, seed=33, t0=1.77e9)
    sim.advance(0.1)
    with pytest.raises(grpc.RpcError) as error:
        list(stub.Drive(iter([pb.DriveRequest(events=_events(sim))]), metadata=metadata))
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED, error.value.details()
    with httpx.Client(base_url=served[0].url, headers=served[0].headers) as client:
        assert client.get(f"/v1/autonomy/vehicles/{sim.ids[0]}/features").status_code == 404  # nothing ingested


def _bad_speed() -> pb.DriveRequest:
    event = pb.Telemetry(vehicle_id="bad-1", timestamp=1.78e9, speed=-5.0)
    return pb.DriveRequest(events=[event])


@pytest.mark.parametrize(
    ("request_", "code", "names"),
    [
        (_bad_speed(), grpc.StatusCode.INVALID_ARGUMENT, "events[0].speed"),
        (pb.DriveRequest(events=[pb.Telemetry(vehicle_id="nan-1", timestamp=float("nan"))]),
         grpc.StatusCode.INVALID_ARGUMENT, "events[0].timestamp"),
        (pb.DriveRequest(id="empty"), grpc.StatusCode.INVALID_ARGUMENT, "needs events, a plan"),
        (pb.DriveRequest(plan=pb.PlanAsk(vehicle_id="")), grpc.StatusCode.INVALID_ARGUMENT, "vehicle_id"),
        (pb.DriveRequest(plan=pb.PlanAsk(vehicle_id="grpc-ok", alternatives=99)), grpc.StatusCode.INVALID_ARGUMENT,
         "alternatives"),
        (pb.DriveRequest(plan=pb.PlanAsk(vehicle_id="grpc-ok", obstacles=[pb.Obstacle(x=1, y=2, radius=-1)])),
         grpc.StatusCode.INVALID_ARGUMENT, "obstacles[0].radius"),
        (pb.DriveRequest(plan=pb.PlanAsk(vehicle_id="never-seen")), grpc.StatusCode.NOT_FOUND, "vehicle_id"),
    ],
    ids=["negative-speed", "nan-timestamp", "empty", "no-vehicle", "alternatives", "obstacle", "unknown-vehicle"],
)  # fmt: skip
def test_a_bad_message_ends_the_stream_after_the_answers_before_it(
    served: tuple[ServerProcess, int],
    stub: pb_grpc.AutonomyStub,
    request_: pb.DriveRequest,
    code: grpc.StatusCode,
    names: str,
) -> None:
    server, _ = served
    good = pb.Telemetry(vehicle_id="grpc-ok", timestamp=1.79e9, x=1.0, y=2.0, speed=5.0)
    after = pb.DriveRequest(id="never-answered", plan=pb.PlanAsk(vehicle_id="grpc-ok"))
    replies: list[str] = []
    stream = stub.Drive(iter([pb.DriveRequest(id="first", events=[good]), request_, after]), metadata=_auth(server))
    with pytest.raises(grpc.RpcError) as error:
        replies.extend(reply.id for reply in stream)
    assert error.value.code() == code, error.value.details()
    assert names in error.value.details()
    assert replies == ["first"]  # answered before the failure; nothing after it
