"""A circuit breaker: closed, open, half-open. Pure logic over an injectable clock.

1. closed: calls pass; ``consecutive_failures`` failures in a row open it.
2. open: calls are refused until ``open_s`` has passed.
3. half-open: one probe call passes; success closes the breaker, failure reopens it for twice as
   long (capped at ``max_open_s``), so a replica that stays broken is probed less and less often.

The same machine guards a replica (its ejection) and a whole deployment (the route's fallback).
"""

from __future__ import annotations

from enum import StrEnum

from strata.serving.clock import MONOTONIC, Clock
from strata.spec.resilience import BreakerSpec


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(self, spec: BreakerSpec, *, clock: Clock = MONOTONIC) -> None:
        self._spec = spec
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._open_for_s = spec.open_s
        self._open = False
        self._probing = False  # a half-open probe is in flight
        self.reason = ""  # why it last opened: shown by the admin API
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        if not self._open:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._open_for_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after_s(self) -> float:
        """Seconds until the next half-open probe (0 when calls pass)."""
        if not self._open:
            return 0.0
        return max(0.0, self._opened_at + self._open_for_s - self._clock())

    def allow(self) -> bool:
        """May a call go through now? In half-open, only one probe at a time does."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def would_allow(self) -> bool:
        """Like ``allow`` without claiming the probe: for filtering candidates."""
        state = self.state
        return state is BreakerState.CLOSED or (state is BreakerState.HALF_OPEN and not self._probing)

    def record_success(self) -> None:
        self._failures = 0
        if self._open and self._probing:
            self._open = False
            self._open_for_s = self._spec.open_s
        self._probing = False

    def record_failure(self, reason: str = "failures") -> None:
        self._failures += 1
        if self._open and self._probing:
            # 3. The probe failed: back to open, for longer.
            self._open_for_s = min(self._open_for_s * 2, self._spec.max_open_s)
            self._trip(reason)
        elif not self._open and self._failures >= self._spec.consecutive_failures:
            self._trip(reason)

    def release_probe(self) -> None:
        """A probe that ended with neither verdict (e.g. the client left): let another one try."""
        self._probing = False

    def trip(self, reason: str) -> None:
        """Open now, whatever the count (e.g. a replica ejected as slow, or one whose worker died)."""
        if self._open and not self._probing and self.state is BreakerState.OPEN:
            return
        if self._open and self._probing:
            self._open_for_s = min(self._open_for_s * 2, self._spec.max_open_s)
        self._trip(reason)

    def reset(self) -> None:
        """Closed and forgotten: a freshly restarted replica starts clean."""
        self._open = False
        self._probing = False
        self._failures = 0
        self._open_for_s = self._spec.open_s

    def _trip(self, reason: str) -> None:
        self._open = True
        self._probing = False
        self._opened_at = self._clock()
        self.reason = reason
        self.trips += 1
