"""The in-process store of recent traces: what the tail sampler kept, in bounded rings, queryable.

Records are kept, not spans: spans are built only for the traces someone reads. Several requests
that share a trace id (a caller's agent making several calls under one trace) are one trace.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from strata.observability.traces.sampler import ERROR, SAMPLED_REASON, SLOW
from strata.observability.traces.spans import SpanData, is_error, spans_of
from strata.record import RequestRecord


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
    """Kept traces in three bounded rings (error, slow, sampled); the oldest of a ring leaves first."""

    def __init__(self, *, max_errors: int, max_slow: int, max_sampled: int) -> None:
        self._rings: dict[str, deque[Kept]] = {ERROR: deque(), SLOW: deque(), SAMPLED_REASON: deque()}
        self._capacity = {ERROR: max_errors, SLOW: max_slow, SAMPLED_REASON: max_sampled}
        self._by_trace: dict[int, list[Kept]] = {}

    def keep(self, record: RequestRecord, reason: str) -> None:
        """Keep a finished request the sampler chose, for ``reason`` (error, slow, sampled).

        Its prompt text is let go: spans never show it, the audit trail already has it where the tenant's
        policy allows, and up to 64 KiB per kept trace would make the store's bound a count, not a size."""
        record.prompt = None
        self._keep(Kept(record, reason))

    def _keep(self, kept: Kept) -> None:
        ring = self._rings[kept.reason]
        if len(ring) >= self._capacity[kept.reason]:
            if not ring:
                return  # a ring of size 0 keeps nothing
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
