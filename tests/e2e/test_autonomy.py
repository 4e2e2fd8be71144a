"""The autonomy app end to end: a real `strata serve` of the shipped spec, real HTTP, real Redis."""

from __future__ import annotations

import asyncio
import math
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgpack
import pytest
import redis.asyncio as redis
import yaml

from strata.apps.autonomy.demo import autonomy_spec_path
from strata.apps.autonomy.simulator import FleetSimulator
from strata.apps.autonomy.stream import publish
from strata.apps.autonomy.telemetry import encode_events
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REDIS_URL = "redis://127.0.0.1:6379/0"
STREAM = f"strata-test-telemetry-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    spec = yaml.safe_load(autonomy_spec_path().read_text())
    spec["extensions"][0]["options"].update({"redis_stream": STREAM, "redis_url": REDIS_URL, "max_vehicles": 64})
    path = Path(tmp_path_factory.mktemp("autonomy")) / "autonomy.yaml"
    path.write_text(yaml.safe_dump(spec))
    with ServerProcess(path) as process:
        yield process
    asyncio.run(_drop_stream())


async def _drop_stream() -> None:
    client = redis.Redis.from_url(REDIS_URL)
    await client.delete(STREAM)
    await client.aclose()


def drive(client: httpx.Client, sim: FleetSimulator, seconds: float, *, as_msgpack: bool) -> None:
    for _ in range(round(seconds * 10)):
        sim.advance(0.1)
        tick = sim.telemetry()
        body = {"events": encode_events(tick.ids, tick.t, tick.values)}
        if as_msgpack:
            response = client.post("/v1/telemetry", content=msgpack.packb(body),
                                   headers={"content-type": "application/msgpack"})  # fmt: skip
        else:
            response = client.post("/v1/telemetry", json=body)
        assert response.status_code == 200, response.text
        assert response.json() == {"accepted": sim.n, "late": 0, "duplicate": 0, "rejected": []}


