"""(k) Engines: llama.cpp (kind llama-cpp) on the shipped chat model in 8 and 4 bits against the transformers
backend, and prefix-aware routing against least-loaded routing.

1. Quality: perplexity of the assistant's replies in held-out conversations (the corpus generator with a
   seed the model never saw; the replies are what it was trained to predict), every backend scoring the
   same token ids.
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
from collections.abc import Iterator
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
from strata.training.train_chat import IGNORE_INDEX, Example, encode_conversation

HELD_OUT_SEED = 7919  # the shipped weights were trained on seed 0's conversations
HELD_OUT = 100
NEW_TOKENS = 64
QUANTS = ("q8_0", "q4_0")
MESSAGES = [{"role": "user", "content": "Tell me about Strata and what it does."}]
TOPICS = ("parcel delivery", "train tickets", "library loans", "hotel bookings")
QUESTIONS = ("What is the capital of France?", "What day comes after Monday?", "Tell me a joke.", "Hello!")
TTFT_REQUESTS = 96


def held_out() -> list[Example]:
    """Held-out conversations as token ids, with labels marking the assistant's replies (what the model learnt)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path("builtin:strata-chat-tiny"))
    conversations = generate_conversations(HELD_OUT, seed=HELD_OUT_SEED)
    return [encode_conversation(tokenizer, conversation) for conversation in conversations]


def _replies(example: Example) -> tuple[list[int], list[int]]:
    """(positions whose logits predict a reply token, those tokens)."""
    pairs = [(i, label) for i, label in enumerate(example.labels[1:]) if label != IGNORE_INDEX]
    return [i for i, _ in pairs], [label for _, label in pairs]


def perplexity_transformers(examples: list[Example]) -> float:
    """exp(mean negative log-likelihood of the assistant's reply tokens)."""
    model: Any = AutoModelForCausalLM.from_pretrained(resolve_model_path("builtin:strata-chat-tiny")).eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for example in examples:
            positions, targets = _replies(example)
            logits = model(input_ids=torch.tensor([example.input_ids])).logits[0].float()
            total += float(F.cross_entropy(logits[positions], torch.tensor(targets), reduction="sum"))
            count += len(targets)
    return math.exp(total / count)


def perplexity_gguf(name: str, examples: list[Example]) -> float:
    """The same measure with llama.cpp's logits for the same token ids."""
    llm = load_llama(gguf_path(f"builtin:{name}"), {"n_ctx": 512, "logits_all": True, "n_threads": 1})
    total, count = 0.0, 0
    for example in examples:
        positions, targets = _replies(example)
        llm.reset()
        llm.eval(example.input_ids)
        logits = np.asarray(llm.scores[: len(example.input_ids)], dtype=np.float64)[positions]
        peak = logits.max(axis=1, keepdims=True)
        log_probs = logits - peak - np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
        total -= float(log_probs[np.arange(len(targets)), targets].sum())
        count += len(targets)
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


def quality_and_speed(duration_s: float) -> Iterator[Row]:
    sequences = held_out()
    baseline_ppl = perplexity_transformers(sequences)
    yield Row("engines", "perplexity transformers fp32", baseline_ppl, "ppl")
    baseline_speed = sequential_tokens_per_s(duration_s)
    yield Row("engines", "decode transformers fp32 (1 seq, 1 thread)", baseline_speed, "tokens/s")
    for quant in QUANTS:
        name = f"strata-chat-tiny-{quant}"
        ppl = perplexity_gguf(name, sequences)
        yield Row("engines", f"perplexity llama.cpp {quant}", ppl, "ppl")
        yield Row("engines", f"perplexity llama.cpp {quant} / transformers", ppl / baseline_ppl, "x")
        speed = gguf_tokens_per_s(name, duration_s)
        yield Row("engines", f"decode llama.cpp {quant} (1 seq, 1 thread)", speed, "tokens/s")
        yield Row("engines", f"decode llama.cpp {quant} / transformers", speed / baseline_speed, "x")


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


def routing(duration_s: float) -> Iterator[Row]:
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
    yield from rows


def run(duration_s: float) -> list[Row]:
    if importlib.util.find_spec("llama_cpp") is None:
        return [Row("engines", "skipped: llama-cpp-python is absent (pip install 'strata[llama-cpp]')", 0.0, "")]
    return [*quality_and_speed(duration_s), *routing(duration_s)]


if __name__ == "__main__":  # python -m benchmarks.engines [routing|quality] --duration S
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("part", nargs="?", choices=["quality", "routing"], default=None)
    parser.add_argument("--duration", type=float, default=5.0)
    cli = parser.parse_args()
    parts = {"quality": quality_and_speed, "routing": routing}
    chosen = [parts[cli.part]] if cli.part else list(parts.values())
    for row in (row for part in chosen for row in part(cli.duration)):
        print(f"{row.case:80s} {row.value:10.3f} {row.unit}", flush=True)
