"""Builds the gateway: the route table from every layer's handlers, the lifespan, the ASGI app."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from strata.access import AccessControl
from strata.access.admin_key import admin_key_handover
from strata.access.safety import check_bind
from strata.data.artifacts import ArtifactStore
from strata.gateway.access_api import AccessAPI
from strata.gateway.admin_traffic import TrafficAdminAPI
from strata.gateway.asgi import Gateway
from strata.gateway.batch_api import BatchAPI
from strata.gateway.chat_retrieval import ChatRetrieval
from strata.gateway.completions import CompletionsAPI
from strata.gateway.dashboard_api import DashboardAPI
from strata.gateway.docs import DocsAPI
from strata.gateway.embeddings import BatchedAPI
from strata.gateway.extensions import load_extensions, running
from strata.gateway.grpc.server import start_grpc
from strata.gateway.guard_models import route_asker
from strata.gateway.health import OperationsAPI
from strata.gateway.jobs_api import JobsAPI
from strata.gateway.prompts_api import PromptsAPI
from strata.gateway.registry_api import RegistryAPI, gateway_audit
from strata.gateway.response_cache import ResponseCache
from strata.gateway.routes import (
    access_routes,
    dashboard_routes,
    observability_routes,
    openai_routes,
    operations_routes,
    prompt_routes,
    registry_routes,
    traffic_routes,
    vector_store_routes,
    workflow_routes,
)
from strata.gateway.routing import RouteTable
from strata.gateway.traces_api import TracesAPI
from strata.gateway.vector_stores_api import VectorStoresAPI
from strata.governance.layer import Guardrails
from strata.observability.access_metrics import BudgetShare, ChainState, register_governance_metrics
from strata.observability.behaviour import BehaviourMonitor
from strata.observability.cache_metrics import CacheMetrics
from strata.observability.live import LiveSeries
from strata.observability.metrics import Metrics
from strata.observability.traces.pipeline import tracing_for
from strata.observability.workflow_metrics import WorkflowMetrics
from strata.registry.canary import RegistryCanaries
from strata.registry.service import ModelRegistry
from strata.registry.serving import RegistryBinding
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
    admin_key_file: Path | None = None,
) -> Gateway:
    """The ASGI app for ``spec``. Models load in the background once it starts: /healthz answers
    at once, /readyz turns 200 when every replica is loaded and warmed. A generated admin key goes to
    ``admin_key_file`` (mode 0600), else to the terminal, never to stdout or a log (access/admin_key.py).

    Refuses, as `strata serve` does, an app without access control on a non-loopback ``gateway.host``:
    whatever server runs this app, that is the address it is meant for."""
    check_bind(spec.gateway.host, spec.access.enabled)
    server = ModelServer(spec, runtime or runtime_for(spec), metrics or Metrics())
    database = Database(spec.store.database_url)
    access = AccessControl(spec, database)
    metrics_of_jobs = WorkflowMetrics(server.metrics.registry)
    tracing = tracing_for(spec, VERSION)
    workflows = Workflows(
        spec, database, server=server, usage=access.finish, budget_check=access.budgets.check, metrics=metrics_of_jobs,
        trace=tracing.job_step if tracing is not None else None,
    )  # fmt: skip
    registry = ModelRegistry(database, ArtifactStore(spec.store.artifacts_url), gateway_audit(access))
    binding = RegistryBinding(server, registry)
    canaries = RegistryCanaries(binding, registry)
    extensions = load_extensions(server, spec)
    ops, docs = OperationsAPI(server), DocsAPI(f"Strata: {spec.name}")
    if tracing is not None:
        ops.before_scrape.append(lambda: server.metrics.traces_dropped.set(tracing.dropped))
    ops.before_scrape.append(lambda: server.metrics.audit_dropped.set(access.recorder.dropped_audit))
    ops.before_scrape.append(lambda: server.metrics.exchanges_dropped.set(access.recorder.dropped_exchanges))
    guardrails = Guardrails(spec.guardrails, route_asker(server), access.audit, server.metrics.guard_decisions)
    tasks = {name: route.task for name, route in server.routes.items()}
    behaviour = BehaviourMonitor(spec.observability.drift, server.metrics, tasks, route_asker(server))
    cache = ResponseCache(spec, server, CacheMetrics(server.metrics.registry))
    ops.before_scrape.append(cache.refresh_gauges)
    completions = CompletionsAPI(server, guardrails, ChatRetrieval(workflows), behaviour, workflows.prompts, cache)
    table = RouteTable(
        [
            *openai_routes(completions, BatchedAPI(server, behaviour), ops),
            *operations_routes(ops, docs),
            *access_routes(AccessAPI(access)),
            *traffic_routes(TrafficAdminAPI(server)),
            *workflow_routes(JobsAPI(workflows, tracing), BatchAPI(workflows)),
            *observability_routes(TracesAPI(tracing)),
            *registry_routes(RegistryAPI(registry, binding, canaries)),
            *vector_store_routes(VectorStoresAPI(workflows)),
            *prompt_routes(PromptsAPI(workflows.prompts, access.audit)),
        ]
    )
    live = LiveSeries(server.metrics)
    for endpoint in dashboard_routes(DashboardAPI(access, workflows.store, live)):
        table.add(endpoint)
    _export_governance(server.metrics, access)
    for extension in extensions:  # after Strata's own routes, which they cannot replace
        for endpoint in extension.endpoints:
            table.add(endpoint)
    live.metered_routes = frozenset(e.path for e in table.endpoints if e.metered)  # extensions' included

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await database.migrate()  # before the first request: every feature's tables exist
        await access.start(admin_key_handover(admin_key_file))
        loading = asyncio.create_task(_load(server, binding, progress), name="load-models")
        await workflows.open()  # the vector index (the embedded one loads its stores from disk)
        workflows.start_workers(spec.workflows.workers)  # pipelines needing models wait until they load
        workflows.start_triggers()
        grpc_server = None
        if spec.gateway.grpc_port is not None:
            services = [add for extension in extensions for add in extension.grpc_services]
            grpc_server, grpc_port = await start_grpc(gateway, spec.gateway.host, spec.gateway.grpc_port, services)
            log.info("gRPC (Open Inference Protocol v2, %d more) on %s:%d", len(services), spec.gateway.host, grpc_port)
        try:
            lifetimes = [
                access.audit_watch.running(),
                access.retention.running(),
                live.running(),
                behaviour.running(),
                cache.running(),
            ]
            async with running([*lifetimes, *(e.lifetime for e in extensions if e.lifetime is not None)]):
                yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5.0)  # in-flight RPCs finish while models are still loaded
            await workflows.stop()  # running steps finish (or their jobs are released) before models go
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await canaries.stop()  # before the deployments stop: a watcher must not act on stopped ones
            await server.stop()
            await access.stop()  # flushes buffered usage and audit rows before the database closes
            if tracing is not None:
                await tracing.close()  # the last batch of traces is sampled and exported
            await database.close()

    gateway = Gateway(
        table,
        access,
        server.metrics,
        max_body_bytes=spec.gateway.max_body_bytes,
        lifespan=lifespan,
        title=f"Strata: {spec.name}",
        version=VERSION,
        tracing=tracing,
        behaviour=behaviour,
    )
    docs.document = gateway.openapi
    gateway.state.update(server=server, database=database, access=access, workflows=workflows, tracing=tracing)
    for extension in extensions:
        gateway.state.update(extension.state)
    return gateway


def _export_governance(metrics: Metrics, access: AccessControl) -> None:
    """Budgets and the audit chain's verdict on /metrics, read at scrape time."""

    def budgets() -> list[BudgetShare]:
        return [BudgetShare(s.tenant, s.used(), s.budget.alert_fraction) for s in access.budgets.standing()]

    def chain() -> ChainState | None:
        last = access.audit_watch.last
        return None if last is None else ChainState(last.verdict.ok, last.verdict.end.seq, last.at)

    register_governance_metrics(metrics.registry, budgets, chain, lambda: access.audit_watch.failures)


async def _load(server: ModelServer, binding: RegistryBinding, progress: ProgressCallback | None) -> None:
    try:
        await binding.materialise()  # registry:NAME@... paths become verified local folders first
    except Exception as error:  # boundary: the gateway stays up and /readyz names what failed
        for name in binding.served:
            server.deployments[name].load_errors[name] = f"registry: {error}"
        log.error("could not materialise registry models: %s", error)
        return
    await server.start(progress)
    # Everything loaded now (torch, transformers, the models) lives for the whole process: move it out
    # of the collector's reach, so a full collection walks only what requests allocate (a full pass
    # over the model heap took 201 ms under load).
    gc.collect()
    gc.freeze()
