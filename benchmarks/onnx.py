"""(l) ONNX Runtime (kind: onnx) with dynamic int8 against the torch backend, accuracy and speed in one run.

1. Embeddings: MiniLM exported at run time (fp32 and int8) into a temporary folder; sentences from
   Python's own documentation (pydoc_data.topics); cosine of each ONNX vector to the torch backend's.
2. Planner: the autonomy denoiser exported the same way; ADE/FDE (sample 0 and best of K=8) on the
   held-out fleet `strata train-autonomy` scores, every backend from the same noise.
3. Speed: one model call at batch 1 and 32 (embeddings: texts; planner: vehicles, K=8 paths each),
   torch with 1 thread against onnxruntime with 1 intra-op thread, all pinned to the same core. The
   backends take turns call by call, so load from elsewhere on the machine falls on all of them alike.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from pydoc_data.topics import topics
from typing import Any

import numpy as np
import torch

from benchmarks.harness import Row, median, pinned_here
from strata.apps.autonomy.model import TrajectoryModel
from strata.apps.autonomy.onnx import OnnxSampler, export_denoiser
from strata.apps.autonomy.train import Scores, make_dataset, score
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.onnx_embedding import OnnxEmbeddingModel
from strata.models.onnx_export import export_embedding
from strata.models.onnx_runtime import OnnxModel
from strata.models.paths import resolve_model_path
from strata.spec.onnx import OnnxRuntimeOptions

SENTENCES = 512
K = 8
MIN_COSINE = 0.99
MAX_RELATIVE = 0.02
PRECISIONS = ("fp32", "int8")


def sentences(count: int = SENTENCES) -> list[str]:
    """Whole sentences of 40-300 characters from the help topics, in a fixed order."""
    found: list[str] = []
    for name in sorted(topics):
        for part in re.split(r"(?<=[.!?])\s+", " ".join(topics[name].split())):
            if 40 <= len(part) <= 300:
                found.append(part)
    return found[:count]


def _session(folder: Path, precision: str) -> OnnxModel:
    return OnnxModel(folder, OnnxRuntimeOptions(precision=precision, providers=["cpu"], intra_op_threads=1))  # type: ignore[arg-type]


def _timed(calls: dict[str, Callable[[], Any]], seconds: float) -> dict[str, float]:
    """Median ms per call of each, the calls taking turns until ``seconds`` have passed."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or min(len(t) for t in times.values()) < 5:
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000.0)
    return {name: median(values) for name, values in times.items()}


def _speed_rows(what: str, unit: str, batch: int, ms: dict[str, float]) -> list[Row]:
    rows = [Row("onnx", f"{what} batch {batch}: {name} ms/call", value, "ms") for name, value in ms.items()]
    rows += [Row("onnx", f"{what} batch {batch}: {name} {unit}/s", batch * 1000.0 / value, f"{unit}/s")
             for name, value in ms.items()]  # fmt: skip
    for precision in PRECISIONS:
        speedup = ms["torch"] / ms[f"onnx-{precision}"]
        rows.append(Row("onnx", f"{what} batch {batch}: onnx-{precision} speed-up vs torch", speedup, "x"))
    return rows


def _embed_all(model: HFEmbeddingModel | OnnxEmbeddingModel, texts: list[str]) -> np.ndarray:
    return np.stack([e.vector for i in range(0, len(texts), 32) for e in model.predict_batch(texts[i : i + 32])])


def embedding_rows(folder: Path, seconds: float) -> list[Row]:
    texts = sentences()
    torch_model = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))
    models: dict[str, HFEmbeddingModel | OnnxEmbeddingModel] = {"torch": torch_model}
    models |= {f"onnx-{p}": OnnxEmbeddingModel(_session(folder, p)) for p in PRECISIONS}
    rows: list[Row] = []
    with pinned_here():
        reference = _embed_all(torch_model, texts)
        for precision in PRECISIONS:
            cosines = (_embed_all(models[f"onnx-{precision}"], texts) * reference).sum(axis=1)  # L2-normalised
            case = f"embedding cosine onnx-{precision} vs torch fp32"
            met = bool(cosines.mean() >= MIN_COSINE)
            rows.append(
                Row("onnx", f"{case}: mean of {len(texts)}", float(cosines.mean()), "", f">= {MIN_COSINE}", met)
            )
            rows.append(Row("onnx", f"{case}: min", float(cosines.min()), ""))
        for batch in (1, 32):
            calls = {name: partial(model.predict_batch, texts[:batch]) for name, model in models.items()}
            rows += _speed_rows("embeddings", "texts", batch, _timed(calls, seconds))
    return rows


def _relative(value: float, reference: float) -> float:
    return (value - reference) / reference


def planner_rows(folder: Path, seconds: float) -> list[Row]:
    data = make_dataset(150, 40.0, 1000)  # train_autonomy_model's held-out fleet (TrainSettings' eval sizes)
    torch_model = TrajectoryModel.load(resolve_model_path("builtin:autonomy-diffusion"))
    torch_model.trace()  # as the planner serves it
    models = {"torch": torch_model}
    for precision in PRECISIONS:
        model = TrajectoryModel.load(folder)
        model.sampler = OnnxSampler(_session(folder, precision))
        models[f"onnx-{precision}"] = model
    rows: list[Row] = []
    with pinned_here():
        scores: dict[str, Scores] = {}
        for name, model in models.items():
            generator = torch.Generator().manual_seed(1)
            scores[name] = score(model.paths(data.cond, data.speed, K, generator=generator), data.future)
        for name, result in scores.items():
            for metric in ("ade_m", "fde_m", "min_ade_m", "min_fde_m"):
                rows.append(
                    Row("onnx", f"planner {metric} {name} ({len(data)} held-out samples)", getattr(result, metric), "m")
                )
                if name == "torch":
                    continue
                change = _relative(getattr(result, metric), getattr(scores["torch"], metric))
                rows.append(Row("onnx", f"planner {metric} {name} vs torch", 100.0 * change, "%",
                                f"within {100 * MAX_RELATIVE:g}%", abs(change) <= MAX_RELATIVE))  # fmt: skip
        for vehicles in (1, 32):
            cond, speed = data.cond[:vehicles], data.speed[:vehicles]
            calls = {name: partial(model.paths, cond, speed, K) for name, model in models.items()}
            rows += _speed_rows("planner sampling", "vehicles", vehicles, _timed(calls, seconds))
    return rows


def run(duration_s: float) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="strata-onnx-") as tmp:
        minilm, denoiser = Path(tmp) / "minilm", Path(tmp) / "denoiser"
        export_embedding(resolve_model_path("builtin:all-MiniLM-L6-v2"), minilm, int8=True)
        export_denoiser(resolve_model_path("builtin:autonomy-diffusion"), denoiser, int8=True)
        return embedding_rows(minilm, duration_s) + planner_rows(denoiser, duration_s)
