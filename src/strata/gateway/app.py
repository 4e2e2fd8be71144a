"""Builds the gateway: the one place where routes, middleware and error handling are assembled."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from strata.errors import StrataError
from strata.gateway.admin_traffic import add_traffic_admin_routes
from strata.gateway.completions import CompletionsAPI
from strata.gateway.embeddings import BatchedAPI
from strata.gateway.errors import error_body, strata_error_handler, unexpected_error_handler
from strata.gateway.health import OperationsAPI
from strata.gateway.middleware import BodyLimitMiddleware, MetricsMiddleware
from strata.observability.metrics import Metrics
from strata.runtime import LocalRuntime, Runtime
from strata.serving.deployment import ProgressCallback
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database

log = logging.getLogger(__name__)


async def _http_error_handler(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    kind = "not_found" if error.status_code == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path}: {error.detail}"
    return Response(
        error_body(message, kind, None, None),
        status_code=error.status_code,
        media_type="application/json",
        headers=error.headers,
    )


def create_app(
    spec: AppSpec,
    *,
    runtime: Runtime | None = None,
    progress: ProgressCallback | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """The ASGI app for ``spec``. Models load in the background once it starts: /healthz answers
    at once, /readyz turns 200 when every replica is loaded and warmed."""
    server = ModelServer(spec, runtime or LocalRuntime(), metrics or Metrics())
    database = Database(spec.store.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.migrate()  # before the first request: every feature's tables exist
        loading = asyncio.create_task(server.start(progress), name="load-models")
        try:
            yield
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await server.stop()
            await database.close()

    app = FastAPI(title=f"Strata: {spec.name}", version="0.1.0", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.server = server
    app.state.database = database
    completions, batched, operations = CompletionsAPI(server), BatchedAPI(server), OperationsAPI(server)
    app.add_api_route("/v1/chat/completions", completions.chat, methods=["POST"], include_in_schema=True)
    app.add_api_route("/v1/completions", completions.completions, methods=["POST"])
    app.add_api_route("/v1/embeddings", batched.embeddings, methods=["POST"])
    app.add_api_route("/v1/models/{model:path}/predict", batched.predict, methods=["POST"])
    app.add_api_route("/v1/models", operations.list_models, methods=["GET"])
    app.add_api_route("/v1/models/{model:path}", operations.get_model, methods=["GET"])
    app.add_api_route("/healthz", operations.healthz, methods=["GET"])
    app.add_api_route("/readyz", operations.readyz, methods=["GET"])
    app.add_api_route("/metrics", operations.metrics, methods=["GET"])
    add_traffic_admin_routes(app, server)

    app.add_exception_handler(StrataError, strata_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    # Outermost first at run time: metrics see every request, including those rejected as too large.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=spec.gateway.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=server.metrics)
    return app
