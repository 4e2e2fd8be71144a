"""`strata worker`: job workers in a process of their own, scaled apart from the gateway.

A worker needs no gateway: it talks to the metadata database and the artifact store only. It
serves its own ``/metrics`` and ``/healthz`` (workflows.monitor), on loopback unless told otherwise;
SIGTERM drains it: no new claims, /healthz answers 503, running steps get the grace period. For
pipelines with generate steps (and batches) it builds its own ModelServer from the same spec - the
same router, batcher and resilience as the gateway, on this process's cores - when ``--models``
is on (the default when a pipeline of the app generates text). With ``runtime: ray`` that server
follows the cluster's replicas, like a gateway does, instead of loading models of its own.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from rich.console import Console

from strata.access import AccessControl
from strata.observability.metrics import Metrics
from strata.runtime import runtime_for
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database
from strata.workflows.monitor import MonitorServer, WorkerMonitor
from strata.workflows.service import Workflows

console = Console()
log = logging.getLogger(__name__)


def needs_models(spec: AppSpec) -> bool:
    return any(step.kind in ("generate", "retrieve") for pipeline in spec.pipelines for step in pipeline.steps)


@dataclass(frozen=True, slots=True)
class MonitorOptions:
    host: str = "127.0.0.1"
    port: int | None = 9464  # None: no HTTP endpoint at all


async def run_worker(spec: AppSpec, *, workers: int, models: bool, monitor: MonitorOptions = MonitorOptions()) -> None:
    database = Database(spec.store.database_url)
    await database.migrate()
    access = AccessControl(spec, database)  # only its usage recorder: bills generate steps to the job's tenant
    model_metrics = Metrics()
    server = ModelServer(spec, runtime_for(spec), model_metrics) if models else None
    workflows = Workflows(spec, database, server=server, usage=access.finish)
    registries = [workflows.metrics.registry] + ([model_metrics.registry] if server is not None else [])
    endpoint = MonitorServer(WorkerMonitor(workflows.store, registries), monitor.host, monitor.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    access.recorder.start()
    await endpoint.start()
    try:
        if server is not None:
            console.print(f"loading {sum(d.replicas for d in spec.deployments)} replica(s)...")
            await server.start()
        await workflows.open()
        workflows.start_workers(workers)
        workflows.start_triggers()
        endpoint.monitor.state = "ready"
        console.print(f"Strata worker for '{spec.name}': {workers} worker(s), models {'on' if models else 'off'}")
        await stop.wait()
    finally:
        endpoint.monitor.state = "draining"
        await workflows.stop()  # running steps finish or their jobs are released to other workers
        if server is not None:
            await server.stop()
        await access.recorder.stop()
        await access.limiter.close()
        await endpoint.stop()
        await database.close()


def run(spec: AppSpec, *, workers: int, models: bool | None, monitor: MonitorOptions = MonitorOptions()) -> None:
    load_models = needs_models(spec) if models is None else models
    asyncio.run(run_worker(spec, workers=workers, models=load_models, monitor=monitor))
