"""Reads the serving hints a client may send as headers: its deadline, its priority class, its
session (for sticky versions). Bad values are refused with a 400 naming the header."""

from __future__ import annotations

import math

from starlette.requests import Request

from strata.errors import InvalidRequest
from strata.serving.admission import Priority
from strata.serving.deadline import Deadline
from strata.serving.route import RequestContext

DEADLINE_HEADER = "x-strata-deadline-ms"
PRIORITY_HEADER = "x-strata-priority"
SESSION_HEADER = "x-strata-session"
MAX_DEADLINE_MS = 3_600_000.0


def request_context(request: Request, user: str | None = None) -> RequestContext:
    return RequestContext(
        deadline=Deadline.after_ms(_deadline_ms(request.headers.get(DEADLINE_HEADER))),
        priority=_priority(request.headers.get(PRIORITY_HEADER)),
        user=user,
        session=request.headers.get(SESSION_HEADER),
    )


def _deadline_ms(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        ms = float(value)
    except ValueError:
        ms = math.nan
    if not 0 < ms <= MAX_DEADLINE_MS:  # also false for nan and inf
        raise InvalidRequest(
            f"The header {DEADLINE_HEADER} must be milliseconds in (0, {MAX_DEADLINE_MS:g}], got {value!r}.",
            param=DEADLINE_HEADER,
        )
    return ms


def _priority(value: str | None) -> Priority:
    if value is None:
        return Priority.INTERACTIVE
    try:
        return Priority[value.strip().upper()]
    except KeyError:
        raise InvalidRequest(
            f"The header {PRIORITY_HEADER} must be 'interactive' or 'batch', got {value!r}.", param=PRIORITY_HEADER
        ) from None
