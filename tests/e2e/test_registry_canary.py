"""Registry promote -> canary -> rollback end to end: a real server on loopback serving two registry
models by stage - the shipped MiniLM (asked through the official openai client) and a Python model
whose versions differ by their folder (``strata.testing.folder_model``: a label, and a version built to
fail). Versions are pushed and promoted with the CLI; every request is real HTTP."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner, Result

from strata.cli.registry import app as registry_cli
from strata.models.paths import resolve_model_path
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

SPEC = """\
name: registry-canary-e2e
models:
  - {name: minilm, kind: hf-embedding, path: "registry:minilm@production"}
  - name: scorer
    kind: python
    entrypoint: "strata.testing.folder_model:FolderModel"
    path: "registry:scorer@production"
deployments:
  - {name: embeddings, model: minilm}
  - {name: scoring, model: scorer}
routes:
  - {name: minilm, deployment: embeddings}
  # Latency is not what these tests judge (two shared cores are noisy): errors are.
  - name: scorer
    deployment: scoring
    rollout: {max_p99_ratio: 100, p99_slack_ms: 5000, min_requests: 5}
"""
FAST = ("--steps", "50,100", "--window-s", "1", "--min-requests", "5")


def _cli(env: dict[str, str], *args: str, ok: bool = True) -> Result:
    """``strata registry ARGS``, in this process (a fresh interpreter costs seconds per call on a busy
    machine): the same command code, talking to the server over HTTP."""
    done = CliRunner().invoke(registry_cli, list(args), env=env | {"COLUMNS": "200"})
    if ok:
        assert done.exit_code == 0, done.output
    return done


def _folder(root: Path, label: str, *, fail: bool = False) -> Path:
    folder = root / label
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"label": label, "fail": fail}))
    return folder


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("registry-canary")
    return {
        "STRATA_DATABASE_URL": f"sqlite:///{root}/strata.db",
        "STRATA_ARTIFACTS_URL": str(root / "artifacts"),
        "STRATA_REGISTRY_CACHE": str(root / "cache"),
        "ROOT": str(root),
    }


@pytest.fixture(scope="module")
def server(env: dict[str, str]) -> Iterator[ServerProcess]:
    root = Path(env["ROOT"])
    shipped = resolve_model_path("builtin:all-MiniLM-L6-v2")
    second = root / "minilm-v2"  # the same weights (links) plus a note: another signature
    for file in shipped.rglob("*"):
        if file.is_file() and not file.name.startswith("."):
            target = second / file.relative_to(shipped)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(file)
    (second / "NOTES.txt").write_text("version 2\n")
    _cli(env, "push", "minilm", str(shipped), "--task", "embed")
    _cli(env, "push", "minilm", str(second), "--task", "embed")
    for label, fail in (("v1", False), ("v2", False), ("v3-broken", True)):
        _cli(env, "push", "scorer", str(_folder(root, label, fail=fail)), "--task", "predict", "--framework", "python")
    _cli(env, "promote", "minilm", "1")
    _cli(env, "promote", "scorer", "1")
    spec = root / "app.yaml"
    spec.write_text(SPEC)
    with ServerProcess(spec, env={**os.environ, **env}) as running:
        yield running


@pytest.fixture
def http(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.http(timeout=60) as http:
        yield http


class Traffic:
    """Requests to the scorer route from a thread until stopped: which label answered, and failures."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.labels: Counter[str] = Counter()
        self.failures: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        with self.server.http(timeout=30) as http:
            while not self._stop.is_set():
                reply = http.post("/v1/models/scorer/predict", json={"inputs": [1]})
                if reply.status_code == 200:
                    self.labels[reply.json()["outputs"][0]["label"]] += 1
                else:
                    self.failures.append(reply.status_code)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _labels(http: httpx.Client, count: int = 20) -> Counter[str]:
    labels: Counter[str] = Counter()
    for _ in range(count):
        reply = http.post("/v1/models/scorer/predict", json={"inputs": [1]})
        assert reply.status_code == 200, reply.text
        labels[reply.json()["outputs"][0]["label"]] += 1
    return labels


