"""Predicts a new request's latency from what the deployment's admission already counts: O(1), no
clock reads of its own, no history kept.

Three running averages (EWMAs over finished requests) are enough:
- ``hold_s``: how long a request keeps its admission slot (acquire to release);
- ``load``: how many requests held a slot, itself included, when it was admitted;
- ``answer_s``: how long until it was answered (the whole response; a stream's first event, which
  is what its client waits for).

Little's law gives the drain rate, ``load / hold_s`` slots freed per second, so the ``ahead``
requests waiting in front of a new one are through in ``ahead * hold_s / load``. Once in, the new
request is answered in ``answer_s`` scaled by how much busier the deployment is now than on average
(``in_flight / load``): a request admitted behind a full queue inside the replica waits for it too,
and the scaling makes that visible at once instead of after the average catches up. The averages
follow the load as it changes: bigger batches under more load raise ``load`` more than ``hold_s``,
a model that slows down lengthens ``hold_s`` within a few dozen requests.
"""

from __future__ import annotations

from dataclasses import dataclass

ALPHA = 0.05  # weight of the newest sample: ~20 requests of memory, a few milliseconds under load


def _ewma(average: float | None, sample: float) -> float:
    return sample if average is None else average + ALPHA * (sample - average)


@dataclass(slots=True)
class WaitPredictor:
    hold_s: float | None = None
    answer_s: float | None = None
    load: float = 1.0
    samples: int = 0

    @property
    def ready(self) -> bool:
        """Seen a request through: before that there is nothing to predict from, and nothing is shed."""
        return self.hold_s is not None and self.answer_s is not None

    @property
    def drain_rate(self) -> float | None:
        """Slots freed per second (Little's law: the requests inside over the time each stays)."""
        if self.hold_s is None:
            return None
        return self.load / max(self.hold_s, 1e-6)

    def observe(self, *, hold_s: float, answer_s: float | None, load: int) -> None:
        """One finished request: how long it held its slot; how long until it was answered (None when it failed:
        a fast failure says nothing of how long an answer takes, but it did free its slot); how many requests
        held a slot, itself included, when it was admitted."""
        self.load = load if self.samples == 0 else _ewma(self.load, load)
        self.samples += 1
        self.hold_s = _ewma(self.hold_s, hold_s)
        if answer_s is not None:
            self.answer_s = _ewma(self.answer_s, answer_s)

    def drain_s(self, ahead: float) -> float:
        """How long until ``ahead`` slots have been freed (the waiting requests' and, on average, half a hold more)."""
        rate = self.drain_rate
        if rate is None or ahead <= 0:
            return 0.0
        return ahead / rate

    def latency_s(self, ahead: float, in_flight: int) -> float:
        """Predicted latency of a request that waits for ``ahead`` slots to free, ``in_flight`` holding one now."""
        answer_s = self.answer_s or 0.0
        return self.drain_s(ahead) + answer_s * max(1.0, in_flight / max(self.load, 1.0))
