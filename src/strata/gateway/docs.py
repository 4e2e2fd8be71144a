"""GET /openapi.json and GET /docs: the generated OpenAPI document and a Swagger UI over it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import Response

from strata.gateway.call import Call


class DocsAPI:
    def __init__(self, title: str) -> None:
        self.title = title
        self.document: Callable[[], dict[str, Any]] = dict  # the gateway sets its own once built

    async def openapi(self, call: Call) -> Response:
        return Response(orjson.dumps(self.document()), media_type="application/json")

    async def swagger(self, call: Call) -> Response:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{self.title} - API")
