"""OpenAI's error body, and the InvalidRequest that names the first bad field of a pydantic error."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from strata.errors import InvalidRequest
from strata.spec.loader import field_path


def error_body(message: str, error_type: str, param: str | None, code: str | None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": error_type, "param": param, "code": code}})


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
    # Tagged unions name their tag: Strata's tags start "type=" (see protocol.requests.ResponseFormat).
    return tuple(
        part
        for part in location
        if not (isinstance(part, str) and ("[" in part or part in _BRANCH_NAMES or part.startswith("type=")))
    )


_BRANCH_NAMES = {
    "str", "int", "float", "bool", "list", "dict", "none", "constrained-str", "function-after",
    "ComparisonFilter", "CompoundFilter",  # the two shapes of a vector store search filter
    "auto-chunking", "static-chunking",  # and of a chunking strategy
}  # fmt: skip
