"""Sentence embeddings with transformers: mean pooling over the attention mask, L2-normalised."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModel, AutoTokenizer

from strata.errors import InvalidRequest
from strata.models.base import Embedding

WARMUP_TEXTS = [
    "Strata warms up its embedding model.",
    "A second, somewhat longer sentence to vary the shape.",
]


class HFEmbeddingModel:
    """Any transformers encoder in a local folder, pooled into one vector per input text."""

    def __init__(
        self,
        folder: Path,
        *,
        device: str = "cpu",
        max_length: int = 256,
        normalize: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        self.model = AutoModel.from_pretrained(folder, local_files_only=True).to(self.device).eval()
        self.max_length = min(max_length, int(getattr(self.tokenizer, "model_max_length", max_length)))
        self.normalize = normalize
        self.dimensions = int(self.model.config.hidden_size)

    @classmethod
    def from_options(cls, folder: Path, device: str, options: dict[str, Any]) -> HFEmbeddingModel:
        allowed = {"max_length", "normalize"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise InvalidRequest(f"options: unknown option(s) {unknown} for hf-embedding (allowed: {sorted(allowed)})")
        return cls(folder, device=device, **options)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"])

    @torch.inference_mode()
    def predict_batch(self, inputs: Sequence[Any]) -> list[Embedding]:
        texts = [str(text) for text in inputs]
        encoded = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        # Mean over real tokens only: padding must not dilute short inputs in a mixed batch.
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        vectors = pooled.float().cpu().numpy()
        token_counts = encoded["attention_mask"].sum(dim=1).tolist()
        return [Embedding(vector=vectors[i], tokens=int(token_counts[i])) for i in range(len(texts))]

    def warmup(self) -> None:
        self.predict_batch(WARMUP_TEXTS)
