"""What a handler is given: the request's record, its body, its path and query parameters."""

from __future__ import annotations

import time
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, QueryParams
from starlette.requests import Request
from starlette.types import Receive, Scope

from strata.errors import InvalidRequest, ModelNotFound
from strata.principal import Principal
from strata.protocol.errors import invalid_request_from
from strata.record import RequestRecord
from strata.serving.route import Route

ModelT = TypeVar("ModelT", bound=BaseModel)


class Call:
    __slots__ = ("_headers", "_query", "body", "params", "receive", "record", "scope")

    def __init__(
        self, scope: Scope, receive: Receive, record: RequestRecord, body: bytes, params: dict[str, str]
    ) -> None:
        self.scope = scope
        self.receive = receive  # read only for a disconnect: the body is already in ``body``
        self.record = record
        self.body = body
        self.params = params
        self._headers: Headers | None = None
        self._query: QueryParams | None = None

    @property
    def caller(self) -> Principal:
        return self.record.caller

    @property
    def headers(self) -> Headers:
        if self._headers is None:
            self._headers = Headers(scope=self.scope)
        return self._headers

    @property
    def query(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope["query_string"])
        return self._query

    def parse(self, model: type[ModelT]) -> ModelT:
        """The body as ``model``, or an InvalidRequest naming the first bad field. A body that names a
        model passes the caller's allow-list here (a model outside it does not exist for them)."""
        if not self.body:
            raise InvalidRequest("The request body is empty; send a JSON object.", code="invalid_json")
        try:
            parsed = model.model_validate_json(self.body)
        except ValidationError as error:
            raise invalid_request_from(error) from None
        self.record.parsed = time.perf_counter()
        if "model" in type(parsed).model_fields:  # not getattr: a missing field raises inside pydantic
            named = parsed.model  # type: ignore[attr-defined]
            if isinstance(named, str):
                self.use_model(named)
        return parsed

    def use_model(self, name: str) -> None:
        """The request works on model ``name``: refused as not found when outside the caller's models."""
        if not self.caller.allows_model(name):
            raise ModelNotFound(name)
        self.record.model = name

    def request(self) -> Request:
        """A Starlette request over the already-read body (multipart uploads parse through it)."""
        request = Request(self.scope, self.receive)
        request._body = self.body  # Starlette replays a read body to stream()/form()
        return request


def require_task(route: Route, task: str, endpoint: str) -> None:
    """Refuse a model that cannot do what the endpoint asks (e.g. chat with an embedding model)."""
    if route.task != task:
        raise InvalidRequest(
            f"The model '{route.name}' does not support {endpoint} (it serves {route.task}).", param="model"
        )
