"""kind: onnx without a server: the export round trip (embeddings agree with the torch backend),
the denoiser's session against its torch module, and the errors that name the field at fault."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from strata.apps.autonomy.conditioning import COND_DIM
from strata.apps.autonomy.model import PATH_DIM, TrajectoryModel, sample
from strata.apps.autonomy.onnx import OnnxSampler, export_denoiser
from strata.errors import SpecError
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.onnx_embedding import OnnxEmbeddingModel
from strata.models.onnx_export import export_embedding
from strata.models.onnx_runtime import MANIFEST_FILE, OnnxManifest, OnnxModel, choose_providers, sha256_of
from strata.models.paths import resolve_model_path
from strata.spec import parse_spec
from strata.spec.onnx import OnnxRuntimeOptions

TEXTS = [
    "The with statement wraps a block with methods defined by a context manager.",
    "A short one.",
    "Integers support bitwise operations, which only make sense for integers.",
    "Strata serves embeddings behind an OpenAI-compatible gateway.",
]


@pytest.fixture(scope="module")
def denoiser_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("denoiser")
    export_denoiser(resolve_model_path("builtin:autonomy-diffusion"), out, int8=False)
    return out


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.mark.slow
def test_embedding_export_round_trip_agrees_with_torch(tmp_path: Path) -> None:
    folder = resolve_model_path("builtin:all-MiniLM-L6-v2")
    manifest = export_embedding(folder, tmp_path, int8=True)
    assert manifest.task == "embedding"
    assert manifest.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest.files == {name: sha256_of(tmp_path / name) for name in ("model.int8.onnx", "model.onnx")}
    assert OnnxManifest.read(tmp_path) == manifest
    torch_vectors = np.stack([e.vector for e in HFEmbeddingModel(folder).predict_batch(TEXTS)])
    for precision, floor in (("fp32", 0.9999), ("int8", 0.98)):
        model = OnnxEmbeddingModel(OnnxModel(tmp_path, OnnxRuntimeOptions(precision=precision)))
        embeddings = model.predict_batch(TEXTS)
        vectors = np.stack([e.vector for e in embeddings])
        assert vectors.shape == torch_vectors.shape
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert _cosines(vectors, torch_vectors).min() >= floor, precision
        assert embeddings[1].tokens < embeddings[0].tokens  # no padding counted


def test_denoiser_session_samples_what_the_torch_module_samples(denoiser_export: Path) -> None:
    torch_model = TrajectoryModel.load(resolve_model_path("builtin:autonomy-diffusion"))
    onnx_model = OnnxModel(denoiser_export, OnnxRuntimeOptions(precision="fp32", intra_op_threads=1))
    assert onnx_model.providers[-1] == "CPUExecutionProvider"
    cond = torch.randn(64, COND_DIM, generator=torch.Generator().manual_seed(3))
    for steps in (2, 4):
        expected = sample(torch_model.denoiser, cond, steps, torch.Generator().manual_seed(5))
        noise = torch.randn(64, PATH_DIM, generator=torch.Generator().manual_seed(5)).numpy()
        got = OnnxSampler(onnx_model)(noise, cond.numpy(), steps)
        assert np.abs(got - expected.numpy()).max() < 1e-4


def test_unknown_precision_fails_the_spec_naming_the_field() -> None:
    spec = {
        "name": "app",
        "models": [{"name": "m", "kind": "onnx", "path": "/nowhere", "options": {"precision": "int4"}}],
        "deployments": [{"name": "d", "model": "m"}],
        "routes": [{"name": "r", "deployment": "d"}],
    }
    with pytest.raises(SpecError, match=r"models\[0\]: options\.precision: Input should be 'fp32' or 'int8'"):
        parse_spec(spec)
    spec["models"][0]["options"] = {"providers": ["rocm"]}  # type: ignore[index]
    with pytest.raises(SpecError, match=r"options\.providers\.0: Input should be 'cuda', 'tensorrt' or 'cpu'"):
        parse_spec(spec)


def test_onnx_with_an_entrypoint_predicts_and_without_embeds() -> None:
    models = [
        {"name": "e", "kind": "onnx", "path": "/x"},
        {"name": "p", "kind": "onnx", "path": "/x", "entrypoint": "strata.apps.autonomy.planner:TrajectoryPlanner"},
    ]
    spec = parse_spec({
        "name": "app",
        "models": models,
        "deployments": [{"name": "e", "model": "e"}, {"name": "p", "model": "p"}],
        "routes": [{"name": "e", "deployment": "e"}, {"name": "p", "deployment": "p"}],
        "retrieval": {"embedding_model": "e"},
    })  # fmt: skip
    assert [m.task for m in spec.models] == ["embed", "predict"]


def test_missing_int8_file_names_precision(denoiser_export: Path) -> None:
    with pytest.raises(SpecError, match=r"options\.precision: int8 needs .*model\.int8\.onnx.*--int8") as failure:
        OnnxModel(denoiser_export, OnnxRuntimeOptions(precision="int8"))
    assert failure.value.param == "options.precision"


def test_a_folder_without_a_manifest_names_path(tmp_path: Path, denoiser_export: Path) -> None:
    with pytest.raises(SpecError, match=f"path: .* is not an ONNX export \\(no {MANIFEST_FILE}\\)") as failure:
        OnnxModel(tmp_path, OnnxRuntimeOptions())
    assert failure.value.param == "path"
    with pytest.raises(SpecError, match="holds an exported autonomy-denoiser, not a embedding"):
        OnnxEmbeddingModel(OnnxModel(denoiser_export, OnnxRuntimeOptions()))


def test_providers_prefer_cuda_then_tensorrt_then_cpu() -> None:
    chosen = choose_providers(None)
    assert chosen[-1] == "CPUExecutionProvider"
    order = ["CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"]
    assert chosen == [p for p in order if p in chosen]
    assert choose_providers(["cpu"]) == ["CPUExecutionProvider"]
