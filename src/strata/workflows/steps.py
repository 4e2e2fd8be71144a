"""The step registry: the built-in steps, custom ``entrypoint`` steps, and what every step is handed.

A step is ``async def step(value, context) -> output`` (a plain function works too; it runs on a
thread). Its output must be JSON: the engine persists it when the step finishes, so a resumed job
gets it back instead of running the step again.

Execution is at-least-once: a worker can die after a step's side effect and before its completion
is committed. A step with side effects makes them exactly-once with ``context.idempotency_key``
(the job id and step name, the same on every attempt) - e.g. by recording the key in the same
transaction as the effect - and undoes them in its ``compensate`` handler.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jinja2
import jinja2.sandbox
import jsonschema

from strata.data import ArtifactStore, StoredArtifact
from strata.data.vector_index import VectorIndex
from strata.errors import InvalidRequest, NotFound, SpecError, StrataError
from strata.models.python_model import load_entrypoint
from strata.orchestration.prompts import CompiledPrompt
from strata.principal import Principal
from strata.protocol.generation import messages_request, step_request
from strata.record import RecordKind, RequestRecord
from strata.serving.sampling import SamplingParams
from strata.serving.server import ModelServer
from strata.spec.pipelines import PipelineSpec, StepSpec
from strata.spec.retrieval import RetrievalSpec
from strata.workflows.file_store import FileStore
from strata.workflows.generation import INLINE_CONTEXT, JOB_CONTEXT, Generated, generate
from strata.workflows.prompt_library import PromptLibrary
from strata.workflows.records import NewArtifact
from strata.workflows.store import JobStore


class StepError(Exception):
    """Raise from a step to fail it with a message; ``retryable=False`` skips its remaining attempts."""

    def __init__(self, message: str, *, retryable: bool = True, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.param = param


StepTraceSink = Callable[[str, RequestRecord], None]
"""Takes a job id and the record of one attempt of one of its steps, once it has ended (tracing)."""

UsageSink = Callable[[RequestRecord], Awaitable[None]]
"""Takes the record of billable work a job did (a generate step, a batch line): the access layer
records usage, budget and audit from it exactly as for an HTTP request."""


def job_record(
    context: StepContext,
    step: str,
    model: str,
    generated: Generated,
    kind: RecordKind,
    prompt: CompiledPrompt | None = None,
) -> RequestRecord:
    """The request record of one generation a job made: the same record an HTTP request produces."""
    record = RequestRecord(
        "JOB", f"/v1/jobs/{context.job_id}/steps/{step}", route="/v1/jobs/{job_id}/steps/{step}", kind=kind,
        caller=Principal(context.tenant, context.key_id, frozenset({"jobs"})), model=model,
        served_route=generated.served.route, served_version=generated.served.version,
        deployment=generated.served.deployment or None, tokens_in=generated.prompt_tokens,
        tokens_out=generated.completion_tokens, status=200, response_bytes=len(generated.text.encode()),
        compute_s=generated.compute_s, prompt_id=prompt.prompt_id if prompt else None,
        prompt_version=prompt.version if prompt else None,
    )  # fmt: skip
    record.last_byte = record.received + generated.compute_s
    return record


@dataclass(frozen=True, slots=True)
class Services:
    """What steps may use, built once per gateway or worker process."""

    artifacts: ArtifactStore
    store: JobStore
    files: FileStore
    server: ModelServer | None = None  # None in a worker that loaded no models
    usage: UsageSink | None = None
    batch_concurrency: int = 8
    trace: StepTraceSink | None = None
    vectors: VectorIndex | None = None  # the vector stores' index (ingestion writes it, retrieve steps read it)
    retrieval: RetrievalSpec = field(default_factory=RetrievalSpec)
    prompts: PromptLibrary | None = None  # stored prompt templates (generate steps naming prompt_id)


@dataclass(slots=True)
class StepContext:
    job_id: str
    tenant: str
    key_id: str | None
    step: StepSpec
    attempt: int
    input: Any
    outputs: Mapping[str, Any]  # finished steps' outputs by name
    services: Services
    durable: bool = True  # False in a synchronous run inside a request
    artifacts: list[NewArtifact] = field(default_factory=list)
    # Whether the job's cancel was asked: a long step may return early (the job stops at the boundary).
    cancel_requested: Callable[[], bool] = field(default=lambda: False)

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and resumptions: key a side effect with it to apply it once."""
        return f"{self.job_id}:{self.step.name}"

    @property
    def options(self) -> dict[str, Any]:
        return self.step.options

    async def put_artifact(self, data: bytes, media_type: str) -> StoredArtifact:
        """Write ``data`` to the tenant's artifact store; it is linked to the job when the step finishes."""
        stored = await self.services.artifacts.put(self.tenant, data)
        self.artifacts.append(NewArtifact(stored.sha256, stored.bytes, media_type))
        return stored


