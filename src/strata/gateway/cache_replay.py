"""A kept answer sent again, in the shape the request asked for: one JSON body, or a stream of
OpenAI chunks (each choice's text, its finish, the usage when asked, [DONE]). The response gets a
new id and creation time; the usage it reports is the answer's own token counts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
from starlette.responses import Response

from strata.gateway.cached_answer import CachedAnswer
from strata.gateway.sse import DONE, sse_event
from strata.protocol.formats import ResponseFormat


def replay_whole(fmt: ResponseFormat, answer: CachedAnswer) -> Response:
    payload = fmt.whole(answer.choices, answer.prompt_tokens, answer.completion_tokens)
    return Response(orjson.dumps(payload), media_type="application/json")


async def replay_stream(fmt: ResponseFormat, answer: CachedAnswer, include_usage: bool) -> AsyncIterator[bytes]:
    opening = fmt.opening_chunk(len(answer.choices))
    if opening is not None:
        yield sse_event(orjson.dumps(opening))
    for choice in answer.choices:
        if choice.text or choice.logprobs:
            yield sse_event(orjson.dumps(fmt.text_chunk(choice.index, choice.text, choice.logprobs)))
        yield sse_event(orjson.dumps(fmt.finish_chunk(choice.index, choice.finish_reason or "stop")))
    if include_usage:
        yield sse_event(orjson.dumps(fmt.usage_chunk(answer.prompt_tokens, answer.completion_tokens)))
    yield DONE
