"""The Ray runtime on a real three-node cluster: placement, node loss, drain, controller restart."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import ray
from ray_apps import NODES, Load, echo_app, ray_runtime, replica_nodes, serving, wait_until

from strata.runtime.ray_controller import controller_name
from strata.runtime.ray_messages import ReplicaSet, ReplicaStatus
from strata.serving.generation import GenerationRequest
from strata.serving.sampling import SamplingParams
from strata.spec import parse_spec
from strata.testing import MetricSamples
from strata.testing.ray_cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

RETRY_SAFE = {"retries": {"max_attempts": 3, "budget_ratio": 1.0}}  # echo is idempotent: every try may retry


async def test_replicas_land_only_on_nodes_with_their_resources(cluster: LocalCluster, app_name: str) -> None:
    spec = echo_app(
        app_name,
        {"name": "gpu-echo", "replicas": 1, "resources": {"cpus": 0.1, "gpus": 1}},
        {"name": "custom-echo", "replicas": 2, "resources": {"cpus": 0.1, "custom": {"gpu_node": 0.1}}},
        {"name": "cpu-echo", "replicas": 3, "resources": {"cpus": 0.5}},
    )
    async with serving(spec, cluster.address) as server:
        gpu_node = cluster.node_id("gpu")
        assert set(replica_nodes(server, "gpu-echo").values()) == {gpu_node}
        assert set(replica_nodes(server, "custom-echo").values()) == {gpu_node}
        assert len(set(replica_nodes(server, "cpu-echo").values())) == 3  # spread: one node lost, one replica lost
        for name in ("gpu-echo", "custom-echo", "cpu-echo"):
            assert await server.deployments[name].infer(f"to {name}") == f"to {name}"
        # Each replica serves its own stage metrics, listed for Prometheus service discovery.
        targets = [t for t in ray_runtime(server).metrics_targets() if t["labels"]["deployment"] == "cpu-echo"]
        assert len(targets) == 3
        batches = 0.0
        async with httpx.AsyncClient(timeout=10) as client:
            for target in targets:
                page = await client.get(f"http://{target['targets'][0]}{target['labels']['__metrics_path__']}")
                batches += MetricSamples(page.text).value("strata_batch_size_count", deployment="cpu-echo")
        assert batches == 1  # the one request, counted once, by the replica that batched it


async def test_a_node_killed_under_load_fails_no_request_and_its_replicas_come_back(
    cluster: LocalCluster, app_name: str
) -> None:
    spec = echo_app(app_name, {"name": "echo", "replicas": 3, "resources": {"cpus": 0.5}, **RETRY_SAFE})
    doomed = cluster.node_id("cpu")
    try:
        async with serving(spec, cluster.address) as server:
            assert doomed in replica_nodes(server, "echo").values()
            async with Load(server, "echo", clients=16) as load:
                await asyncio.sleep(1.5)
                before = load.ok
                cluster.kill("cpu")
                await wait_until(
                    lambda: (
                        ray_runtime(server).view["echo"].replaced >= 1
                        and server.deployments["echo"].ready_replicas == 3
                    ),
                    60,
                    "a replacement replica",
                )
                await asyncio.sleep(1.0)
            assert load.failures == []
            assert load.ok > before  # served throughout, not only before the kill
            nodes = replica_nodes(server, "echo")
            assert len(nodes) == 3
            assert doomed not in nodes.values()
    finally:
        cluster.add("cpu", **NODES["cpu"])


async def test_scaling_down_drains_replicas_without_dropping_a_request(cluster: LocalCluster, app_name: str) -> None:
    spec = echo_app(app_name, {"name": "echo", "replicas": 3, "resources": {"cpus": 0.3}})
    async with serving(spec, cluster.address) as server:
        runtime = ray_runtime(server)
        async with Load(server, "echo", clients=12) as load:
            await asyncio.sleep(0.5)
            removed = set(replica_nodes(server, "echo"))
            await runtime.controller.scale.remote("echo", 1)
            await wait_until(lambda: len(runtime.view["echo"].replicas) == 1, 20, "two replicas drained, removed")
            await asyncio.sleep(0.5)
        assert load.failures == []
        kept = set(replica_nodes(server, "echo"))
        for replica_id in removed - kept:  # the drained actors are gone from the cluster
            with pytest.raises(ValueError, match="Failed to look up actor"):
                ray.get_actor(replica_id, namespace=app_name)


async def test_the_controller_restarts_and_adopts_the_running_replicas(cluster: LocalCluster, app_name: str) -> None:
    spec = echo_app(app_name, {"name": "echo", "replicas": 2, "resources": {"cpus": 0.3}})
    async with serving(spec, cluster.address) as server:
        runtime = ray_runtime(server)

        async def controller_view() -> ReplicaSet:
            view: ReplicaSet = await runtime.controller.replica_set.remote("test", {})
            return view

        async def split_shared() -> bool:
            return "echo" in (await controller_view()).routes

        async with Load(server, "echo", clients=8) as load:
            replicas = set(replica_nodes(server, "echo"))
            server.routes["echo"].set_weights({"echo": 100})  # an operator's split, shared through the controller
            await wait_until(split_shared, 5, "the split to reach the controller")
            first = await controller_view()
            assert first.routes["echo"].weights == {"echo": 100.0}
            ray.kill(ray.get_actor(controller_name(app_name), namespace=app_name), no_restart=False)
            await wait_until(lambda: runtime.sync_failures > 0, 10, "a sync to fail while the controller restarts")
            syncs = runtime.syncs
            await wait_until(lambda: runtime.syncs > syncs, 30, "a sync with the restarted controller")
            await asyncio.sleep(1.0)
            second = await controller_view()
        assert second.started_at > first.started_at  # a new incarnation...
        assert set(replica_nodes(server, "echo")) == replicas  # ...that adopted the replicas, started none
        assert load.failures == []
        assert second.routes["echo"].weights == {"echo": 100.0}  # the gateway handed its split back


async def test_a_generation_left_mid_stream_frees_its_batch_slot_in_the_replica(
    cluster: LocalCluster, app_name: str
) -> None:
    spec = parse_spec(
        {
            "name": app_name,
            "runtime": "ray",
            "ray": {"namespace": app_name, "sync_interval_ms": 100, "control_interval_ms": 200},
            "models": [{"name": "chat", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"}],
            "deployments": [{"name": "chat", "model": "chat", "resources": {"cpus": 0.5}}],
            "routes": [{"name": "chat", "deployment": "chat"}],
        }
    )
    async with serving(spec, cluster.address) as server:
        deployment = server.deployments["chat"]
        request = GenerationRequest(params=SamplingParams(max_tokens=200, ignore_eos=True), prompt="Once upon")
        stream, _first, events = await deployment.generate(request)
        received = 0
        async for _event in events:
            received += 1
            if received == 3:
                break  # the client went away
        stream.close()
        replica = ray.get_actor(f"{app_name}:chat:0", namespace=app_name)
        await wait_until(lambda: deployment.slots[0].outstanding == 0, 5, "the gateway's slot count to drop")

        async def idle() -> bool:
            status: ReplicaStatus = await replica.status.remote()
            return status.in_flight == 0

        await wait_until(idle, 10, "the replica to hold nothing")
        status: ReplicaStatus = await replica.status.remote()
        assert status.arrivals == 1
        assert status.tokens_out < 50  # cancelled in the replica, not decoded to 200 tokens for nobody
