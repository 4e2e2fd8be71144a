"""POST /v1/chat/completions and /v1/completions: text generation, whole or streamed."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import orjson
from starlette.responses import Response

from strata.errors import DeadlineExceeded, InvalidRequest, StrataError
from strata.gateway.cache_key import Prompt
from strata.gateway.cache_replay import replay_stream, replay_whole
from strata.gateway.call import Call, require_task
from strata.gateway.chat_messages import ChatMessages
from strata.gateway.chat_retrieval import ChatRetrieval
from strata.gateway.disconnect import cancel_on_disconnect
from strata.gateway.request_context import request_context
from strata.gateway.response_cache import Lookup, ResponseCache, RouteCache
from strata.gateway.sse import DONE, SSEResponse, sse_event
from strata.governance.layer import Guardrails, GuardSet
from strata.governance.stream import OutputWindow
from strata.observability.behaviour import BehaviourMonitor
from strata.observability.metrics import DeploymentMetrics
from strata.protocol.errors import error_body
from strata.protocol.formats import ChatFormat, CompletionFormat, ResponseFormat
from strata.protocol.generation import generation_request
from strata.protocol.requests import ChatCompletionRequest, CompletionRequest
from strata.record import RequestRecord
from strata.serving.deadline import Deadline
from strata.serving.deployment import Deployment
from strata.serving.generation import Choice, Choices, GenerationEvent, GenerationRequest, GenerationStream
from strata.serving.route import Route, Served
from strata.serving.server import ModelServer
from strata.workflows.prompt_library import PromptLibrary

OutputCheck = Callable[[str], Awaitable[str]]
Keep = Callable[[list[Choice], int], None]  # keeps a finished answer in the response cache


class CompletionsAPI:
    def __init__(
        self,
        server: ModelServer,
        guardrails: Guardrails | None = None,
        retrieval: ChatRetrieval | None = None,
        behaviour: BehaviourMonitor | None = None,
        prompts: PromptLibrary | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self.server = server
        self.behaviour = behaviour  # samples prompts for the route's drift windows (embedded off the path)
        self.guardrails = guardrails if guardrails is not None and guardrails.active else None
        self.messages = ChatMessages(retrieval, prompts)
        self.caches = cache.routes if cache is not None else {}

    async def chat(self, call: Call) -> Response:
        started = time.perf_counter()
        body = call.parse(ChatCompletionRequest)
        if not self.messages.needed(body):
            return await self._serve(call, body, generation_request(body), started, "chat completions", ChatFormat)
        # A prompt template and/or retrieval build the messages the model sees.
        built = await self.messages.build(call, body)
        annotations = built.annotations
        response = await self._serve(
            call, built.body, generation_request(built.body), started, "chat completions",
            lambda model, logprobs=False: ChatFormat(model, logprobs=logprobs, annotations=annotations),
        )  # fmt: skip
        if built.retrieval_ms is not None:
            response.headers["x-strata-retrieval-ms"] = f"{built.retrieval_ms:.3f}"
        return response

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
        response_format: Callable[..., ResponseFormat],  # called with model= and logprobs=
    ) -> Response:
        route = self.server.resolve(body.model)
        require_task(route, "generate", endpoint)
        receive = call.receive
        context = request_context(call, body.user)
        guards = self.guardrails.for_request(route.name, call.record.tenant) if self.guardrails else None
        if guards is not None and guards.output:
            _check_guardable(body, generation)
        if guards is not None and guards.input:
            generation = await self._guard_input(guards, generation, call.record)
        route.deployment.metrics.parse.observe(time.perf_counter() - started)
        if self.behaviour is not None and self.behaviour.watches(route.name):
            self.behaviour.offer_text(route.name, _prompt_text(generation))
        # After the input guards: a hit is looked up by what the model would see, and the guards still ran.
        cache = self.caches.get(route.name)
        lookup: Lookup | None = None
        if cache is not None:
            fresh, store = _cache_control(call)
            lookup = await cache.lookup(call.record, endpoint, generation, context, _template_of(call.record), fresh)
            if lookup.answer is not None:
                return _replay(call.record, body, route, lookup, response_format, generation)

        async def work(
            deployment: Deployment,
        ) -> tuple[GenerationStream, GenerationEvent, AsyncIterator[GenerationEvent]]:
            # Up to the first event the try is safe to repeat elsewhere; a rejected prompt still gets its 400.
            return await deployment.generate(generation, context.deadline)

        picked = lookup.version if lookup is not None else None
        (stream, first, events), permit, served = await route.serve(context, work, hold=True, picked=picked)
        stream.add_close_callback(permit.release)  # the admission slot is held until the stream ends
        record = call.record
        record.first_token = time.perf_counter()
        metrics = self.server.deployments[served.deployment].metrics
        metrics.time_to_first_token.observe(record.first_token - record.received)
        fmt = response_format(model=route.name, logprobs=generation.params.logprobs is not None)
        events = _until(events, context.deadline)
        check: OutputCheck | None = None
        if guards is not None and guards.output:
            assert self.guardrails is not None
            if body.stream:
                events = _guarded(first, events, self.guardrails, guards, call.record)
                first = await anext(events)  # a block found in the first window is still a plain 400
            else:
                check = _output_check(self.guardrails, guards, call.record)
        headers = served.headers()
        keep = None
        if cache is not None and lookup is not None:
            headers["x-strata-cache"] = lookup.header
            keep = _keeper(cache, lookup, served) if store else None
        if body.stream:
            include_usage = body.stream_options is not None and body.stream_options.include_usage
            body_events = _stream_body(fmt, body.n, first, events, include_usage, metrics, call.record, keep)
            return SSEResponse(body_events, headers=headers)
        # A client that gives up on a long generation must free its batch slot too.
        whole = _whole_response(fmt, first, events, metrics, call.record, check, keep)
        response = await cancel_on_disconnect(receive, whole)
        response.headers.update(headers)
        return response

    async def _guard_input(
        self, guards: GuardSet, generation: GenerationRequest, record: RequestRecord
    ) -> GenerationRequest:
        """The request after its input guards: the same object when nothing was redacted."""
        assert self.guardrails is not None
        if generation.messages is not None:
            texts = [m["content"] for m in generation.messages]
        else:
            texts = [generation.prompt or ""]
        checked = await self.guardrails.check_input(guards.input, texts, record)
        if checked == texts:
            return generation
        if record.prompt is not None:  # a kept prompt is kept as the model saw it
            record.prompt = "\n".join(checked)
        if record.kept_prompt is not None:  # so is one the data policy keeps: a redaction is never undone
            record.kept_prompt = "\n".join(checked)
        if generation.messages is not None:
            messages = tuple({**m, "content": t} for m, t in zip(generation.messages, checked, strict=True))
            return dataclasses.replace(generation, messages=messages)
        return dataclasses.replace(generation, prompt=checked[0])


def _prompt_text(generation: GenerationRequest) -> str:
    """What drift monitoring embeds of a prompt: the last message (the new input), or the prompt."""
    if generation.messages:
        return str(generation.messages[-1].get("content") or "")
    return generation.prompt or ""


def _cache_control(call: Call) -> tuple[bool, bool]:
    """(fresh, store) from the request's Cache-Control, as HTTP means it: ``no-cache`` asks for an answer
    from the model (which is then kept), ``no-store`` also asks that it not be kept."""
    for name, value in call.scope["headers"]:
        if name == b"cache-control":
            directives = value.lower()
            no_store = b"no-store" in directives
            return no_store or b"no-cache" in directives, not no_store
    return False, True


def _template_of(record: RequestRecord) -> Prompt | None:
    """The stored prompt template (id, version) that built the request's messages, if one did."""
    if record.prompt_id is None or record.prompt_version is None:
        return None
    return record.prompt_id, record.prompt_version


