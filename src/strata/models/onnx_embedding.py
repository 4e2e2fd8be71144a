"""Sentence embeddings on ONNX Runtime: the exported encoder of an hf-embedding model, with the
same tokenizer, mean pooling and L2 normalisation as :class:`HFEmbeddingModel`, so the vectors agree."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from strata.errors import InvalidRequest
from strata.models.base import Embedding
from strata.models.hf_embedding import WARMUP_TEXTS
from strata.models.onnx_runtime import OnnxModel

TASK = "embedding"


class OnnxEmbeddingModel:
    """The export folder carries the tokenizer beside model.onnx; nothing else is read."""

    def __init__(self, model: OnnxModel, *, max_length: int = 256, normalize: bool = True) -> None:
        model.expect(TASK)
        self.model = model
        self.tokenizer = AutoTokenizer.from_pretrained(model.folder, local_files_only=True)
        self.max_length = min(max_length, int(getattr(self.tokenizer, "model_max_length", max_length)))
        self.normalize = normalize

    @classmethod
    def from_options(cls, model: OnnxModel, options: dict[str, Any]) -> OnnxEmbeddingModel:
        allowed = {"max_length", "normalize"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InvalidRequest(
                f"options: unknown option(s) {unknown} for onnx embeddings (allowed: {sorted(allowed)} and "
                "precision, providers, intra_op_threads)"
            )
        return cls(model, **options)

    def predict_batch(self, inputs: Sequence[Any]) -> list[Embedding]:
        texts = [str(text) for text in inputs]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feed = {name: np.asarray(values, dtype=np.int64) for name, values in encoded.items()}
        hidden = self.model.run(feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        # Mean over real tokens only: padding must not dilute short inputs in a mixed batch.
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        vectors = pooled.astype(np.float32)
        tokens = feed["attention_mask"].sum(axis=1).tolist()
        return [Embedding(vector=vectors[i], tokens=int(tokens[i])) for i in range(len(texts))]

    def warmup(self) -> None:
        self.predict_batch(WARMUP_TEXTS)
