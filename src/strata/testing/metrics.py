"""Read a server's /metrics the way Prometheus does, so tests match samples by name and labels
rather than by the order labels happen to be printed in."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families


class MetricSamples:
    """Every sample of one /metrics scrape."""

    def __init__(self, text: str) -> None:
        self._samples = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    @classmethod
    def scrape(cls, base_url: str, headers: Mapping[str, str] | None = None) -> MetricSamples:
        """``headers`` carry the credentials: /metrics needs the admin scope unless access.metrics_open."""
        response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
        response.raise_for_status()
        return cls(response.text)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self._samples

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 for a labelled series not yet created (a counter never incremented)."""
        return self._samples.get((name, frozenset(labels.items())), 0.0)

    def label_names(self) -> dict[str, set[str]]:
        """Each sample name (``x_total``, ``x_bucket``...) and every label name its samples carry."""
        names: dict[str, set[str]] = {}
        for name, labels in self._samples:
            names.setdefault(name, set()).update(label for label, _ in labels)
        return names

    def total(self, name: str) -> float:
        """The sum of every series of ``name`` (all label values)."""
        return sum(value for (sample, _), value in self._samples.items() if sample == name)
