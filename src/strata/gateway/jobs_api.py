"""HTTP API of the workflow engine: pipelines (listed, run synchronously) and jobs (durable).

Every route needs the ``jobs`` scope (checked by the access middleware) and sees only the caller's
tenant: another tenant's job answers 404 exactly like a job that does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from pydantic import Field
from starlette.responses import Response

from strata.data.artifacts import ArtifactNotFound
from strata.errors import Conflict, InvalidRequest, NotFound, PermissionDenied
from strata.gateway.call import Call
from strata.gateway.responses import dumps, json_response
from strata.gateway.sse import SSEResponse
from strata.observability.traces.pipeline import Tracing
from strata.principal import Principal
from strata.protocol.requests import WHOLE, RequestModel
from strata.spec.pipelines import EVENT_TYPE_PATTERN
from strata.workflows.batches import BATCH_PIPELINE
from strata.workflows.events import Event
from strata.workflows.pipeline import Pipeline, run_inline
from strata.workflows.records import JobState, NewJob, StepState
from strata.workflows.service import INTERNAL_PIPELINES, Workflows
from strata.workflows.tables import TERMINAL, Artifact

EVENT_POLL_S = 0.25
IDEMPOTENCY_HEADER = "idempotency-key"


class SubmitJob(RequestModel):
    pipeline: str = Field(min_length=1, max_length=128, description="Name of a pipeline of the app.")
    input: Any = Field(default=None, description="The pipeline's input (any JSON).")
    priority: Annotated[int, Field(ge=-1000, le=1000), WHOLE] = Field(default=0, description="Higher runs first.")
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255, description="A retried submission with it returns the first job."
    )


class PublishEvent(RequestModel):
    type: str = Field(pattern=EVENT_TYPE_PATTERN, description="The event's type: pipelines with a trigger on it start.")
    data: dict[str, Any] = Field(default_factory=dict, description="Anything the pipelines should see (JSON).")
    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="Your id for the event: publishing it again starts nothing new. Default: a fresh one.",
    )  # fmt: skip


class RunPipeline(RequestModel):
    input: Any = None


def job_json(
    job: JobState, steps: list[StepState] | None = None, artifacts: list[Artifact] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": job.id,
        "object": "job",
        "pipeline": job.pipeline,
        "status": job.status,
        "priority": job.priority,
        "idempotency_key": job.idempotency_key,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "cancel_requested": job.cancel_requested,
        "error": job.error,
        "result": job.result if job.status == "succeeded" else None,
    }
    if steps is not None:
        body["steps"] = [{"name": s.name, "status": s.status, "attempts": s.attempts, "error": s.error} for s in steps]
    if artifacts is not None:
        body["artifacts"] = [artifact_json(a) for a in artifacts]
    return body


def artifact_json(artifact: Artifact) -> dict[str, Any]:
    return {
        "id": artifact.artifact_id,
        "object": "artifact",
        "step": artifact.step,
        "bytes": artifact.bytes,
        "media_type": artifact.media_type,
        "url": f"/v1/jobs/{artifact.job_id}/artifacts/{artifact.artifact_id}",
    }


def request_hash(pipeline: str, job_input: Any, priority: int) -> str:
    canonical = dumps({"pipeline": pipeline, "input": job_input, "priority": priority}, orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class JobsAPI:
    def __init__(self, workflows: Workflows, tracing: Tracing | None = None) -> None:
        self.workflows = workflows
        self.store = workflows.store
        self.tracing = tracing

    def _pipeline(self, name: str) -> Pipeline:
        pipeline = self.workflows.pipelines.get(name)
        if pipeline is None or name in INTERNAL_PIPELINES:  # made through /v1/batches and /v1/vector_stores
            raise NotFound(f"The pipeline '{name}' does not exist.", param="pipeline", code="pipeline_not_found")
        return pipeline

    async def _job(self, call: Call) -> JobState:
        job_id = call.params["job_id"]
        job = await self.store.get(call.caller.tenant, job_id)
        if job is None:
            raise NotFound(f"No job '{job_id}'.", param="job_id", code="job_not_found")
        return job

    async def list_pipelines(self, call: Call) -> Response:
        data = [p.describe() for name, p in self.workflows.pipelines.items() if name not in INTERNAL_PIPELINES]
        return json_response({"object": "list", "data": data})

    async def run_pipeline(self, call: Call) -> Response:
        """Run the pipeline now, inside this request: same steps, nothing persisted but artifacts."""
        pipeline = self._pipeline(call.params["name"])
        body = call.parse(RunPipeline)
        caller = call.caller
        _check_models(pipeline, caller)
        pipeline.check_input(body.input)
        if pipeline.needs_models:
            self.workflows.budget_check(caller.tenant)
        result = await run_inline(
            pipeline, body.input, tenant=caller.tenant, key_id=caller.key_id, services=self.workflows.services,
            rng=self.workflows.rng,
        )  # fmt: skip
        return json_response({"object": "pipeline.run", "pipeline": pipeline.name, **result})

    async def submit(self, call: Call) -> Response:
        body = call.parse(SubmitJob)
        key = _idempotency_key(call, body.idempotency_key)
        pipeline = self._pipeline(body.pipeline)
        caller = call.caller
        _check_models(pipeline, caller)
        pipeline.check_input(body.input)
        if pipeline.needs_models:  # billable work: a tenant past its budget is refused before it queues
            self.workflows.budget_check(caller.tenant)
        digest = request_hash(pipeline.name, body.input, body.priority)
        new = NewJob(
            caller.tenant, caller.key_id, pipeline.name, body.input, pipeline.order, body.priority, key, digest
        )
        job, created = await self.store.submit(new)
        if not created and job.request_hash != digest:
            raise Conflict(
                f"The idempotency key '{key}' was already used for a different request (job {job.id}).",
                param="idempotency_key",
                code="idempotency_key_reused",
            )
        if created:
            if self.tracing is not None:
                self.tracing.job_submitted(job.id, call.record)
            self.workflows.wake()
            return json_response(job_json(job), 202, {"location": f"/v1/jobs/{job.id}"})
        return json_response(job_json(job), 200, {"idempotent-replayed": "true", "location": f"/v1/jobs/{job.id}"})

    async def publish_event(self, call: Call) -> Response:
        body = call.parse(PublishEvent)
        event = Event(body.type, call.caller.tenant, body.data)
        if body.id is not None:
            event = dataclasses.replace(event, id=body.id)
        pipelines = await self.workflows.triggers.publish(event)
        return json_response({"id": event.id, "object": "event", "type": event.type, "pipelines": pipelines}, 202)

    async def list_jobs(self, call: Call) -> Response:
        limit = _limit(call)
        pipeline = call.query.get("pipeline")
        tenant = call.caller.tenant
        jobs = await self.store.list_jobs(tenant, limit=limit, pipeline=pipeline, exclude=BATCH_PIPELINE.name)
        return json_response({"object": "list", "data": [job_json(j) for j in jobs]})

    async def get(self, call: Call) -> Response:
        job = await self._job(call)
        steps, artifacts = await self.store.steps(job.id), await self.store.artifacts(job.id)
        return json_response(job_json(job, steps, artifacts))

    async def cancel(self, call: Call) -> Response:
        job = await self._job(call)
        if job.status in TERMINAL:
            raise Conflict(f"The job '{job.id}' already finished ({job.status}).", param="job_id", code="job_finished")
        updated = await self.store.request_cancel(job.tenant, job.id)
        assert updated is not None
        self.workflows.note_cancel(job.id)
        return json_response(job_json(updated), 202)

    async def result(self, call: Call) -> Response:
        job = await self._job(call)
        if job.status != "succeeded":
            detail = f": {job.error}" if job.error else ""
            raise Conflict(f"The job '{job.id}' has no result ({job.status}{detail}).", code="job_not_succeeded")
        return json_response(job.result)

    async def artifacts(self, call: Call) -> Response:
        job = await self._job(call)
        return json_response({"object": "list", "data": [artifact_json(a) for a in await self.store.artifacts(job.id)]})

    async def artifact(self, call: Call) -> Response:
        job = await self._job(call)
        artifact_id = call.params["artifact_id"]
        known = {a.artifact_id: a for a in await self.store.artifacts(job.id)}
        missing = NotFound(f"The job '{job.id}' has no artifact '{artifact_id}'.", code="artifact_not_found")
        if artifact_id not in known:
            raise missing
        try:
            data = await self.workflows.artifacts.get(job.tenant, artifact_id)
        except ArtifactNotFound:
            raise missing from None
        return Response(data, media_type=known[artifact_id].media_type)

    async def events(self, call: Call) -> Response:
        """Server-sent events of the job's progress, from the start or after ``Last-Event-ID``."""
        job = await self._job(call)
        after = _last_event_id(call.headers.get("last-event-id") or call.query.get("after"))
        return SSEResponse(self._event_stream(job, after))

    async def _event_stream(self, job: JobState, after: int) -> AsyncIterator[bytes]:
        with self.workflows.watch.watching(job.id) as changed:
            while True:
                changed.clear()
                # Status first, then events: the terminal event commits with the status, so none is missed.
                current = await self.store.get(job.tenant, job.id)
                finished = current is None or current.status in TERMINAL
                rows = await self.store.events_after(job.id, after)
                for event_id, kind, step, detail, at in rows:
                    payload = {"id": event_id, "job_id": job.id, "type": kind, "step": step, "detail": detail, "at": at}
                    yield f"id: {event_id}\nevent: {kind}\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"
                    after = event_id
                if finished and not rows:
                    return
                if not rows:  # woken at once by a change made here; polled for workers elsewhere
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(changed.wait(), EVENT_POLL_S)


