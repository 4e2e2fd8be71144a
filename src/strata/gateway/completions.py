"""POST /v1/chat/completions and /v1/completions: text generation, whole or streamed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import orjson
from starlette.responses import Response

from strata.errors import DeadlineExceeded, StrataError
from strata.gateway.call import Call, require_task
from strata.gateway.chat_retrieval import ChatRetrieval
from strata.gateway.disconnect import cancel_on_disconnect
from strata.gateway.request_context import request_context
from strata.gateway.sse import DONE, SSEResponse, sse_event
from strata.observability.metrics import DeploymentMetrics
from strata.protocol.errors import error_body
from strata.protocol.formats import ChatFormat, CompletionFormat, ResponseFormat
from strata.protocol.generation import generation_request
from strata.protocol.requests import ChatCompletionRequest, CompletionRequest
from strata.record import RequestRecord
from strata.serving.deadline import Deadline
from strata.serving.deployment import Deployment
from strata.serving.generation import GenerationEvent, GenerationRequest, GenerationStream
from strata.serving.server import ModelServer


class CompletionsAPI:
    def __init__(self, server: ModelServer, retrieval: ChatRetrieval | None = None) -> None:
        self.server = server
        self.retrieval = retrieval

    async def chat(self, call: Call) -> Response:
        started = time.perf_counter()
        body = call.parse(ChatCompletionRequest)
        if body.retrieval is not None and self.retrieval is not None:  # RAG: the sources go into the prompt
            grounded = await self.retrieval.ground(call, body, body.retrieval)
            annotations = grounded.annotations
            response = await self._serve(
                call, grounded.body, generation_request(grounded.body), started, "chat completions",
                lambda model: ChatFormat(model, annotations=annotations),
            )  # fmt: skip
            response.headers["x-strata-retrieval-ms"] = f"{grounded.retrieval_ms:.3f}"
            return response
        return await self._serve(call, body, generation_request(body), started, "chat completions", ChatFormat)

    async def completions(self, call: Call) -> Response:
        started = time.perf_counter()
        body = call.parse(CompletionRequest)
        return await self._serve(call, body, generation_request(body), started, "completions", CompletionFormat)

    async def _serve(
        self,
        call: Call,
        body: ChatCompletionRequest | CompletionRequest,
        generation: GenerationRequest,
        started: float,
        endpoint: str,
        response_format: Callable[[str], ResponseFormat],
    ) -> Response:
        route = self.server.resolve(body.model)
        require_task(route, "generate", endpoint)
        receive = call.receive
        context = request_context(call, body.user)
        route.deployment.metrics.parse.observe(time.perf_counter() - started)

        async def work(
            deployment: Deployment,
        ) -> tuple[GenerationStream, GenerationEvent, AsyncIterator[GenerationEvent]]:
            # Up to the first event the try is safe to repeat elsewhere; a rejected prompt still gets its 400.
            return await deployment.generate(generation, context.deadline)

        (stream, first, events), permit, served = await route.serve(context, work, hold=True)
        stream.add_close_callback(permit.release)  # the admission slot is held until the stream ends
        metrics = self.server.deployments[served.deployment].metrics
        fmt = response_format(route.name)
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            body_events = _stream_body(
                fmt, first, _until(events, context.deadline), include_usage, metrics, call.record
            )
            return SSEResponse(body_events, headers=served.headers())
        # A client that gives up on a long generation must free its batch slot too.
        whole = _whole_response(fmt, first, _until(events, context.deadline), metrics, call.record)
        response = await cancel_on_disconnect(receive, whole)
        response.headers.update(served.headers())
        return response


def _until(events: AsyncIterator[GenerationEvent], deadline: Deadline) -> AsyncIterator[GenerationEvent]:
    """The generation's events while the client's deadline lasts; then DeadlineExceeded (a 504, or
    an in-band error once a stream has begun). Leaving early closes the generation: its slot frees."""
    return events if deadline.at is None else _bounded(events, deadline)


async def _bounded(events: AsyncIterator[GenerationEvent], deadline: Deadline) -> AsyncIterator[GenerationEvent]:
    try:
        while True:
            try:
                event = await asyncio.wait_for(anext(events), deadline.timeout_s(None))
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise DeadlineExceeded("The request's deadline passed during generation.") from None
            yield event
    finally:
        await events.aclose()  # type: ignore[attr-defined]


async def _whole_response(
    fmt: ResponseFormat,
    first: GenerationEvent,
    events: AsyncIterator[GenerationEvent],
    metrics: DeploymentMetrics,
    record: RequestRecord,
) -> Response:
    parts = [first.text]
    last = first
    async for event in events:
        parts.append(event.text)
        last = event
    started = time.perf_counter()
    assert last.finish_reason is not None
    record.tokens_in, record.tokens_out = last.prompt_tokens, last.completion_tokens
    payload = orjson.dumps(fmt.whole("".join(parts), last.finish_reason, last.prompt_tokens, last.completion_tokens))
    response = Response(payload, media_type="application/json")
    metrics.postprocess.observe(time.perf_counter() - started)
    return response


async def _stream_body(
    fmt: ResponseFormat,
    first: GenerationEvent,
    events: AsyncIterator[GenerationEvent],
    include_usage: bool,
    metrics: DeploymentMetrics,
    record: RequestRecord,
) -> AsyncIterator[bytes]:
    try:
        opening = fmt.opening_chunk()
        if opening is not None:
            yield sse_event(orjson.dumps(opening))
        event = first
        while True:
            started = time.perf_counter()
            chunks = []
            if event.text:
                chunks.append(sse_event(orjson.dumps(fmt.text_chunk(event.text))))
            if event.finish_reason is not None:
                record.tokens_in, record.tokens_out = event.prompt_tokens, event.completion_tokens
                chunks.append(sse_event(orjson.dumps(fmt.finish_chunk(event.finish_reason))))
                if include_usage:
                    usage = fmt.usage_chunk(event.prompt_tokens, event.completion_tokens)
                    chunks.append(sse_event(orjson.dumps(usage)))
                chunks.append(DONE)
            metrics.postprocess.observe(time.perf_counter() - started)
            for chunk in chunks:
                yield chunk
            if event.finish_reason is not None:
                return
            event = await anext(events)
    except StrataError as error:
        # The 200 and earlier chunks are already sent: report the failure in-band, as OpenAI does.
        yield sse_event(error_body(error.message, error.error_type, error.param, error.code))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
