"""The messages a chat request's model sees.

1. A stored prompt template (the ``prompt`` field) gives the first messages, rendered with the
   request's variables; the request's own ``messages`` follow them, in order.
2. With retrieval, the search text is the last user message of the request's own messages, else of
   the template's rendered messages. The sources found go where the template places them (it names
   ``context``: the numbered sources as text, or ``chunks``: one mapping per source); a template
   that names neither, or no template, gets them as the first system message (the app's
   ``retrieval.template``), as before templates existed.

A request with neither field passes through untouched, at no cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from strata.errors import InvalidRequest
from strata.gateway.call import Call
from strata.gateway.chat_retrieval import ChatRetrieval, Sources
from strata.protocol.requests import ChatCompletionRequest, ChatMessage
from strata.workflows.prompt_library import PromptLibrary


@dataclass(frozen=True, slots=True)
class Built:
    body: ChatCompletionRequest  # with the messages the model sees
    annotations: list[dict[str, Any]] | None  # the sources' citations (retrieval only)
    retrieval_ms: float | None


class ChatMessages:
    def __init__(self, retrieval: ChatRetrieval | None, prompts: PromptLibrary | None) -> None:
        self.retrieval = retrieval
        self.prompts = prompts

    def needed(self, body: ChatCompletionRequest) -> bool:
        return body.prompt is not None or (body.retrieval is not None and self.retrieval is not None)

    async def build(self, call: Call, body: ChatCompletionRequest) -> Built:
        compiled, variables = None, {}
        if body.prompt is not None:
            if self.prompts is None:
                raise InvalidRequest("This server keeps no prompt templates.", param="prompt")
            compiled = await self.prompts.resolve(call.caller.tenant, body.prompt.id, body.prompt.version)
            variables = compiled.bind(body.prompt.variables)
            call.record.prompt_id, call.record.prompt_version = compiled.prompt_id, compiled.version
        sources = None
        if body.retrieval is not None and self.retrieval is not None:
            question = _last_user_text([(m.role, m.text()) for m in body.messages])
            if not question and compiled is not None:  # the question is in the template's own messages
                question = _last_user_text([(m["role"], m["content"]) for m in compiled.render(variables)])
            sources = await self.retrieval.search(call, question, body.retrieval, body.user)
        messages = list(body.messages)
        if compiled is not None:
            context, chunks = (sources.text, sources.chunks) if sources is not None else ("", [])
            rendered = compiled.render(variables, context=context, chunks=chunks)
            messages = [ChatMessage(role=m["role"], content=m["content"]) for m in rendered] + messages  # type: ignore[arg-type]
        if sources is not None and sources.default_message is not None and not (compiled and compiled.uses_context):
            messages = _with_sources(messages, sources.default_message)
        return _built(body.model_copy(update={"messages": messages}), sources)


def _built(body: ChatCompletionRequest, sources: Sources | None) -> Built:
    if sources is None:
        return Built(body, None, None)
    return Built(body, sources.annotations, sources.retrieval_ms)


def _last_user_text(messages: Sequence[tuple[str, str]]) -> str:
    return next((text for role, text in reversed(messages) if role == "user"), "")


def _with_sources(messages: list[ChatMessage], sources: str) -> list[ChatMessage]:
    """The sources as the first system message; a system message already first follows them in it
    (chat templates take one system message)."""
    if not messages:
        return [ChatMessage(role="system", content=sources)]
    first = messages[0]
    if first.role in ("system", "developer"):
        return [ChatMessage(role="system", content=f"{sources}\n\n{first.text()}"), *messages[1:]]
    return [ChatMessage(role="system", content=sources), *messages]
