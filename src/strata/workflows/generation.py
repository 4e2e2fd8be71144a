"""Text generation for jobs: through the in-process ModelServer, so a job's generate step takes the
same router, admission control, batcher, breakers and fallbacks as an HTTP request - at batch priority."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from strata.errors import InvalidRequest
from strata.serving.admission import Priority
from strata.serving.deployment import Deployment
from strata.serving.generation import Choice, Choices, GenerationEvent, GenerationRequest, GenerationStream
from strata.serving.route import RequestContext, Served
from strata.serving.server import ModelServer

JOB_CONTEXT = RequestContext(priority=Priority.BATCH)  # jobs yield to interactive requests when shedding
INLINE_CONTEXT = RequestContext(priority=Priority.INTERACTIVE)  # a synchronous run is a request like any other


@dataclass(frozen=True, slots=True)
class Generated:
    text: str  # the first choice's (a pipeline step asks for one)
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int  # summed over choices
    served: Served
    compute_s: float
    choices: tuple[Choice, ...]  # every choice, by index (a batch line may ask for n > 1)


async def generate(
    server: ModelServer, model: str, request: GenerationRequest, context: RequestContext = JOB_CONTEXT
) -> Generated:
    """The whole generation of ``request`` on route ``model``."""
    started = time.perf_counter()
    route = server.resolve(model)
    if route.task != "generate":
        raise InvalidRequest(f"The model '{model}' does not generate text (it serves {route.task}).", param="model")

    async def work(deployment: Deployment) -> tuple[GenerationStream, GenerationEvent, AsyncGenerator[GenerationEvent]]:
        stream, first, events = await deployment.generate(request, context.deadline)
        assert isinstance(events, AsyncGenerator)
        return stream, first, events

    (stream, first, events), permit, served = await route.serve(context, work, hold=True)
    stream.add_close_callback(permit.release)  # the admission slot is held until the generation ends
    choices = Choices()
    choices.add(first)
    try:
        if not first.ends_stream:
            async for event in events:
                choices.add(event)
    finally:
        await events.aclose()  # closes the stream: its batch slot and admission permit free at once
    ordered = choices.ordered()
    assert ordered[0].finish_reason is not None
    return Generated(
        ordered[0].text, ordered[0].finish_reason, choices.prompt_tokens, choices.completion_tokens, served,
        time.perf_counter() - started, tuple(ordered),
    )  # fmt: skip
