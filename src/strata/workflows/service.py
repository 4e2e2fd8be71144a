"""One process's workflow engine: the bound pipelines, the store, the artifact store and its workers.

The gateway builds one (with its ModelServer and the access layer's usage recorder) and runs
``workflows.workers`` workers in-process; `strata worker` builds one on its own, with a ModelServer
of its own when it loads the app's models.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Iterator

from strata.data import ArtifactStore
from strata.data.vector_backends import vector_index_for
from strata.observability.workflow_metrics import WorkflowMetrics
from strata.serving.server import ModelServer
from strata.spec import AppSpec
from strata.store import Database
from strata.workflows.batches import BATCH_PIPELINE
from strata.workflows.engine import Worker
from strata.workflows.events import event_bus
from strata.workflows.file_store import FileStore
from strata.workflows.ingestion import INGEST_PIPELINE
from strata.workflows.notify import JobListener
from strata.workflows.pipeline import Pipeline, bind
from strata.workflows.prompt_catalog import PromptCatalog
from strata.workflows.prompt_library import PromptLibrary
from strata.workflows.steps import Services, StepTraceSink, UsageSink
from strata.workflows.store import JobStore
from strata.workflows.triggers import Triggers

INTERNAL_PIPELINES = frozenset({BATCH_PIPELINE.name, INGEST_PIPELINE.name})  # started by their own APIs only


def build_pipelines(spec: AppSpec) -> dict[str, Pipeline]:
    """The app's pipelines (custom steps imported now: a bad entrypoint is a SpecError naming it) and
    the Batch API's own."""
    pipelines = {p.name: bind(p, f"pipelines[{index}]") for index, p in enumerate(spec.pipelines)}
    pipelines[BATCH_PIPELINE.name] = bind(BATCH_PIPELINE, "openai-batch", needs_models=True)
    pipelines[INGEST_PIPELINE.name] = bind(INGEST_PIPELINE, "vector-store-file", needs_models=True)
    return pipelines


class JobWatch:
    """Wakes progress streams when a job changes in this process (instead of at the next poll)."""

    def __init__(self) -> None:
        self._waiting: dict[str, set[asyncio.Event]] = {}

    def notify(self, job_id: str) -> None:
        for event in self._waiting.get(job_id, ()):
            event.set()

    @contextlib.contextmanager
    def watching(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the job changes in this process; clear it before reading the job,
        so a change between the read and the wait is never missed."""
        event = asyncio.Event()
        self._waiting.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._waiting[job_id]
            waiting.discard(event)
            if not waiting:
                del self._waiting[job_id]


class Workflows:
    def __init__(
        self,
        spec: AppSpec,
        database: Database,
        *,
        server: ModelServer | None,
        usage: UsageSink | None = None,
        budget_check: Callable[[str], None] | None = None,
        metrics: WorkflowMetrics | None = None,
        seed: int | None = None,
        trace: StepTraceSink | None = None,
    ) -> None:
        self.spec = spec
        self.settings = spec.workflows
        self.store = JobStore(database)
        self.watch = JobWatch()
        self.store.listeners.append(self.watch.notify)
        self.artifacts = ArtifactStore(spec.store.artifacts_url)
        self.pipelines = build_pipelines(spec)
        self.server = server
        self.files = FileStore(self.store)
        self.vectors = vector_index_for(spec.store.vectors_url)
        self.prompts = PromptLibrary(PromptCatalog(self.store))  # shared by the prompts API, chat and steps
        self.services = Services(
            self.artifacts, self.store, self.files, server, usage, spec.workflows.batch_concurrency, trace,
            self.vectors, spec.retrieval, self.prompts,
        )  # fmt: skip
        self.rng = random.Random(seed)
        # Raises QuotaExceeded for a tenant whose budget is spent: checked before billable work is queued.
        self.budget_check = budget_check or (lambda tenant: None)
        self.workers: list[Worker] = []
        self.metrics = metrics or WorkflowMetrics()
        for pipeline in self.pipelines:
            self.metrics.declare(pipeline)
        order = {name: list(pipeline.order) for name, pipeline in self.pipelines.items()}
        self.triggers = Triggers(spec.pipelines, order, self.store, event_bus(spec.store.redis_url), wake=self.wake)
        # Other processes' submissions wake this one's workers at once (PostgreSQL only; see notify).
        self.listener = JobListener(database, self.wake) if database.dialect == "postgresql" else None

    async def open(self) -> None:
        """Open the vector index (the embedded one loads its stores from disk): before workers start."""
        await self.vectors.open()

    def start_workers(self, count: int, *, name: str | None = None) -> None:
        server = self.server
        if count > 0 and self.listener is not None and not self.workers:
            self.listener.start()
        for index in range(count):
            worker = Worker(
                self.store,
                self.pipelines,
                self.services,
                self.settings,
                name=None if name is None else f"{name}-{index}",
                models_ready=(lambda: server is not None and server.ready),
                rng=random.Random(self.rng.random()),
                metrics=self.metrics,
            )
            worker.start()
            self.workers.append(worker)

    def note_cancel(self, job_id: str) -> None:
        for worker in self.workers:
            worker.note_cancel(job_id)
        self.wake()

    def wake(self) -> None:
        for worker in self.workers:
            worker.wake()

    def start_triggers(self) -> None:
        """Start the pipelines' event subscriptions and schedules (see triggers); idempotent starts, so
        every gateway and worker of an app may run them."""
        if self.triggers.active:
            self.triggers.start()

    async def stop(self) -> None:
        await self.triggers.stop()
        if self.listener is not None:
            await self.listener.stop()
        for worker in self.workers:
            await worker.stop()
        self.workers = []
        await self.vectors.close()  # after the workers: no ingestion writes to a closed index