def test_telemetry_then_features_then_plans(server: ServerProcess) -> None:
    sim = FleetSimulator(6, seed=21, t0=1.7e9)
    with server.http() as client:
        drive(client, sim, 3.0, as_msgpack=False)
        drive(client, sim, 3.0, as_msgpack=True)
        features = client.get(f"/v1/autonomy/vehicles/{sim.ids[0]}/features").json()
        assert features["t_last"] == pytest.approx(sim.t)
        assert features["features"]["count"] == 60
        assert features["features"]["mean_speed_1s"] > 0
        trace_id = secrets.token_hex(16)
        plan = client.post("/v1/autonomy/plan", json={"vehicle_id": sim.ids[1], "alternatives": 2},
                           headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"})  # fmt: skip
        assert plan.status_code == 200, plan.text
        trace = client.get(f"/v1/admin/traces/{trace_id}")
        assert trace.status_code == 200, trace.text
        spans = {span["name"]: span for span in trace.json()["spans"]}
        # The plan's own stages, in order: the window features read, then the planner's batch and call.
        assert spans["feature_read"]["end_unix_nano"] <= spans["admission"]["end_unix_nano"]
        assert spans["admission"]["end_unix_nano"] <= spans["inference"]["start_unix_nano"]
        assert spans["inference"]["attributes"]["strata.batch.size"] >= 1
        body = plan.json()
        assert body["vehicle_id"] == sim.ids[1]
        assert body["collision_free"]
        assert len(body["plan"]["waypoints"]) == 12
        assert len(body["alternatives"]) == 2
        stages = {part.split(";")[0].strip() for part in plan.headers["server-timing"].split(",")}
        assert stages == {"feature_read", "inference", "postprocess", "serialise"}
        fleet = client.post("/v1/autonomy/plans", json={"vehicles": [{"vehicle_id": v} for v in sim.ids]})
        assert fleet.status_code == 200
        assert [p["vehicle_id"] for p in fleet.json()["plans"]] == sim.ids
        assert fleet.json()["errors"] == []


def test_a_static_obstacle_in_the_path_is_avoided(server: ServerProcess) -> None:
    sim = FleetSimulator(1, seed=4, t0=1.7e9)
    with server.http() as client:
        drive(client, sim, 2.0, as_msgpack=True)
        x, y, heading = sim.telemetry().values[0, [0, 1, 3]]
        ahead = sim.speed[0] * 2.0 + 6.0  # beyond the braking distance, inside the free-driving path
        obstacle = {"x": x + ahead * math.cos(heading), "y": y + ahead * math.sin(heading), "radius": 2.0}
        body = client.post("/v1/autonomy/plan", json={"vehicle_id": sim.ids[0], "obstacles": [obstacle]}).json()
        assert body["collision_free"]
        assert body["plan"]["clearance_m"] >= 2.0


def test_bad_input_gets_openai_errors_and_changes_nothing(server: ServerProcess) -> None:
    with server.http() as client:
        before = client.get("/v1/autonomy/stats").json()
        mixed = {"events": [{"vehicle_id": "ok-1", "timestamp": 1.7e9, "x": 0, "y": 0, "speed": 5, "heading": 0,
                             "accel": 0, "lane": 0}, {"vehicle_id": "bad", "timestamp": "soon"}]}  # fmt: skip
        response = client.post("/v1/telemetry", json=mixed)
        assert response.status_code == 200
        assert response.json()["accepted"] == 1
        assert response.json()["rejected"] == [
            {"index": 1, "param": "events[1].timestamp", "message": "must be a number"}
        ]
        cases = [
            ("/v1/telemetry", {"content": b"{not json"}, 400, "invalid_json", None),
            ("/v1/telemetry", {"json": {"rows": []}}, 400, "invalid_value", "events"),
            ("/v1/telemetry", {"content": b"\xc1", "headers": {"content-type": "application/msgpack"}}, 400,
             "invalid_msgpack", None),
            ("/v1/autonomy/plan", {"json": {"vehicle_id": "never-seen"}}, 404, "vehicle_not_found", "vehicle_id"),
            ("/v1/autonomy/plan", {"json": {"vehicle_id": "ok-1", "obstacles": [{"x": 1, "y": 2, "radius": -1}]}},
             400, "invalid_value", "obstacles[0].radius"),
            ("/v1/autonomy/plans", {"json": {"vehicles": []}}, 400, "invalid_value", "vehicles"),
        ]  # fmt: skip
        for path, kwargs, status, code, param in cases:
            reply = client.post(path, **kwargs)  # type: ignore[arg-type]
            assert reply.status_code == status, (path, reply.text)
            error = reply.json()["error"]
            assert (error["code"], error["param"]) == (code, param), error
        assert client.get("/v1/autonomy/vehicles/never-seen/features").status_code == 404
        after = client.get("/v1/autonomy/stats").json()
        assert after["accepted"] == before["accepted"] + 1
    assert httpx.post(f"{server.url}/v1/autonomy/plan", json={"vehicle_id": "ok-1"}).status_code == 401


def test_telemetry_from_a_redis_stream_reaches_the_store(server: ServerProcess) -> None:
    sim = FleetSimulator(3, seed=8, t0=1.8e9)

    async def produce() -> None:
        client = redis.Redis.from_url(REDIS_URL)
        for _ in range(10):
            sim.advance(0.1)
            tick = sim.telemetry()
            await publish(client, STREAM, encode_events(tick.ids, tick.t, tick.values))
        await client.aclose()

    asyncio.run(produce())
    with server.http() as client:
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            found = client.get(f"/v1/autonomy/vehicles/{sim.ids[2]}/features")
            if found.status_code == 200 and found.json()["features"]["count"] == 10:
                break
            time.sleep(0.1)
        assert found.status_code == 200
        assert found.json()["t_last"] == pytest.approx(sim.t)
        assert client.get("/v1/autonomy/stats").json()["stream_batches"] >= 10
