"""(a) Embeddings served over HTTP against the same model called in-process on full batches."""

from __future__ import annotations

import time

from benchmarks.harness import Row, load, pinned_here, served
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path

SENTENCE = "Strata batches requests from many clients into one forward pass of the embedding model."
BATCH = 32
BODY = {"model": "minilm", "input": SENTENCE, "encoding_format": "base64"}
TARGET_RATIO = 0.85
SPEC = {
    "name": "bench-embeddings",
    "models": [{"name": "minilm", "kind": "hf-embedding", "path": "builtin:all-MiniLM-L6-v2"}],
    "deployments": [
        {
            "name": "minilm",
            "model": "minilm",
            "max_queue": 4096,
            "batching": {"max_batch_size": BATCH, "max_wait_ms": 5},
        }
    ],
    "routes": [{"name": "minilm", "deployment": "minilm"}],
}


def load_model() -> HFEmbeddingModel:
    return HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))


def ceiling(seconds: float, model: HFEmbeddingModel | None = None) -> float:
    """Inputs per second of the bare model on full batches: what serving can at best approach."""
    model = model if model is not None else load_model()
    batch = [SENTENCE] * BATCH
    with pinned_here():
        model.predict_batch(batch)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.predict_batch(batch)
            done += BATCH
        return done / (time.perf_counter() - started)


def run(duration_s: float) -> list[Row]:
    best = ceiling(duration_s)
    rows = [Row("embeddings", "in-process ceiling (batch 32)", best, "inputs/s")]
    with served(SPEC) as server:
        for concurrency in (1, 16, 64):
            result = load(server, "/v1/embeddings", BODY, concurrency=concurrency, duration_s=duration_s)
            ratio = result.throughput / best
            target = f">= {TARGET_RATIO:.0%} of ceiling" if concurrency == 64 else ""
            rows += [
                Row("embeddings", f"served c={concurrency}", result.throughput, "inputs/s"),
                Row(
                    "embeddings",
                    f"served/ceiling c={concurrency}",
                    ratio,
                    "ratio",
                    target,
                    ratio >= TARGET_RATIO if concurrency == 64 else None,
                ),
                Row("embeddings", f"p50 latency c={concurrency}", result.percentile_ms(50), "ms"),
                Row("embeddings", f"p99 latency c={concurrency}", result.percentile_ms(99), "ms"),
                Row("embeddings", f"errors c={concurrency}", result.errors, "requests"),
            ]
    return rows
