"""W3C traceparent: what is accepted, what is ignored, and what goes back."""

from __future__ import annotations

import pytest

from strata.observability.traces.context import format_traceparent, new_span_id, new_trace_id, parse_traceparent

VALID = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_valid_header_parses() -> None:
    assert parse_traceparent(VALID) == (0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, 1)


def test_format_round_trips() -> None:
    trace_id, span_id = new_trace_id(), new_span_id()
    header = format_traceparent(trace_id, span_id, 0)
    assert len(header) == 55
    assert parse_traceparent(header) == (trace_id, span_id, 0)


@pytest.mark.parametrize(
    "header",
    [
        b"",
        b"garbage",
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0",  # short flags
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero parent id
        b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case is not allowed
        b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # version 00 ends at the flags
        b"00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
    ],
)
def test_an_invalid_header_is_ignored(header: bytes) -> None:
    assert parse_traceparent(header) is None


def test_a_later_version_may_carry_more_fields() -> None:
    assert parse_traceparent(b"01" + VALID[2:] + b"-what-comes-next") is not None
