"""The traffic admin API, the `strata rollout` CLI and the serving headers, over real HTTP:
version headers, blue-green switches, sticky sessions, deadlines, priorities, bad input, and a
replica that stops making progress being restarted."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from chaos_helpers import ChaosServer, predict
from typer.testing import CliRunner

from strata.cli.main import app as cli
from strata.testing.chaos import Fault

pytestmark = pytest.mark.e2e


def _versions(client: httpx.Client, count: int, **headers: str) -> list[str]:
    replies = [client.post("/v1/models/bluegreen/predict", json={"inputs": [1]}, headers=headers) for _ in range(count)]
    assert all(r.status_code == 200 for r in replies)
    return [r.headers["x-strata-version"] for r in replies]


def test_responses_name_the_route_and_version(chaos: ChaosServer) -> None:
    with chaos.server.http() as client:
        reply = client.post("/v1/models/small/predict", json={"inputs": ["hi"]})
    assert reply.status_code == 200
    assert reply.json()["outputs"] == ["hi"]
    assert reply.headers["x-strata-route"] == "small"
    assert reply.headers["x-strata-version"] == "small"  # the shorthand: one version named after its deployment


def test_blue_green_switch_and_back_and_sticky_sessions(chaos: ChaosServer) -> None:
    with chaos.server.http() as client:
        assert set(_versions(client, 5)) == {"blue"}
        switched = client.put("/v1/admin/routes/bluegreen/traffic", json={"weights": {"green": 100}})
        assert switched.status_code == 200, switched.text
        assert set(_versions(client, 5)) == {"green"}
        client.put("/v1/admin/routes/bluegreen/traffic", json={"weights": {"blue": 50, "green": 50}}).raise_for_status()
        seen = {session: set(_versions(client, 4, **{"x-strata-session": session})) for session in "abcdefgh"}
        assert all(len(versions) == 1 for versions in seen.values()), seen
        assert {next(iter(v)) for v in seen.values()} == {"blue", "green"}
        client.put("/v1/admin/routes/bluegreen/traffic", json={"weights": {"blue": 100}}).raise_for_status()
        assert set(_versions(client, 5)) == {"blue"}
        listed = client.get("/v1/admin/routes").json()["routes"]
    bluegreen = next(route for route in listed if route["name"] == "bluegreen")
    assert bluegreen["versions"] == [
        {"name": "blue", "deployment": "blue", "weight": 100.0},
        {"name": "green", "deployment": "green", "weight": 0.0},
    ]
    assert bluegreen["sticky"] == "session"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "param"),
    [
        ("PUT", "/routes/bluegreen/traffic", {"weights": {"v9": 100}}, 400, "weights"),
        ("PUT", "/routes/bluegreen/traffic", {"weights": {"blue": 60}}, 400, "weights"),
        ("PUT", "/routes/bluegreen/traffic", {"weights": {"blue": 120}}, 400, "weights.blue"),
        ("PUT", "/routes/bluegreen/traffic", {"weights": {"blue": 100}, "switch": 1}, 400, "switch"),
        ("POST", "/routes/bluegreen/rollout", {"canary": "v9"}, 400, "canary"),
        ("POST", "/routes/bluegreen/rollout", {"canary": "green", "steps": [50, 10, 100]}, 400, "steps"),
        ("POST", "/routes/bluegreen/rollout", {}, 400, "canary"),
        ("POST", "/routes/bluegreen/rollout/promote", None, 409, None),
        ("POST", "/routes/bluegreen/rollout/abort", None, 409, None),
        ("GET", "/routes/ghost/rollout", None, 404, "model"),
    ],
)
def test_admin_bad_input_gets_openai_errors(
    chaos: ChaosServer, method: str, path: str, body: object, status: int, param: str | None
) -> None:
    with chaos.server.http() as client:
        reply = client.request(method, f"/v1/admin{path}", json=body)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert error["param"] == param
    assert error["message"]


@pytest.mark.parametrize(
    ("header", "value"),
    [("x-strata-deadline-ms", "soon"), ("x-strata-deadline-ms", "-5"), ("x-strata-priority", "urgent")],
)
def test_bad_serving_headers_are_named(chaos: ChaosServer, header: str, value: str) -> None:
    with chaos.server.http() as client:
        reply = client.post("/v1/models/small/predict", json={"inputs": [1]}, headers={header: value})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == header


def test_client_deadline_is_honoured(chaos: ChaosServer) -> None:
    with chaos.server.http() as client:
        started = time.perf_counter()
        late = client.post("/v1/models/busy/predict", json={"inputs": [1]}, headers={"x-strata-deadline-ms": "30"})
        elapsed_s = time.perf_counter() - started
        on_time = client.post("/v1/models/busy/predict", json={"inputs": [1]}, headers={"x-strata-deadline-ms": "5000"})
    assert late.status_code == 504, late.text
    assert late.json()["error"]["code"] == "deadline_exceeded"
    assert elapsed_s < 0.1 + 1.0  # the model takes 100 ms; the answer did not wait for it (1 s of slack for load)
    assert on_time.status_code == 200


def test_batch_priority_is_accepted(chaos: ChaosServer) -> None:
    with chaos.server.http() as client:
        reply = client.post("/v1/models/busy/predict", json={"inputs": [1]}, headers={"x-strata-priority": "batch"})
    assert reply.status_code == 200


@pytest.mark.slow
async def test_a_replica_that_stops_making_progress_is_restarted(chaos: ChaosServer) -> None:
    chaos.control("hangs").set(Fault("hang", replicas=1, seconds=3))
    async with chaos.server.async_http(timeout=30) as client:
        replies = await asyncio.gather(*(predict(client, "hangs", i) for i in range(20)))
    chaos.control("hangs").clear()
    assert [r.status for r in replies] == [200] * 20
    replicas = chaos.deployment("hangs")["replicas"]
    assert sum(r["restarts"] for r in replicas) == 1  # type: ignore[index,union-attr,misc]
    assert max(r.latency_s for r in replies) < 3  # served elsewhere, not after the hang ended


def test_rollout_cli_start_status_promote_abort(chaos: ChaosServer) -> None:
    runner = CliRunner()
    env = {"STRATA_API_KEY": chaos.server.api_key, "STRATA_URL": chaos.server.url}
    manual = ["rollout", "start", "bluegreen", "--canary", "green", "--steps", "10,50,100", "--manual"]
    started = runner.invoke(cli, manual, env=env)
    assert started.exit_code == 0, started.output
    assert "running at 10%" in started.output
    again = runner.invoke(cli, manual, env=env)
    assert again.exit_code == 1
    assert "already running" in again.output
    promoted = runner.invoke(cli, ["rollout", "promote", "bluegreen"], env=env)
    assert "running at 50%" in promoted.output
    status = runner.invoke(cli, ["rollout", "status", "bluegreen"], env=env)
    assert status.exit_code == 0
    assert "green" in status.output
    assert "50" in status.output
    aborted = runner.invoke(cli, ["rollout", "abort", "bluegreen"], env=env)
    assert "rolled_back at 0%" in aborted.output
    switched = runner.invoke(cli, ["rollout", "switch", "bluegreen", "blue=100"], env=env)
    assert switched.exit_code == 0, switched.output
    bad = runner.invoke(cli, ["rollout", "switch", "bluegreen", "blue"], env=env)
    assert bad.exit_code == 2


def test_readyz_reports_each_replica(chaos: ChaosServer) -> None:
    ready = httpx.get(f"{chaos.server.url}/readyz", timeout=10).json()
    states = ready["deployments"]["slowable"]["replica_states"]
    assert set(states) == {f"slowable-{i}" for i in range(4)}
    assert all(state["alive"] for state in states.values())
