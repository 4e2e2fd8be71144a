"""One log schema: JSON lines with the request's trace ids, and access lines for kept requests."""

from __future__ import annotations

import json
import logging

import pytest

from strata.observability.logs import ACCESS_LOGGER, JSONFormatter, TextFormatter, configure_logging, log_access
from strata.record import RequestRecord, current_record
from strata.spec.observability import LogsSpec


def _entry(message: str, logger: str = "strata.test", **extra: object) -> logging.LogRecord:
    return logging.getLogger(logger).makeRecord(logger, logging.WARNING, __file__, 1, message, (), None, extra=extra)


def _request() -> RequestRecord:
    record = RequestRecord("POST", "/v1/embeddings", route="/v1/embeddings")
    record.trace_id, record.span_id, record.status, record.model = 0xABC, 0x12, 500, "minilm"
    record.last_byte = record.received + 0.0042
    return record


def test_an_entry_inside_a_request_carries_its_trace_ids() -> None:
    token = current_record.set(_request())
    try:
        line = json.loads(JSONFormatter().format(_entry("inside")))
        text = TextFormatter().format(_entry("inside"))
    finally:
        current_record.reset(token)
    assert line["trace_id"] == f"{0xABC:032x}"
    assert line["span_id"] == f"{0x12:016x}"
    assert {"time", "level", "logger", "message"} <= set(line)
    assert line["level"] == "warning"
    assert text.endswith(f"trace_id={0xABC:032x}")
    outside = json.loads(JSONFormatter().format(_entry("outside")))
    assert "trace_id" not in outside


def test_an_access_line_has_the_requests_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        log_access(_request(), "error")
    line = json.loads(JSONFormatter().format(caplog.records[-1]))
    assert line["kind"] == "access"
    assert line["message"] == "POST /v1/embeddings 500 4.200 ms"
    assert line["trace_id"] == f"{0xABC:032x}"
    assert (line["status"], line["model"], line["kept"], line["duration_ms"]) == (500, "minilm", "error", 4.2)


def test_configure_sets_the_format_and_the_access_level() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger(ACCESS_LOGGER).level
    try:
        configure_logging(LogsSpec(format="json", access_lines=False), "error")
        assert isinstance(root.handlers[0].formatter, JSONFormatter)
        assert root.level == logging.ERROR
        assert not logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], level, access = saved
        root.setLevel(level)
        logging.getLogger(ACCESS_LOGGER).setLevel(access)
