"""Pipelines in the app spec: steps run in order or as a DAG, synchronously or durably as jobs.

A step receives one value: the job's input when it has no dependencies, its one dependency's
output, or ``{dependency: output}`` when it has several. What it returns is persisted once it
finishes, so a resumed job never runs it again.
"""

from __future__ import annotations

import graphlib
from typing import Any, Literal

import jinja2
import jinja2.sandbox
import jsonschema
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, model_validator

STEP_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"
PIPELINE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
ENTRYPOINT_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
RESERVED_PIPELINES = frozenset({"openai-batch", "vector-store-file"})  # the Batch and Vector Stores APIs' own

StepKind = Literal["validate", "template", "generate", "postprocess", "store", "python", "retrieve"]
"""validate: JSON Schema check of the value; template: sandboxed Jinja2; generate: call a route;
postprocess: pick a field and apply text operations; store: write the value to the artifact store;
python: ``entrypoint: package.module:function``; retrieve: search the job's tenant's vector stores
with the value (a string, or a mapping with ``query`` and optionally ``vector_store_ids``)."""

Operation = Literal["strip", "lower", "upper", "parse_json", "to_json"]

_REQUIRED_FIELD = {"validate": "json_schema", "template": "template", "generate": "model", "python": "entrypoint"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StepSpec(_Spec):
    name: str = Field(pattern=STEP_NAME_PATTERN, description="Step name, unique in its pipeline.")
    kind: StepKind = Field(description="What the step does.")
    after: list[str] | None = Field(
        default=None,
        description="Steps this one waits for (a DAG); None: the step listed before it ([] for a root).",
    )
    max_attempts: int = Field(default=3, ge=1, le=100, description="Tries before the job goes to dead letter.")
    backoff_s: float = Field(default=0.5, ge=0, le=3600, description="Wait before the first retry; doubles each time.")
    max_backoff_s: float = Field(default=60.0, ge=0, le=86_400, description="Cap on the wait between retries.")
    timeout_s: float | None = Field(default=None, gt=0, description="One try's limit; None: no limit.")
    compensate: str | None = Field(
        default=None,
        pattern=ENTRYPOINT_PATTERN,
        description="package.module:function undoing this step's side effect when the job is cancelled "
        "or goes to dead letter; called with (output, context).",
    )
    json_schema: dict[str, Any] | None = Field(default=None, description="validate: the JSON Schema of the value.")
    template: str | None = Field(
        default=None, description="template: Jinja2 source (sandboxed) seeing value, input and steps."
    )
    model: str | None = Field(default=None, description="generate: the route (model name) to call.")
    prompt: str | None = Field(
        default=None, description="generate: Jinja2 template of the prompt; None: the value itself (a string)."
    )
    prompt_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="generate: a stored prompt template (POST /v1/prompts) of the job's tenant, rendered with the "
        "value (a mapping) as its variables; instead of 'prompt'.",
    )
    prompt_version: int | None = Field(
        default=None, ge=1, description="generate: the template's version; None: its current one when the step runs."
    )
    chat: bool = Field(default=True, description="generate: send the prompt as a user message (chat template).")
    max_tokens: int = Field(default=128, ge=1, le=32_768, description="generate: most tokens to produce.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="generate: 0 is greedy.")
    seed: int | None = Field(default=None, description="generate: sampling seed.")
    pick: str | None = Field(default=None, description="postprocess: take this key of a mapping value first.")
    operations: list[Operation] = Field(default_factory=list, description="postprocess: applied in order.")
    media_type: str | None = Field(
        default=None, description="store: the artifact's media type; None: text/plain for text, else JSON."
    )
    entrypoint: str | None = Field(
        default=None, pattern=ENTRYPOINT_PATTERN, description="python: package.module:function(value, context)."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="python: passed to the step as context.options.")
    vector_store_ids: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=8,
        description="retrieve: the vector stores searched, unless the value (a mapping) names its own "
        "'vector_store_ids'.",
    )
    top_k: int = Field(default=4, ge=1, le=50, description="retrieve: how many chunks it returns.")
    min_score: float = Field(default=0.0, ge=-1, le=1, description="retrieve: chunks less similar are left out.")

    @model_validator(mode="after")
    def _kind_has_its_field(self) -> StepSpec:
        needed = _REQUIRED_FIELD.get(self.kind)
        if needed is not None and getattr(self, needed) is None:
            raise ValueError(f"a '{self.kind}' step needs '{needed}'")
        if self.prompt_id is not None and (self.kind != "generate" or self.prompt is not None):
            raise ValueError("'prompt_id' names the prompt of a generate step that has no 'prompt'")
        if self.prompt_version is not None and self.prompt_id is None:
            raise ValueError("'prompt_version' needs 'prompt_id'")
        return self


