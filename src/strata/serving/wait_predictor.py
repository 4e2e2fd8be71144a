"""Predicts a new request's latency from what the deployment's admission already counts: O(1), no
clock reads of its own, no history kept.

Two running averages (EWMAs over finished requests) are enough:
- ``hold_s``: how long a request keeps its admission slot (acquire to release). With every slot
  taken, slots free at ``limit / hold_s`` per second (Little's law), so ``ahead`` requests waiting in
  front of a new one are through in ``ahead * hold_s / limit``: the queue's drain rate.
- ``answer_s``: how long an admitted request takes to be answered (the whole response; a stream's
  first event, which is what its client waits for).

Predicted latency = time waiting for a slot + ``answer_s``. The averages follow the load as it
changes: a bigger batch under more load shortens ``hold_s`` per request, a model that slows down
lengthens it within a few dozen requests.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 0.05  # weight of the newest sample: ~20 requests of memory, a few milliseconds under load


@dataclass(slots=True)
class WaitPredictor:
    hold_s: float | None = None
    answer_s: float | None = None
    samples: int = 0

    @property
    def ready(self) -> bool:
        """Seen a request through: before that there is nothing to predict from, and nothing is shed."""
        return self.hold_s is not None and self.answer_s is not None

    def observe(self, *, hold_s: float, answer_s: float | None) -> None:
        """One finished request: how long it held its slot; how long until it was answered (None when it failed:
        a fast failure says nothing of how long an answer takes, but it did free its slot)."""
        self.samples += 1
        self.hold_s = hold_s if self.hold_s is None else self.hold_s + ALPHA * (hold_s - self.hold_s)
        if answer_s is not None:
            self.answer_s = answer_s if self.answer_s is None else self.answer_s + ALPHA * (answer_s - self.answer_s)

    def drain_s(self, ahead: int, limit: int) -> float:
        """How long until ``ahead`` waiting requests have all been given a slot."""
        if self.hold_s is None or ahead <= 0:
            return 0.0
        return ahead * self.hold_s / max(1, limit)

    def latency_s(self, ahead: int, limit: int) -> float:
        """Predicted latency of a request that joins behind ``ahead`` waiting requests."""
        return self.drain_s(ahead, limit) + (self.answer_s or 0.0)
