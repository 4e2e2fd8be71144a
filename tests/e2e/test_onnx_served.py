"""kind: onnx end to end: exported at test time into a temporary folder, served by `strata serve` on
loopback; embeddings through the official openai client, plans from the autonomy planner whose
denoiser runs on ONNX Runtime, and a replica asked for a file the export lacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
import yaml

from strata.apps.autonomy.demo import autonomy_spec_path
from strata.apps.autonomy.onnx import export_denoiser
from strata.apps.autonomy.simulator import FleetSimulator
from strata.apps.autonomy.telemetry import encode_events
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.onnx_export import export_embedding
from strata.models.paths import resolve_model_path
from strata.testing import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EMBED_SPEC = """
name: onnx-embeddings
models:
  - {name: minilm-fp32, kind: onnx, path: EXPORT, options: {precision: fp32}}
  - {name: minilm-int8, kind: onnx, path: EXPORT, options: {precision: int8, providers: [cpu], intra_op_threads: 1}}
deployments:
  - {name: fp32, model: minilm-fp32, batching: {max_batch_size: 32, max_wait_ms: 2}}
  - {name: int8, model: minilm-int8, batching: {max_batch_size: 32, max_wait_ms: 2}}
routes:
  - {name: minilm-fp32, deployment: fp32}
  - {name: minilm-int8, deployment: int8}
"""
TEXTS = [
    "The for statement is used to iterate over the elements of a sequence.",
    "Comparisons can be chained arbitrarily.",
    "ONNX Runtime serves this vector.",
]


@pytest.fixture(scope="module")
def embedding_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("onnx-minilm")
    export_embedding(resolve_model_path("builtin:all-MiniLM-L6-v2"), folder, int8=True)
    spec = folder.parent / "onnx-embeddings.yaml"
    spec.write_text(EMBED_SPEC.replace("EXPORT", str(folder)))
    with ServerProcess(spec) as server:
        yield server


def test_embeddings_through_the_openai_client(embedding_server: ServerProcess) -> None:
    client = openai.OpenAI(base_url=f"{embedding_server.url}/v1", api_key=embedding_server.api_key, max_retries=0)
    torch_model = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))
    expected = np.stack([e.vector for e in torch_model.predict_batch(TEXTS)])
    for model, floor in (("minilm-fp32", 0.9999), ("minilm-int8", 0.98)):
        reply = client.embeddings.create(model=model, input=TEXTS)
        assert reply.model == model
        vectors = np.array([item.embedding for item in reply.data], dtype=np.float32)
        assert vectors.shape == (3, 384)
        cosines = (vectors * expected).sum(axis=1) / np.linalg.norm(vectors, axis=1)
        assert cosines.min() >= floor, (model, cosines)
        assert reply.usage.prompt_tokens == sum(e.tokens for e in torch_model.predict_batch(TEXTS))
    with pytest.raises(openai.BadRequestError) as failure:
        client.embeddings.create(model="minilm-int8", input=TEXTS, dimensions=12)
    assert failure.value.body["param"] == "dimensions"  # type: ignore[index]


def _autonomy_spec(folder: Path, export: Path, precision: str) -> Path:
    spec = yaml.safe_load(autonomy_spec_path().read_text())
    spec["models"][0] = {
        "name": "autonomy-planner",
        "kind": "onnx",
        "path": str(export),
        "entrypoint": "strata.apps.autonomy.planner:TrajectoryPlanner",
        "options": {"precision": precision, "k": 8, "torch_threads": 1, "intra_op_threads": 1},
    }
    path = folder / f"autonomy-onnx-{precision}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_autonomy_plans_with_the_onnx_denoiser(tmp_path: Path) -> None:
    export = tmp_path / "denoiser"
    export_denoiser(resolve_model_path("builtin:autonomy-diffusion"), export, int8=True)
    sim = FleetSimulator(4, seed=5, t0=1.7e9)
    with ServerProcess(_autonomy_spec(tmp_path, export, "int8")) as server, server.http() as client:
        for _ in range(30):  # 3 s of telemetry at 10 Hz fills the windows the conditioning reads
            sim.advance(0.1)
            tick = sim.telemetry()
            sent = client.post("/v1/telemetry", json={"events": encode_events(tick.ids, tick.t, tick.values)})
            assert sent.status_code == 200, sent.text
        plan = client.post("/v1/autonomy/plan", json={"vehicle_id": sim.ids[0], "alternatives": 3})
        assert plan.status_code == 200, plan.text
        body = plan.json()
        assert body["collision_free"]
        assert len(body["plan"]["waypoints"]) == 12
        assert len(body["alternatives"]) == 3
        assert body["plan"]["progress_m"] > 0  # the vehicles drive forward; a sampled or braking path follows
        models = client.get("/v1/models").json()["data"]
        assert "autonomy-planner" in {m["id"] for m in models}


def test_a_precision_the_export_lacks_is_named_when_the_replica_loads(tmp_path: Path) -> None:
    export = tmp_path / "denoiser-fp32-only"
    export_denoiser(resolve_model_path("builtin:autonomy-diffusion"), export, int8=False)
    server = ServerProcess(_autonomy_spec(tmp_path, export, "int8"))
    with pytest.raises(RuntimeError, match="could not load") as failure:
        server.start(tmp_path / "serve.log")
    try:
        assert "options.precision: int8 needs" in str(failure.value)
        assert "model.int8.onnx" in str(failure.value)
    finally:
        server.stop()
