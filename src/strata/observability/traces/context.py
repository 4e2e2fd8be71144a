"""W3C trace context (``traceparent``): read a caller's, make a new one, write the response's.

https://www.w3.org/TR/trace-context/ - ``00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>``.
A malformed header is ignored (the spec says to start a new trace, never to refuse the request).
"""

from __future__ import annotations

import random

SAMPLED = 0x01
_HEX = frozenset("0123456789abcdef")


def new_trace_id() -> int:
    # random.getrandbits, as the OpenTelemetry SDK's own id generator: ids need uniqueness, not secrecy.
    return random.getrandbits(128) or 1


def new_span_id() -> int:
    return random.getrandbits(64) or 1


def parse_traceparent(header: bytes) -> tuple[int, int, int] | None:
    """(trace id, parent span id, flags) from a ``traceparent`` header, or None when it is not valid."""
    if len(header) < 55:
        return None
    text = header[:55].decode("latin-1")
    if text[2] != "-" or text[35] != "-" or text[52] != "-" or not _HEX.issuperset(text[:2] + text[3:35] + text[36:52]):
        return None
    version = text[:2]
    if version == "ff" or (version == "00" and len(header) != 55):
        return None  # version ff is forbidden; version 00 has nothing after the flags
    flags = text[53:55]
    if not _HEX.issuperset(flags):
        return None
    trace_id, parent_id = int(text[3:35], 16), int(text[36:52], 16)
    if not trace_id or not parent_id:
        return None  # all-zero ids are invalid
    return trace_id, parent_id, int(flags, 16)


def format_traceparent(trace_id: int, span_id: int, flags: int) -> bytes:
    return b"00-%032x-%016x-%02x" % (trace_id, span_id, flags)
