"""The JSON bodies routes answer with, as pydantic models: the OpenAPI document describes them and a
contract fuzzer checks every response against them. Handlers build the JSON directly (orjson, no
model instances on the hot path); these models only document it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatMessageOut(BaseModel):
    role: Literal["assistant"]
    content: str | None


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: None
    finish_reason: Literal["stop", "length"]


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
    logprobs: None
    finish_reason: Literal["stop", "length"]


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


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


class UsageReport(BaseModel):
    object: Literal["usage"]
    period: Literal["day", "month"]
    since: int
    data: list[UsageTotals]


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


class JobStep(BaseModel):
    name: str
    status: str
    attempts: int
    error: str | None


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


class JobList(BaseModel):
    object: Literal["list"]
    data: list[Job]


class FileObject(BaseModel):
    id: str
    object: Literal["file"]
    bytes: int
    created_at: int
    filename: str
    purpose: str


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"]
    endpoint: str
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    request_counts: dict[str, int]


class BatchList(BaseModel):
    object: Literal["list"]
    data: list[BatchObject]
