"""The one place that turns every error into OpenAI's error JSON with the right status."""

from __future__ import annotations

import logging

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from strata.errors import InvalidRequest, StrataError
from strata.spec.loader import field_path

log = logging.getLogger(__name__)


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


def error_response(error: StrataError) -> Response:
    body = error_body(error.message, error.error_type, error.param, error.code)
    return Response(body, status_code=error.status, media_type="application/json", headers=error.headers())


def invalid_request_from(error: ValidationError) -> InvalidRequest:
    """Name the first offending field; list every problem in the message."""
    problems = error.errors(include_url=False)
    first = problems[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(
            f"The request body is not valid JSON: {first['ctx'].get('error', first['msg'])}", code="invalid_json"
        )
    lines = []
    for problem in problems:
        location = field_path(_drop_union_branches(tuple(problem["loc"])))
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{location}: {message}" if location else message)
    param = field_path(_drop_union_branches(tuple(first["loc"]))) or None
    code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
    if first["type"] == "extra_forbidden":
        code = "unknown_parameter"
        lines[0] = f"Unrecognized request argument supplied: {param}"
    return InvalidRequest("; ".join(dict.fromkeys(lines)), param=param, code=code)


def _drop_union_branches(location: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic names the union branch it tried ("str", "list[TextPart]"): users never wrote those.
    return tuple(part for part in location if not (isinstance(part, str) and ("[" in part or part in _BRANCH_NAMES)))


_BRANCH_NAMES = {"str", "int", "float", "bool", "list", "dict", "none", "constrained-str", "function-after"}


async def strata_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, StrataError)
    return error_response(error)


async def unexpected_error_handler(request: Request, error: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = error_body("The server had an error while processing your request.", "server_error", None, "internal_error")
    return Response(body, status_code=500, media_type="application/json")
