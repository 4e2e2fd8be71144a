"""A kept answer: its choices and token counts, encoded once so every cache back end stores bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from strata.serving.generation import Choice, TokenLogprob


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    choices: list[Choice]  # fresh objects on every decode: formatters and guards may change them
    prompt_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(choice.completion_tokens for choice in self.choices)


def encode(choices: Sequence[Choice], prompt_tokens: int) -> bytes:
    return orjson.dumps(
        {
            "prompt_tokens": prompt_tokens,
            "choices": [[c.index, c.text, c.finish_reason, c.completion_tokens, _logprobs(c)] for c in choices],
        }
    )


def _logprobs(choice: Choice) -> list[list[object]]:
    return [[e.token, e.logprob, e.top] for e in choice.logprobs]


def decode(data: bytes) -> CachedAnswer:
    raw = orjson.loads(data)
    choices = [
        Choice(
            index, text, finish_reason, tokens,
            [TokenLogprob(token, logprob, tuple((t, lp) for t, lp in top)) for token, logprob, top in logprobs],
        )
        for index, text, finish_reason, tokens, logprobs in raw["choices"]
    ]  # fmt: skip
    return CachedAnswer(choices, raw["prompt_tokens"])
