"""In-process rate-limit counters with the ``limits`` library's semantics, for one gateway.

The ``limits`` library's async memory storage costs about 90 us for the four checks of a request
(per key and per tenant, requests and tokens): more than the whole rest of the request path. These
counters are the same two algorithms as plain arithmetic on a dict, with nothing awaited:

- requests: the sliding-window counter (``limits``' ``SlidingWindowCounterRateLimiter``): windows
  aligned to the minute, the previous window's count weighted by how much of it still overlaps;
- tokens: a fixed window, tested before a request and charged after it (even past the limit).

Shared limits (several gateways) still go through ``limits`` on Redis: there the round trip
dominates, and the atomic Lua scripts are what make them exact across gateways.
"""

from __future__ import annotations

import time
from collections.abc import Callable

WINDOW_S = 60.0


class _Counter:
    __slots__ = ("current", "previous", "window")

    def __init__(self, window: int) -> None:
        self.window = window
        self.current = 0
        self.previous = 0

    def roll(self, window: int) -> None:
        if window == self.window:
            return
        self.previous = self.current if window == self.window + 1 else 0
        self.current = 0
        self.window = window


class MemoryWindows:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counters: dict[str, _Counter] = {}

    def _counter(self, key: str) -> tuple[_Counter, float]:
        now = self._clock()
        window = int(now // WINDOW_S)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = _Counter(window)
            if len(self._counters) > 100_000:  # idle identities: drop what no longer counts
                self._sweep(window)
        else:
            counter.roll(window)
        return counter, now

    def _sweep(self, window: int) -> None:
        for key in [k for k, c in self._counters.items() if c.window < window - 1]:
            del self._counters[key]

    def sliding_hit(self, key: str, amount: int, cost: int = 1) -> bool:
        """Take ``cost`` if the weighted count leaves room (``limits``' sliding window counter)."""
        counter, now = self._counter(key)
        if self._weighted(counter, now) + cost > amount:
            return False
        counter.current += cost
        return True

    def fixed_test(self, key: str, amount: int) -> bool:
        """Room left in this minute's fixed window."""
        counter, _ = self._counter(key)
        return counter.current < amount

    def fixed_charge(self, key: str, cost: int) -> None:
        counter, _ = self._counter(key)
        counter.current += cost

    def sliding_stats(self, key: str, amount: int) -> tuple[int, float]:
        """(remaining, seconds until the count next drops), as the refusal headers report them."""
        counter, now = self._counter(key)
        remaining = max(0, int(amount - self._weighted(counter, now)))
        if counter.previous:  # the previous window's weight falls continuously: one unit frees soon
            return remaining, min(WINDOW_S - now % WINDOW_S, WINDOW_S / counter.previous)
        return remaining, WINDOW_S - now % WINDOW_S

    def fixed_stats(self, key: str, amount: int) -> tuple[int, float]:
        counter, now = self._counter(key)
        return max(0, amount - counter.current), WINDOW_S - now % WINDOW_S

    @staticmethod
    def _weighted(counter: _Counter, now: float) -> float:
        overlap = (WINDOW_S - now % WINDOW_S) / WINDOW_S
        return counter.previous * overlap + counter.current
