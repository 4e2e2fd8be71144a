"""The JSON shapes of OpenAI's chat and text completion responses, whole and streamed."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from strata.serving.generation import Choice, TokenLogprob


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _chat_token(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def chat_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """Chat's ``logprobs`` of one choice (or of one chunk's tokens)."""
    content = [
        {**_chat_token(e.token, e.logprob), "top_logprobs": [_chat_token(t, lp) for t, lp in e.top]} for e in entries
    ]
    return {"content": content, "refusal": None}


@dataclass(slots=True)
class ChatFormat:
    model: str
    logprobs: bool = False  # the request asked for them: every choice and chunk carries the field
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))
    annotations: list[dict[str, Any]] | None = None  # citations of retrieved sources, on the message

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _logprobs(self, entries: Sequence[TokenLogprob]) -> dict[str, Any] | None:
        return chat_logprobs(entries) if self.logprobs else None

    def opening_chunk(self, n: int) -> dict[str, Any] | None:
        delta: dict[str, Any] = {"role": "assistant", "content": ""}
        if self.annotations is not None:
            delta["annotations"] = self.annotations
        return self._chunk([{"index": i, "delta": delta, "logprobs": None, "finish_reason": None} for i in range(n)])

    def text_chunk(self, index: int, text: str, logprobs: Sequence[TokenLogprob] = ()) -> dict[str, Any]:
        choice = {"index": index, "delta": {"content": text}, "logprobs": self._logprobs(logprobs)}
        return self._chunk([{**choice, "finish_reason": None}])

    def finish_chunk(self, index: int, finish_reason: str) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": {}, "logprobs": None, "finish_reason": finish_reason}])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {**self._chunk([]), "usage": usage(prompt_tokens, completion_tokens)}

    def _message(self, text: str) -> dict[str, Any]:
        if self.annotations is None:
            return {"role": "assistant", "content": text}
        return {"role": "assistant", "content": text, "annotations": self.annotations}

    def whole(self, choices: Sequence[Choice], prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": choice.index,
                    "message": self._message(choice.text),
                    "logprobs": self._logprobs(choice.logprobs),
                    "finish_reason": choice.finish_reason,
                }
                for choice in choices
            ],
            "usage": usage(prompt_tokens, completion_tokens),
        }


@dataclass(slots=True)
class CompletionFormat:
    model: str
    logprobs: bool = False
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex[:24]}")
    created: int = field(default_factory=lambda: int(time.time()))
    _offsets: dict[int, int] = field(default_factory=dict)  # per choice: characters of tokens listed so far

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def _logprobs(self, index: int, entries: Sequence[TokenLogprob]) -> dict[str, Any] | None:
        """The legacy shape: parallel lists, and text offsets counted from the completion's start."""
        if not self.logprobs:
            return None
        offset = self._offsets.get(index, 0)
        offsets = []
        for entry in entries:
            offsets.append(offset)
            offset += len(entry.token)
        self._offsets[index] = offset
        return {
            "tokens": [e.token for e in entries],
            "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": [dict(e.top) for e in entries],
            "text_offset": offsets,
        }

    def opening_chunk(self, n: int) -> dict[str, Any] | None:
        return None

    def text_chunk(self, index: int, text: str, logprobs: Sequence[TokenLogprob] = ()) -> dict[str, Any]:
        choice = {"index": index, "text": text, "logprobs": self._logprobs(index, logprobs), "finish_reason": None}
        return self._chunk([choice])

    def finish_chunk(self, index: int, finish_reason: str) -> dict[str, Any]:
        return self._chunk([{"index": index, "text": "", "logprobs": None, "finish_reason": finish_reason}])

    def usage_chunk(self, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        return {**self._chunk([]), "usage": usage(prompt_tokens, completion_tokens)}

    def whole(self, choices: Sequence[Choice], prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        body = [
            {
                "index": choice.index,
                "text": choice.text,
                "logprobs": self._logprobs(choice.index, choice.logprobs),
                "finish_reason": choice.finish_reason,
            }
            for choice in choices
        ]
        return {**self._chunk(body), "usage": usage(prompt_tokens, completion_tokens)}


ResponseFormat = ChatFormat | CompletionFormat