def _check_models(pipeline: Pipeline, caller: Principal) -> None:
    """A key limited to some models may not reach others through a pipeline's generate steps."""
    for step in pipeline.spec.steps:
        if step.kind == "generate" and step.model is not None and not caller.allows_model(step.model):
            raise PermissionDenied(
                f"This key may not use the model '{step.model}' that step '{step.name}' of the pipeline "
                f"'{pipeline.name}' calls.",
                param="pipeline",
            )


def _idempotency_key(call: Call, in_body: str | None) -> str | None:
    header = call.headers.get(IDEMPOTENCY_HEADER)
    if header is not None and in_body is not None and header != in_body:
        raise InvalidRequest(
            "The Idempotency-Key header and the idempotency_key field differ; send one.", param="idempotency_key"
        )
    if header is not None and not 0 < len(header) <= 255:
        raise InvalidRequest("The Idempotency-Key header must be 1 to 255 characters.", param=IDEMPOTENCY_HEADER)
    return in_body if in_body is not None else header


def _limit(call: Call) -> int:
    text = call.query.get("limit", "20")
    if not text.isdigit() or not 1 <= int(text) <= 100:
        raise InvalidRequest(f"limit must be an integer from 1 to 100, got {text!r}.", param="limit")
    return int(text)


def _last_event_id(value: str | None) -> int:
    if value is None:
        return 0
    if not value.isdigit():
        raise InvalidRequest(f"Last-Event-ID must be an event id (an integer), got {value!r}.", param="last-event-id")
    return int(value)
