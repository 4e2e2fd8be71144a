"""The OpenAI Batch API as a pipeline of the engine: a batch is a durable job of two steps.

1. ``requests`` runs every line of the input file through the ModelServer (batch priority, bounded
   concurrency) and persists each answer as it arrives, keyed by line: a resumed batch skips the
   lines already answered.
2. ``files`` writes the output and error files (JSONL, in input order) under ids derived from the
   batch id, so writing them again after a crash yields the same files.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import Any

from pydantic import BaseModel, ValidationError

from strata.errors import InvalidRequest, ModelNotFound, Overloaded, StrataError
from strata.orchestration.prompts import CompiledPrompt
from strata.protocol.errors import invalid_request_from
from strata.protocol.formats import ChatFormat, CompletionFormat
from strata.protocol.generation import generation_request
from strata.protocol.requests import ChatCompletionRequest, ChatMessage, CompletionRequest, PromptReference
from strata.record import RecordKind
from strata.serving.server import ModelServer
from strata.spec.pipelines import PipelineSpec, StepSpec
from strata.workflows.generation import generate
from strata.workflows.steps import StepContext, StepError, job_record
from strata.workflows.tables import BatchResult, File

ENDPOINTS: dict[str, type[ChatCompletionRequest] | type[CompletionRequest]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
}
OVERLOAD_TRIES = 5  # a line shed by admission control waits and tries again before it counts as failed

BATCH_PIPELINE = PipelineSpec(
    name="openai-batch",
    description="The OpenAI Batch API.",
    steps=[
        StepSpec(name="requests", kind="python", entrypoint="strata.workflows.batches:run_requests", max_attempts=5),
        StepSpec(name="files", kind="python", entrypoint="strata.workflows.batches:write_files", max_attempts=5),
    ],
)


class BatchLine(BaseModel):
    custom_id: str
    method: str
    url: str
    body: dict[str, Any]


def parse_batch_file(data: bytes) -> list[BatchLine]:
    """Every line a request object for a supported endpoint, custom ids unique; else StepError naming the line."""
    lines: list[BatchLine] = []
    seen: set[str] = set()
    for number, text in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not text.strip():
            continue
        where = f"line {number}"
        try:
            line = BatchLine.model_validate_json(text)
        except ValidationError as error:
            raise StepError(f"{where}: {invalid_request_from(error).message}", retryable=False, param="file") from None
        if line.method != "POST" or line.url not in ENDPOINTS:
            known = ", ".join(ENDPOINTS)
            raise StepError(f"{where}: method must be POST and url one of {known}", retryable=False, param="file")
        if line.custom_id in seen:
            raise StepError(f"{where}: duplicate custom_id '{line.custom_id}'", retryable=False, param="file")
        seen.add(line.custom_id)
        try:
            parsed = ENDPOINTS[line.url].model_validate(line.body)
        except ValidationError as error:
            raise StepError(
                f"{where}: body.{invalid_request_from(error).message}", retryable=False, param="file"
            ) from None
        if parsed.stream:
            raise StepError(f"{where}: body.stream: batch requests cannot stream", retryable=False, param="file")
        lines.append(line)
    if not lines:
        raise StepError("the file has no requests", retryable=False, param="file")
    return lines


async def read_lines(context: StepContext, file_id: str) -> list[BatchLine]:
    file = await context.services.files.file(context.tenant, file_id)
    if file is None:
        raise StepError(f"the input file '{file_id}' is gone", retryable=False)
    return parse_batch_file(await context.services.artifacts.get(context.tenant, file.sha256))


async def run_requests(value: Any, context: StepContext) -> Any:
    server = context.services.server
    if server is None:
        raise StepError("this worker has no models loaded (start it with --models)", retryable=False)
    lines = await read_lines(context, value["input_file_id"])
    store = context.services.files
    answered = {r.line for r in await store.batch_results(context.job_id)}
    gate = asyncio.Semaphore(context.services.batch_concurrency)

    allowed = value.get("models")

    async def one(index: int, line: BatchLine) -> None:
        async with gate:
            if context.cancel_requested():  # a cancelled batch stops sending requests; the job then stops
                return
            model = line.body.get("model")
            if allowed is not None and model not in allowed:  # outside the key's allow-list: as if unknown
                status, body = 404, _error_body(ModelNotFound(str(model)))
            else:
                status, body = await _serve(server, line, context)
            await store.add_batch_result(context.job_id, index, line.custom_id, status, body)

    await asyncio.gather(*(one(i, line) for i, line in enumerate(lines) if i not in answered))
    return {"requests": len(lines)}


async def _with_prompt(
    body: ChatCompletionRequest, prompt: PromptReference, context: StepContext
) -> tuple[CompiledPrompt, ChatCompletionRequest]:
    """The line's stored prompt template rendered, its messages before the line's own."""
    library = context.services.prompts
    if library is None:
        raise InvalidRequest("This server keeps no prompt templates.", param="prompt")
    template, rendered = await library.render(context.tenant, prompt.id, prompt.version, prompt.variables)
    messages = [ChatMessage(role=m["role"], content=m["content"]) for m in rendered]  # type: ignore[arg-type]
    return template, body.model_copy(update={"messages": [*messages, *body.messages]})


async def _serve(server: ModelServer, line: BatchLine, context: StepContext) -> tuple[int, Any]:
    """One request's status code and body, as the endpoint would have answered it."""
    body = ENDPOINTS[line.url].model_validate(line.body)
    template = None
    if isinstance(body, ChatCompletionRequest) and body.prompt is not None:  # as the chat route renders it
        try:
            template, body = await _with_prompt(body, body.prompt, context)
        except StrataError as error:
            return error.status, _error_body(error)
    request = generation_request(body)
    for tries in range(1, OVERLOAD_TRIES + 1):
        try:
            generated = await generate(server, body.model, request)
            break
        except Overloaded as error:
            if tries == OVERLOAD_TRIES:
                return error.status, _error_body(error)
            await asyncio.sleep(min(8.0, 0.5 * 2**tries))
        except StrataError as error:
            return error.status, _error_body(error)
    if context.services.usage is not None:
        record = job_record(context, "requests", body.model, generated, RecordKind.BATCH_LINE, template)
        await context.services.usage(record)
    logprobs = request.params.logprobs is not None
    fmt = (
        ChatFormat(model=body.model, logprobs=logprobs)
        if isinstance(body, ChatCompletionRequest)
        else CompletionFormat(model=body.model, logprobs=logprobs)
    )
    return 200, fmt.whole(generated.choices, generated.prompt_tokens, generated.completion_tokens)


