"""Structured outputs: what grammar-constrained rows cost a continuous batch.

In one process, on one core with one torch thread: the continuous batcher decodes 8 fixed-length
sequences, all plain, then 4 plain beside 4 held to a JSON grammar (a string longer than the run, so
every row lasts all 48 tokens), alternately. The median CPU time of the decode thread per step of
each (CPU, not wall, time: the machine is shared), the extra per constrained row, and the grammar's own work
(mask and advance) replayed over the texts those rows generated: the extra cost of a mixed batch
should be about what its grammar work costs, so the plain rows lose nothing more.

``python -m benchmarks.structured --duration 2`` runs it alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import torch
from rich.console import Console

from benchmarks.harness import Row, pinned_here
from strata.models.hf_causal_lm import HFCausalLM
from strata.models.paths import resolve_model_path
from strata.observability.metrics import Metrics
from strata.serving.continuous import ContinuousBatcher
from strata.serving.generation import GenerationEvent, GenerationRequest, JsonConstraint
from strata.serving.sampling import SamplingParams

ROWS, CONSTRAINED, TOKENS = 8, 4, 48
LONG_STRING = JsonConstraint(json.dumps({"type": "string", "minLength": 5000}))  # outlasts every run
MESSAGES = ({"role": "user", "content": "Tell me about Strata."},)


def _request(index: int, constrained: bool) -> GenerationRequest:
    params = SamplingParams(max_tokens=TOKENS, temperature=1.0, seed=index, ignore_eos=True)
    return GenerationRequest(params=params, messages=MESSAGES, constraint=LONG_STRING if constrained else None)


async def _step_times_s(engine: HFCausalLM, duration_s: float) -> tuple[float, float, list[str], list[float]]:
    """Median CPU time per decode step of a batch of ROWS plain sequences and of one with
    CONSTRAINED of them under the grammar: the decode thread's CPU time (one torch thread), not
    wall time, which other processes' load on a shared machine would swamp. The two kinds of round
    alternate."""
    batcher = ContinuousBatcher(
        engine, max_running=ROWS, max_queue=ROWS, metrics=Metrics().for_deployment("b"), name="bench"
    )
    batcher.start()
    # The decode thread's own CPU clock: the batch's work (model, sampling, masks, grammar), without
    # the event loop that receives the text (constrained rows send more events: see the rows below).
    [decoder] = [t for t in threading.enumerate() if t.name == "bench-decode"]
    assert decoder.ident is not None
    clock = time.pthread_getcpuclockid(decoder.ident)
    rounds: dict[int, list[float]] = {0: [], CONSTRAINED: []}
    texts: list[str] = []
    events: dict[bool, list[float]] = {False: [], True: []}  # events per row, plain and mixed rounds
    try:
        started = time.perf_counter()
        while time.perf_counter() - started < 2 * duration_s or len(rounds[CONSTRAINED]) < 5:
            for constrained, times in rounds.items():
                cpu = time.clock_gettime(clock)
                streams = [batcher.submit(_request(i, i < constrained)) for i in range(ROWS)]
                replies = await asyncio.gather(*(_text(stream.events()) for stream in streams))
                times.append((time.clock_gettime(clock) - cpu) / TOKENS)
                texts += [text for text, _ in replies[:constrained]]
                events[constrained > 0].append(sum(count for _, count in replies) / ROWS)
    finally:
        await asyncio.to_thread(batcher.stop)
    per_row = [statistics.mean(events[False]), statistics.mean(events[True])]
    return statistics.median(rounds[0]), statistics.median(rounds[CONSTRAINED]), texts, per_row


async def _text(events: AsyncIterator[GenerationEvent]) -> tuple[str, int]:
    """A row's text and how many events carried it (each is a hand-off to the event loop)."""
    parts = [event.text async for event in events]
    return "".join(parts), len(parts)


def _grammar_s(engine: HFCausalLM, texts: list[str]) -> float:
    """The mean grammar work of one row per step (mask, then advance past the token), replayed over
    texts the constrained rows generated: the same grammar states as in the batch (a mask repeated
    on one state, or on states random tokens reach, is far cheaper than these)."""
    width = int(engine.model.get_output_embeddings().weight.shape[0])
    spent, steps = 0.0, 0
    for text in texts:
        grammar = engine.constrain(LONG_STRING.schema)
        for token in engine.tokenizer.encode(text, add_special_tokens=False):
            logits = torch.zeros(width)
            started = time.process_time()
            grammar.mask(logits)
            accepted = grammar.accept(token)
            spent += time.process_time() - started
            steps += 1
            if not accepted:  # re-tokenized text may split differently from the generated tokens
                break
    return spent / steps


def run(duration_s: float) -> list[Row]:
    engine = HFCausalLM(resolve_model_path("builtin:strata-chat-tiny"))
    engine.warmup()
    with pinned_here():
        plain, mixed, texts, events = asyncio.run(_step_times_s(engine, duration_s))
        mask = _grammar_s(engine, texts)
    per_row = (mixed - plain) / CONSTRAINED
    ratio = per_row / mask
    return [
        Row("structured", f"CPU per decode step, {ROWS} plain rows", plain * 1e3, "ms"),
        Row("structured", f"CPU per step, {ROWS - CONSTRAINED} plain + {CONSTRAINED} JSON rows", mixed * 1e3, "ms"),
        Row("structured", "extra per JSON row", per_row * 1e6, "us"),
        Row("structured", "grammar alone (mask + advance), per row", mask * 1e6, "us"),
        Row("structured", "extra per JSON row / grammar alone", ratio, "ratio", "<= 2x", ratio <= 2.0),
        Row("structured", "mixed step / plain step", mixed / plain, "ratio"),
        # Plain rows past EOS (ignore_eos) decode EOS tokens that carry no text, so they send fewer events.
        Row("structured", "events per row, plain batch", events[0], "events"),
        Row("structured", "events per row, mixed batch", events[1], "events"),
    ]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/structured.json"))
    arguments = parser.parse_args()
    from benchmarks.run import report

    report(run(arguments.duration), {}, arguments.output, Console())
