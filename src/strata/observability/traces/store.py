"""The in-process store of recent traces, tail-sampled: every error, the slowest, a sample of the rest.

The decision is made once the request has ended (tail sampling), from its record: an error response
goes to the error ring; a request slower than its route's recent p99 to the slow ring; of the rest,
a token bucket keeps up to ``sample_per_s`` a second (so at low traffic every request is kept and a
client can always look up the request it just made), and a caller that sent a sampled
``traceparent`` has its request kept. Each ring is bounded; the oldest entry leaves first.

Records are kept, not spans: spans are built only for the traces someone reads.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from strata.observability.traces.context import SAMPLED
from strata.observability.traces.spans import SpanData, is_error, spans_of
from strata.record import RequestRecord

_SLOW_WINDOW = 512  # recent durations per route the slow threshold is read from
_SLOW_MIN_SAMPLES = 50  # below this, no request of the route counts as slow yet
_SLOW_QUANTILE = 0.99


@dataclass(slots=True)
class Kept:
    record: RequestRecord
    reason: str  # error | slow | sampled
    _spans: list[SpanData] | None = field(default=None)

    @property
    def spans(self) -> list[SpanData]:
        if self._spans is None:
            self._spans = spans_of(self.record)
        return self._spans

    @property
    def start_ns(self) -> int:
        return int(self.record.received_at * 1e9)

    @property
    def end_ns(self) -> int:
        return self.start_ns + int(self.record.latency_s * 1e9)


@dataclass(frozen=True, slots=True)
class TraceQuery:
    limit: int = 50
    status: str | None = None  # error | ok
    min_duration_ms: float | None = None
    model: str | None = None


class TraceStore:
    def __init__(
        self,
        *,
        max_errors: int,
        max_slow: int,
        max_sampled: int,
        sample_per_s: float,
        quiet_routes: frozenset[str] = frozenset(),
    ) -> None:
        self._rings: dict[str, deque[Kept]] = {"error": deque(), "slow": deque(), "sampled": deque()}
        self._capacity = {"error": max_errors, "slow": max_slow, "sampled": max_sampled}
        self._by_trace: dict[int, list[Kept]] = {}
        self._sample_per_s = sample_per_s
        self._burst = max(1.0, sample_per_s) if sample_per_s > 0 else 0.0  # one second's worth, at least one
        self._tokens = self._burst  # the bucket starts full
        self._refilled_at: float | None = None
        self._durations: dict[str, deque[float]] = {}
        self._slow_over: dict[str, float] = {}
        self._quiet = quiet_routes  # routes whose successes are noise to an operator (probes, scrapes)
        self.offered = 0

    # Writing (from the tracing pipeline's drain, a batch at a time)

    def offer(self, records: list[RequestRecord], now: float) -> None:
        """Keep what the sampling policy keeps of ``records``; ``now`` is a monotonic clock reading."""
        self._refill(now)
        touched: set[str] = set()
        for record in records:
            self.offered += 1
            reason = self._reason(record, touched)
            if reason is not None:
                self._keep(Kept(record, reason))
        for route in touched:
            self._update_threshold(route)

    def _reason(self, record: RequestRecord, touched: set[str]) -> str | None:
        if is_error(record):
            return "error"
        latency = record.latency_s
        durations = self._durations.get(record.route)
        if durations is None:
            durations = self._durations[record.route] = deque(maxlen=_SLOW_WINDOW)
        durations.append(latency)
        touched.add(record.route)
        if latency > self._slow_over.get(record.route, math.inf):
            return "slow"
        if record.route in self._quiet:
            return None
        if record.parent_span_id and record.trace_flags & SAMPLED:
            return "sampled"  # the caller traces this request: keep it for them
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return "sampled"
        return None

    def _refill(self, now: float) -> None:
        if self._refilled_at is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._sample_per_s)
        self._refilled_at = now

    def _update_threshold(self, route: str) -> None:
        durations = self._durations[route]
        if len(durations) >= _SLOW_MIN_SAMPLES:
            ordered = sorted(durations)
            self._slow_over[route] = ordered[min(len(ordered) - 1, int(len(ordered) * _SLOW_QUANTILE))]

    def _keep(self, kept: Kept) -> None:
        ring = self._rings[kept.reason]
        if len(ring) >= self._capacity[kept.reason]:
            self._forget(ring.popleft())
        ring.append(kept)
        self._by_trace.setdefault(kept.record.trace_id, []).append(kept)

    def _forget(self, kept: Kept) -> None:
        entries = self._by_trace.get(kept.record.trace_id)
        if entries is None:
            return
        entries.remove(kept)
        if not entries:
            del self._by_trace[kept.record.trace_id]

    # Reading (admin routes)

    def __len__(self) -> int:
        return len(self._by_trace)

    def spans(self, trace_id: int) -> list[SpanData] | None:
        """Every kept span of the trace, by start time; None when the store does not hold it."""
        entries = self._by_trace.get(trace_id)
        if not entries:
            return None
        return sorted((span for kept in entries for span in kept.spans), key=lambda span: span.start_ns)

    def summaries(self, query: TraceQuery) -> list[dict[str, object]]:
        """One row per kept trace that matches ``query``, newest first."""
        rows: list[tuple[int, list[Kept]]] = []
        for entries in self._by_trace.values():
            if _matches(entries, query):
                rows.append((min(kept.start_ns for kept in entries), entries))
        rows.sort(key=lambda row: row[0], reverse=True)
        return [_summary(start, entries) for start, entries in rows[: query.limit]]


def _matches(entries: list[Kept], query: TraceQuery) -> bool:
    if query.status is not None and any(is_error(k.record) for k in entries) != (query.status == "error"):
        return False
    if query.model is not None and not any(k.record.model == query.model for k in entries):
        return False
    return query.min_duration_ms is None or _duration_ms(entries) >= query.min_duration_ms


def _duration_ms(entries: list[Kept]) -> float:
    start = min(kept.start_ns for kept in entries)
    return (max(kept.end_ns for kept in entries) - start) / 1e6


def _summary(start: int, entries: list[Kept]) -> dict[str, object]:
    first = min(entries, key=lambda kept: kept.start_ns)
    record = first.record
    return {
        "trace_id": f"{record.trace_id:032x}",
        "name": first.spans[0].name,
        "route": record.route,
        "model": record.model,
        "tenant": record.tenant,
        "status_code": record.status,
        "error": any(is_error(kept.record) for kept in entries),
        "start_unix_nano": start,
        "duration_ms": round(_duration_ms(entries), 3),
        "span_count": sum(len(kept.spans) for kept in entries),
    }
