"""Guardrails' cost: what output guards with a hold-back window add to a stream's time to first token
and to each token, served (the shipped chat model) against the same app without guards; and the
guards' own work per token and per prompt, in process.

Served: one server and one deployment behind three routes - no guards; PII redact + a term flag
with ``hold_back_tokens: 0`` (each token scanned as it comes, no hold-back); the same with the
default 16-token window. The streaming load generator (benchmarks.loadgen_stream) runs in its own
process on its own core, on each route in turn for ``ROUNDS`` rounds (so load that drifts on a
shared machine falls on all three alike); every request generates exactly ``MAX_TOKENS`` tokens
(ignore_eos), so every route does the same model work.
The window's TTFT cost is by design about ``hold_back_tokens`` x the inter-token time: the first
text leaves when the window is full.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from benchmarks.harness import LOADGEN_CPU, ROOT, Row, cpu_count, served
from strata.governance.layer import Guardrails
from strata.governance.stream import OutputWindow
from strata.principal import Principal
from strata.record import RequestRecord
from strata.spec.guardrails import GuardrailsSpec

MAX_TOKENS = 48
PROMPT = "Tell me about Strata and what it does."
GUARDS = [
    {"name": "pii", "kind": "pii", "action": "redact"},
    {"name": "watch", "kind": "terms", "deny": ["password", "credentials"], "action": "flag"},
]


ROUTES = {"no guards": "chat", "guards, window 0": "chat-window-0", "guards, window 16": "chat-window-16"}
ROUNDS = 3


def _spec() -> dict[str, Any]:
    """One server, one deployment, three routes to it: unguarded, and guarded with windows 0 and 16.
    The runs alternate between the routes in rounds, so a shared machine's load drifts over all alike."""
    return {
        "name": "bench-guardrails",
        "models": [{"name": "chat", "kind": "hf-causal-lm", "path": "builtin:strata-chat-tiny"}],
        "deployments": [{"name": "chat", "model": "chat", "batching": {"max_batch_size": 16}}],
        "routes": [{"name": route, "deployment": "chat"} for route in ROUTES.values()],
        "guardrails": {
            "guards": GUARDS,
            "bindings": [
                {"route": "chat-window-0", "guards": ["pii", "watch"], "hold_back_tokens": 0},
                {"route": "chat-window-16", "guards": ["pii", "watch"], "hold_back_tokens": 16},
            ],
        },
    }


def _stream_load(port: int, api_key: str, model: str, concurrency: int, duration_s: float) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("rb", suffix=".json") as result:
        command = [
            sys.executable, "-m", "benchmarks.loadgen_stream", "--port", str(port), "--model", model,
            "--prompt", PROMPT, "--max-tokens", str(MAX_TOKENS), "--concurrency", str(concurrency),
            "--duration", str(duration_s), "--header", f"Authorization: Bearer {api_key}", "--output", result.name,
        ]  # fmt: skip
        if cpu_count() > 1:
            command += ["--cpu", str(LOADGEN_CPU)]
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=duration_s + 120)
        loaded: dict[str, Any] = json.loads(result.read())
        return loaded


def _served_rows(duration_s: float) -> list[Row]:
    rows: list[Row] = []
    results: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in ROUTES}
    with served(_spec()) as server:
        for concurrency in (1, 8):
            for _ in range(ROUNDS):
                for name, route in ROUTES.items():
                    run = _stream_load(server.port, server.api_key, route, concurrency, duration_s / ROUNDS)
                    merged = results[name].setdefault(concurrency, {"ttft_s": [], "gaps_s": [], "totals_s": [],
                                                                    "errors": 0})  # fmt: skip
                    for key in ("ttft_s", "gaps_s", "totals_s"):
                        merged[key] += run[key]
                    merged["errors"] += run["errors"]
    for concurrency in (1, 8):
        base = results["no guards"][concurrency]
        base_ttft, base_total = statistics.median(base["ttft_s"]), statistics.median(base["totals_s"])
        for name, by_concurrency in results.items():
            run = by_concurrency[concurrency]
            ttft, total = statistics.median(run["ttft_s"]), statistics.median(run["totals_s"])
            case = f"{name}, c={concurrency}"
            rows += [
                Row("guardrails_stream", f"{case}: TTFT p50", ttft * 1000, "ms"),
                Row("guardrails_stream", f"{case}: whole stream p50 ({MAX_TOKENS} tokens)", total * 1000, "ms"),
                Row("guardrails_stream", f"{case}: inter-chunk p50", statistics.median(run["gaps_s"]) * 1000, "ms"),
                Row("guardrails_stream", f"{case}: streams", len(run["ttft_s"]), "count"),
                Row("guardrails_stream", f"{case}: errors", run["errors"], "count"),
            ]
            if name != "no guards":
                # Per token: what the whole stream took longer, spread over its tokens (the window only
                # moves text later; the scans are what every token pays).
                rows += [
                    Row("guardrails_stream", f"{case}: added TTFT", (ttft - base_ttft) * 1000, "ms"),
                    Row("guardrails_stream", f"{case}: added per token", (total - base_total) / MAX_TOKENS * 1000,
                        "ms"),
                ]  # fmt: skip
    return rows


def _in_process_rows() -> list[Row]:
    """The guards' own work: a 16-token window over a 200-token answer, and an input check of a prompt."""
    spec = GuardrailsSpec.model_validate({"guards": GUARDS, "bindings": [{"guards": ["pii", "watch"]}]})

    async def ask(route: str, text: str) -> Any:
        raise AssertionError("no model guard here")

    guardrails = Guardrails(spec, ask, lambda event: None)
    guards = guardrails.for_request("chat", "t")
    assert guards is not None
    words = ("Strata serves models behind an OpenAI-compatible API with batching and metrics. " * 20).split(" ")
    tokens = [w + " " for w in words][:200]
    rounds = 50
    started = time.perf_counter()
    for _ in range(rounds):
        window = OutputWindow(guards.output, 16)
        for token in tokens:
            window.push(token)
        window.flush()
    per_token_us = (time.perf_counter() - started) / (rounds * len(tokens)) * 1e6
    prompt = ["You are helpful.", "My mail is bob@example.com; what is the capital of France? " * 4]
    record = RequestRecord("POST", "/v1/chat/completions", caller=Principal("t", "k", frozenset()))

    async def inputs() -> float:
        started = time.perf_counter()
        for _ in range(2000):
            await guardrails.check_input(guards.input, prompt, record)
        return (time.perf_counter() - started) / 2000 * 1e6

    per_prompt_us = asyncio.run(inputs())
    lookup_started = time.perf_counter()
    for _ in range(100_000):
        guardrails.for_request("unguarded", "t")
    lookup_ns = (time.perf_counter() - lookup_started) / 100_000 * 1e9
    return [
        Row("guardrails_stream", "in-process: output window, per token (PII all types + terms, window 16)",
            per_token_us, "us"),
        Row("guardrails_stream", "in-process: input check, per prompt (2 messages, ~250 chars)", per_prompt_us, "us"),
        Row("guardrails_stream", "in-process: a route with no guards (the lookup)", lookup_ns, "ns"),
    ]  # fmt: skip


def run(duration_s: float) -> list[Row]:
    return _in_process_rows() + _served_rows(duration_s)
