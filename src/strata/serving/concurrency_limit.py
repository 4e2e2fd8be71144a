"""Concurrency limits for admission: a fixed one, and an adaptive one (AIMD) that backs off when
latency passes its target or the deployment fails or sheds, and creeps up while it is healthy.
Pure logic: the admission controller feeds it one sample per finished request."""

from __future__ import annotations

from typing import Protocol

BACKOFF = 0.9  # multiplicative decrease on a bad sample


class ConcurrencyLimit(Protocol):
    @property
    def limit(self) -> int: ...

    def on_sample(self, latency_s: float, *, ok: bool, in_flight: int) -> None: ...


class FixedLimit:
    def __init__(self, limit: int) -> None:
        self._limit = limit

    @property
    def limit(self) -> int:
        return self._limit

    def on_sample(self, latency_s: float, *, ok: bool, in_flight: int) -> None:
        return None


class AIMDLimit:
    """Additive increase (+1 per limit's worth of good samples while the limit is in use),
    multiplicative decrease (x 0.9) on a sample that failed or took longer than ``target_s``."""

    def __init__(self, *, initial: int, minimum: int, maximum: int, target_s: float) -> None:
        self._value = float(max(minimum, min(initial, maximum)))
        self._min = minimum
        self._max = maximum
        self._target_s = target_s

    @property
    def limit(self) -> int:
        return int(self._value)

    def on_sample(self, latency_s: float, *, ok: bool, in_flight: int) -> None:
        if not ok or latency_s > self._target_s:
            self._value = max(float(self._min), self._value * BACKOFF)
        elif in_flight * 2 >= self.limit:  # only grow a limit that is actually used
            self._value = min(float(self._max), self._value + 1.0 / self._value)
