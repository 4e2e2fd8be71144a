"""Structured outputs: what grammar-constrained rows cost a continuous batch.

In one process, on one core with one torch thread: the continuous batcher decodes 8 fixed-length
sequences, all plain, then 4 plain beside 4 held to a JSON grammar (a string longer than the run, so
every row lasts all 48 tokens), alternately. The median decode step (model, sampling, masks) of each,
the extra time per constrained row, and the grammar mask alone timed in a loop: the extra cost of a
mixed batch should be about what its masks cost, so the plain rows lose nothing more.

``python -m benchmarks.structured --duration 2`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.harness import Row, pinned_here
from strata.models.hf_causal_lm import HFCausalLM
from strata.models.paths import resolve_model_path
from strata.observability.metrics import Metrics
from strata.serving.continuous import ContinuousBatcher
from strata.serving.generation import GenerationRequest, JsonConstraint
from strata.serving.sampling import SamplingParams

ROWS, CONSTRAINED, TOKENS = 8, 4, 48
LONG_STRING = JsonConstraint(json.dumps({"type": "string", "minLength": 5000}))  # outlasts every run
MESSAGES = ({"role": "user", "content": "Tell me about Strata."},)


def _request(index: int, constrained: bool) -> GenerationRequest:
    params = SamplingParams(max_tokens=TOKENS, temperature=1.0, seed=index, ignore_eos=True)
    return GenerationRequest(params=params, messages=MESSAGES, constraint=LONG_STRING if constrained else None)


async def _step_times_s(engine: HFCausalLM, duration_s: float) -> tuple[float, float]:
    """Median decode step (the batcher's inference stage: model step, sampling and masks) of a batch
    of ROWS plain sequences and of one with CONSTRAINED of them under the grammar; the two kinds of
    round alternate, so a change in the machine's load touches both alike."""
    metrics = Metrics()
    batcher = ContinuousBatcher(engine, max_running=ROWS, max_queue=ROWS, metrics=metrics.for_deployment("b"))
    labels = {"deployment": "b", "stage": "inference"}
    batcher.start()
    rounds: dict[int, list[float]] = {0: [], CONSTRAINED: []}
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < 2 * duration_s or len(rounds[CONSTRAINED]) < 3:
            for constrained, times in rounds.items():
                before = _sample(metrics, "sum", labels), _sample(metrics, "count", labels)
                streams = [batcher.submit(_request(i, i < constrained)) for i in range(ROWS)]
                await asyncio.gather(*(_drain(stream.events()) for stream in streams))
                after = _sample(metrics, "sum", labels), _sample(metrics, "count", labels)
                times.append((after[0] - before[0]) / (after[1] - before[1]))
    finally:
        await asyncio.to_thread(batcher.stop)
    return statistics.median(rounds[0]), statistics.median(rounds[CONSTRAINED])


def _sample(metrics: Metrics, kind: str, labels: dict[str, str]) -> float:
    return metrics.registry.get_sample_value(f"strata_stage_latency_seconds_{kind}", labels) or 0.0


async def _drain(events: object) -> None:
    async for _ in events:  # type: ignore[attr-defined]
        pass


def _mask_s(engine: HFCausalLM, repeats: int = 2000) -> float:
    grammar = engine.constrain(LONG_STRING.schema)
    grammar.accept(engine.tokenizer.encode('"', add_special_tokens=False)[0])  # inside the string, as measured
    logits = torch.randn(int(engine.model.get_output_embeddings().weight.shape[0]))
    started = time.perf_counter()
    for _ in range(repeats):
        grammar.mask(logits)
    return (time.perf_counter() - started) / repeats


def run(duration_s: float) -> list[Row]:
    engine = HFCausalLM(resolve_model_path("builtin:strata-chat-tiny"))
    engine.warmup()
    with pinned_here():
        plain, mixed = asyncio.run(_step_times_s(engine, duration_s))
        mask = _mask_s(engine)
    per_row = (mixed - plain) / CONSTRAINED
    ratio = per_row / mask
    return [
        Row("structured", f"decode step, {ROWS} plain rows", plain * 1e3, "ms"),
        Row("structured", f"decode step, {ROWS - CONSTRAINED} plain + {CONSTRAINED} JSON rows", mixed * 1e3, "ms"),
        Row("structured", "extra per JSON row", per_row * 1e6, "us"),
        Row("structured", "grammar mask alone, per row", mask * 1e6, "us"),
        Row("structured", "extra per JSON row / mask alone", ratio, "ratio", "<= 2x", ratio <= 2.0),
        Row("structured", "mixed step / plain step", mixed / plain, "ratio"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/structured.json"))
    arguments = parser.parse_args()
    from benchmarks.run import report

    report(run(arguments.duration), {}, arguments.output, Console())
