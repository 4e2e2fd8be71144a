"""Logs: one schema for every entry, the request's trace and span ids on entries logged inside it,
and an access line for each request the trace store keeps (errors, the slowest, a sample).

    {"time": "2026-12-07T05:12:26.123Z", "level": "info", "logger": "strata.access",
     "message": "POST /v1/embeddings 200 3.1 ms", "trace_id": "4bf9...", "span_id": "00f0...",
     "kind": "access", "method": "POST", "route": "/v1/embeddings", "status": 200, ...}

Access lines are written from the tracing pipeline's drain, after responses have gone; a request
costs nothing here unless it is kept.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import orjson

from strata.record import RequestRecord, current_record
from strata.spec.observability import LogsSpec

ACCESS_LOGGER = "strata.access"
access_log = logging.getLogger(ACCESS_LOGGER)
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def trace_fields(record: RequestRecord) -> dict[str, str]:
    if not record.trace_id:
        return {}
    return {"trace_id": f"{record.trace_id:032x}", "span_id": f"{record.span_id:016x}"}


class JSONFormatter(logging.Formatter):
    def format(self, entry: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(entry.created),
            "level": entry.levelname.lower(),
            "logger": entry.name,
            "message": entry.getMessage(),
        }
        fields: dict[str, Any] | None = getattr(entry, "fields", None)
        if fields is None or "trace_id" not in fields:
            request = current_record.get()  # logged inside a request: its ids
            if request is not None:
                line.update(trace_fields(request))
        if fields:
            line.update(fields)
        if entry.exc_info:
            line["exception"] = self.formatException(entry.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """The readable line, with the request's trace id appended when logged inside one."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, entry: logging.LogRecord) -> str:
        text = super().format(entry)
        fields: dict[str, Any] | None = getattr(entry, "fields", None)
        request = current_record.get()
        trace = fields.get("trace_id") if fields else None
        if trace is None and request is not None and request.trace_id:
            trace = f"{request.trace_id:032x}"
        return f"{text} trace_id={trace}" if trace else text


def configure_logging(spec: LogsSpec, level: str) -> None:
    """The process's logging, as ``spec`` says: one handler on stderr, the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if spec.format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access_log.setLevel(logging.INFO if spec.access_lines else logging.WARNING)


def log_access(record: RequestRecord, reason: str) -> None:
    """One access line for a kept request (called from the tracing pipeline's drain)."""
    duration_ms = round(record.latency_s * 1000, 3)
    fields: dict[str, Any] = {
        **trace_fields(record),
        "kind": "access",
        "method": record.method,
        "route": record.route,
        "path": record.path,
        "status": record.status,
        "duration_ms": duration_ms,
        "tenant": record.tenant,
        "model": record.model,
        "deployment": record.deployment,
        "tokens_in": record.tokens_in,
        "tokens_out": record.tokens_out,
        "error_code": record.error_code,
        "kept": reason,
    }
    # The route's template, not the path a client sent: a bounded, clean message (a path may hold "%0A").
    message = "%s %s %d %.3f ms"
    access_log.info(message, record.method, record.route, record.status, duration_ms, extra={"fields": fields})


def _iso(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"
