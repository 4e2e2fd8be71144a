"""(c) Text generation tokens/s: continuous batching served over HTTP against sequential generate."""

from __future__ import annotations

import json
import time

import torch

from benchmarks.harness import Row, load, pinned_here, served
from strata.models.hf_causal_lm import HFCausalLM
from strata.models.paths import resolve_model_path

NEW_TOKENS = 64
TARGET_SPEEDUP = 4.0
MESSAGES = [{"role": "user", "content": "Tell me about Strata and what it does."}]
SPEC = {
    "name": "bench-textgen",
    "models": [{"name": "chat", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"}],
    "deployments": [{"name": "chat", "model": "chat", "batching": {"max_batch_size": 32}}],
    "routes": [{"name": "chat", "deployment": "chat"}],
}


def sequential_tokens_per_s(seconds: float) -> float:
    """The baseline: transformers' own generate, one request after another, fixed length."""
    lm = HFCausalLM(resolve_model_path("builtin:strata-chat-tiny"))
    ids = torch.tensor([lm.encode_chat(MESSAGES)])
    options = {"max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, "do_sample": False}
    with pinned_here(), torch.inference_mode():
        lm.model.generate(ids, **options)
        tokens, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            output = lm.model.generate(ids, **options)
            tokens += output.shape[1] - ids.shape[1]
        return tokens / (time.perf_counter() - started)


def run(duration_s: float) -> list[Row]:
    baseline = sequential_tokens_per_s(duration_s)
    rows = [Row("textgen", "sequential generate", baseline, "tokens/s")]
    body = {
        "model": "chat",
        "messages": MESSAGES,
        "max_tokens": NEW_TOKENS,
        "ignore_eos": True,
        "temperature": 0,
    }
    with served(SPEC) as server:
        for concurrency in (1, 16):
            result = load(server, "/v1/chat/completions", body, concurrency=concurrency, duration_s=duration_s)
            completions = [json.loads(b)["usage"]["completion_tokens"] for b in result.bodies]
            assert all(c == NEW_TOKENS for c in completions), completions
            tokens_per_s = result.requests * NEW_TOKENS / result.elapsed_s
            speedup = tokens_per_s / baseline
            target = f">= {TARGET_SPEEDUP:g}x sequential" if concurrency == 16 else ""
            rows += [
                Row("textgen", f"served c={concurrency}", tokens_per_s, "tokens/s"),
                Row(
                    "textgen",
                    f"served/sequential c={concurrency}",
                    speedup,
                    "ratio",
                    target,
                    speedup >= TARGET_SPEEDUP if concurrency == 16 else None,
                ),
                Row("textgen", f"request p50 c={concurrency}", result.percentile_ms(50), "ms"),
                Row("textgen", f"errors c={concurrency}", result.errors, "requests"),
            ]
    return rows
