"""Choosing the next token of each running sequence from the model's logits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# A temperature below this samples the argmax anyway, and dividing logits by it overflows float32
# (5e-324 is 0.0 there): such a row is greedy. vLLM draws the line at the same place.
GREEDY_BELOW = 1e-5


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int | None = None  # None: until EOS, a stop string or the context is full
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    ignore_eos: bool = False  # keep going past EOS (fixed-length benchmarks), as vLLM allows
    n: int = 1  # choices decoded from one prefill, each its own row of the batch
    logprobs: int | None = None  # None: none; k: each chosen token's log-probability and the k most likely
    presence_penalty: float = 0.0  # subtracted once from every token already generated
    frequency_penalty: float = 0.0  # subtracted per occurrence of a token already generated

    @property
    def greedy(self) -> bool:
        return self.temperature < GREEDY_BELOW

    @property
    def penalized(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0


def choice_seed(seed: int, index: int) -> int:
    """The seed of choice ``index``: choice 0 keeps the request's seed (n=1 is unchanged), the others
    differ from it and from each other, and XOR with a small index stays inside int64."""
    return seed ^ index


def apply_penalties(
    logits: torch.Tensor, params: Sequence[SamplingParams], counts: Sequence[dict[int, int] | None]
) -> torch.Tensor:
    """OpenAI's presence and frequency penalties over each row's generated tokens so far:
    ``logit -= frequency * count + presence * (count > 0)``. Rows without penalties are untouched
    and cost nothing; a row that has them costs one scatter over the distinct tokens it generated."""
    rows = [row for row, p in enumerate(params) if p.penalized and counts[row]]
    if not rows:
        return logits
    for row in rows:
        seen = counts[row]
        assert seen is not None
        ids = torch.tensor(list(seen.keys()), dtype=torch.long)
        times = torch.tensor(list(seen.values()), dtype=logits.dtype)
        p = params[row]
        logits[row, ids] -= p.frequency_penalty * times + p.presence_penalty
    return logits


def _top_p_filter(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Mask tokens outside each row's nucleus (smallest set whose probability reaches top_p)."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Drop a token when the tokens strictly before it already reach top_p; the first always stays.
    drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p.unsqueeze(1)
    drop_sorted[:, 0] = False  # even for a top_p of 0 (5e-324 in float32): dropping all left no token to draw
    drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(
    logits: torch.Tensor,
    params: Sequence[SamplingParams],
    generators: Sequence[torch.Generator | None],
) -> list[int]:
    """One token per row. Greedy rows take the argmax; the rest sample with temperature and top-p,
    using the row's own generator when the request gave a seed (reproducible whatever the batch)."""
    logits = logits.float()
    chosen = logits.argmax(dim=-1)
    sampled_rows = [row for row, p in enumerate(params) if not p.greedy]
    if sampled_rows:
        index = torch.tensor(sampled_rows)
        temperature = torch.tensor([params[r].temperature for r in sampled_rows]).unsqueeze(1)
        top_p = torch.tensor([params[r].top_p for r in sampled_rows])
        probs = _top_p_filter(logits.index_select(0, index) / temperature, top_p).softmax(dim=-1)
        for position, row in enumerate(sampled_rows):
            token = torch.multinomial(probs[position], 1, generator=generators[row])
            chosen[row] = token[0]
    return [int(token) for token in chosen.tolist()]