StepFunction = Callable[[Any, StepContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class BoundStep:
    spec: StepSpec
    run: StepFunction
    compensate: StepFunction | None

    @property
    def needs_models(self) -> bool:
        return self.spec.kind in ("generate", "retrieve")


_ENVIRONMENT = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


def bind_pipeline(pipeline: PipelineSpec, where: str) -> dict[str, BoundStep]:
    """Each step's function, custom entrypoints imported now so a typo fails at start, not mid-job."""
    return {
        step.name: BoundStep(
            step,
            _runner(step, f"{where}.steps[{position}]"),
            None if step.compensate is None else _entrypoint(step.compensate, f"{where}.steps[{position}].compensate"),
        )
        for position, step in enumerate(pipeline.steps)
    }


def _runner(step: StepSpec, where: str) -> StepFunction:
    if step.kind == "validate":
        assert step.json_schema is not None
        return _validate_step(jsonschema.Draft202012Validator(step.json_schema))
    if step.kind == "template":
        assert step.template is not None
        return _template_step(_ENVIRONMENT.from_string(step.template))
    if step.kind == "generate":
        return _generate_step(None if step.prompt is None else _ENVIRONMENT.from_string(step.prompt))
    if step.kind == "postprocess":
        return _postprocess
    if step.kind == "store":
        return _store
    if step.kind == "retrieve":  # by name: the retrieve step reads the catalogue, which imports this module
        return _entrypoint("strata.workflows.retrieve_step:retrieve", f"{where}.kind")
    assert step.entrypoint is not None
    return _entrypoint(step.entrypoint, f"{where}.entrypoint")


def _entrypoint(entrypoint: str, where: str) -> StepFunction:
    try:
        function = load_entrypoint(entrypoint)
    except SpecError as error:
        raise SpecError(f"{where}: {error.message.removeprefix('entrypoint: ')}", param=where) from None
    if inspect.iscoroutinefunction(function):
        return function

    async def on_a_thread(value: Any, context: StepContext) -> Any:
        return await asyncio.to_thread(function, value, context)  # blocking work stays off the event loop

    return on_a_thread


def validation_problem(validator: jsonschema.Draft202012Validator, value: Any) -> StepError | None:
    """The first way ``value`` breaks the schema, naming the field (``input.items[2].name``)."""
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    path = "input" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return StepError(f"{path}: {error.message}", retryable=False, param=path)


def _validate_step(validator: jsonschema.Draft202012Validator) -> StepFunction:
    async def validate(value: Any, context: StepContext) -> Any:
        problem = validation_problem(validator, value)
        if problem is not None:
            raise problem
        return value

    return validate


def _render(template: jinja2.Template, value: Any, context: StepContext) -> str:
    try:
        return template.render(value=value, input=context.input, steps=dict(context.outputs))
    except jinja2.exceptions.SecurityError as error:
        raise StepError(f"template refused an unsafe operation: {error}", retryable=False) from None
    except (jinja2.UndefinedError, TypeError, ValueError) as error:
        raise StepError(f"template error: {error}", retryable=False) from None


def _template_step(template: jinja2.Template) -> StepFunction:
    async def render(value: Any, context: StepContext) -> Any:
        return _render(template, value, context)

    return render


def _generate_step(prompt: jinja2.Template | None) -> StepFunction:
    async def generate_step(value: Any, context: StepContext) -> Any:
        server = context.services.server
        if server is None:
            raise StepError("this worker has no models loaded (start it with --models)", retryable=False)
        spec = context.step
        assert spec.model is not None
        params = SamplingParams(max_tokens=spec.max_tokens, temperature=spec.temperature, seed=spec.seed)
        stored = await _stored_prompt(value, context) if spec.prompt_id is not None else None
        if stored is not None:
            template, messages = stored
            request = messages_request(messages, chat=spec.chat, params=params)
        else:
            template, text = None, _render(prompt, value, context) if prompt is not None else value
            if not isinstance(text, str):
                message = "a generate step needs a text prompt: give 'prompt' or 'prompt_id', or feed it a string"
                raise StepError(message, retryable=False)
            request = step_request(text, chat=spec.chat, params=params)
        try:
            generated = await generate(server, spec.model, request, JOB_CONTEXT if context.durable else INLINE_CONTEXT)
        except StrataError as error:  # a bad prompt will not get better; overload and failures may
            raise StepError(error.message, retryable=error.status >= 500 or error.status == 429) from None
        if context.services.usage is not None:
            record = job_record(context, spec.name, spec.model, generated, RecordKind.JOB_STEP, template)
            await context.services.usage(record)
        return {
            "text": generated.text,
            "finish_reason": generated.finish_reason,
            "usage": {"prompt_tokens": generated.prompt_tokens, "completion_tokens": generated.completion_tokens},
        }

    return generate_step


async def _stored_prompt(value: Any, context: StepContext) -> tuple[CompiledPrompt, list[dict[str, str]]]:
    """The step's stored prompt template (its tenant's), rendered with the value as its variables."""
    spec, library = context.step, context.services.prompts
    assert spec.prompt_id is not None
    if library is None:
        raise StepError("this process keeps no prompt templates", retryable=False)
    if not isinstance(value, Mapping):
        raise StepError(f"prompt '{spec.prompt_id}' takes its variables from a mapping, got "
                        f"{type(value).__name__}", retryable=False, param="prompt.variables")  # fmt: skip
    try:
        return await library.render(context.tenant, spec.prompt_id, spec.prompt_version, value)
    except (InvalidRequest, NotFound) as error:  # a missing prompt or bad variables will not get better
        raise StepError(error.message, retryable=False, param=error.param) from None


_TEXT_OPERATIONS: dict[str, Callable[[str], str]] = {"strip": str.strip, "lower": str.lower, "upper": str.upper}


async def _postprocess(value: Any, context: StepContext) -> Any:
    spec = context.step
    if spec.pick is not None:
        if not isinstance(value, Mapping) or spec.pick not in value:
            raise StepError(f"postprocess: the value has no key '{spec.pick}'", retryable=False)
        value = value[spec.pick]
    for operation in spec.operations:
        if operation == "to_json":
            value = json.dumps(value, sort_keys=True)
        elif not isinstance(value, str):
            raise StepError(f"postprocess: '{operation}' needs text, got {type(value).__name__}", retryable=False)
        elif operation == "parse_json":
            try:
                value = json.loads(value)
            except json.JSONDecodeError as error:
                raise StepError(f"postprocess: the text is not JSON: {error}", retryable=False) from None
        else:
            value = _TEXT_OPERATIONS[operation](value)
    return value


async def _store(value: Any, context: StepContext) -> Any:
    if isinstance(value, str):
        data, media_type = value.encode(), "text/plain; charset=utf-8"
    else:
        data, media_type = json.dumps(value, sort_keys=True).encode(), "application/json"
    media_type = context.step.media_type or media_type
    stored = await context.put_artifact(data, media_type)
    return {"artifact_id": stored.sha256, "bytes": stored.bytes, "media_type": media_type}