def _stage(http: httpx.Client, model: str) -> int:
    models = {m["name"]: m for m in http.get("/v1/admin/registry/models").json()["data"]}
    return int(models[model]["stages"]["production"])


def _serving(http: httpx.Client, deployment: str) -> int | None:
    served = {s["deployment"]: s for s in http.get("/v1/admin/registry/models").json()["serving"]}
    return served[deployment]["version"]  # type: ignore[no-any-return]


def _wait_for_canary_traffic(traffic: Traffic, label: str) -> None:
    deadline = time.monotonic() + 30
    while traffic.labels[label] < 5 and time.monotonic() < deadline:
        time.sleep(0.05)


def _audit_actions(http: httpx.Client, needed: str) -> list[str]:
    deadline = time.monotonic() + 10  # audit rows are written in batches, off the request path
    while True:
        actions = [row["action"] for row in http.get("/v1/admin/audit", params={"limit": 1000}).json()["data"]]
        if needed in actions or time.monotonic() > deadline:
            return actions
        time.sleep(0.2)


def test_manual_rollback_mid_canary_in_one_command(
    server: ServerProcess, env: dict[str, str], http: httpx.Client
) -> None:
    assert _labels(http) == Counter({"v1": 20})
    with Traffic(server) as traffic:
        # A window that never ends: the canary stays at 50 % until the rollback.
        started = _cli(env, "promote", "scorer", "2", "--url", server.url, "--api-key", server.api_key,
                       "--steps", "50,100", "--window-s", "3600")  # fmt: skip
        assert "canary of scorer@production: version 2 vs 1: running" in started.stdout
        _wait_for_canary_traffic(traffic, "v2")
        status = _cli(env, "status", "scorer", "--url", server.url, "--api-key", server.api_key).stdout
        assert "running" in status
        assert "route scorer: scoring@v2 at 50%" in status
        assert _stage(http, "scorer") == 1  # the stage moves only when a canary completes
        rolled = _cli(env, "rollback", "scorer", "--url", server.url, "--api-key", server.api_key)
        assert "rolled_back" in rolled.stdout
        after_rollback = Counter(traffic.labels)
        time.sleep(0.5)
    assert traffic.failures == []
    assert traffic.labels["v1"] > 0
    assert traffic.labels["v2"] >= 5
    assert traffic.labels["v2"] <= after_rollback["v2"] + 1  # at most the one in flight once the rollback answered
    assert _labels(http) == Counter({"v1": 20})
    assert _stage(http, "scorer") == 1
    canary = http.get("/v1/admin/registry/models/scorer/stages/production/canary").json()
    assert canary["phase"] == "rolled_back", canary
    assert canary["reason"].startswith("rolled back by"), canary
    assert "scoring@v2" not in http.get("/v1/admin/deployments").json()["deployments"]  # the canary stopped
    assert "registry.rollback" in _audit_actions(http, "registry.rollback")


def test_a_failing_version_is_rolled_back_automatically(
    server: ServerProcess, env: dict[str, str], http: httpx.Client
) -> None:
    with Traffic(server) as traffic:
        done = _cli(env, "promote", "scorer", "3", "--url", server.url, "--api-key", server.api_key, *FAST,
                    "--wait", ok=False)  # fmt: skip
        after_rollback = len(traffic.failures)
        time.sleep(0.5)
    assert done.exit_code == 1, done.output  # --wait: the canary did not complete
    assert "rolled_back" in done.stdout
    assert "error rate" in done.stdout
    assert traffic.failures
    assert len(traffic.failures) == after_rollback
    assert set(traffic.labels) == {"v1"}
    assert _labels(http) == Counter({"v1": 20})
    assert _stage(http, "scorer") == 1
    assert _serving(http, "scoring") == 1
    actions = _audit_actions(http, "registry.canary.rolled_back")
    assert "registry.canary.rolled_back" in actions
    assert actions.count("registry.canary.started") == 2


