"""(k) Engines: llama.cpp (kind llama-cpp) on the shipped chat model in 8 and 4 bits against the transformers
backend, and prefix-aware routing against least-loaded routing.

1. Quality: perplexity on held-out conversations (the corpus generator with a seed the model never saw),
   every backend scoring the same token ids.
2. Speed: one sequence decoding 64 tokens (EOS ignored) after a short chat prompt, one thread on the
   server's core: transformers' own generate against llama.cpp.
3. Routing: two llama.cpp replicas behind `strata serve`; streamed chats whose system prompts (4 long ones)
   are shared; TTFT measured by a client in its own process, with prefix_routing on and off.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.harness import LOADGEN_CPU, ROOT, Row, cpu_count, pinned_here, served
from benchmarks.textgen import sequential_tokens_per_s
from strata.models.paths import resolve_model_path
from strata.runtime.llamacpp_replica import gguf_path, load_llama
from strata.training.chat_corpus import generate_conversations
from strata.training.train_chat import encode_conversation

HELD_OUT_SEED = 7919  # the shipped weights were trained on seed 0's conversations
HELD_OUT = 200
NEW_TOKENS = 64
QUANTS = ("q8_0", "q4_0")
MESSAGES = [{"role": "user", "content": "Tell me about Strata and what it does."}]
TOPICS = ("parcel delivery", "train tickets", "library loans", "hotel bookings")
QUESTIONS = ("What is the capital of France?", "What day comes after Monday?", "Tell me a joke.", "Hello!")
TTFT_REQUESTS = 96


def held_out() -> list[list[int]]:
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:strata-chat-tiny"))
    conversations = generate_conversations(HELD_OUT, seed=HELD_OUT_SEED)
    return [encode_conversation(tokenizer, conversation).input_ids for conversation in conversations]


def perplexity_transformers(sequences: list[list[int]]) -> float:
    model: Any = AutoModelForCausalLM.from_pretrained(resolve_model_path("builtin:strata-chat-tiny")).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for ids in sequences:
            tokens = torch.tensor([ids])
            logits = model(input_ids=tokens).logits[0, :-1].float()
            total += float(F.cross_entropy(logits, tokens[0, 1:], reduction="sum"))
            count += len(ids) - 1
    return math.exp(total / count)


def perplexity_gguf(name: str, sequences: list[list[int]]) -> float:
    llm = load_llama(gguf_path(f"builtin:{name}"), {"n_ctx": 512, "logits_all": True, "n_threads": 1})
    total, count = 0.0, 0
    for ids in sequences:
        llm.reset()
        llm.eval(ids)
        logits = np.asarray(llm.scores[: len(ids) - 1], dtype=np.float64)
        peak = logits.max(axis=1, keepdims=True)
        log_probs = logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(ids) - 1), ids[1:]].sum())
        count += len(ids) - 1
    return math.exp(total / count)


def gguf_tokens_per_s(name: str, seconds: float) -> float:
    llm = load_llama(gguf_path(f"builtin:{name}"), {"n_ctx": 512, "n_threads": 1})
    template = llm.metadata["tokenizer.chat_template"]
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter  # the optional extra, present when we got here

    prompt = Jinja2ChatFormatter(template, eos_token="<|end|>", bos_token="<|bos|>")(messages=MESSAGES).prompt
    ids = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    options: dict[str, Any] = {
        "max_tokens": NEW_TOKENS,
        "temperature": 0.0,
        "top_k": 0,
        "min_p": 0.0,
        "logit_bias": {llm.token_eos(): float("-inf")},
    }
    with pinned_here():
        llm.create_completion(prompt=ids, **options)
        tokens, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            llm.reset()  # prefill every time, as the baseline does
            tokens += llm.create_completion(prompt=ids, **options)["usage"]["completion_tokens"]
        return tokens / (time.perf_counter() - started)


def quality_and_speed(duration_s: float) -> list[Row]:
    sequences = held_out()
    baseline_ppl = perplexity_transformers(sequences)
    rows = [Row("engines", "perplexity transformers fp32", baseline_ppl, "ppl")]
    baseline_speed = sequential_tokens_per_s(duration_s)
    rows.append(Row("engines", "decode transformers fp32 (1 seq, 1 thread)", baseline_speed, "tokens/s"))
    for quant in QUANTS:
        name = f"strata-chat-tiny-{quant}"
        ppl = perplexity_gguf(name, sequences)
        speed = gguf_tokens_per_s(name, duration_s)
        rows += [
            Row("engines", f"perplexity llama.cpp {quant}", ppl, "ppl"),
            Row("engines", f"perplexity llama.cpp {quant} / transformers", ppl / baseline_ppl, "x"),
            Row("engines", f"decode llama.cpp {quant} (1 seq, 1 thread)", speed, "tokens/s"),
            Row("engines", f"decode llama.cpp {quant} / transformers", speed / baseline_speed, "x"),
        ]
    return rows


def system_prompt(topic: str) -> str:
    rules = " ".join(f"Rule {i}: answer questions about {topic} politely and briefly." for i in range(1, 9))
    return f"You are the assistant of a company that handles {topic}. {rules}"


def ttft_bodies(model: str) -> list[dict[str, Any]]:
    rng = random.Random(0)
    bodies = [
        {
            "model": model,
            "messages": [{"role": "system", "content": system_prompt(topic)}, {"role": "user", "content": question}],
            "max_tokens": 4,
            "temperature": 0,
        }
        for topic in TOPICS
        for question in QUESTIONS
    ]
    rng.shuffle(bodies)
    return bodies


def ttfts(prefix_routing: bool) -> list[float]:
    spec = {
        "name": "bench-prefix",
        "models": [
            {"name": "chat", "kind": "llama-cpp", "path": "builtin:strata-chat-tiny-q8_0", "options": {"n_threads": 1}}
        ],
        "deployments": [
            {
                "name": "chat",
                "model": "chat",
                "replicas": 2,
                "prefix_routing": {"enabled": prefix_routing, "block_chars": 128},
            }
        ],
        "routes": [{"name": "chat", "deployment": "chat"}],
    }
    with served(spec) as server, tempfile.TemporaryDirectory() as folder:
        bodies, output = Path(folder) / "bodies.json", Path(folder) / "ttft.json"
        bodies.write_text(json.dumps(ttft_bodies("chat")))
        command = [
            sys.executable, "-m", "benchmarks.ttft_client", "--port", str(server.port), "--api-key", server.api_key,
            "--bodies-file", str(bodies), "--requests", str(TTFT_REQUESTS), "--concurrency", "2",
            "--output", str(output),
        ]  # fmt: skip
        if cpu_count() > 1:
            command += ["--cpu", str(LOADGEN_CPU)]
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=600)
        result = json.loads(output.read_text())
    assert result["errors"] == 0, result
    return list(result["ttft_s"])


def routing(duration_s: float) -> list[Row]:
    least_loaded, prefix = ttfts(False), ttfts(True)
    rows = []
    for name, values in (("least-loaded", least_loaded), ("prefix-aware", prefix)):
        rows += [
            Row(
                "engines",
                f"TTFT p50 {name} (2 llama.cpp replicas, 4 shared system prompts)",
                1000 * statistics.median(values),
                "ms",
            ),
            Row("engines", f"TTFT mean {name}", 1000 * statistics.fmean(values), "ms"),
        ]
    rows.append(
        Row(
            "engines",
            "TTFT p50 least-loaded / prefix-aware",
            statistics.median(least_loaded) / statistics.median(prefix),
            "x",
        )
    )
    return rows


def run(duration_s: float) -> list[Row]:
    if importlib.util.find_spec("llama_cpp") is None:
        return [Row("engines", "skipped: llama-cpp-python is absent (pip install 'strata[llama-cpp]')", 0.0, "")]
    return quality_and_speed(duration_s) + routing(duration_s)


if __name__ == "__main__":  # python -m benchmarks.engines [routing|quality] --duration S
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("part", nargs="?", choices=["quality", "routing"], default=None)
    parser.add_argument("--duration", type=float, default=5.0)
    cli = parser.parse_args()
    parts = {"quality": quality_and_speed, "routing": routing}
    chosen = [parts[cli.part]] if cli.part else list(parts.values())
    for row in (row for part in chosen for row in part(cli.duration)):
        print(f"{row.case:80s} {row.value:10.3f} {row.unit}")
