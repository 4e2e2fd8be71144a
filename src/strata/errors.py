"""The error tree every layer raises; the gateway turns each into OpenAI's error JSON.

Each error carries its HTTP status, OpenAI ``type``/``code`` and the offending ``param`` so
that one handler can render any of them without knowing where it came from.
"""

from __future__ import annotations

from typing import Any


class StrataError(Exception):
    """Base of every error Strata raises on purpose."""

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers this error asks for (e.g. Retry-After)."""
        return {}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the same class with every attribute (message, param, code, retry_after_s, ...), so
        an error crosses a process boundary (a Ray replica's answer) as itself. The default would call
        ``__init__`` with the message alone, which subclasses with other signatures cannot take."""
        return _restore, (type(self), self.args), self.__dict__


def _restore(cls: type[StrataError], args: tuple[Any, ...]) -> StrataError:
    """Unpickling: the instance without its ``__init__``; pickle then sets its attributes."""
    return cls.__new__(cls, *args)


class InvalidRequest(StrataError):
    """The request is malformed or names a bad value; ``param`` says which field."""

    status = 400
    error_type = "invalid_request_error"
    code = "invalid_value"


class ModelNotFound(StrataError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model '{model}' does not exist.", param="model")


class NotFound(StrataError):
    """An object of the caller's (job, file, batch, ...) that does not exist - or is another tenant's:
    both answer alike, so a 404 never reveals what others have. ``code`` names the kind."""

    status = 404
    error_type = "invalid_request_error"
    code = "not_found"


class RequestTooLarge(StrataError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class Overloaded(StrataError):
    """Every replica's queue is full: shed now instead of timing out later."""

    status = 503
    error_type = "server_error"
    code = "overloaded"

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        # Retry-After takes whole seconds; never ask for 0, which invites a hot retry loop.
        return {"Retry-After": str(max(1, round(self.retry_after_s)))}


class NotReady(Overloaded):
    """The model exists but no replica has finished loading and warming up."""

    code = "model_not_ready"


class Shed(Overloaded):
    """Admission control turned the request away (deployment at its concurrency limit)."""

    code = "overloaded"


class CircuitOpen(Overloaded):
    """The deployment's breaker is open after repeated failures; it is probed again soon."""

    code = "circuit_open"


class DependencyUnavailable(Overloaded):
    """A service the request needs (the token issuer's JWKS, the database, Redis) cannot be reached
    now; nothing was done, and the same request may succeed after Retry-After."""

    code = "dependency_unavailable"


class ReplicaUnavailable(StrataError):
    """The replica died, stalled or was ejected while holding the request: safe to retry elsewhere."""

    status = 503
    error_type = "server_error"
    code = "replica_unavailable"


class DeadlineExceeded(StrataError):
    """The client's deadline (or a try's timeout) passed before an answer was ready."""

    status = 504
    error_type = "server_error"
    code = "deadline_exceeded"


class Conflict(StrataError):
    """The request clashes with the current state (e.g. a rollout is already running)."""

    status = 409
    error_type = "invalid_request_error"
    code = "conflict"


class ClientGone(StrataError):
    """The client disconnected before its answer was ready; the work was cancelled.
    499 is nginx's "client closed request": nobody reads it, but logs and metrics do."""

    status = 499
    error_type = "invalid_request_error"
    code = "client_closed_request"


class ModelFailed(StrataError):
    """The model raised while serving this request; the replica keeps serving others."""

    status = 500
    error_type = "server_error"
    code = "model_error"


class SpecError(StrataError):
    """An app spec failed validation; the message names every offending field."""

    status = 400
    error_type = "invalid_request_error"
    code = "invalid_spec"


class Unauthenticated(StrataError):
    """No credentials, or credentials that are unknown, revoked, expired or badly signed."""

    status = 401
    error_type = "invalid_request_error"
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PermissionDenied(StrataError):
    """Valid credentials without the scope this route needs."""

    status = 403
    error_type = "invalid_request_error"
    code = "insufficient_permissions"


class RateLimited(StrataError):
    """A per-key or per-tenant rate limit is spent; ``headers`` carries Retry-After and x-ratelimit-*."""

    status = 429
    error_type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after_s: float, limit_headers: dict[str, str]) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.limit_headers = limit_headers

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, round(self.retry_after_s + 0.49))), **self.limit_headers}


class QuotaExceeded(StrataError):
    """The tenant's budget for this period is spent (OpenAI's insufficient_quota shape)."""

    status = 429
    error_type = "insufficient_quota"
    code = "insufficient_quota"


class MethodNotAllowed(StrataError):
    """The path exists but not with this method; ``Allow`` lists the methods it takes."""

    status = 405
    error_type = "invalid_request_error"
    code = "method_not_allowed"

    def __init__(self, message: str, *, allow: list[str]) -> None:
        super().__init__(message)
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allow)}


class GuardrailBlocked(StrataError):
    """A guard with action ``block`` found what it guards against, in the prompt (input) or in the
    model's answer (output). The message names the guard and the kinds found, never the text."""

    status = 400
    error_type = "invalid_request_error"
    code = "guardrail_blocked"