def test_a_healthy_canary_completes_and_rollback_returns_in_one_command(
    server: ServerProcess, env: dict[str, str], http: httpx.Client
) -> None:
    with Traffic(server) as traffic:
        done = _cli(env, "promote", "scorer", "2", "--url", server.url, "--api-key", server.api_key, *FAST, "--wait")
        time.sleep(0.3)
    assert "completed" in done.stdout, done.stdout
    assert traffic.failures == []
    assert traffic.labels["v1"] > 0
    assert traffic.labels["v2"] > 0
    assert _stage(http, "scorer") == 2
    assert _serving(http, "scoring") == 2
    assert _labels(http) == Counter({"v2": 20})
    deployments = http.get("/v1/admin/deployments").json()["deployments"]
    assert set(deployments) == {"embeddings", "scoring"}  # the canary's replicas became the deployment's
    route = http.get("/v1/admin/routes").json()["routes"]
    assert [v["name"] for v in next(r for r in route if r["name"] == "scorer")["versions"]] == ["scoring"]

    rolled = _cli(env, "rollback", "scorer", "--url", server.url, "--api-key", server.api_key)
    assert "scoring: serving version 1" in rolled.stdout
    assert _stage(http, "scorer") == 1
    assert _labels(http) == Counter({"v1": 20})
    actions = _audit_actions(http, "registry.canary.step")
    assert actions.count("registry.promote") == 3  # two by the CLI before the server, one by this canary
    assert "registry.canary.step" in actions
    assert http.get("/v1/admin/audit/verify").json()["ok"]


def test_canary_of_a_real_model_over_the_api_with_the_openai_client(server: ServerProcess, http: httpx.Client) -> None:
    served: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def ask() -> None:
        with openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.api_key, max_retries=0, timeout=60) as client:
            while not stop.is_set():
                try:
                    raw = client.embeddings.with_raw_response.create(model="minilm", input="canary")
                except openai.OpenAIError as error:
                    failures.append(repr(error))
                    continue
                assert len(raw.parse().data[0].embedding) == 384
                served[raw.headers["x-strata-version"]] += 1

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        body = {"version": 2, "steps": [50, 100], "window_s": 1, "min_requests": 5, "max_p99_ratio": 100,
                "p99_slack_ms": 5000}  # fmt: skip
        started = http.post("/v1/admin/registry/models/minilm/stages/production/promote", json=body)
        assert started.status_code == 200, started.text
        assert started.json()["version"] == 1
        assert started.json()["canary"]["phase"] == "running"
        deadline = time.monotonic() + 60
        while (canary := http.get("/v1/admin/registry/models/minilm/stages/production/canary").json())[
            "phase"
        ] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        stop.set()
        asker.join()
    assert canary["phase"] == "completed", canary
    assert failures == []
    assert served["embeddings"] > 0
    assert served["embeddings@v2"] > 0
    assert _stage(http, "minilm") == 2
    assert _serving(http, "embeddings") == 2


def test_bad_promotions_name_the_field(server: ServerProcess, http: httpx.Client) -> None:
    promote = "/v1/admin/registry/models/scorer/stages/production/promote"
    cases = [
        (http.post(promote, json={"version": 2, "canary": False, "steps": [50, 100]}), 400, "steps"),
        (http.post(promote, json={"version": 2, "steps": [50, 60]}), 400, "steps"),
        (http.post(promote, json={"version": 2, "window_s": 0}), 400, "window_s"),
        (http.post(promote, json={"version": 2, "canary": "soon"}), 400, "canary"),
        (http.post(promote, json={"version": 9}), 404, "version"),
        (http.get("/v1/admin/registry/models/scorer/stages/staging/canary"), 404, "stage"),
    ]
    for reply, status, param in cases:
        assert reply.status_code == status, reply.text
        assert reply.json()["error"]["param"] == param, reply.text
    assert _stage(http, "scorer") == 1  # refusals changed nothing
    running = http.post(promote, json={"version": 2, "window_s": 3600})
    assert running.status_code == 200, running.text
    again = http.post(promote, json={"version": 2, "canary": False})
    assert again.status_code == 409, again.text
    assert http.post("/v1/admin/registry/models/scorer/stages/production/rollback").json()["canary"]["phase"] == (
        "rolled_back"
    )
    assert _stage(http, "scorer") == 1
