"""What naming a prompt template costs a chat request on the event loop, in one run.

Two paths over the same request, in process (no model, no HTTP: the part a template adds):

- plain: the chat body parsed and turned into a generation request, its messages written out;
- templated: the body names the stored template instead; parsed, the template found in the warm
  library (no database), its variables checked, rendered in the sandbox, the messages built.

Also the first use of a template on a gateway (a miss: one read on the database thread and the
compile), on a real SQLite metadata database. Rounds alternate the two paths; medians reported.

    python -m benchmarks.prompts --rounds 5 --requests 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from strata.protocol.generation import generation_request
from strata.protocol.requests import ChatCompletionRequest, ChatMessage
from strata.store import Database
from strata.workflows.prompt_catalog import NewVersion, PromptCatalog
from strata.workflows.prompt_library import PromptLibrary
from strata.workflows.store import JobStore

SYSTEM = "You answer questions about {{ product }}{% if vip %}, politely{% endif %}. Orders: {{ orders|join(', ') }}."
VARIABLES = {"product": {"type": "string"}, "vip": {"type": "boolean", "default": False},
             "orders": {"type": "array", "default": []}}  # fmt: skip
GIVEN = {"product": "Strata", "vip": True, "orders": [1, 2, 3]}
QUESTION = {"role": "user", "content": "Where is my order?"}
RENDERED = {"role": "system", "content": "You answer questions about Strata, politely. Orders: 1, 2, 3."}
PLAIN = json.dumps({"model": "m", "messages": [RENDERED, QUESTION]})
TEMPLATED = json.dumps({"model": "m", "messages": [QUESTION], "prompt": {"id": "support", "variables": GIVEN}})


async def _templated(library: PromptLibrary, raw: str) -> Any:
    body = ChatCompletionRequest.model_validate_json(raw)
    assert body.prompt is not None
    _, rendered = await library.render("acme", body.prompt.id, body.prompt.version, body.prompt.variables)
    messages = [ChatMessage(role=m["role"], content=m["content"]) for m in rendered]  # type: ignore[arg-type]
    return generation_request(body.model_copy(update={"messages": [*messages, *body.messages]}))


async def _plain(raw: str) -> Any:
    return generation_request(ChatCompletionRequest.model_validate_json(raw))


async def _time_us(requests: int, one: Any) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        await one()
    return (time.perf_counter() - started) / requests * 1e6


async def measure(rounds: int, requests: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        database = Database(f"sqlite:///{folder}/strata.db")
        await database.migrate()
        try:
            catalog = PromptCatalog(JobStore(database))
            await catalog.create_version(NewVersion("acme", "support", [{"role": "system", "content": SYSTEM}],
                                                    VARIABLES, None, None))  # fmt: skip
            misses = []
            for _ in range(rounds):
                library = PromptLibrary(catalog)
                started = time.perf_counter()
                await _templated(library, TEMPLATED)
                misses.append((time.perf_counter() - started) * 1000)
            assert (await _templated(library, TEMPLATED)).messages == (await _plain(PLAIN)).messages
            plain, templated, reads, started = [], [], library.reads, time.perf_counter()
            for _ in range(rounds):
                plain.append(await _time_us(requests, lambda: _plain(PLAIN)))
                templated.append(await _time_us(requests, lambda: _templated(library, TEMPLATED)))
            # The current-version pointer is re-read once per TTL, never per request.
            reads, elapsed_s = library.reads - reads, time.perf_counter() - started
        finally:
            await database.close()
    return {
        "plain_us": round(statistics.median(plain), 2),
        "templated_us": round(statistics.median(templated), 2),
        "added_us": round(statistics.median(templated) - statistics.median(plain), 2),
        "first_use_ms": round(statistics.median(misses), 3),
        "database_reads_while_timed": reads,
        "timed_requests": rounds * requests,
        "timed_s": round(elapsed_s, 2),
        "rounds": rounds,
        "requests_per_round": requests,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--output", type=Path, default=None, help="write the figures here as JSON")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.rounds, args.requests))
    print(json.dumps(figures, indent=2))
    if args.output is not None:
        args.output.write_text(json.dumps({"name": "prompts", **figures}, indent=2) + "\n")


if __name__ == "__main__":
    main()
