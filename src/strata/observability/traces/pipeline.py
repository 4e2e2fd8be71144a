"""The tracing pipeline: finished request records in, the trace store and OTLP export out.

    request starts -> start(record): its trace ids (the caller's trace, or a new one)
    request ends   -> finish(record): the tail sampler's decision; a kept or exported record is
                      appended to a bounded buffer, any other leaves nothing behind
    every 50 ms while records wait -> drain(): kept records into the store, exported ones to OTLP

The request path pays for its ids, the ``traceparent`` response header and a few comparisons;
spans are built only for traces that are read or exported, in batches, after responses have gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from typing import Protocol

from starlette.types import Scope

from strata.observability.logs import access_log, log_access
from strata.observability.traces.context import SAMPLED, new_span_id, new_trace_id, parse_traceparent
from strata.observability.traces.sampler import TailSampler
from strata.observability.traces.store import TraceStore
from strata.record import RequestRecord
from strata.spec import AppSpec
from strata.spec.observability import TracingSpec

log = logging.getLogger(__name__)

DRAIN_INTERVAL_S = 0.05
_REMEMBERED_JOBS = 10_000  # submitted jobs whose submitting request this process remembers
# Probes and scrapes: kept when they fail or are slow, never as part of the sample.
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics", "/v1/admin/traces", "/v1/admin/traces/{trace_id}"})


class Exporter(Protocol):
    def sampled(self, record: RequestRecord) -> bool:
        """Whether the record's trace is exported (decided on the request path: keep it cheap)."""
        ...

    def export(self, records: list[RequestRecord]) -> None: ...

    def shutdown(self) -> None: ...


class Tracing:
    def __init__(self, spec: TracingSpec, exporter: Exporter | None = None) -> None:
        self.sampler = TailSampler(spec.sample_per_s, QUIET_ROUTES)
        self.store = TraceStore(max_errors=spec.keep_errors, max_slow=spec.keep_slow, max_sampled=spec.keep_sampled)
        self.exporter = exporter
        self.dropped = 0  # records that found the buffer full
        self._capacity = spec.buffer_records
        self._buffer: list[tuple[RequestRecord, str | None, bool]] = []  # (record, kept because, exported)
        self._drain_at: asyncio.TimerHandle | None = None
        self._submitted: OrderedDict[str, tuple[int, int]] = OrderedDict()  # job id -> (trace id, span id)

    def start(self, record: RequestRecord, scope: Scope) -> None:
        """Give the request its trace ids: the caller's trace when it sent a valid ``traceparent``."""
        for name, value in scope["headers"]:
            if name == b"traceparent":
                context = parse_traceparent(value)
                if context is not None:
                    record.trace_id, record.parent_span_id, flags = context
                    record.trace_flags = flags & SAMPLED
                    record.span_id = new_span_id()
                    return
                break
        record.trace_id, record.span_id = new_trace_id(), new_span_id()

    def finish(self, record: RequestRecord) -> None:
        """Take a finished request's record (on the event loop, after its response went)."""
        reason = self.sampler.decide(record)
        exported = self.exporter is not None and self.exporter.sampled(record)
        if reason is None and not exported:
            return
        if len(self._buffer) >= self._capacity:
            self.dropped += 1
            return
        self._buffer.append((record, reason, exported))
        if self._drain_at is None:
            self._drain_at = asyncio.get_running_loop().call_later(DRAIN_INTERVAL_S, self.drain)

    def job_submitted(self, job_id: str, record: RequestRecord) -> None:
        """The request that submitted ``job_id``: its steps run in this process join its trace."""
        if record.trace_id:
            self._submitted[job_id] = (record.trace_id, record.span_id)
            if len(self._submitted) > _REMEMBERED_JOBS:
                self._submitted.popitem(last=False)

    def job_step(self, job_id: str, record: RequestRecord) -> None:
        """One attempt of a job's step, ended: a span in the submitting request's trace, linked to that
        request's span; a job submitted elsewhere (or before a restart) gets a trace of its own, one per
        job, from its id."""
        submitter = self._submitted.get(job_id)
        if submitter is not None:
            record.trace_id, record.links = submitter[0], (submitter,)
        else:
            record.trace_id = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big") or 1
        record.span_id = new_span_id()
        self.finish(record)

    def drain(self) -> None:
        """Sample and export what waits; readers call it first, so a request that just ended is visible."""
        if self._drain_at is not None:
            self._drain_at.cancel()
            self._drain_at = None
        finished, self._buffer = self._buffer, []
        logging_access = access_log.isEnabledFor(logging.INFO)
        for record, reason, _ in finished:
            if reason is not None:
                self.store.keep(record, reason)
                if logging_access:
                    log_access(record, reason)
        exported = [record for record, _, export in finished if export]
        if exported and self.exporter is not None:
            try:
                self.exporter.export(exported)
            except Exception:  # boundary: a broken exporter must not stop traces being kept
                log.exception("exporting %d traces failed", len(exported))

    async def close(self) -> None:
        """Keep and export the last batch; the exporter sends what it queued (off the loop: it blocks)."""
        self.drain()
        if self.exporter is not None:
            await asyncio.to_thread(self.exporter.shutdown)


def tracing_for(spec: AppSpec, version: str) -> Tracing | None:
    """The app's tracing pipeline; None when tracing is off."""
    settings = spec.observability.tracing
    if not settings.enabled:
        return None
    exporter: Exporter | None = None
    if settings.otlp is not None:
        # Imported only when export is configured: the OpenTelemetry SDK is not free to import.
        from strata.observability.traces.otlp import OTLPExport

        exporter = OTLPExport(settings.otlp, service=f"strata-{spec.name}", version=version)
    return Tracing(settings, exporter)
