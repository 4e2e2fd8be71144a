"""Operating an app on a cluster: a gateway of another spec version is refused, and
`strata cluster status` / `strata cluster down` show and remove what the app runs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import ray
import yaml
from ray_apps import echo_app, ray_runtime, serving
from typer.testing import CliRunner

from strata.cli.main import app as cli
from strata.errors import SpecError
from strata.observability.metrics import Metrics
from strata.runtime.ray_controller import controller_name
from strata.runtime.ray_runtime import RayRuntime
from strata.serving.server import ModelServer
from strata.testing.ray_cluster import LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.distributed]


async def test_a_gateway_with_another_spec_version_is_refused_and_cluster_down_removes_the_app(
    cluster: LocalCluster, app_name: str, tmp_path: Path
) -> None:
    spec = echo_app(app_name, {"name": "echo", "replicas": 2, "resources": {"cpus": 0.2}})
    # Not `serving`: the test takes the app off the cluster itself, with `strata cluster down`.
    server = ModelServer(spec, RayRuntime(spec, address=cluster.address), Metrics())
    await server.start()
    replicas = [r.replica.replica_id for r in server.deployments["echo"].slots]
    changed = echo_app(app_name, {"name": "echo", "replicas": 3, "resources": {"cpus": 0.2}})
    with pytest.raises(SpecError, match="already runs on this cluster") as refused:
        RayRuntime(changed, address=cluster.address)
    assert refused.value.param == "name"

    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=True)))
    runner = CliRunner()
    shown = runner.invoke(cli, ["cluster", "status", str(path), "--address", cluster.address, "--json"])
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.output)["echo"]["replicas"]
    assert sorted(r["replica_id"] for r in listed) == sorted(replicas)
    assert {r["state"] for r in listed} == {"ready"}
    table = runner.invoke(cli, ["cluster", "status", str(path), "--address", cluster.address])
    assert table.exit_code == 0, table.output
    assert "ready" in table.output

    await server.stop()  # the gateway goes; the app's actors stay (they are detached) until `down`
    assert ray.get_actor(controller_name(app_name), namespace=app_name) is not None
    down = runner.invoke(cli, ["cluster", "down", str(path), "--address", cluster.address])
    assert down.exit_code == 0, down.output
    for name in [controller_name(app_name), *replicas]:
        with pytest.raises(ValueError, match="Failed to look up actor"):
            ray.get_actor(name, namespace=app_name)
    again = runner.invoke(cli, ["cluster", "down", str(path), "--address", cluster.address])
    assert again.exit_code == 1
    assert "is not running" in again.output


async def test_a_model_that_cannot_load_is_reported_and_retried_with_back_off(
    cluster: LocalCluster, app_name: str
) -> None:
    spec = echo_app(app_name, {"name": "echo", "replicas": 1, "resources": {"cpus": 0.2}})
    broken_model = spec.models[0].model_copy(update={"options": {"no_such_option": 1}})
    spec = spec.model_copy(update={"models": [broken_model]})
    async with serving(spec, cluster.address) as server:  # starting returns: the failure is the answer
        deployment = server.deployments["echo"]
        assert not deployment.ready
        assert any("rejected its options" in error for error in deployment.load_errors.values())
        await asyncio.sleep(3.0)
        # Back-off doubles from 2 s: in ~3 s at most two more tries, not one per control interval (0.2 s).
        assert len(ray_runtime(server).view["echo"].load_errors) <= 3
