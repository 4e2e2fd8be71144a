"""The model registry end to end: the shipped MiniLM folder pushed as two versions with the CLI, a route
served from ``registry:minilm@production``, promoted and rolled back over the admin API while the
official openai client asks for embeddings the whole time; every action on the verified audit trail."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from strata.models.paths import resolve_model_path
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SPEC = """\
name: registry-e2e
models:
  - {name: minilm, kind: hf-embedding, path: "registry:minilm@production"}
  - {name: minilm-v1, kind: hf-embedding, path: "registry:minilm@1"}
  - {name: minilm-v2, kind: hf-embedding, path: "registry:minilm@2"}
deployments:
  - {name: embeddings, model: minilm}
  - {name: emb-v1, model: minilm-v1}
  - {name: emb-v2, model: minilm-v2}
routes:
  - {name: minilm, deployment: embeddings}
  - name: minilm-canary
    versions:
      - {name: v1, deployment: emb-v1, weight: 100}
      - {name: v2, deployment: emb-v2, weight: 0}
"""


def _strata(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "strata", "registry", *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("registry")
    return {
        "STRATA_DATABASE_URL": f"sqlite:///{root}/strata.db",
        "STRATA_ARTIFACTS_URL": str(root / "artifacts"),
        "STRATA_REGISTRY_CACHE": str(root / "cache"),
        "root": str(root),
    }


@pytest.fixture(scope="module")
def server(state: dict[str, str]) -> Iterator[ServerProcess]:
    env = {**os.environ, **{k: v for k, v in state.items() if k != "root"}}
    root = Path(state["root"])
    shipped = resolve_model_path("builtin:all-MiniLM-L6-v2")
    # Version 2: the same weights (links, not copies) plus a note, so its manifest and signature differ.
    second = root / "minilm-v2"
    second.mkdir()
    for file in shipped.rglob("*"):
        if file.is_file() and not file.name.startswith("."):
            target = second / file.relative_to(shipped)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file)
    (second / "NOTES.txt").write_text("version 2: same weights, new notes\n")
    assert "version 1" in _strata(env, "push", "minilm", str(shipped), "--task", "embed", "--metric", "stsb=0.82")
    assert "version 2" in _strata(env, "push", "minilm", str(second), "--task", "embed", "--source-hash", "v2")
    assert "version 1" in _strata(env, "promote", "minilm", "1", "--stage", "production")
    spec = root / "app.yaml"
    spec.write_text(SPEC)
    with ServerProcess(spec, env=env) as running:
        yield running


def _serving(http: httpx.Client) -> dict[str, object]:
    reply = http.get("/v1/admin/registry/models")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [m["name"] for m in body["data"]] == ["minilm"]
    served = {s["deployment"]: s for s in body["serving"]}
    assert (served["emb-v1"]["version"], served["emb-v2"]["version"]) == (1, 2)  # pinned: never move
    return dict(served["embeddings"])


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


@pytest.fixture
def client(server: ServerProcess) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http(timeout=120) as http:
        yield http


def test_promote_and_rollback_while_serving(
    server: ServerProcess, state: dict[str, str], client: openai.OpenAI, http: httpx.Client
) -> None:
    first = client.embeddings.create(model="minilm", input="registry versions").data[0].embedding
    assert len(first) == 384
    assert abs(_norm(first) - 1.0) < 1e-3
    versions = http.get("/v1/admin/registry/models/minilm/versions").json()["data"]
    assert [v["version"] for v in versions] == [1, 2]
    assert versions[0]["stages"] == ["production"]
    assert versions[0]["signature"] != versions[1]["signature"]
    assert _serving(http)["version"] == 1

    # Embeddings all along: nothing may fail while the deployment reloads.
    failures: list[str] = []
    answered = 0
    stop = threading.Event()

    def ask() -> None:
        nonlocal answered
        while not stop.is_set():
            try:
                client.embeddings.create(model="minilm", input="while promoting")
                answered += 1
            except openai.OpenAIError as error:
                failures.append(repr(error))

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        env = {**os.environ, **{k: v for k, v in state.items() if k != "root"}}
        out = _strata(env, "promote", "minilm", "2", "--url", server.url, "--api-key", server.api_key, "--no-canary")
        assert "embeddings: serving version 2" in out
        assert _serving(http)["version"] == 2
        assert _serving(http)["signature"] == versions[1]["signature"]
        during = answered
        rolled = http.post("/v1/admin/registry/models/minilm/stages/production/rollback")
        assert rolled.status_code == 200, rolled.text
        assert (rolled.json()["version"], rolled.json()["reloaded"][0]["version"]) == (1, 1)
        assert _serving(http)["version"] == 1
        time.sleep(0.5)
    finally:
        stop.set()
        asker.join()
    assert failures == []
    assert during > 0
    assert answered > during
    again = client.embeddings.create(model="minilm", input="registry versions").data[0].embedding
    assert max(abs(a - b) for a, b in zip(first, again, strict=True)) < 1e-5  # same weights in both versions

    # Every registry action is on the trail, and the chain verifies.
    deadline = time.monotonic() + 10
    while True:
        actions = [row["action"] for row in http.get("/v1/admin/audit", params={"limit": 1000}).json()["data"]]
        if actions.count("registry.rollback") == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert actions.count("registry.push") == 2
    assert actions.count("registry.promote") == 2
    assert actions.count("registry.rollback") == 1
    verdict = http.get("/v1/admin/audit/verify").json()
    assert verdict["ok"], verdict


def test_bad_registry_requests_name_the_field(server: ServerProcess, http: httpx.Client) -> None:
    promote = "/v1/admin/registry/models/minilm/stages/{stage}/promote"
    cases = [
        (http.post(promote.format(stage="prod"), json={"version": 1}), 404, "stage"),
        (http.post(promote.format(stage="production"), json={"version": 0}), 400, "version"),
        (http.post(promote.format(stage="production"), json={"version": "two"}), 400, "version"),
        (http.post(promote.format(stage="production"), json={"version": 99}), 404, "version"),
        (http.get("/v1/admin/registry/models/minilm/versions/x"), 404, "version"),
        (http.get("/v1/admin/registry/models/Nope/versions"), 404, "name"),
        (http.get("/v1/admin/registry/models/nope/versions"), 404, "name"),
    ]
    for reply, status, param in cases:
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["param"] == param, reply.text
    with (
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-not-a-key", max_retries=0) as stranger,
        pytest.raises(openai.AuthenticationError),
    ):
        stranger.embeddings.create(model="minilm", input="x")
    assert httpx.get(f"{server.url}/v1/admin/registry/models").status_code == 401


def test_canary_between_pinned_registry_versions(
    server: ServerProcess, client: openai.OpenAI, http: httpx.Client
) -> None:
    """Two deployments pin versions 1 and 2: the existing progressive rollout moves traffic between them
    and an abort sends it all back to version 1."""
    started = http.post(
        "/v1/admin/routes/minilm-canary/rollout",
        json={"canary": "v2", "steps": [50, 100], "window_s": 3600, "auto_promote": False},
    )
    assert started.status_code == 201, started.text
    assert started.json()["canary_weight"] == 50
    for _ in range(20):
        assert len(client.embeddings.create(model="minilm-canary", input="canary").data[0].embedding) == 384
    weights = http.get("/v1/admin/routes/minilm-canary/rollout").json()["weights"]
    assert weights == {"v1": 50.0, "v2": 50.0}
    aborted = http.post("/v1/admin/routes/minilm-canary/rollout/abort")
    assert aborted.json()["phase"] == "rolled_back"
    assert http.get("/v1/admin/routes/minilm-canary/rollout").json()["weights"] == {"v1": 100.0, "v2": 0.0}
    assert len(client.embeddings.create(model="minilm-canary", input="after").data[0].embedding) == 384
