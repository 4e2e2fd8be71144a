"""A route's traffic split over its versions.

Without stickiness, versions are picked by smooth weighted round robin (nginx's): over every 100
requests each version gets exactly its weight, so a 5% canary sees 5% of requests, never more by
chance. With stickiness, a key's hash picks the version, so a user or session stays on one version
while the weights stay put (and moves only as far as a weight change requires).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(slots=True)
class _Entry:
    name: str
    weight: float
    current: float = 0.0


class TrafficSplit:
    def __init__(self, weights: dict[str, float]) -> None:
        self._entries: list[_Entry] = []
        self.set_weights(weights)

    @property
    def weights(self) -> dict[str, float]:
        return {entry.name: entry.weight for entry in self._entries}

    def set_weights(self, weights: dict[str, float]) -> None:
        """Replace every weight at once (a blue-green switch is one call). Weights add up to 100."""
        if any(weight < 0 for weight in weights.values()) or abs(sum(weights.values()) - 100) > 1e-6:
            raise ValueError(f"weights must be non-negative and add up to 100, got {weights}")
        self._entries = [_Entry(name, float(weight)) for name, weight in weights.items()]
        # The version with the most traffic (the first of equals): read per request, changed only here.
        self.heaviest = max(self._entries, key=lambda entry: entry.weight).name

    def pick(self, sticky_key: str | None = None) -> str:
        if sticky_key is not None:
            return self._by_hash(sticky_key)
        best: _Entry | None = None
        for entry in self._entries:
            entry.current += entry.weight
            if entry.weight > 0 and (best is None or entry.current > best.current):
                best = entry
        assert best is not None, "weights add up to 100"
        best.current -= 100.0
        return best.name

    def _by_hash(self, key: str) -> str:
        # A stable hash (not Python's salted hash()): the same key lands on the same version in every process.
        point = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % 10_000 / 100.0
        cumulative = 0.0
        for entry in self._entries:
            cumulative += entry.weight
            if point < cumulative and entry.weight > 0:
                return entry.name
        return next(entry.name for entry in reversed(self._entries) if entry.weight > 0)
