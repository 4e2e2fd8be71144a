"""Query strings into typed models, and the OpenAI list page (``first_id``, ``last_id``, ``has_more``)."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from strata.gateway.call import Call
from strata.protocol.errors import invalid_request_from

QueryT = TypeVar("QueryT", bound=BaseModel)


def parse_query(call: Call, model: type[QueryT]) -> QueryT:
    """The query string as ``model``, or an InvalidRequest naming the first bad parameter."""
    try:
        return model.model_validate(dict(call.query))
    except ValidationError as error:
        raise invalid_request_from(error) from None


def list_page(rows: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    """A page from ``limit`` + 1 rows fetched: the extra one only says that there are more."""
    data = rows[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(rows) > limit,
    }
