"""Per-version outcomes over a sliding time window: request count, error rate, p99 latency.
The rollout analysis compares a canary's window with stable's."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from strata.serving.clock import MONOTONIC, Clock

MAX_SAMPLES = 10_000  # bound memory whatever the traffic; a window keeps its newest samples


@dataclass(frozen=True, slots=True)
class WindowStats:
    requests: int
    errors: int
    p99_s: float | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, object]:
        p99_ms = None if self.p99_s is None else round(self.p99_s * 1000, 2)
        return {"requests": self.requests, "errors": self.errors, "error_rate": self.error_rate, "p99_ms": p99_ms}


class OutcomeWindow:
    def __init__(self, *, clock: Clock = MONOTONIC) -> None:
        self._clock = clock
        self._samples: deque[tuple[float, bool, float]] = deque(maxlen=MAX_SAMPLES)  # (at, ok, latency_s)

    def record(self, *, ok: bool, latency_s: float) -> None:
        self._samples.append((self._clock(), ok, latency_s))

    def clear(self) -> None:
        self._samples.clear()

    def stats(self, window_s: float) -> WindowStats:
        since = self._clock() - window_s
        while self._samples and self._samples[0][0] < since:
            self._samples.popleft()
        latencies = sorted(latency for _, ok, latency in self._samples if ok)
        errors = sum(1 for _, ok, _ in self._samples if not ok)
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
        return WindowStats(len(self._samples), errors, p99)
