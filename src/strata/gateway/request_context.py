"""Reads the serving hints a client may send as headers: its deadline, its priority class, its
session (for sticky versions). Bad values are refused with a 400 naming the header."""

from __future__ import annotations

import math

from strata.errors import InvalidRequest
from strata.gateway.call import Call
from strata.serving.admission import Priority
from strata.serving.deadline import NO_DEADLINE, Deadline
from strata.serving.route import RequestContext

DEADLINE_HEADER = "x-strata-deadline-ms"
PRIORITY_HEADER = "x-strata-priority"
SESSION_HEADER = "x-strata-session"
MAX_DEADLINE_MS = 3_600_000.0
_DEADLINE, _PRIORITY, _SESSION = (h.encode() for h in (DEADLINE_HEADER, PRIORITY_HEADER, SESSION_HEADER))
_PLAIN: dict[str, RequestContext] = {}  # tenant -> the context of a request with no hints (see _plain)
_MAX_PLAIN = 10_000


def request_context(call: Call, user: str | None = None) -> RequestContext:
    deadline = priority = session = None
    for name, value in call.scope["headers"]:  # one pass; most requests send none of these
        if name.startswith(b"x-strata-"):
            if name == _DEADLINE:
                deadline = value.decode("latin-1")
            elif name == _PRIORITY:
                priority = value.decode("latin-1")
            elif name == _SESSION:
                session = value.decode("latin-1")
    if deadline is None and priority is None and session is None and user is None:
        return _plain(call.record.tenant)
    return RequestContext(
        deadline=Deadline.after_ms(_deadline_ms(deadline)) if deadline is not None else NO_DEADLINE,
        priority=_priority(priority),
        user=user,
        session=session,
        tenant=call.record.tenant,
    )


def _plain(tenant: str) -> RequestContext:
    """The context of a request that sent no hints: the same (immutable) one for every such request of
    the tenant, made once."""
    context = _PLAIN.get(tenant)
    if context is None:
        if len(_PLAIN) >= _MAX_PLAIN:  # tenants come from keys and tokens: bounded, but not by us
            _PLAIN.clear()
        context = _PLAIN[tenant] = RequestContext(tenant=tenant)
    return context


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
