"""Tail sampling, decided as a request ends: every error, the slowest, a sample of the rest.

An error response (4xx or 5xx) is kept; a request slower than its route's recent p99 is kept; of the
rest, a token bucket keeps up to ``sample_per_s`` a second (so at low traffic every request is kept
and a client can always look up the request it just made), and a caller that sent a sampled
``traceparent`` has its request kept. Probes and scrapes (``quiet_routes``) are kept only when they
fail or are slow.

It runs on the request path, once per request, so it reads only the record's numbers: a few
comparisons and an append. A request it does not keep leaves nothing behind.
"""

from __future__ import annotations

import math
from collections import deque

from strata.observability.traces.context import SAMPLED
from strata.record import RequestRecord

ERROR, SLOW, SAMPLED_REASON = "error", "slow", "sampled"
_WINDOW = 512  # recent latencies per route the slow threshold is read from
_MIN_SAMPLES = 64  # below this, no request of the route counts as slow yet
_REFRESH_EVERY = 128  # the threshold is recomputed every this many requests of the route
_QUANTILE = 0.99


class _RouteLatency:
    __slots__ = ("recent", "seen", "slow_over")

    def __init__(self) -> None:
        self.recent: deque[float] = deque(maxlen=_WINDOW)
        self.seen = 0
        self.slow_over = math.inf

    def refresh(self) -> None:
        ordered = sorted(self.recent)  # 512 floats every 128 requests: well under a microsecond each
        self.slow_over = ordered[int(len(ordered) * _QUANTILE)]


class TailSampler:
    def __init__(self, sample_per_s: float, quiet_routes: frozenset[str] = frozenset()) -> None:
        self._rate = sample_per_s
        self._burst = max(1.0, sample_per_s) if sample_per_s > 0 else 0.0  # one second's worth, at least one
        self._tokens = self._burst  # the bucket starts full
        self._refilled_at = 0.0  # perf_counter readings are far above 0: the first request finds it full
        self._routes: dict[str, _RouteLatency] = {}
        self._quiet = quiet_routes

    def decide(self, record: RequestRecord) -> str | None:
        """Why the finished request is kept (error, slow, sampled), or None. ``last_byte`` must be set.

        Written flat on purpose: it runs once per request, and each call and property costs."""
        status = record.status
        if status >= 400 or not status:
            return ERROR
        now = record.last_byte
        latency = now - record.received
        route = self._routes.get(record.route)
        if route is None:
            route = self._routes[record.route] = _RouteLatency()
        route.recent.append(latency)
        route.seen += 1
        if not route.seen % _REFRESH_EVERY and route.seen >= _MIN_SAMPLES:
            route.refresh()
        if latency > route.slow_over:
            return SLOW
        if record.route in self._quiet:
            return None
        if record.parent_span_id and record.trace_flags & SAMPLED:
            return SAMPLED_REASON  # the caller traces this request: keep it for them
        # The token bucket, refilled from the record's own clock (perf_counter): no clock read here.
        tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return SAMPLED_REASON
        self._tokens = tokens
        return None
