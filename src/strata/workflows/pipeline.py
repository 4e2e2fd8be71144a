"""A pipeline bound to its step functions: the DAG's order, which steps are ready, one attempt of a step,
retry backoff, and the synchronous run inside a request (the same steps, nothing persisted)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema

from strata.errors import InvalidRequest, StrataError
from strata.spec.pipelines import PipelineSpec, StepSpec
from strata.workflows.records import NewArtifact, StepStatus
from strata.workflows.steps import BoundStep, Services, StepContext, StepError, bind_pipeline, validation_problem

log = logging.getLogger(__name__)


class PipelineFailed(StrataError):
    """A synchronous run failed at a step (after its retries); the message names the step."""

    status = 500
    error_type = "server_error"
    code = "pipeline_failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    output: Any = None
    error: StepError | None = None
    artifacts: tuple[NewArtifact, ...] = ()  # written by the step, linked to the job with its output


class Pipeline:
    def __init__(self, spec: PipelineSpec, steps: dict[str, BoundStep], *, needs_models: bool | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.steps = steps
        self.deps = spec.dependencies()
        self.order = _topological(spec)
        self.needs_models = any(s.needs_models for s in steps.values()) if needs_models is None else needs_models

    def ready(self, status: Mapping[str, StepStatus]) -> list[str]:
        """Pending steps whose dependencies have all succeeded, in pipeline order."""
        return [
            name
            for name in self.order
            if status[name] == StepStatus.PENDING
            and all(status[dep] == StepStatus.SUCCEEDED for dep in self.deps[name])
        ]

    def value_for(self, name: str, job_input: Any, outputs: Mapping[str, Any]) -> Any:
        deps = self.deps[name]
        if not deps:
            return job_input
        if len(deps) == 1:
            return outputs[deps[0]]
        return {dep: outputs[dep] for dep in deps}

    def result(self, outputs: Mapping[str, Any]) -> Any:
        return outputs[self.spec.result_step()]

    def check_input(self, job_input: Any) -> None:
        """Run the root validate steps now, so bad input is refused with a 400 before a job exists."""
        for name in self.order:
            bound = self.steps[name]
            if bound.spec.kind == "validate" and not self.deps[name]:
                problem = _first_validation_error(bound, job_input)
                if problem is not None:
                    raise InvalidRequest(problem.message, param=problem.param)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object": "pipeline",
            "description": self.spec.description,
            "steps": [{"name": s.name, "kind": s.kind, "after": self.deps[s.name]} for s in self.spec.steps],
            "output": self.spec.result_step(),
        }


def bind(spec: PipelineSpec, where: str, *, needs_models: bool | None = None) -> Pipeline:
    return Pipeline(spec, bind_pipeline(spec, where), needs_models=needs_models)


def _first_validation_error(bound: BoundStep, value: Any) -> StepError | None:
    assert bound.spec.json_schema is not None
    return validation_problem(jsonschema.Draft202012Validator(bound.spec.json_schema), value)


def _topological(spec: PipelineSpec) -> list[str]:
    """Steps in an order that respects ``after``, ties kept in the order they are listed."""
    deps = spec.dependencies()
    order: list[str] = []
    remaining = [step.name for step in spec.steps]
    while remaining:
        name = next(n for n in remaining if all(dep in order for dep in deps[n]))  # the spec has no cycles
        order.append(name)
        remaining.remove(name)
    return order


def backoff_s(spec: StepSpec, attempt: int, rng: random.Random) -> float:
    """Exponential backoff with jitter: half the doubled delay fixed, half random, so retries of
    many jobs failing together spread out instead of arriving in waves."""
    delay = min(spec.max_backoff_s, spec.backoff_s * 2.0 ** (attempt - 1))
    return delay / 2 + rng.uniform(0, delay / 2)


async def attempt(bound: BoundStep, value: Any, context: StepContext) -> Outcome:
    """One try of a step; any failure comes back as an Outcome (the step runner is a boundary)."""
    name = bound.spec.name
    try:
        call = bound.run(value, context)
        output = await (call if bound.spec.timeout_s is None else asyncio.wait_for(call, bound.spec.timeout_s))
        json.dumps(output)  # persisted as JSON: refuse anything else here, not at commit time
    except StepError as error:
        return Outcome(name, error=error)
    except TimeoutError:
        return Outcome(name, error=StepError(f"timed out after {bound.spec.timeout_s:g} s"))
    except (TypeError, ValueError) as error:
        return Outcome(name, error=StepError(f"{type(error).__name__}: {error}"))
    except Exception as error:
        log.warning("step %s of job %s failed: %r", name, context.job_id, error)
        return Outcome(name, error=StepError(f"{type(error).__name__}: {error}"))
    return Outcome(name, output=output, artifacts=tuple(context.artifacts))


async def run_inline(
    pipeline: Pipeline, job_input: Any, *, tenant: str, key_id: str | None, services: Services, rng: random.Random
) -> dict[str, Any]:
    """Run every step now, inside the caller's request: retries with backoff, compensation on failure."""
    run_id = f"run_{secrets.token_hex(12)}"
    status = dict.fromkeys(pipeline.order, StepStatus.PENDING)
    outputs: dict[str, Any] = {}
    while ready := pipeline.ready(status):
        outcomes = await asyncio.gather(
            *(
                _with_retries(pipeline, name, job_input, outputs, run_id, tenant, key_id, services, rng)
                for name in ready
            )
        )
        for outcome in outcomes:
            if outcome.error is None:
                outputs[outcome.name] = outcome.output
                status[outcome.name] = StepStatus.SUCCEEDED
        failed = next((o for o in outcomes if o.error is not None), None)
        if failed is not None:
            assert failed.error is not None
            await _compensate_inline(pipeline, status, outputs, job_input, run_id, tenant, key_id, services)
            if failed.error.param is not None:
                raise InvalidRequest(failed.error.message, param=failed.error.param)
            raise PipelineFailed(f"step '{failed.name}' failed: {failed.error.message}")
    return {"output": pipeline.result(outputs), "steps": outputs}


async def _with_retries(
    pipeline: Pipeline,
    name: str,
    job_input: Any,
    outputs: dict[str, Any],
    run_id: str,
    tenant: str,
    key_id: str | None,
    services: Services,
    rng: random.Random,
) -> Outcome:
    bound = pipeline.steps[name]
    value = pipeline.value_for(name, job_input, outputs)
    for number in range(1, bound.spec.max_attempts + 1):
        context = StepContext(run_id, tenant, key_id, bound.spec, number, job_input, outputs, services, durable=False)
        outcome = await attempt(bound, value, context)
        if outcome.error is None or not outcome.error.retryable or number == bound.spec.max_attempts:
            return outcome
        await asyncio.sleep(backoff_s(bound.spec, number, rng))
    raise AssertionError("unreachable: max_attempts >= 1")


async def _compensate_inline(
    pipeline: Pipeline,
    status: dict[str, StepStatus],
    outputs: dict[str, Any],
    job_input: Any,
    run_id: str,
    tenant: str,
    key_id: str | None,
    services: Services,
) -> None:
    for name in reversed(pipeline.order):
        bound = pipeline.steps[name]
        if status[name] == StepStatus.SUCCEEDED and bound.compensate is not None:
            context = StepContext(run_id, tenant, key_id, bound.spec, 1, job_input, outputs, services, durable=False)
            try:
                await bound.compensate(outputs[name], context)
            except Exception:  # a boundary: the caller gets the original failure, the log gets this one
                log.exception("compensation of step %s (run %s) failed", name, run_id)
