"""The route table: every HTTP route of the platform, declared once.

Each line says the method and path, who may call it (scope), what it does, and its typed request
and response bodies. Dispatch, the access check, the metric label and the OpenAPI document are all
read from here; nothing else lists routes. The handlers are plain async functions over a ``Call``;
the access, workflow and serving layers below them never import the gateway.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from strata.gateway.access_api import AccessAPI, CreateKeyRequest
from strata.gateway.admin_traffic import RolloutRequest, TrafficAdminAPI, WeightsRequest
from strata.gateway.batch_api import BatchAPI, CreateBatch
from strata.gateway.completions import CompletionsAPI
from strata.gateway.dashboard_api import DashboardAPI
from strata.gateway.docs import DocsAPI
from strata.gateway.embeddings import BatchedAPI
from strata.gateway.health import OperationsAPI
from strata.gateway.jobs_api import JobsAPI, PublishEvent, RunPipeline, SubmitJob
from strata.gateway.prompts_api import PromptsAPI
from strata.gateway.registry_api import PromoteRequest, RegistryAPI
from strata.gateway.routing import Endpoint, Link, Scope, from_request_path, from_response
from strata.gateway.traces_api import TraceDetail, TraceList, TraceListQuery, TracesAPI
from strata.gateway.vector_stores_api import VectorStoresAPI
from strata.protocol import dashboard as board
from strata.protocol import prompts as pr
from strata.protocol import registry as reg
from strata.protocol import responses as out
from strata.protocol import vector_responses as vs
from strata.protocol.requests import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, PredictRequest
from strata.protocol.vector_requests import (
    AttachFile,
    CreateVectorStore,
    FileListQuery,
    PageQuery,
    SearchVectorStore,
    VectorStoreFileQuery,
)

ADMIN = "/v1/admin"


class UploadForm(BaseModel):
    """multipart/form-data fields of a file upload."""

    file: bytes = Field(
        description="The file: JSON Lines for a batch; text, Markdown, JSON Lines or HTML for vector stores."
    )
    purpose: Literal["batch", "assistants", "user_data"]


class UsageQuery(BaseModel):
    period: Literal["day", "month"] = "month"


class AdminUsageQuery(UsageQuery):
    tenant: str | None = None


class AuditQuery(BaseModel):
    tenant: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class ExchangeQuery(BaseModel):
    tenant: str | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class ListQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    pipeline: str | None = None


class KeyListQuery(BaseModel):
    tenant: str | None = None


class LiveQuery(BaseModel):
    since: float = Field(default=0.0, ge=0, description="Only points whose window ends after this unix time.")


def openai_routes(completions: CompletionsAPI, batched: BatchedAPI, ops: OperationsAPI) -> list[Endpoint]:
    tag = "openai"
    return [
        Endpoint("POST", "/v1/chat/completions", completions.chat, Scope.INFER, "Create a chat completion", tag,
                 request=ChatCompletionRequest, response=out.ChatCompletion, events=out.ChatCompletionChunk,
                 metered=True),
        Endpoint("POST", "/v1/completions", completions.completions, Scope.INFER, "Create a text completion", tag,
                 request=CompletionRequest, response=out.Completion, events=out.CompletionChunk, metered=True),
        Endpoint("POST", "/v1/embeddings", batched.embeddings, Scope.INFER, "Create embeddings", tag,
                 request=EmbeddingRequest, response=out.EmbeddingList, metered=True),
        Endpoint("GET", "/v1/models", ops.list_models, Scope.INFER, "List the models the key may use", tag,
                 response=out.ModelList, links=(Link(ops.get_model, {"model": from_response("data/0/id")}),)),
        Endpoint("POST", "/v1/models/{model:path}/predict", batched.predict, Scope.INFER,
                 "Run a model on inputs (dynamically batched)", "models", request=PredictRequest,
                 response=out.Predictions, metered=True, model_param="model"),
        Endpoint("GET", "/v1/models/{model:path}", ops.get_model, Scope.INFER, "Describe one model", tag,
                 response=out.ModelCard, model_param="model"),
    ]  # fmt: skip


def operations_routes(ops: OperationsAPI, docs: DocsAPI) -> list[Endpoint]:
    tag = "operations"
    return [
        Endpoint("GET", "/healthz", ops.healthz, Scope.OPEN, "Liveness", tag, response=out.Health),
        Endpoint("GET", "/readyz", ops.readyz, Scope.OPEN, "Readiness: every replica loaded and warmed", tag,
                 response=out.Readiness, errors=(503,)),
        Endpoint("GET", "/metrics", ops.metrics, Scope.ADMIN, "Prometheus metrics", tag,
                 response_media="text/plain"),
        # Any valid key may read the API's description; nothing but the probes is open.
        Endpoint("GET", "/openapi.json", docs.openapi, Scope.ANY, "This OpenAPI document", tag),
        Endpoint("GET", "/docs", docs.swagger, Scope.ANY, "Interactive API documentation", tag,
                 response_media="text/html"),
    ]  # fmt: skip


def access_routes(api: AccessAPI) -> list[Endpoint]:
    tag, key = "access", {"key_id": from_response("id")}
    return [
        Endpoint("GET", "/v1/usage", api.usage, Scope.ANY, "The caller's tenant's usage", tag,
                 query=UsageQuery, response=out.UsageReport),
        Endpoint("POST", f"{ADMIN}/keys", api.create_key, Scope.ADMIN, "Create an API key", tag,
                 request=CreateKeyRequest, response=out.CreatedKey, status=201,
                 links=(Link(api.get_key, key), Link(api.revoke_key, key))),
        Endpoint("GET", f"{ADMIN}/keys", api.list_keys, Scope.ADMIN, "List API keys", tag,
                 query=KeyListQuery, response=out.KeyList),
        Endpoint("GET", f"{ADMIN}/keys/{{key_id}}", api.get_key, Scope.ADMIN, "Describe an API key", tag,
                 response=out.KeyInfo, links=(Link(api.revoke_key, key),)),
        Endpoint("DELETE", f"{ADMIN}/keys/{{key_id}}", api.revoke_key, Scope.ADMIN, "Revoke an API key", tag,
                 response=out.KeyInfo),
        Endpoint("GET", f"{ADMIN}/usage", api.admin_usage, Scope.ADMIN, "Usage of every tenant", tag,
                 query=AdminUsageQuery, response=out.UsageReport),
        Endpoint("GET", f"{ADMIN}/audit", api.audit_log, Scope.ADMIN, "Recent audit rows", tag,
                 query=AuditQuery, response=out.AuditLog),
        Endpoint("GET", f"{ADMIN}/audit/verify", api.audit_verify, Scope.ADMIN, "Verify the audit hash chain", tag,
                 response=out.AuditVerdict),
        Endpoint("GET", f"{ADMIN}/exchanges", api.list_exchanges, Scope.ADMIN,
                 "Stored exchanges kept by tenants' data policies (metadata only)", tag, query=ExchangeQuery,
                 response=out.ExchangeList,
                 links=(Link(api.read_exchange, {"exchange_id": from_response("data/0/id")}),)),
        Endpoint("GET", f"{ADMIN}/exchanges/{{exchange_id}}", api.read_exchange, Scope.ADMIN,
                 "One stored exchange, decrypted (audited)", tag, response=out.ExchangeContent, errors=(409,)),
    ]  # fmt: skip


def traffic_routes(api: TrafficAdminAPI) -> list[Endpoint]:
    tag, routes, route = "traffic", f"{ADMIN}/routes", {"route": from_request_path("route")}
    return [
        Endpoint("GET", routes, api.list_routes, Scope.ADMIN, "Routes, versions and weights", tag,
                 response=out.RouteList, links=(Link(api.rollout_status, {"route": from_response("routes/0/name")}),)),
        Endpoint("PUT", f"{routes}/{{route:path}}/traffic", api.set_weights, Scope.ADMIN,
                 "Set a route's traffic split", tag, request=WeightsRequest, response=out.RouteInfo),
        Endpoint("POST", f"{routes}/{{route:path}}/rollout/promote", api.promote, Scope.ADMIN,
                 "Promote a running rollout", tag, response=out.RolloutStatus, errors=(409,)),
        Endpoint("POST", f"{routes}/{{route:path}}/rollout/abort", api.abort, Scope.ADMIN,
                 "Abort a running rollout", tag, response=out.RolloutStatus, errors=(409,)),
        Endpoint("POST", f"{routes}/{{route:path}}/rollout", api.start_rollout, Scope.ADMIN,
                 "Start a progressive rollout", tag, request=RolloutRequest, response=out.RolloutStatus, status=201,
                 errors=(409,), links=(Link(api.rollout_status, route), Link(api.promote, route),
                                       Link(api.abort, route))),
        Endpoint("GET", f"{routes}/{{route:path}}/rollout", api.rollout_status, Scope.ADMIN,
                 "A route's rollout", tag, response=out.RouteRollout),
        Endpoint("GET", f"{ADMIN}/deployments", api.list_deployments, Scope.ADMIN,
                 "Replicas, breakers, admission and retry budgets", tag, response=out.DeploymentList),
        Endpoint("GET", f"{ADMIN}/cluster", api.cluster, Scope.ADMIN, "The runtime's view of the cluster", tag,
                 response=out.ClusterView),
        Endpoint("GET", f"{ADMIN}/cluster/targets", api.metrics_targets, Scope.ADMIN,
                 "Prometheus HTTP service discovery of replica metrics", tag, response=out.MetricsTargets),
    ]  # fmt: skip


def workflow_routes(jobs: JobsAPI, batches: BatchAPI) -> list[Endpoint]:
    tag = "jobs"
    pipeline = from_response("data/0/name")
    job, job_path = {"job_id": from_response("id")}, {"job_id": from_request_path("job_id")}
    file, batch = {"file_id": from_response("id")}, {"batch_id": from_response("id")}
    # A submitted job: read it, follow it, cancel it, fetch its result and artifacts.
    job_links = tuple(Link(to, job) for to in (jobs.get, jobs.events, jobs.cancel, jobs.result, jobs.artifacts))
    return [
        Endpoint("GET", "/v1/pipelines", jobs.list_pipelines, Scope.JOBS, "List pipelines", tag,
                 response=out.PipelineList,
                 links=(Link(jobs.run_pipeline, {"name": pipeline}), Link(jobs.submit, body={"pipeline": pipeline}))),
        Endpoint("POST", "/v1/pipelines/{name}/run", jobs.run_pipeline, Scope.JOBS,
                 "Run a pipeline now, inside this request", tag, request=RunPipeline, response=out.PipelineRun),
        Endpoint("POST", "/v1/jobs", jobs.submit, Scope.JOBS, "Submit a durable job", tag, request=SubmitJob,
                 response=out.Job, status=202, also_ok=(200,), errors=(409,), links=job_links),
        Endpoint("POST", "/v1/events", jobs.publish_event, Scope.JOBS,
                 "Publish an event: the pipelines triggered by its type start as jobs", tag, request=PublishEvent,
                 response=out.EventAccepted, status=202),
        Endpoint("GET", "/v1/jobs", jobs.list_jobs, Scope.JOBS, "List the tenant's jobs", tag, query=ListQuery,
                 response=out.JobList),
        Endpoint("GET", "/v1/jobs/{job_id}", jobs.get, Scope.JOBS, "A job with its steps", tag, response=out.Job,
                 links=(Link(jobs.cancel, job), Link(jobs.result, job))),
        Endpoint("GET", "/v1/jobs/{job_id}/events", jobs.events, Scope.JOBS, "A job's progress (server-sent events)",
                 tag, response_media="text/event-stream", events=out.JobEvent),
        Endpoint("POST", "/v1/jobs/{job_id}/cancel", jobs.cancel, Scope.JOBS, "Cancel a job", tag,
                 response=out.Job, status=202, errors=(409,), links=(Link(jobs.get, job),)),
        Endpoint("GET", "/v1/jobs/{job_id}/result", jobs.result, Scope.JOBS, "A finished job's result (any JSON)",
                 tag, errors=(409,)),
        Endpoint("GET", "/v1/jobs/{job_id}/artifacts", jobs.artifacts, Scope.JOBS, "A job's artifacts", tag,
                 response=out.ArtifactList,
                 links=(Link(jobs.artifact, {**job_path, "artifact_id": from_response("data/0/id")}),)),
        # An artifact is served with the media type it was stored with (JSON, text, bytes).
        Endpoint("GET", "/v1/jobs/{job_id}/artifacts/{artifact_id}", jobs.artifact, Scope.JOBS,
                 "One artifact's content", tag, response_media="*/*"),
        Endpoint("POST", "/v1/files", batches.upload_file, Scope.JOBS, "Upload a file", "batches",
                 request=UploadForm, multipart=True, response=out.FileObject,
                 links=(Link(batches.get_file, file), Link(batches.file_content, file), Link(batches.delete_file, file),
                        Link(batches.create_batch, body={"input_file_id": from_response("id")}))),
        Endpoint("GET", "/v1/files", batches.list_files, Scope.JOBS, "List the tenant's files", "batches",
                 query=FileListQuery, response=vs.FileList),
        Endpoint("GET", "/v1/files/{file_id}", batches.get_file, Scope.JOBS, "Describe a file", "batches",
                 response=out.FileObject),
        Endpoint("DELETE", "/v1/files/{file_id}", batches.delete_file, Scope.JOBS, "Delete a file", "batches",
                 response=vs.FileDeleted),
        Endpoint("GET", "/v1/files/{file_id}/content", batches.file_content, Scope.JOBS, "A file's content",
                 "batches", response_media="*/*"),
        Endpoint("POST", "/v1/batches", batches.create_batch, Scope.JOBS, "Create a batch", "batches",
                 request=CreateBatch, response=out.BatchObject,
                 links=(Link(batches.get_batch, batch), Link(batches.cancel_batch, batch))),
        Endpoint("GET", "/v1/batches", batches.list_batches, Scope.JOBS, "List batches", "batches",
                 response=out.BatchList),
        Endpoint("GET", "/v1/batches/{batch_id}", batches.get_batch, Scope.JOBS, "Describe a batch", "batches",
                 response=out.BatchObject, links=(Link(batches.cancel_batch, batch),)),
        Endpoint("POST", "/v1/batches/{batch_id}/cancel", batches.cancel_batch, Scope.JOBS, "Cancel a batch",
                 "batches", response=out.BatchObject, errors=(409,)),
    ]  # fmt: skip


def dashboard_routes(api: DashboardAPI) -> list[Endpoint]:
    tag = "dashboard"
    # The page and its two files hold no data: open, like a login page. Their data routes need admin.
    return [
        Endpoint("GET", "/dashboard", api.page, Scope.OPEN, "The operators' dashboard (an HTML page)", tag,
                 response_media="text/html"),
        Endpoint("GET", "/dashboard/{asset}", api.asset, Scope.OPEN, "The dashboard's script and style", tag,
                 response_media="*/*"),
        Endpoint("GET", f"{ADMIN}/dashboard/live", api.live_series, Scope.ADMIN,
                 "Recent per-stage latency percentiles, throughput, tokens/s and queue depth", tag,
                 query=LiveQuery, response=board.LiveSeries),
        Endpoint("GET", f"{ADMIN}/dashboard/overview", api.overview, Scope.ADMIN,
                 "Budgets, jobs by state, the dead-letter queue and the audit chain's last verdict", tag,
                 response=board.DashboardOverview),
    ]  # fmt: skip


def observability_routes(api: TracesAPI) -> list[Endpoint]:
    tag = "observability"
    return [
        Endpoint("GET", f"{ADMIN}/traces", api.list_traces, Scope.ADMIN,
                 "Recent traces kept by the store (every error, the slowest, a sample)", tag,
                 query=TraceListQuery, response=TraceList,
                 links=(Link(api.get_trace, {"trace_id": from_response("data/0/trace_id")}),)),
        Endpoint("GET", f"{ADMIN}/traces/{{trace_id}}", api.get_trace, Scope.ADMIN, "One trace's spans", tag,
                 response=TraceDetail),
    ]  # fmt: skip


def registry_routes(api: RegistryAPI) -> list[Endpoint]:
    tag, models = "registry", f"{ADMIN}/registry/models"
    name = {"name": from_response("data/0/name")}
    stage = f"{models}/{{name}}/stages/{{stage}}"
    return [
        Endpoint("GET", models, api.list_registered_models, Scope.ADMIN,
                 "Registered models, their stages and what this server serves", tag,
                 response=reg.RegistryModelList, links=(Link(api.list_model_versions, name),)),
        Endpoint("GET", f"{models}/{{name}}/versions", api.list_model_versions, Scope.ADMIN, "A model's versions", tag,
                 response=reg.RegistryVersionList),
        Endpoint("GET", f"{models}/{{name}}/versions/{{version}}", api.get_model_version, Scope.ADMIN,
                 "One version: metadata, file manifest and signature", tag, response=reg.RegistryVersion),
        Endpoint("POST", f"{stage}/promote", api.promote_stage, Scope.ADMIN,
                 "Promote a version: a canary rollout on the routes serving the stage (the stage moves when it "
                 "completes), or with canary false an immediate switch with no gap", tag,
                 request=PromoteRequest, response=reg.RegistryStage, errors=(409,)),
        Endpoint("POST", f"{stage}/rollback", api.rollback_stage, Scope.ADMIN,
                 "End a running canary, or return a stage to the version it named before", tag,
                 response=reg.RegistryStage, errors=(409,)),
        Endpoint("GET", f"{stage}/canary", api.canary_status, Scope.ADMIN,
                 "The latest canary promotion of a stage on this server", tag, response=reg.RegistryCanary),
    ]  # fmt: skip


def vector_store_routes(api: VectorStoresAPI) -> list[Endpoint]:
    tag, root = "vector_stores", "/v1/vector_stores"
    store = {"vector_store_id": from_response("id")}
    store_path = {"vector_store_id": from_request_path("vector_store_id")}
    file = {**store_path, "file_id": from_response("id")}
    return [
        Endpoint("POST", root, api.create_store, Scope.JOBS, "Create a vector store", tag,
                 request=CreateVectorStore, response=vs.VectorStoreObject,
                 links=(Link(api.get_store, store), Link(api.list_files, store), Link(api.delete_store, store))),
        Endpoint("GET", root, api.list_stores, Scope.JOBS, "List the tenant's vector stores", tag,
                 query=PageQuery, response=vs.VectorStoreList),
        Endpoint("GET", f"{root}/{{vector_store_id}}", api.get_store, Scope.JOBS, "Describe a vector store", tag,
                 response=vs.VectorStoreObject),
        Endpoint("DELETE", f"{root}/{{vector_store_id}}", api.delete_store, Scope.JOBS,
                 "Delete a vector store and its chunks", tag, response=vs.VectorStoreDeleted),
        Endpoint("POST", f"{root}/{{vector_store_id}}/files", api.attach_file, Scope.JOBS,
                 "Attach a file (starts its ingestion job)", tag, request=AttachFile,
                 response=vs.VectorStoreFileObject, links=(Link(api.get_file, file), Link(api.delete_file, file))),
        Endpoint("GET", f"{root}/{{vector_store_id}}/files", api.list_files, Scope.JOBS,
                 "List a vector store's files", tag, query=VectorStoreFileQuery, response=vs.VectorStoreFileList),
        Endpoint("GET", f"{root}/{{vector_store_id}}/files/{{file_id}}", api.get_file, Scope.JOBS,
                 "A vector store file and its ingestion status", tag, response=vs.VectorStoreFileObject),
        Endpoint("DELETE", f"{root}/{{vector_store_id}}/files/{{file_id}}", api.delete_file, Scope.JOBS,
                 "Detach a file and delete its chunks", tag, response=vs.VectorStoreFileDeleted),
        Endpoint("POST", f"{root}/{{vector_store_id}}/search", api.search, Scope.JOBS,
                 "Search a vector store", tag, request=SearchVectorStore, response=vs.SearchPage),
    ]  # fmt: skip


def prompt_routes(api: PromptsAPI) -> list[Endpoint]:
    # Reading a prompt needs what using it in a chat needs (infer); changing one is managing the
    # tenant's resources, like files and vector stores (jobs).
    tag, root = "prompts", "/v1/prompts"
    prompt = {"prompt_id": from_response("id")}
    prompt_path = {"prompt_id": from_request_path("prompt_id")}
    return [
        Endpoint("POST", root, api.create_prompt, Scope.JOBS,
                 "Create a prompt template's next version (version 1 creates the prompt); it becomes current", tag,
                 request=pr.CreatePromptVersion, response=pr.PromptObject, status=201,
                 links=(Link(api.get_prompt, prompt), Link(api.list_prompt_versions, prompt),
                        Link(api.rollback_prompt, prompt))),
        Endpoint("GET", root, api.list_prompts, Scope.INFER, "List the tenant's prompt templates", tag,
                 query=pr.PromptQuery, response=pr.PromptList,
                 links=(Link(api.get_prompt, {"prompt_id": from_response("data/0/id")}),)),
        Endpoint("GET", f"{root}/{{prompt_id}}", api.get_prompt, Scope.INFER,
                 "A prompt template with its current version", tag, response=pr.PromptObject),
        Endpoint("GET", f"{root}/{{prompt_id}}/versions", api.list_prompt_versions, Scope.INFER,
                 "Every version of a prompt template, newest first", tag, response=pr.PromptVersionList,
                 links=(Link(api.get_prompt_version,
                             {**prompt_path, "version": from_response("data/0/version")}),)),
        Endpoint("GET", f"{root}/{{prompt_id}}/versions/{{version}}", api.get_prompt_version, Scope.INFER,
                 "One version of a prompt template", tag, response=pr.PromptVersionObject),
        Endpoint("POST", f"{root}/{{prompt_id}}/rollback", api.rollback_prompt, Scope.JOBS,
                 "Make an earlier version current (by default the one before the current one)", tag,
                 request=pr.RollbackPrompt, response=pr.PromptObject, errors=(409,),
                 links=(Link(api.get_prompt, prompt_path),)),
    ]  # fmt: skip