def _replay(
    record: RequestRecord,
    body: ChatCompletionRequest | CompletionRequest,
    route: Route,
    lookup: Lookup,
    response_format: Callable[..., ResponseFormat],
    generation: GenerationRequest,
) -> Response:
    """Answer from the cache. The record says which version's answer it is and that it was cached:
    no model ran, so the request is not billed (no tokens, no compute; usage counts it as cached)."""
    assert lookup.answer is not None
    assert lookup.version is not None
    served = Served(route.name, lookup.version, None, route.versions[lookup.version].name)
    record.served_route, record.served_version, record.deployment = served.route, served.version, served.deployment
    record.cache, record.compute_s = lookup.result, 0.0
    record.finish_reason = lookup.answer.choices[0].finish_reason
    fmt = response_format(model=route.name, logprobs=generation.params.logprobs is not None)
    headers = {**served.headers(), "x-strata-cache": lookup.header}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        return SSEResponse(replay_stream(fmt, lookup.answer, include_usage), headers=headers)
    response = replay_whole(fmt, lookup.answer)
    response.headers.update(headers)
    return response


def _keeper(cache: RouteCache, lookup: Lookup, served: Served) -> Keep | None:
    if lookup.key is None:
        return None

    def keep(choices: list[Choice], prompt_tokens: int) -> None:
        cache.keep(lookup, served, choices, prompt_tokens)

    return keep


