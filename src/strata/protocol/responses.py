"""The JSON bodies routes answer with, as pydantic models: the OpenAPI document describes them and a
contract fuzzer checks every response against them. Handlers build the JSON directly (orjson, no
model instances on the hot path); these models only document it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

FinishReason = Literal["stop", "length"]


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int] | None


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    """The chosen tokens' log-probabilities (the model's own distribution, before sampling settings)."""

    content: list[TokenLogprob] | None
    refusal: None


class CompletionLogprobs(BaseModel):
    """The legacy completions shape: parallel lists, one entry per generated token."""

    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]]
    text_offset: list[int]


class ChatMessageOut(BaseModel):
    role: Literal["assistant"]
    content: str | None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None
    finish_reason: FinishReason | None


class ChatCompletionChunk(BaseModel):
    """One server-sent event of a streamed chat completion; with ``include_usage`` the last has no
    choices and the usage."""

    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChunkChoice(BaseModel):
    index: int
    text: str
    logprobs: CompletionLogprobs | None
    finish_reason: FinishReason | None


class CompletionChunk(BaseModel):
    """One server-sent event of a streamed text completion."""

    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChunkChoice]
    usage: Usage | None = None


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str  # a base64 string with encoding_format=base64


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    task: str
    ready: bool


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Predictions(BaseModel):
    model: str
    outputs: list[Any]


class Health(BaseModel):
    status: Literal["alive"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    deployments: dict[str, Any]


class KeyInfo(BaseModel):
    id: str
    object: Literal["api_key"]
    tenant: str
    scopes: list[str]
    models: list[str] | None
    name: str | None
    prefix: str
    created_at: int
    expires_at: int | None
    revoked_at: int | None


class CreatedKey(KeyInfo):
    key: str  # the secret, shown once


class KeyList(BaseModel):
    object: Literal["list"]
    data: list[KeyInfo]


class UsageTotals(BaseModel):
    tenant: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int
    compute_seconds: float
    cost: float
    cached_requests: int = Field(description="Of the requests, those answered from the response cache (not billed).")


class PromptUsageTotals(BaseModel):
    tenant: str
    prompt: str = Field(description="The prompt template's id@version.")
    requests: int
    input_tokens: int
    output_tokens: int
    compute_seconds: float
    cost: float


class UsageReport(BaseModel):
    object: Literal["usage"]
    period: Literal["day", "month"]
    since: int
    data: list[UsageTotals]
    prompts: list[PromptUsageTotals] = Field(description="The same usage, of requests a prompt template built.")


class AuditRow(BaseModel):
    seq: int
    at: str
    kind: str
    tenant: str | None
    actor: str | None
    action: str
    status: int
    detail: dict[str, Any]
    hash: str


class AuditLog(BaseModel):
    object: Literal["list"]
    data: list[AuditRow]


class AuditVerdict(BaseModel):
    ok: bool
    rows: int
    problems: list[str]


class ExchangeInfo(BaseModel):
    """A stored exchange's metadata: what a tenant's data policy kept, without its content."""

    id: int
    object: Literal["stored_exchange"]
    created_at: int
    tenant: str
    actor: str | None
    action: str
    model: str | None
    status: int
    request_sha256: str | None
    response_sha256: str | None
    tokens_in: int
    tokens_out: int
    key_id: str | None = Field(description="The data key that sealed its content (None: metadata only).")
    has_content: bool


class ExchangeList(BaseModel):
    object: Literal["list"]
    data: list[ExchangeInfo]


class ExchangeContent(ExchangeInfo):
    """A stored exchange with its content decrypted (reading one is audited)."""

    prompt: str | None = Field(description="The request as the model saw it (policy 'full'), else None.")
    output: str | None = Field(description="The response body as sent (policy 'full'), else None.")


class JobStep(BaseModel):
    name: str
    status: str
    attempts: int
    error: str | None


class EventAccepted(BaseModel):
    id: str
    object: Literal["event"]
    type: str
    pipelines: list[str] = Field(description="The pipelines of the app this event starts (one job each).")


class Job(BaseModel):
    id: str
    object: Literal["job"]
    pipeline: str
    status: str
    priority: int
    idempotency_key: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    cancel_requested: bool
    error: str | None
    result: Any
    steps: list[JobStep] | None = None
    artifacts: list[dict[str, Any]] | None = None


class JobEvent(BaseModel):
    """One server-sent event of a job's progress (its SSE ``event`` is ``type``, its ``id`` is ``id``)."""

    id: int
    job_id: str
    type: str
    step: str | None
    detail: dict[str, Any] | None
    at: float


