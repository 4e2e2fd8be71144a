"""Builds the gateway: the route table from every layer's handlers, the lifespan, the ASGI app."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from strata.access import AccessControl
from strata.gateway.access_api import AccessAPI
from strata.gateway.admin_traffic import TrafficAdminAPI
from strata.gateway.asgi import Gateway
from strata.gateway.batch_api import BatchAPI
from strata.gateway.chat_retrieval import ChatRetrieval
from strata.gateway.completions import CompletionsAPI
from strata.gateway.docs import DocsAPI
from strata.gateway.embeddings import BatchedAPI
from strata.gateway.extensions import load_extensions, running
from strata.gateway.health import OperationsAPI
from strata.gateway.jobs_api import JobsAPI
from strata.gateway.routes import (
    access_routes,
    openai_routes,
    operations_routes,
    traffic_routes,
    vector_store_routes,
    workflow_routes,
)
from strata.gateway.routing import RouteTable
from strata.gateway.vector_stores_api import VectorStoresAPI
from strata.observability.metrics import Metrics
from strata.observability.workflow_metrics import WorkflowMetrics
from strata.runtime import Runtime, runtime_for
from strata.serving.deployment import ProgressCallback
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database
from strata.workflows.service import Workflows

log = logging.getLogger(__name__)
VERSION = "0.2.0"


def create_app(
    spec: AppSpec,
    *,
    runtime: Runtime | None = None,
    progress: ProgressCallback | None = None,
    metrics: Metrics | None = None,
) -> Gateway:
    """The ASGI app for ``spec``. Models load in the background once it starts: /healthz answers
    at once, /readyz turns 200 when every replica is loaded and warmed."""
    server = ModelServer(spec, runtime or runtime_for(spec), metrics or Metrics())
    database = Database(spec.store.database_url)
    access = AccessControl(spec, database)
    metrics_of_jobs = WorkflowMetrics(server.metrics.registry)
    workflows = Workflows(
        spec, database, server=server, usage=access.finish, budget_check=access.budgets.check, metrics=metrics_of_jobs
    )
    extensions = load_extensions(server, spec)
    ops, docs = OperationsAPI(server), DocsAPI(f"Strata: {spec.name}")
    ops.before_scrape.append(lambda: server.metrics.audit_dropped.set(access.recorder.dropped_audit))
    table = RouteTable(
        [
            *openai_routes(CompletionsAPI(server, ChatRetrieval(workflows)), BatchedAPI(server), ops),
            *operations_routes(ops, docs),
            *access_routes(AccessAPI(access)),
            *traffic_routes(TrafficAdminAPI(server)),
            *workflow_routes(JobsAPI(workflows), BatchAPI(workflows)),
            *vector_store_routes(VectorStoresAPI(workflows)),
        ]
    )
    for extension in extensions:  # after Strata's own routes, which they cannot replace
        for endpoint in extension.endpoints:
            table.add(endpoint)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await database.migrate()  # before the first request: every feature's tables exist
        new_admin_key = await access.start()
        if new_admin_key is not None:  # shown once, on the console only: never logged, never stored in clear
            print(f"Strata admin key (shown once, store it now): {new_admin_key}", flush=True)
        loading = asyncio.create_task(_load(server, progress), name="load-models")
        await workflows.open()  # the vector index (the embedded one loads its stores from disk)
        workflows.start_workers(spec.workflows.workers)  # pipelines needing models wait until they load
        try:
            async with running([e.lifetime for e in extensions if e.lifetime is not None]):
                yield
        finally:
            await workflows.stop()  # running steps finish (or their jobs are released) before models go
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await server.stop()
            await access.stop()  # flushes buffered usage and audit rows before the database closes
            await database.close()

    gateway = Gateway(
        table,
        access,
        server.metrics,
        max_body_bytes=spec.gateway.max_body_bytes,
        lifespan=lifespan,
        title=f"Strata: {spec.name}",
        version=VERSION,
    )
    docs.document = gateway.openapi
    gateway.state.update(server=server, database=database, access=access, workflows=workflows)
    for extension in extensions:
        gateway.state.update(extension.state)
    return gateway


async def _load(server: ModelServer, progress: ProgressCallback | None) -> None:
    await server.start(progress)
    # Everything loaded now (torch, transformers, the models) lives for the whole process: move it out
    # of the collector's reach, so a full collection walks only what requests allocate (a full pass
    # over the model heap took 201 ms under load).
    gc.collect()
    gc.freeze()
