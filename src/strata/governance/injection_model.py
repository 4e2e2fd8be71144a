"""The shipped injection classifier as a servable model (kind ``python``): a prompt guard on a route.

``entrypoint: strata.governance.injection_model:InjectionModel``. Each input text gets
``{"label": "injection" | "benign", "score": probability of that label}``, the answer a model guard
reads. Serving it as a route lets several gateways share one guard model, batched like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strata.governance.injection import InjectionClassifier
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path


class InjectionModel:
    def __init__(self, device: str = "cpu", weights: str | None = None) -> None:
        self.encoder = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"), device=device)
        self.classifier = InjectionClassifier.load(None if weights is None else Path(weights))

    def predict_batch(self, inputs: Sequence[Any]) -> list[dict[str, Any]]:
        answers = []
        for embedding in self.encoder.predict_batch([str(text) for text in inputs]):
            p = self.classifier.probability(embedding.vector)
            answers.append({"label": "injection", "score": p} if p >= 0.5 else {"label": "benign", "score": 1 - p})
        return answers

    def warmup(self) -> None:
        self.predict_batch(["warm up"])