class JobList(BaseModel):
    object: Literal["list"]
    data: list[Job]


class PipelineStep(BaseModel):
    name: str
    kind: str
    after: list[str]


class Pipeline(BaseModel):
    name: str
    object: Literal["pipeline"]
    description: str | None
    steps: list[PipelineStep]
    output: str


class PipelineList(BaseModel):
    object: Literal["list"]
    data: list[Pipeline]


class PipelineRun(BaseModel):
    object: Literal["pipeline.run"]
    pipeline: str
    output: Any  # the output step's value
    steps: dict[str, Any]  # every step's output, by step name


class ArtifactInfo(BaseModel):
    id: str
    object: Literal["artifact"]
    step: str
    bytes: int
    media_type: str
    url: str


class ArtifactList(BaseModel):
    object: Literal["list"]
    data: list[ArtifactInfo]


class FileObject(BaseModel):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["processed"]
    status_details: None


class BatchError(BaseModel):
    code: str
    message: str
    param: str | None
    line: int | None


class BatchErrors(BaseModel):
    object: Literal["list"]
    data: list[BatchError]


class BatchRequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"]
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: Literal["validating", "in_progress", "cancelling", "failed", "completed", "cancelled"]
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: BatchRequestCounts
    metadata: dict[str, str] | None


class BatchList(BaseModel):
    object: Literal["list"]
    data: list[BatchObject]
    has_more: bool
    first_id: str | None
    last_id: str | None


# Traffic administration (/v1/admin/...): operational views; nested detail stays loosely typed.


class RolloutEvent(BaseModel):
    after_s: float
    what: str


class RolloutStatus(BaseModel):
    stable: str
    canary: str
    phase: Literal["running", "promoted", "rolled_back"]
    canary_weight: float
    step: int
    steps: list[float]
    window_s: float
    reason: str
    elapsed_s: float
    events: list[RolloutEvent]


class RouteVersion(BaseModel):
    name: str
    deployment: str
    weight: float


class RouteInfo(BaseModel):
    name: str
    task: str
    versions: list[RouteVersion]
    sticky: Literal["none", "user", "session"]
    fallbacks: list[str]
    rollout: RolloutStatus | None


class RouteList(BaseModel):
    routes: list[RouteInfo]


class RouteRollout(BaseModel):
    route: str
    rollout: RolloutStatus | None
    weights: dict[str, float]


class DeploymentState(BaseModel):
    ready_replicas: int
    replicas: list[dict[str, Any]]
    breaker: str
    breaker_reason: str
    admission: dict[str, Any]
    retry_budget: dict[str, float]
    restart_errors: dict[str, str]


class DeploymentList(BaseModel):
    deployments: dict[str, DeploymentState]


class ClusterView(BaseModel):
    runtime: Literal["local", "ray"]
    # The Ray runtime's view only:
    address: str | None = None
    gateway: str | None = None
    syncs: int | None = None
    sync_failures: int | None = None
    deployments: dict[str, Any] | None = None


class MetricsTargetGroup(BaseModel):
    targets: list[str]
    labels: dict[str, str]


class MetricsTargets(RootModel[list[MetricsTargetGroup]]):
    """Prometheus HTTP service discovery: a JSON array of target groups."""
