"""n > 1, log-probabilities and penalties through the official openai client, whole and streamed."""

import math
from collections import Counter
from typing import Any

import openai
import pytest

from strata.testing import ServerProcess

pytestmark = pytest.mark.e2e

CHAT = "strata-chat-tiny"
JOKE = [{"role": "user", "content": "Tell me a joke."}]
FIXED_LENGTH: dict[str, Any] = {"ignore_eos": True}  # every choice generates exactly max_tokens


@pytest.fixture(scope="module")
def client(default_server: ServerProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{default_server.url}/v1", api_key=default_server.api_key, max_retries=0, timeout=60)


def test_n_choices_are_distinct_reproducible_and_billed_together(client: openai.OpenAI) -> None:
    def ask(n: int) -> Any:
        return client.chat.completions.create(
            model=CHAT,
            messages=JOKE,
            n=n,
            seed=11,
            max_tokens=12,
            temperature=1.5,
            extra_body=FIXED_LENGTH,
            extra_headers={"Cache-Control": "no-cache"},  # the model reproduces them, not the response cache
        )

    reply = ask(4)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    texts = [c.message.content for c in reply.choices]
    assert len(set(texts)) > 1  # each choice samples with its own generator
    assert [c.message.content for c in ask(4).choices] == texts  # the seed makes every choice reproducible
    one = ask(1)
    assert one.choices[0].message.content == texts[0]  # choice 0 keeps the request's seed
    assert reply.usage.prompt_tokens == one.usage.prompt_tokens  # the prompt counts (and runs) once
    assert reply.usage.completion_tokens == 4 * 12  # summed over the choices, as OpenAI bills them


def test_n_streamed_matches_the_whole_reply(client: openai.OpenAI) -> None:
    params: dict[str, Any] = {"model": CHAT, "messages": JOKE, "n": 3, "seed": 5, "max_tokens": 16, "temperature": 1.2}
    whole = client.chat.completions.create(**params)
    chunks = list(client.chat.completions.create(**params, stream=True, stream_options={"include_usage": True}))
    texts, finishes = ["", "", ""], [None, None, None]
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finishes[choice.index] = choice.finish_reason or finishes[choice.index]
    assert texts == [c.message.content for c in whole.choices]
    assert finishes == [c.finish_reason for c in whole.choices]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    completions = client.completions.create(model=CHAT, prompt="Strata is", n=2, seed=3, max_tokens=8)
    streamed = ["", ""]
    for chunk in client.completions.create(model=CHAT, prompt="Strata is", n=2, seed=3, max_tokens=8, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert streamed == [c.text for c in completions.choices]


def test_chat_logprobs_whole_and_streamed(client: openai.OpenAI) -> None:
    params: dict[str, Any] = {
        "model": CHAT, "messages": [{"role": "user", "content": "What is Strata?"}], "temperature": 0,
        "max_tokens": 20, "logprobs": True, "top_logprobs": 3,
    }  # fmt: skip
    reply = client.chat.completions.create(**params)
    choice = reply.choices[0]
    assert choice.logprobs is not None
    assert choice.logprobs.content
    entries = choice.logprobs.content
    assert len(entries) == reply.usage.completion_tokens - (choice.finish_reason == "stop")  # EOS is not listed
    for entry in entries:
        assert len(entry.top_logprobs) == 3
        tops = [top.logprob for top in entry.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert sum(math.exp(lp) for lp in tops) <= 1.0 + 1e-6
        # Greedy: the chosen token is the most likely one, with the same log-probability.
        assert entry.token == entry.top_logprobs[0].token
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)
        assert entry.bytes == list(entry.token.encode())
    assert "".join(e.token for e in entries).strip() == (choice.message.content or "").strip()
    streamed = [
        e
        for chunk in client.chat.completions.create(**params, stream=True)
        for c in chunk.choices
        if c.logprobs is not None
        for e in c.logprobs.content or []
    ]
    assert [(e.token, round(e.logprob, 4)) for e in streamed] == [(e.token, round(e.logprob, 4)) for e in entries]
    plain = client.chat.completions.create(model=CHAT, messages=JOKE, max_tokens=4)
    assert plain.choices[0].logprobs is None  # only when asked


def test_completion_logprobs(client: openai.OpenAI) -> None:
    reply = client.completions.create(
        model=CHAT, prompt="Strata is", max_tokens=8, temperature=0, logprobs=2, extra_body=FIXED_LENGTH
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens is not None
    assert logprobs.top_logprobs is not None
    assert len(logprobs.tokens) == len(logprobs.token_logprobs or []) == reply.usage.completion_tokens == 8
    assert all(len(top) <= 2 and max(top.values()) <= 0.0 for top in logprobs.top_logprobs)
    offsets = logprobs.text_offset or []
    assert offsets[0] == 0
    assert offsets == sorted(offsets)
    assert "".join(logprobs.tokens) == reply.choices[0].text


def _token_counts(client: openai.OpenAI, **penalties: float) -> tuple[str, Counter[str]]:
    reply = client.chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0,
        max_tokens=48, logprobs=True, extra_body=FIXED_LENGTH, **penalties,  # type: ignore[arg-type]
    )  # fmt: skip
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    return reply.choices[0].message.content or "", Counter(e.token for e in content or [])


def test_penalties_reduce_repetition(client: openai.OpenAI) -> None:
    # Forced past EOS, the tiny model repeats itself (EOS most of all); penalising generated tokens breaks that.
    plain_text, plain = _token_counts(client)
    assert max(plain.values()) >= 10
    text, counts = _token_counts(client, frequency_penalty=2.0)  # grows with each repeat
    assert max(counts.values()) < max(plain.values()) / 2
    assert len(counts) > len(plain)  # more distinct tokens
    text, counts = _token_counts(client, presence_penalty=2.0)  # once per token seen: weaker
    assert text != plain_text
    assert len(counts) > len(plain)
    _, favoured = _token_counts(client, frequency_penalty=-2.0)  # a negative one favours repeats
    assert len(favoured) < len(plain)
    assert max(favoured.values()) > max(plain.values())


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 17}, "n"),
        ({"n": 0}, "n"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),  # without logprobs: true
        ({"presence_penalty": 2.5}, "presence_penalty"),
        ({"frequency_penalty": -3}, "frequency_penalty"),
    ],
)
def test_bad_sampling_fields_are_named(client: openai.OpenAI, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.chat.completions.create(model=CHAT, messages=JOKE, max_tokens=4, **extra)
    assert error.value.body["param"] == param  # type: ignore[index]
    assert param in error.value.body["message"]  # type: ignore[index]


def test_bad_completion_logprobs_is_named(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client.completions.create(model=CHAT, prompt="Strata is", max_tokens=4, logprobs=6)
    assert error.value.body["param"] == "logprobs"  # type: ignore[index]
