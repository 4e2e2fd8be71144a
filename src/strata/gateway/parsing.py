"""Reading and validating a request body into its typed request model."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from strata.access.metering import authorize_model
from strata.errors import InvalidRequest
from strata.gateway.errors import invalid_request_from
from strata.serving.server import Route

RequestT = TypeVar("RequestT", bound=BaseModel)


async def parse_body(request: Request, model: type[RequestT]) -> RequestT:
    body = await request.body()
    if not body:
        raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
    try:
        parsed = model.model_validate_json(body)
    except ValidationError as error:
        raise invalid_request_from(error) from None
    named = getattr(parsed, "model", None)
    if isinstance(named, str):  # every request that names a model passes the caller's allow-list here
        authorize_model(request, named)
    return parsed


def require_task(route: Route, task: str, endpoint: str) -> None:
    if route.task != task:
        raise InvalidRequest(
            f"The model '{route.name}' does not support {endpoint} (it serves {route.task}).", param="model"
        )
