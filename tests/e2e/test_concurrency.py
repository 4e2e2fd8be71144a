"""Continuous batching seen from outside: concurrent clients share decode steps, and each
still gets exactly the reply it would get alone."""

import asyncio

import openai
import pytest

from strata.testing import MetricSamples, ServerProcess

pytestmark = pytest.mark.e2e

QUESTIONS = [
    "What is the capital of Japan?",
    "Hello!",
    "What is 3 plus 4?",
    "What is Strata?",
    "What is the capital of Kenya?",
    "Tell me a joke.",
    "What is the capital of Canada?",
    "What day comes after Monday?",
    "Spell the word cat.",
    "Count from 1 to 5.",
    "Who won the 1998 world cup?",
    "What is the capital of Italy?",
]


def _batch_sizes(server: ServerProcess) -> tuple[float, float]:
    """(sum, count) of the chat deployment's decode batch sizes so far."""
    samples = MetricSamples.scrape(server.url, server.headers)
    return samples.value("strata_batch_size_sum", deployment="chat"), samples.value(
        "strata_batch_size_count", deployment="chat"
    )


async def _ask(client: openai.AsyncOpenAI, question: str) -> str:
    reply = await client.chat.completions.create(
        model="strata-chat-tiny", messages=[{"role": "user", "content": question}], temperature=0, max_tokens=48
    )
    return reply.choices[0].message.content or ""


async def _ask_streaming(client: openai.AsyncOpenAI, question: str) -> str:
    stream = await client.chat.completions.create(
        model="strata-chat-tiny",
        messages=[{"role": "user", "content": question}],
        temperature=0,
        max_tokens=48,
        stream=True,
    )
    return "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])


async def test_concurrent_requests_are_batched_and_unchanged(default_server: ServerProcess) -> None:
    client = openai.AsyncOpenAI(
        base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0, timeout=60,
        default_headers={"Cache-Control": "no-cache"},  # the same questions again: the model must answer them
    )  # fmt: skip
    alone = [await _ask(client, q) for q in QUESTIONS]
    before_sum, before_count = _batch_sizes(default_server)

    # Half the clients stream, half do not: both kinds share the same running batch.
    together = await asyncio.gather(
        *(_ask_streaming(client, q) if i % 2 else _ask(client, q) for i, q in enumerate(QUESTIONS))
    )
    after_sum, after_count = _batch_sizes(default_server)
    await client.close()

    assert list(together) == alone
    mean_batch = (after_sum - before_sum) / (after_count - before_count)
    assert mean_batch > 2, f"concurrent requests decoded in batches of {mean_batch:.1f} on average"
