"""A registry promotion as a canary, without HTTP: the registry on SQLite and PostgreSQL, the model
server on the local runtime with ``strata.testing.folder_model`` versions, requests sent to the route
directly. The e2e test (tests/e2e/test_registry_canary.py) drives the same through the API and CLI."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from strata.access.audit import AuditEvent
from strata.data.artifacts import ArtifactStore
from strata.errors import Conflict, StrataError
from strata.observability.metrics import Metrics
from strata.registry.canary import RegistryCanaries
from strata.registry.service import ModelRegistry
from strata.registry.serving import RegistryBinding
from strata.runtime.local import LocalRuntime
from strata.serving.deployment import Deployment
from strata.serving.route import RequestContext, Route
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database

MODEL = {"kind": "python", "entrypoint": "strata.testing.folder_model:FolderModel"}
FAST = {"steps": [50.0, 100.0], "window_s": 0.2, "min_requests": 3, "max_p99_ratio": 100.0, "p99_slack_ms": 5000.0}


def _version(root: Path, label: str, *, fail: bool = False) -> Path:
    folder = root / label
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"label": label, "fail": fail}))
    return folder


class Setup:
    def __init__(self, registry: ModelRegistry, server: ModelServer, canaries: RegistryCanaries) -> None:
        self.registry, self.server, self.canaries = registry, server, canaries
        self.events: list[AuditEvent] = []

    @property
    def route(self) -> Route:
        return self.server.routes["scorer"]

    async def ask(self, count: int) -> tuple[Counter[str], int]:
        labels: Counter[str] = Counter()
        failures = 0

        async def work(deployment: Deployment) -> Any:
            return await deployment.infer(1)

        for _ in range(count):
            try:
                output, _, _ = await self.route.serve(RequestContext(), work)
            except StrataError:
                failures += 1
            else:
                labels[output["label"]] += 1
        return labels, failures

    def actions(self) -> list[str]:
        return [event.action for event in self.events]


@pytest.fixture
async def setup(database: Database, tmp_path: Path) -> Any:
    events: list[AuditEvent] = []

    async def sink(event: AuditEvent) -> None:
        events.append(event)

    registry = ModelRegistry(database, ArtifactStore(str(tmp_path / "artifacts")), sink)
    for label, fail in (("v1", False), ("v2", False), ("v3", True)):
        await registry.push("scorer", _version(tmp_path, label, fail=fail), task="predict")
    await registry.promote("scorer", 1, "production")
    spec = AppSpec.model_validate(
        {
            "name": "canary",
            "models": [{"name": "scorer", **MODEL, "path": "registry:scorer@production"}, {"name": "pinned", **MODEL,
                       "path": "registry:scorer@1"}],
            "deployments": [{"name": "scoring", "model": "scorer"}, {"name": "other", "model": "pinned"}],
            "routes": [{"name": "scorer", "deployment": "scoring"}, {"name": "pinned", "deployment": "other"}],
        }
    )  # fmt: skip
    server = ModelServer(spec, LocalRuntime(), Metrics())
    binding = RegistryBinding(server, registry, tmp_path / "cache")
    await binding.materialise()
    await server.start()
    canaries = RegistryCanaries(binding, registry)
    state = Setup(registry, server, canaries)
    state.events = events
    try:
        yield state
    finally:
        await canaries.stop()
        await server.stop()


async def _until_ended(setup: Setup, *, limit_s: float = 10.0) -> dict[str, Any]:
    async def wait() -> dict[str, Any]:
        while True:
            await setup.ask(5)
            status = setup.canaries.status("scorer", "production")
            assert status is not None
            if status["phase"] not in ("loading", "running"):
                return status
            await asyncio.sleep(0.02)

    return await asyncio.wait_for(wait(), limit_s)


async def test_a_healthy_canary_completes_and_the_deployment_adopts_its_replicas(setup: Setup) -> None:
    scoring = setup.server.deployments["scoring"]
    started = await setup.canaries.start("scorer", 2, "production", FAST, actor="k1")
    assert started["phase"] == "running"
    assert setup.route.weights == {"scoring": 50.0, "scoring@v2": 50.0}
    assert "scoring@v2" in setup.server.deployments
    labels, failures = await setup.ask(10)
    assert failures == 0
    assert labels["v1"] > 0
    assert labels["v2"] > 0
    status = await _until_ended(setup)
    assert status["phase"] == "completed", status
    assert (await setup.registry.stage("scorer", "production"))["version"] == 2
    assert setup.route.weights == {"scoring": 100.0}
    assert set(setup.server.deployments) == {"scoring", "other"}
    assert setup.server.deployments["scoring"] is scoring
    assert await setup.ask(4) == (Counter({"v2": 4}), 0)
    actions = setup.actions()
    assert actions[-1] == "registry.promote"
    assert "registry.canary.started" in actions
    assert "registry.canary.step" in actions


async def test_a_failing_version_is_rolled_back_and_the_stage_never_moves(setup: Setup) -> None:
    await setup.canaries.start("scorer", 3, "production", FAST, actor="k1")
    status = await _until_ended(setup)
    assert status["phase"] == "rolled_back", status
    assert "error rate" in status["reason"]
    assert (await setup.registry.stage("scorer", "production"))["version"] == 1
    assert setup.route.weights == {"scoring": 100.0}
    assert "scoring@v3" not in setup.server.deployments
    assert await setup.ask(6) == (Counter({"v1": 6}), 0)
    assert "registry.canary.rolled_back" in setup.actions()


async def test_rollback_mid_canary_returns_all_traffic_at_once(setup: Setup) -> None:
    await setup.canaries.start("scorer", 2, "production", FAST | {"window_s": 3600}, actor="k1")
    with pytest.raises(Conflict, match="is running"):
        await setup.canaries.start("scorer", 2, "production", FAST, actor="k2")
    with pytest.raises(Conflict, match="is running"):
        setup.canaries.check_idle("scorer", "production")
    rolled = await setup.canaries.roll_back("scorer", "production", actor="k1")
    assert rolled is not None
    assert rolled["phase"] == "rolled_back"
    assert setup.route.weights == {"scoring": 100.0}
    assert await setup.ask(6) == (Counter({"v1": 6}), 0)
    assert await setup.canaries.roll_back("scorer", "production", actor="k1") is None  # nothing running now
    assert "registry.rollback" in setup.actions()


async def test_refusals_change_nothing(setup: Setup) -> None:
    with pytest.raises(Conflict, match="already names version 1"):
        await setup.canaries.start("scorer", 1, "production", FAST, actor=None)
    with pytest.raises(ValidationError, match="steps"):
        await setup.canaries.start("scorer", 2, "production", {"steps": [50.0, 40.0]}, actor=None)
    setup.route.add_version("manual", setup.server.deployments["other"])
    setup.route.set_weights({"scoring": 90, "manual": 10})
    with pytest.raises(Conflict, match="splits traffic"):
        await setup.canaries.start("scorer", 2, "production", FAST, actor=None)
    assert setup.canaries.status("scorer", "production") is None
    assert set(setup.server.deployments) == {"scoring", "other"}
    assert not setup.canaries.serves("scorer", "staging")
