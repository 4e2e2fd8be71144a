"""The one translation from an OpenAI generation request (chat or text completion) to the serving
layer's ``GenerationRequest``: the HTTP routes, batch lines and pipeline steps all build it here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import orjson

from strata.protocol.requests import ChatCompletionRequest, CompletionRequest, JsonObjectFormat, JsonSchemaFormat
from strata.serving.generation import GenerationRequest, JsonConstraint
from strata.serving.sampling import SamplingParams

# Chat templates know system/user/assistant; OpenAI's newer "developer" role means system.
TEMPLATE_ROLE = {"developer": "system"}


def generation_request(body: ChatCompletionRequest | CompletionRequest) -> GenerationRequest:
    params = SamplingParams(
        max_tokens=body.token_limit(),
        temperature=body.temperature,
        top_p=body.top_p,
        stop=body.stop_strings(),
        seed=body.seed,
        ignore_eos=body.ignore_eos,
        n=body.n,
        logprobs=body.logprob_count(),
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
    )
    if isinstance(body, ChatCompletionRequest):
        messages = tuple({"role": TEMPLATE_ROLE.get(m.role, m.role), "content": m.text()} for m in body.messages)
        return GenerationRequest(params=params, messages=messages, constraint=_constraint(body))
    return GenerationRequest(params=params, prompt=body.prompt_text())


def step_request(text: str, *, chat: bool, params: SamplingParams) -> GenerationRequest:
    """A pipeline step's prompt: one user message for a chat model, else the raw text."""
    if chat:
        return GenerationRequest(params=params, messages=({"role": "user", "content": text},))
    return GenerationRequest(params=params, prompt=text)


def messages_request(messages: Sequence[Mapping[str, str]], *, chat: bool, params: SamplingParams) -> GenerationRequest:
    """A rendered prompt template's messages: as they are for a chat model, else their texts joined."""
    if chat:
        turns = tuple({"role": TEMPLATE_ROLE.get(m["role"], m["role"]), "content": m["content"]} for m in messages)
        return GenerationRequest(params=params, messages=turns)
    return GenerationRequest(params=params, prompt="\n\n".join(m["content"] for m in messages))


def _constraint(body: ChatCompletionRequest) -> JsonConstraint | None:
    """The grammar a response_format asks for: any JSON object, or JSON matching a schema."""
    fmt = body.response_format
    if isinstance(fmt, JsonObjectFormat):
        return JsonConstraint(schema='{"type": "object"}')
    if isinstance(fmt, JsonSchemaFormat):
        schema = fmt.json_schema.json_schema or {"type": "object"}
        return JsonConstraint(schema=orjson.dumps(schema).decode(), param="response_format.json_schema.schema")
    return None
