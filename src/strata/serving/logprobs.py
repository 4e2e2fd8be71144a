"""Log-probabilities of the chosen tokens and their most likely alternatives (OpenAI ``logprobs``).

They describe the model's own next-token distribution (a log-softmax of its raw logits), before
penalties, temperature, top-p and any grammar mask: what vLLM reports by default, and a value that
means the same whatever sampling settings the request used. Only rows that asked pay for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from strata.serving.generation import TokenLogprob

TokenTexts = Callable[[Sequence[int]], list[str]]  # token ids to the text each decodes to alone


def token_logprobs(
    logits: torch.Tensor,
    rows: Sequence[int],
    top_k: Sequence[int],
    chosen: Sequence[int],
    token_texts: TokenTexts,
) -> list[TokenLogprob]:
    """For each of ``rows`` (of ``logits``): the log-probability of its ``chosen`` token and of its
    ``top_k`` most likely tokens, in one log-softmax and one top-k over just those rows."""
    index = torch.tensor(list(rows), dtype=torch.long)
    logprobs = torch.log_softmax(logits.index_select(0, index).float(), dim=-1)
    picked = torch.tensor(list(chosen), dtype=torch.long).unsqueeze(1)
    chosen_lp = logprobs.gather(1, picked).squeeze(1).tolist()
    k = max(top_k)
    top_lp, top_ids = logprobs.topk(k, dim=-1) if k else (logprobs[:, :0], logprobs[:, :0].long())
    top_lp_rows, top_id_rows = top_lp.tolist(), top_ids.tolist()
    # One batched decode of every token named, rather than one call per token.
    names = list(chosen) + [token for position, ids in enumerate(top_id_rows) for token in ids[: top_k[position]]]
    texts = dict(zip(names, token_texts(names), strict=True))
    out = []
    for position, token in enumerate(chosen):
        width = top_k[position]
        top = tuple(
            (texts[t], float(lp))
            for t, lp in zip(top_id_rows[position][:width], top_lp_rows[position][:width], strict=True)
        )
        out.append(TokenLogprob(texts[token], float(chosen_lp[position]), top))
    return out