def _check_guardable(body: ChatCompletionRequest | CompletionRequest, generation: GenerationRequest) -> None:
    """Refuse what output guards cannot hold back: log probabilities carry each token's raw text (a
    redaction would leak through them), and one window holds one streamed answer at a time."""
    if generation.params.logprobs is not None:
        raise InvalidRequest(
            "logprobs are not available on a route with output guards: they would show the text the guards "
            "redact or block.",
            param="logprobs",
        )
    if body.stream and body.n > 1:
        raise InvalidRequest(
            "n > 1 cannot be streamed through this route's output guards (they hold back one answer's text "
            "at a time): ask for n = 1, or for the whole response (stream: false).",
            param="n",
        )


def _output_check(guardrails: Guardrails, guards: GuardSet, record: RequestRecord) -> OutputCheck:
    async def check(text: str) -> str:
        return await guardrails.check_output(guards.output, text, record)

    return check


async def _guarded(
    first: GenerationEvent,
    events: AsyncIterator[GenerationEvent],
    guardrails: Guardrails,
    guards: GuardSet,
    record: RequestRecord,
) -> AsyncIterator[GenerationEvent]:
    """The stream's events with their text passed through the output window: held back, scanned,
    redacted; a block raises GuardrailBlocked (the stream's final, in-band error event). Guards that
    ask a model judge the whole answer once, at its end, before the window's last text leaves."""
    window = OutputWindow(guards.output, guards.hold_back_tokens, guards.hold_back_ms)
    asking = [g for g in guards.output if g.asks]
    whole: list[str] = []
    pending: asyncio.Future[GenerationEvent] | None = None
    event = first
    decoded = 0  # completion tokens so far: the window counts tokens, an event may carry several
    try:
        while True:
            if asking:
                whole.append(event.text)
            tokens, decoded = max(0, event.completion_tokens - decoded), max(decoded, event.completion_tokens)
            if event.finish_reason is not None:
                if asking:
                    await guardrails.check_output(asking, "".join(whole), record)
                yield dataclasses.replace(event, text=window.push(event.text, tokens) + window.flush())
                return
            yield dataclasses.replace(event, text=window.push(event.text, tokens))
            due = window.due_in_s()
            if due is None and pending is None:  # nothing to release by time: just wait for the model
                event = await anext(events)
                continue
            # A time-bounded window: wake when the oldest held text is due even if no token came.
            pending = pending or asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=due)
            if not done:
                event = dataclasses.replace(event, text="", finish_reason=None)
                released = window.release_due()
                if released:
                    yield dataclasses.replace(event, text=released)
                continue
            event, pending = pending.result(), None
    finally:
        if pending is not None:  # the generator must be idle before it can be closed
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        record.guard_s += window.guard_s
        for made in window.decisions():
            guardrails.note(record, made)
        await events.aclose()  # type: ignore[attr-defined]


