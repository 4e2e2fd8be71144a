"""Trains the shipped prompt-injection classifier: a logistic regression on all-MiniLM-L6-v2 embeddings.

Data: ``guard_corpus.build("train", seed)``, injections (label 1) against benign requests and
texts carrying PII (label 0); the eval split's phrasings are held out. Embeddings come from the
MiniLM model Strata ships (no download); training is full-batch gradient descent in numpy from a
zero start, so the same seed gives the same weights. It takes a few seconds on one core.

``python -m strata.training.train_injection [--seed 1] [--output PATH]`` (default: the shipped asset).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from strata.governance.injection import InjectionClassifier, shipped_weights_path, train
from strata.models.hf_embedding import HFEmbeddingModel
from strata.models.paths import resolve_model_path
from strata.training.guard_corpus import build


def embed(texts: list[str]) -> np.ndarray:
    model = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))
    vectors = [e.vector for start in range(0, len(texts), 64) for e in model.predict_batch(texts[start : start + 64])]
    return np.stack(vectors)


def accuracy(classifier: InjectionClassifier, vectors: np.ndarray, labels: np.ndarray) -> float:
    predicted = np.array([classifier.probability(v) >= 0.5 for v in vectors])
    return float((predicted == labels.astype(bool)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description="Train the shipped prompt-injection classifier.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, default=shipped_weights_path())
    args = parser.parse_args()
    examples = build("train", args.seed)
    labels = np.array([1.0 if "injection" in e["labels"] else 0.0 for e in examples])
    vectors = embed([e["text"] for e in examples])
    classifier = train(vectors, labels)
    classifier.save(args.output)
    saved = InjectionClassifier.load(args.output)
    print(f"{len(examples)} examples ({int(labels.sum())} injections); training accuracy "
          f"{accuracy(saved, vectors, labels):.3f}; weights -> {args.output}")  # fmt: skip


if __name__ == "__main__":
    main()
