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

from strata.access import AccessControl, AccessMiddleware
from strata.access.api import AccessAPI
from strata.errors import StrataError
from strata.gateway.admin_traffic import add_traffic_admin_routes
from strata.gateway.completions import CompletionsAPI
from strata.gateway.embeddings import BatchedAPI
from strata.gateway.errors import error_body, strata_error_handler, unexpected_error_handler
from strata.gateway.extensions import install_extensions, running
from strata.gateway.health import OperationsAPI
from strata.gateway.middleware import BodyLimitMiddleware, MetricsMiddleware
from strata.observability.metrics import Metrics
from strata.observability.workflow_metrics import WorkflowMetrics
from strata.runtime import Runtime, runtime_for
from strata.serving.deployment import ProgressCallback
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database
from strata.workflows.routes import add_workflow_routes
from strata.workflows.service import Workflows, access_usage

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
    server = ModelServer(spec, runtime or runtime_for(spec), metrics or Metrics())
    database = Database(spec.store.database_url)
    access = AccessControl(spec, database)
    usage, metrics_of_jobs = access_usage(access), WorkflowMetrics(server.metrics.registry)
    workflows = Workflows(
        spec, database, server=server, usage=usage, budget_check=access.budgets.check, metrics=metrics_of_jobs
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await database.migrate()  # before the first request: every feature's tables exist
        new_admin_key = await access.start()
        if new_admin_key is not None:  # shown once, on the console only: never logged, never stored in clear
            print(f"Strata admin key (shown once, store it now): {new_admin_key}", flush=True)
        loading = asyncio.create_task(server.start(progress), name="load-models")
        workflows.start_workers(spec.workflows.workers)  # pipelines needing models wait until they load
        try:
            async with running(extensions):
                yield
        finally:
            await workflows.stop()  # running steps finish (or their jobs are released) before models go
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await server.stop()
            await access.stop()  # flushes buffered usage and audit rows before the database closes
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
    app.state.access = access
    access_api = AccessAPI(access)
    app.add_api_route("/v1/usage", access_api.usage, methods=["GET"])
    app.add_api_route("/v1/admin/keys", access_api.create_key, methods=["POST"])
    app.add_api_route("/v1/admin/keys", access_api.list_keys, methods=["GET"])
    app.add_api_route("/v1/admin/keys/{key_id}", access_api.get_key, methods=["GET"])
    app.add_api_route("/v1/admin/keys/{key_id}", access_api.revoke_key, methods=["DELETE"])
    app.add_api_route("/v1/admin/usage", access_api.admin_usage, methods=["GET"])
    app.add_api_route("/v1/admin/audit", access_api.audit_log, methods=["GET"])
    app.add_api_route("/v1/admin/audit/verify", access_api.audit_verify, methods=["GET"])

    app.state.workflows = workflows
    add_workflow_routes(app, workflows)
    extensions = install_extensions(app, server, spec)  # after Strata's own routes, which they cannot shadow

    app.add_exception_handler(StrataError, strata_error_handler)
    app.add_exception_handler(HTTPException, _http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)
    # Innermost of the three: oversized bodies are refused before auth, and metrics count 401/403/429 too.
    app.add_middleware(AccessMiddleware, control=access)
    # Outermost first at run time: metrics see every request, including those rejected as too large.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=spec.gateway.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=server.metrics)
    return app
