"""Two `strata serve --runtime ray` gateways on one cluster, sharing PostgreSQL and Redis: one
controller and one set of replicas, one rate limit, keys made on one gateway valid on the other."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import ray
import yaml
from ray_apps import ECHO

from strata.runtime.ray_controller import controller_name
from strata.testing import MetricSamples, ServerProcess, predict_round_robin
from strata.testing.databases import temporary_postgres_database
from strata.testing.ray_cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.distributed, pytest.mark.e2e]
REQUESTS_PER_MINUTE = 30


def _spec(app: str) -> dict[str, object]:
    return {
        "name": app,
        "runtime": "ray",
        "ray": {"namespace": app, "sync_interval_ms": 100, "control_interval_ms": 200},
        "models": [
            {"name": "echo", "kind": "python", "entrypoint": ECHO},
            {"name": "chat", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"},
        ],
        "deployments": [
            {"name": "echo", "model": "echo", "resources": {"cpus": 0.2}},
            {"name": "chat", "model": "chat", "resources": {"cpus": 0.5}},
            {"name": "echo-green", "model": "echo", "resources": {"cpus": 0.2}},
        ],
        "routes": [
            {"name": "echo", "deployment": "echo"},
            {"name": "chat", "deployment": "chat"},
            {
                "name": "pair",
                "versions": [
                    {"name": "blue", "deployment": "echo", "weight": 100},
                    {"name": "green", "deployment": "echo-green", "weight": 0},
                ],
            },
        ],
        "access": {
            "per_key": {"requests_per_minute": REQUESTS_PER_MINUTE},
            "rate_limit_namespace": f"test-{secrets.token_hex(6)}",
        },
    }


@pytest.fixture(scope="module")
def gateways(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ServerProcess]]:
    app = f"gw{secrets.token_hex(4)}"
    path: Path = tmp_path_factory.mktemp("gateways") / "app.yaml"
    path.write_text(yaml.safe_dump(_spec(app)))
    with temporary_postgres_database() as database:
        env = {
            "STRATA_DATABASE_URL": database,
            "STRATA_REDIS_URL": "redis://127.0.0.1:6379/0",
            "STRATA_RAY_ADDRESS": cluster.address,
        }
        admin_key = f"sk-strata-test-{secrets.token_hex(16)}"
        try:
            with (
                ServerProcess(path, env=env, api_key=admin_key, ready_timeout_s=180) as first,
                ServerProcess(path, env=env, api_key=admin_key, ready_timeout_s=180) as second,
            ):
                yield [first, second]
        finally:
            controller = ray.get_actor(controller_name(app), namespace=app)
            ray.get(controller.shutdown.remote())
            ray.kill(controller, no_restart=True)


def _cluster_view(gateway: ServerProcess) -> dict[str, object]:
    with gateway.http() as admin:
        response = admin.get("/v1/admin/cluster")
        assert response.status_code == 200, response.text
        view: dict[str, object] = response.json()
        return view


def test_both_gateways_route_to_the_one_replica_set_of_one_controller(gateways: list[ServerProcess]) -> None:
    views = [_cluster_view(g) for g in gateways]
    assert views[0]["gateway"] != views[1]["gateway"]
    replica_sets = [
        {name: sorted(r["replica_id"] for r in d["replicas"]) for name, d in v["deployments"].items()}  # type: ignore[attr-defined]
        for v in views
    ]
    assert replica_sets[0] == replica_sets[1]
    app = _app(views[0])
    assert replica_sets[0] == {
        "echo": [f"{app}:echo:0"],
        "chat": [f"{app}:chat:0"],
        "echo-green": [f"{app}:echo-green:0"],
    }
    for gateway in gateways:
        samples = MetricSamples.scrape(gateway.url, headers=gateway.headers)
        assert samples.value("strata_cluster_replicas", deployment="chat", state="ready") == 1
        with gateway.http() as admin:
            targets = admin.get("/v1/admin/cluster/targets").json()  # Prometheus http_sd_configs format
        replicas = sorted(r for ids in replica_sets[0].values() for r in ids)
        assert sorted(t["labels"]["replica"] for t in targets) == replicas


def _app(view: dict[str, object]) -> str:
    deployments = view["deployments"]
    assert isinstance(deployments, dict)
    return str(deployments["echo"]["replicas"][0]["replica_id"]).split(":")[0]


def test_the_openai_client_gets_the_same_greedy_reply_through_either_gateway(gateways: list[ServerProcess]) -> None:
    replies = []
    for gateway in gateways:
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=gateway.api_key, max_retries=0)
        completion = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "What is 2 plus 3?"}], max_tokens=12, temperature=0
        )
        replies.append(completion.choices[0].message.content)
        stream = client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "What is 2 plus 3?"}],
            max_tokens=12,
            temperature=0,
            stream=True,
        )
        streamed = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert streamed == replies[-1]
    assert replies[0]
    assert replies[0] == replies[1]


async def test_a_rate_limit_holds_across_the_two_gateways(gateways: list[ServerProcess]) -> None:
    with gateways[0].http() as admin:  # made on the first gateway, stored in PostgreSQL
        created = admin.post("/v1/admin/keys", json={"tenant": "shared", "scopes": ["infer"]})
        assert created.status_code == 201, created.text
    responses = await predict_round_robin(gateways, created.json()["key"], "echo", 80)
    admitted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) == REQUESTS_PER_MINUTE
    assert len(refused) == 80 - REQUESTS_PER_MINUTE
    assert {r.json()["outputs"][0] for r in admitted} <= set(range(80))


def _version_served(gateway: ServerProcess) -> str:
    with gateway.http() as client:
        response = client.post("/v1/models/pair/predict", json={"inputs": ["which"]})
        assert response.status_code == 200, response.text
        return response.headers["x-strata-version"]


def test_a_blue_green_switch_made_on_one_gateway_reaches_the_other(gateways: list[ServerProcess]) -> None:
    first, second = gateways
    assert _version_served(second) == "blue"
    with first.http() as admin:
        switched = admin.put("/v1/admin/routes/pair/traffic", json={"weights": {"green": 100}})
        assert switched.status_code == 200, switched.text
    deadline = time.monotonic() + 10
    while _weights(second) != {"blue": 0.0, "green": 100.0}:
        assert time.monotonic() < deadline, "the other gateway never took the new split"
        time.sleep(0.1)
    assert {_version_served(second) for _ in range(5)} == {"green"}
    assert {_version_served(first) for _ in range(5)} == {"green"}


def _weights(gateway: ServerProcess) -> dict[str, float]:
    with gateway.http() as admin:
        routes = admin.get("/v1/admin/routes").json()["routes"]
    pair = next(route for route in routes if route["name"] == "pair")
    return {version["name"]: version["weight"] for version in pair["versions"]}


def test_a_traced_request_shows_the_replica_actors_batch_and_model_call_in_its_trace(
    gateways: list[ServerProcess],
) -> None:
    caller_trace, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    gateway = gateways[0]
    with gateway.http() as http:
        sent = time.time_ns()
        answer = http.post(
            "/v1/models/echo/predict",
            json={"inputs": ["traced"]},
            headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"},
        )
        assert answer.status_code == 200, answer.text
        trace = http.get(f"/v1/admin/traces/{caller_trace}")
    assert trace.status_code == 200, trace.text
    spans = {span["name"]: span for span in trace.json()["spans"]}
    root = spans["POST /v1/models/{model:path}/predict"]
    assert root["parent_span_id"] == caller_span
    app = _app(_cluster_view(gateway))
    for name in ("batch", "inference"):  # stamped inside the replica actor, in another process
        span = spans[name]
        assert span["parent_span_id"] == root["span_id"]
        assert span["attributes"]["strata.replica.id"] == f"{app}:echo:0"
        assert span["attributes"]["strata.node.id"]
        assert sent <= root["start_unix_nano"] <= span["start_unix_nano"] <= span["end_unix_nano"]
        assert span["end_unix_nano"] <= root["end_unix_nano"]
