"""Prompt-injection and jailbreak attempts: phrase heuristics, and a logistic regression on MiniLM embeddings.

The heuristics catch the well-known phrasings at regex cost. The classifier catches paraphrases:
its weights (384 + 1 floats) are trained by ``strata.training.train_injection`` on the labelled set
``strata.training.guard_corpus`` builds, and shipped in ``strata/assets/injection-classifier``.
"""

from __future__ import annotations

import math
import re
from importlib import resources
from pathlib import Path

import numpy as np

from strata.governance.findings import Finding

_HEURISTICS = re.compile(
    "|".join(
        (
            r"\b(?:ignore|disregard|forget|override|skip|drop)\b(?:\W+\w+){0,4}?\W+"
            r"(?:instructions?|rules|directions|guidelines|prompts?|constraints|guardrails)\b",
            r"\b(?:reveal|show|print|repeat|output|leak|display|dump|tell me|give me)\b(?:\W+\w+){0,3}?\W+"
            r"(?:system|hidden|initial|original|secret|developer)\W+(?:prompt|instructions|message|rules)\b",
            r"\byou are (?:now |no longer )(?:\w+\W+){0,3}?(?:DAN|unrestricted|unfiltered|jailbroken|uncensored|"
            r"free of|bound by)",
            r"\b(?:do anything now|DAN mode|developer mode (?:enabled|on)|jailbreak(?:ed|ing)?|god mode)\b",
            r"\b(?:pretend|act|behave|roleplay)\b(?:\W+\w+){0,8}?\W+(?:without|no|free of|ignoring)\W+(?:any\W+)?"
            r"(?:restrictions|rules|limits|filters|guidelines|censorship|safety)\b",
            r"\bbypass(?:es|ing)?\b(?:\W+\w+){0,2}?\W+(?:safety|content|filters?|guardrails|restrictions|moderation)",
            r"(?:^|\n)\s*(?:#{2,}\s*)?(?:new|updated|real) (?:system )?instructions\s*:",
            r"<\|im_start\|>\s*system|\[/?(?:system|INST)\]|<<SYS>>",
        )
    ),
    re.IGNORECASE,
)

WEIGHTS_FILE = "weights.npz"


def heuristic_findings(text: str) -> list[Finding]:
    return [Finding("injection", m.start(), m.end()) for m in _HEURISTICS.finditer(text)]


def shipped_weights_path() -> Path:
    return Path(str(resources.files("strata") / "assets" / "injection-classifier" / WEIGHTS_FILE))


class InjectionClassifier:
    """P(injection | text) = sigmoid(w . embedding + b), over L2-normalised MiniLM sentence embeddings."""

    def __init__(self, weights: np.ndarray, bias: float) -> None:
        self.weights = weights.astype(np.float32)
        self.bias = float(bias)

    @classmethod
    def load(cls, path: Path | None = None) -> InjectionClassifier:
        with np.load(path or shipped_weights_path()) as data:
            return cls(data["weights"], float(data["bias"]))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, weights=self.weights.astype(np.float16).astype(np.float32), bias=np.float32(self.bias))

    def probability(self, vector: np.ndarray) -> float:
        logit = float(np.dot(self.weights, vector)) + self.bias
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, logit))))


def train(
    vectors: np.ndarray, labels: np.ndarray, *, epochs: int = 2000, l2: float = 1e-3, learning_rate: float = 8.0
) -> InjectionClassifier:
    """Full-batch gradient descent on the log loss (the data is small: a second on one core). Deterministic:
    zero start, fixed steps, so the same vectors give the same weights."""
    x = vectors.astype(np.float64)
    y = labels.astype(np.float64)
    weights = np.zeros(x.shape[1])
    bias = 0.0
    for _ in range(epochs):
        p = 1.0 / (1.0 + np.exp(-(x @ weights + bias)))
        error = p - y
        weights -= learning_rate * (x.T @ error / len(y) + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return InjectionClassifier(weights.astype(np.float32), bias)
