"""One guard, built from its spec: what it looks for, where, and what it does about it.

A guard has a synchronous part (regex detectors, run on the event loop: microseconds) and, for
injection classifiers and model guards, an asynchronous part that asks a served route (an embedding
or a classification model) through ``Ask``, the gateway's door to the serving layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from strata.governance.findings import Detector, Finding
from strata.governance.injection import InjectionClassifier, heuristic_findings
from strata.governance.pii import PIIDetector
from strata.governance.terms import TermDetector
from strata.spec.guardrails import GuardSpec

Ask = Callable[[str, str], Awaitable[Any]]
"""ask(route, text): the one output of the served route for the one input ``text`` (an embedding
route gives its vector, a predict route its prediction)."""


class _Heuristics:
    def find(self, text: str) -> list[Finding]:
        return heuristic_findings(text)


@dataclass(frozen=True)
class Guard:
    name: str
    kind: str
    action: str  # block | redact | flag
    stages: frozenset[str]
    detector: Detector | None
    allow: frozenset[str]
    classifier: InjectionClassifier | None = None
    classifier_route: str | None = None
    threshold: float = 0.5
    model_route: str | None = None
    model_labels: frozenset[str] = frozenset()

    @property
    def asks(self) -> bool:
        """Whether it needs a served model (an awaited call) besides its regexes."""
        return self.classifier_route is not None or self.model_route is not None

    def find(self, text: str) -> list[Finding]:
        if self.detector is None:
            return []
        findings = self.detector.find(text)
        if self.allow and findings:
            findings = [f for f in findings if text[f.start : f.end] not in self.allow]
        return findings

    async def judge(self, text: str, ask: Ask) -> list[Finding]:
        """The served model's verdict on the whole text: one finding spanning it, or none."""
        if self.classifier_route is not None and self.classifier is not None:
            score = self.classifier.probability(_vector(await ask(self.classifier_route, text)))
            return [Finding("injection", 0, len(text), score)] if score >= self.threshold else []
        if self.model_route is not None:
            label, score = _label_and_score(await ask(self.model_route, text))
            if label in self.model_labels and score >= self.threshold:
                return [Finding(label, 0, len(text), score)]
        return []


def build_guard(spec: GuardSpec, classifier: InjectionClassifier | None) -> Guard:
    detector: Detector | None = None
    if spec.kind == "pii":
        detector = PIIDetector(spec.pii)
    elif spec.kind == "terms":
        detector = TermDetector(spec.deny, spec.patterns)
    elif spec.kind == "injection":
        detector = _Heuristics()
    model = spec.model
    return Guard(
        name=spec.name,
        kind=spec.kind,
        action=spec.action,
        stages=frozenset(spec.stages),
        detector=detector,
        allow=frozenset(spec.allow),
        classifier=classifier if spec.classifier_route is not None else None,
        classifier_route=spec.classifier_route,
        threshold=model.threshold if model is not None else spec.threshold,
        model_route=model.route if model is not None else None,
        model_labels=frozenset(model.labels) if model is not None else frozenset(),
    )


def _vector(output: Any) -> Any:
    return getattr(output, "vector", output)  # an embedding replica answers Embedding(vector, tokens)


def _label_and_score(output: Any) -> tuple[str, float]:
    """A classification model's answer: {'label': ..., 'score': ...}, or a bare label (score 1)."""
    if isinstance(output, str):
        return output, 1.0
    if isinstance(output, dict) and "label" in output:
        return str(output["label"]), float(output.get("score", 1.0))
    raise ValueError(f"a guard model must return a label or {{'label', 'score'}}, got {type(output).__name__}")