EVENT_TYPE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class TriggerSpec(_Spec):
    """What starts a pipeline besides an API call: an event, or a cron schedule (exactly one)."""

    event: str | None = Field(
        default=None,
        pattern=EVENT_TYPE_PATTERN,
        description="Start a job for each event of this type (e.g. file.uploaded; POST /v1/events publishes "
        "others), owned by the event's tenant; the job's input is the event.",
    )
    schedule: str | None = Field(
        default=None, description="Start a job at each slot of this cron expression (5 fields, UTC)."
    )
    tenant: str = Field(default="default", description="schedule: the tenant the scheduled jobs belong to.")
    input: dict[str, Any] = Field(
        default_factory=dict, description="schedule: the jobs' input; the slot is added as 'scheduled_for'."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TriggerSpec:
        if (self.event is None) == (self.schedule is None):
            raise ValueError("a trigger names exactly one of 'event' or 'schedule'")
        if self.schedule is not None and not croniter.is_valid(self.schedule):
            raise ValueError(
                f"schedule '{self.schedule}' is not a valid cron expression (5 fields, e.g. '*/5 * * * *')"
            )
        return self


class PipelineSpec(_Spec):
    name: str = Field(pattern=PIPELINE_NAME_PATTERN, description="Pipeline name, unique in the app.")
    description: str | None = Field(default=None, description="Shown by GET /v1/pipelines.")
    steps: list[StepSpec] = Field(min_length=1, description="In order; `after` turns them into a DAG.")
    output: str | None = Field(default=None, description="The step whose output is the result; None: the last one.")
    triggers: list[TriggerSpec] = Field(
        default_factory=list, description="Events and schedules that start this pipeline as a durable job."
    )

    def dependencies(self) -> dict[str, list[str]]:
        """Each step's dependencies, the in-order default filled in."""
        deps: dict[str, list[str]] = {}
        for index, step in enumerate(self.steps):
            default = [self.steps[index - 1].name] if index else []
            deps[step.name] = list(step.after) if step.after is not None else default
        return deps

    def result_step(self) -> str:
        return self.output if self.output is not None else self.steps[-1].name


class WorkflowsSpec(_Spec):
    workers: int = Field(
        default=1,
        ge=0,
        le=64,
        description="Worker loops `strata serve` runs in-process; 0: leave jobs to `strata worker`.",
    )
    concurrency: int = Field(default=8, ge=1, le=1024, description="Jobs one worker runs at once.")
    lease_s: float = Field(
        default=30.0, gt=0, le=3600, description="A claimed job's lease; heartbeats renew it every third of it."
    )
    poll_ms: float = Field(default=200.0, ge=1, le=60_000, description="How often an idle worker looks for work.")
    batch_concurrency: int = Field(default=8, ge=1, le=1024, description="Requests of one batch in flight at once.")
    shutdown_grace_s: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description="On stop, how long running steps may finish before their jobs are released.",
    )


def pipeline_problems(pipelines: list[PipelineSpec], generate_routes: set[str]) -> list[str]:
    """Cross-checks naming the field: unique names, known dependencies, no cycles, generate steps
    naming a text-generation route, templates that compile, schemas that are valid JSON Schema."""
    problems: list[str] = []
    seen: set[str] = set()
    for index, pipeline in enumerate(pipelines):
        where = f"pipelines[{index}]"
        if pipeline.name in seen:
            problems.append(f"{where}.name: duplicate name '{pipeline.name}'")
        if pipeline.name in RESERVED_PIPELINES:
            problems.append(f"{where}.name: '{pipeline.name}' is reserved (the Batch API's pipeline)")
        seen.add(pipeline.name)
        problems += _graph_problems(pipeline, where)
        for position, step in enumerate(pipeline.steps):
            problems += _step_problems(step, f"{where}.steps[{position}]", generate_routes)
    return problems


def _graph_problems(pipeline: PipelineSpec, where: str) -> list[str]:
    problems: list[str] = []
    names = [step.name for step in pipeline.steps]
    for position, name in enumerate(names):
        if name in names[:position]:
            problems.append(f"{where}.steps[{position}].name: duplicate step '{name}'")
    for position, step in enumerate(pipeline.steps):
        for dep in step.after or []:
            if dep not in names or dep == step.name:
                problems.append(f"{where}.steps[{position}].after: '{dep}' is not another step of this pipeline")
    if pipeline.output is not None and pipeline.output not in names:
        problems.append(f"{where}.output: unknown step '{pipeline.output}'")
    if problems:
        return problems
    try:
        graphlib.TopologicalSorter(pipeline.dependencies()).prepare()
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        problems.append(f"{where}.steps: the steps' 'after' form a cycle ({cycle})")
    return problems


def _step_problems(step: StepSpec, where: str, generate_routes: set[str]) -> list[str]:
    problems: list[str] = []
    if step.kind == "generate" and step.model not in generate_routes:
        known = ", ".join(sorted(generate_routes)) or "none"
        problems.append(f"{where}.model: '{step.model}' is not a text-generation route (known: {known})")
    environment = jinja2.sandbox.SandboxedEnvironment()
    for field in ("template", "prompt"):
        source = getattr(step, field)
        if source is not None:
            try:
                environment.parse(source)
            except jinja2.TemplateSyntaxError as error:
                problems.append(f"{where}.{field}: template error on line {error.lineno}: {error.message}")
    if step.json_schema is not None:
        try:
            jsonschema.Draft202012Validator.check_schema(step.json_schema)
        except jsonschema.SchemaError as error:
            problems.append(f"{where}.json_schema: not a valid JSON Schema: {error.message}")
    if step.backoff_s > step.max_backoff_s:
        problems.append(f"{where}.backoff_s: larger than max_backoff_s ({step.max_backoff_s:g})")
    return problems