def _finished(
    record: RequestRecord,
    at: float,
    finish_reason: str | None,
    prompt_tokens: int,
    completion_tokens: int,
    longest: int,
    metrics: DeploymentMetrics,
) -> None:
    """The generation has ended: its tokens (summed over choices), why it stopped, and the time per
    output token of its longest choice (the choices decode side by side)."""
    record.inference_ended, record.finish_reason = at, finish_reason
    record.tokens_in, record.tokens_out = prompt_tokens, completion_tokens
    if record.first_token and longest > 1:
        metrics.time_per_output_token.observe((at - record.first_token) / (longest - 1))


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
    check: OutputCheck | None = None,
    keep: Keep | None = None,
) -> Response:
    choices = Choices()
    choices.add(first)
    if not first.ends_stream:
        async for event in events:
            choices.add(event)
    started = time.perf_counter()
    ordered = choices.ordered()
    if check is not None:  # the output guards judge each choice's whole text
        for choice in ordered:
            choice.text = await check(choice.text)
    longest = max(choice.completion_tokens for choice in ordered)
    _finished(
        record, started, ordered[0].finish_reason, choices.prompt_tokens, choices.completion_tokens, longest, metrics
    )
    if keep is not None:  # after the output guards: only an answer they passed is kept
        keep(ordered, choices.prompt_tokens)
    payload = orjson.dumps(fmt.whole(ordered, choices.prompt_tokens, choices.completion_tokens))
    response = Response(payload, media_type="application/json")
    metrics.postprocess.observe(time.perf_counter() - started)
    return response


async def _stream_body(
    fmt: ResponseFormat,
    n: int,
    first: GenerationEvent,
    events: AsyncIterator[GenerationEvent],
    include_usage: bool,
    metrics: DeploymentMetrics,
    record: RequestRecord,
    keep: Keep | None = None,
) -> AsyncIterator[bytes]:
    finished_tokens = 0  # completion tokens of the choices that have finished (n > 1 sums them)
    kept = Choices() if keep is not None else None  # the answer as sent (after any output guards)
    try:
        opening = fmt.opening_chunk(n)
        if opening is not None:
            yield sse_event(orjson.dumps(opening))
        event = first
        while True:
            started = time.perf_counter()
            chunks = []
            if kept is not None:
                kept.add(event)
            if event.text or event.logprobs:
                chunks.append(sse_event(orjson.dumps(fmt.text_chunk(event.index, event.text, event.logprobs))))
            if event.finish_reason is not None:
                finished_tokens += event.completion_tokens
                chunks.append(sse_event(orjson.dumps(fmt.finish_chunk(event.index, event.finish_reason))))
            if event.ends_stream:
                _finished(record, started, event.finish_reason, event.prompt_tokens, finished_tokens,
                          event.completion_tokens, metrics)  # fmt: skip
                if include_usage:
                    chunks.append(sse_event(orjson.dumps(fmt.usage_chunk(event.prompt_tokens, finished_tokens))))
                chunks.append(DONE)
                if keep is not None and kept is not None:
                    keep(kept.ordered(), kept.prompt_tokens)
            metrics.postprocess.observe(time.perf_counter() - started)
            for chunk in chunks:
                yield chunk
            if event.ends_stream:
                return
            event = await anext(events)
    except StrataError as error:
        # The 200 and earlier chunks are already sent: report the failure in-band, as OpenAI does.
        yield sse_event(error_body(error.message, error.error_type, error.param, error.code))
    finally:
        await events.aclose()  # type: ignore[attr-defined]