def _error_body(error: StrataError) -> dict[str, Any]:
    return {"error": {"message": error.message, "type": error.error_type, "param": error.param, "code": error.code}}


async def write_files(value: Any, context: StepContext) -> Any:
    results = await context.services.files.batch_results(context.job_id)
    good = [r for r in results if r.status_code < 400]
    bad = [r for r in results if r.status_code >= 400]
    output = await _save(context, "output", [_output_line(context.job_id, r) for r in good])
    errors = await _save(context, "errors", [_error_line(context.job_id, r) for r in bad]) if bad else None
    return {"output_file_id": output, "error_file_id": errors, "completed": len(good), "failed": len(bad)}


def _request_id(job_id: str, line: int) -> str:
    return f"batch_req_{hashlib.sha256(f'{job_id}:{line}'.encode()).hexdigest()[:24]}"


def _output_line(job_id: str, result: BatchResult) -> dict[str, Any]:
    response = {"status_code": result.status_code, "request_id": _request_id(job_id, result.line), "body": result.body}
    return {"id": _request_id(job_id, result.line), "custom_id": result.custom_id, "response": response, "error": None}


def _error_line(job_id: str, result: BatchResult) -> dict[str, Any]:
    error = (result.body or {}).get("error", {})
    response = {"status_code": result.status_code, "request_id": _request_id(job_id, result.line), "body": result.body}
    return {
        "id": _request_id(job_id, result.line),
        "custom_id": result.custom_id,
        "response": response,
        "error": {"code": error.get("code"), "message": error.get("message")},
    }


async def _save(context: StepContext, kind: str, rows: list[dict[str, Any]]) -> str:
    data = b"".join(json.dumps(row).encode() + b"\n" for row in rows)
    stored = await context.services.artifacts.put(context.tenant, data)
    # Derived from the batch: a rerun of this step writes the same file, never a second one.
    file_id = f"file-{hashlib.sha256(f'{context.job_id}:{kind}'.encode()).hexdigest()[:24]}"
    file = File(
        id=file_id, tenant=context.tenant, purpose="batch_output", filename=f"{context.job_id}_{kind}.jsonl",
        bytes=stored.bytes, sha256=stored.sha256, created_at=time.time(),
    )  # fmt: skip
    await context.services.files.add_file(file)
    return file_id
