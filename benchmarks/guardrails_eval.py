"""Guardrails evaluation: precision and recall of each detector on the labelled set, and of Presidio's
pattern recognizers on the same set where one applies; scan cost per text.

The set is ``benchmarks/data/guardrails-eval.jsonl`` (600 texts: PII of seven types, injections, and
benign look-alikes), built by ``python -m strata.training.guard_corpus benchmarks/data/guardrails-eval.jsonl
--split eval --seed 7`` (see ``benchmarks/data/README.md``). A detector predicts "positive" for a text
when it finds anything of its kind; a text is positive for a kind when that kind is among its labels.

Presidio: its pattern recognizers (regexes plus their own checksums and context words) are called
directly, without the analyzer engine, so no spaCy model is needed and nothing is downloaded
(tldextract, which its e-mail recognizer uses, is given an empty suffix-list URL set: offline snapshot).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import Row
from strata.governance.injection import InjectionClassifier, heuristic_findings
from strata.governance.pii import PIIDetector
from strata.spec.guardrails import ALL_PII

EVAL_SET = Path(__file__).parent / "data" / "guardrails-eval.jsonl"
Predict = Callable[[str], bool]


def load_set() -> list[dict[str, Any]]:
    return [json.loads(line) for line in EVAL_SET.read_text(encoding="utf-8").splitlines() if line]


def scores(examples: list[dict[str, Any]], kind: str, predict: Predict | list[bool]) -> tuple[float, float, int]:
    """(precision, recall, positives) of ``predict`` for ``kind`` over every example."""
    guesses = predict if isinstance(predict, list) else [predict(e["text"]) for e in examples]
    truth = [kind in e["labels"] for e in examples]
    tp = sum(g and t for g, t in zip(guesses, truth, strict=True))
    fp = sum(g and not t for g, t in zip(guesses, truth, strict=True))
    fn = sum(t and not g for g, t in zip(guesses, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, sum(truth)


def strata_predictors() -> dict[str, Predict]:
    predictors: dict[str, Predict] = {}
    for kind in ALL_PII:
        detector = PIIDetector([kind])
        predictors[kind] = lambda text, d=detector: bool(d.find(text))
    return predictors


def presidio_predictors() -> dict[str, Predict] | str:
    """Presidio's pattern recognizers per kind, or why they could not be used."""
    try:
        import tldextract

        offline = tldextract.TLDExtract(suffix_list_urls=())
        tldextract.extract = offline  # the e-mail recognizer's TLD check: the bundled snapshot, no fetch
        from presidio_analyzer import predefined_recognizers as r
    except ImportError as error:
        return f"presidio-analyzer is not installed ({error})"
    by_kind: dict[str, list[Any]] = {
        "email": [r.EmailRecognizer()],
        "phone": [r.PhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "JP"))],
        "card": [r.CreditCardRecognizer()],
        "iban": [r.IbanRecognizer()],
        "ip": [r.IpRecognizer()],
        "national_id": [r.UsSsnRecognizer(), r.UkNinoRecognizer(), r.EsNifRecognizer()],
    }

    def predictor(recognizers: list[Any]) -> Predict:
        def predict(text: str) -> bool:
            return any(
                result.score > 0  # AnalyzerEngine's default score_threshold is 0: any result counts
                for recognizer in recognizers
                for result in recognizer.analyze(text, recognizer.supported_entities, None)
            )

        return predict

    return {kind: predictor(recognizers) for kind, recognizers in by_kind.items()}


def injection_probabilities(texts: list[str]) -> list[float]:
    from strata.models.hf_embedding import HFEmbeddingModel
    from strata.models.paths import resolve_model_path

    model = HFEmbeddingModel(resolve_model_path("builtin:all-MiniLM-L6-v2"))
    classifier = InjectionClassifier.load()
    vectors = [e.vector for i in range(0, len(texts), 64) for e in model.predict_batch(texts[i : i + 64])]
    return [classifier.probability(v) for v in vectors]


def scan_us_per_text(examples: list[dict[str, Any]], repeat: int = 5) -> float:
    detector = PIIDetector(ALL_PII)
    texts = [e["text"] for e in examples]
    started = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            detector.find(text)
    return (time.perf_counter() - started) / (repeat * len(texts)) * 1e6


def run(duration_s: float) -> list[Row]:
    examples = load_set()
    rows: list[Row] = []

    def add(source: str, kind: str, predict: Predict | list[bool]) -> None:
        precision, recall, positives = scores(examples, kind, predict)
        case = f"{source} {kind} (n+={positives}/{len(examples)})"
        rows.append(Row("guardrails_eval", f"{case} precision", precision, "ratio"))
        rows.append(Row("guardrails_eval", f"{case} recall", recall, "ratio"))

    for kind, predict in strata_predictors().items():
        add("strata", kind, predict)
    presidio = presidio_predictors()
    if isinstance(presidio, str):
        rows.append(Row("guardrails_eval", f"presidio: {presidio}", 0.0, "n/a"))
    else:
        for kind, predict in presidio.items():
            add("presidio", kind, predict)
    heuristics = [bool(heuristic_findings(e["text"])) for e in examples]
    add("strata heuristics", "injection", heuristics)
    probabilities = injection_probabilities([e["text"] for e in examples])
    for threshold in (0.5, 0.8):
        add(f"strata classifier@{threshold}", "injection", [p >= threshold for p in probabilities])
        combined = [h or p >= threshold for h, p in zip(heuristics, probabilities, strict=True)]
        add(f"strata heuristics+classifier@{threshold}", "injection", combined)
    rows.append(Row("guardrails_eval", "strata all PII types: scan per text", scan_us_per_text(examples), "us"))
    rows.append(Row("guardrails_eval", "injection classifier AUC", _auc(examples, probabilities), "ratio"))
    return rows


def _auc(examples: list[dict[str, Any]], probabilities: list[float]) -> float:
    truth = np.array(["injection" in e["labels"] for e in examples])
    p = np.array(probabilities)
    positives, negatives = p[truth], p[~truth]
    return float((positives[:, None] > negatives[None, :]).mean())
