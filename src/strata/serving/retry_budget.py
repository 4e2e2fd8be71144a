"""A retry budget: retries may be at most a set share of requests, so retries cannot multiply an
overload (the retry storm). Counted over a sliding window of one-second buckets; pure logic.

Allowed retries in the window = ``budget_ratio`` x requests + ``min_retries_per_s`` x window, the
floor letting a quiet deployment retry its rare failure.
"""

from __future__ import annotations

import math
from collections import deque

from strata.serving.clock import MONOTONIC, Clock
from strata.spec.resilience import RetrySpec

WINDOW_S = 10


class RetryBudget:
    def __init__(self, spec: RetrySpec, *, clock: Clock = MONOTONIC, window_s: int = WINDOW_S) -> None:
        self._ratio = spec.budget_ratio
        self._floor = spec.min_retries_per_s * window_s
        self._clock = clock
        self._window_s = window_s
        self._buckets: deque[list[int]] = deque()  # [second, requests, retries]
        self.denied = 0

    def record_request(self) -> None:
        self._bucket()[1] += 1

    def try_spend(self) -> bool:
        """Spend one retry if the budget has one; False (and counted) when it does not."""
        requests, retries = self._totals()
        if retries + 1 > self._ratio * requests + self._floor:
            self.denied += 1
            return False
        self._bucket()[2] += 1
        return True

    def snapshot(self) -> dict[str, float]:
        requests, retries = self._totals()
        return {"requests": requests, "retries": retries, "denied": self.denied, "ratio": self._ratio}

    def _bucket(self) -> list[int]:
        second = math.floor(self._clock())
        self._expire(second)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0])
        return self._buckets[-1]

    def _totals(self) -> tuple[int, int]:
        self._expire(math.floor(self._clock()))
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._window_s:
            self._buckets.popleft()
